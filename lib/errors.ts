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
