/**
 * Base class of every error swarmd throws on purpose. `code` is stable and
 * meant for programs; `message` is meant for people.
 */
export class SwarmdError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/**
 * A request the caller can fix or must know about, with the HTTP status the
 * Docker Engine API gives it. The API sends Docker's `{"message": "..."}`,
 * which the docker CLI prints after "Error response from daemon: ". Shared
 * by every layer so the manager can say "404" without knowing HTTP.
 */
export class ApiError extends SwarmdError {
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`E_API_${status}`, message, options)
  }
}
