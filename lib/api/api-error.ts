import { SwarmdError, type ErrorKind } from '../types/errors.js'

/**
 * An error with an HTTP status: the API's own (an unknown route, a body too
 * large), and what a client reads from a daemon's error body. The docker CLI
 * prints the message after "Error response from daemon: ".
 */
export class ApiError extends SwarmdError<`E_API_${number}`> {
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`E_API_${status}`, message, { ...options, kind: kindOfStatus(status) })
  }
}

/**
 * moby's mapping of swarmkit's codes to HTTP statuses (api/server/httpstatus):
 * FailedPrecondition is a 400 there too, and codes it does not map are 500s.
 */
const STATUS: Record<ErrorKind, number> = {
  invalid_argument: 400,
  failed_precondition: 400,
  not_found: 404,
  conflict: 409,
  permission_denied: 403,
  unauthenticated: 401,
  unavailable: 503,
  unimplemented: 501,
  resource_exhausted: 500,
  unknown: 500,
  internal: 500,
}

export const statusOfKind = (k: ErrorKind): number => STATUS[k]

/** The status an error answers with: an ApiError's own, else its kind's. */
export const statusOf = (e: unknown): number => (e instanceof ApiError ? e.status : e instanceof SwarmdError ? STATUS[e.kind] : 500)

/** A status a client read, as a kind (the reverse of the table, for errors relayed back). */
function kindOfStatus(status: number): ErrorKind {
  if (status === 404) return 'not_found'
  if (status === 409) return 'conflict'
  if (status === 403) return 'permission_denied'
  if (status === 401) return 'unauthenticated'
  if (status === 503) return 'unavailable'
  if (status === 501) return 'unimplemented'
  if (status >= 400 && status < 500) return 'invalid_argument'
  return status >= 500 ? 'unknown' : 'internal'
}
