import { isErrorKind, kindOf, SwarmdError, type ErrorKind } from '../types/errors.js'

/** What an error looks like on the wire of a control conversation: the text, and the code and kind it had. */
export interface ErrorBody {
  error: string
  code?: string
  kind?: ErrorKind
}

/**
 * An error the other side of a control conversation answered with. Its code
 * and kind travel with it, so the caller treats a remote "not found" or
 * "out of sequence" as it would its own; an answer without them (an older
 * peer) is `unknown`, as an error without a gRPC code is in swarmkit.
 */
export class RemoteError extends SwarmdError {}

export function errorBody(e: unknown): ErrorBody {
  const message = e instanceof Error ? e.message : String(e)
  return e instanceof SwarmdError ? { error: message, code: e.code, kind: e.kind } : { error: message, kind: kindOf(e) }
}

/** A refusal by the serving side: the caller is not allowed what it asked for. */
export const refusal = (message: string, kind: ErrorKind = 'permission_denied'): ErrorBody => ({ error: message, code: 'E_CONTROL_REFUSED', kind })

export function remoteError(r: { error: string; code?: unknown; kind?: unknown }): RemoteError {
  return new RemoteError(typeof r.code === 'string' && r.code ? r.code : 'E_CONTROL_REMOTE', String(r.error), { kind: isErrorKind(r.kind) ? r.kind : 'unknown' })
}

/**
 * A manager's answer as an object whose fields the caller checks: an error
 * body is thrown as the RemoteError it carries, and anything that is not an
 * object is refused as malformed, so a broken or hostile manager never
 * surfaces as a TypeError in the node.
 */
export function answerOf(msg: unknown, what: string): Record<string, unknown> {
  const malformed = (): RemoteError => new RemoteError('E_CONTROL_MALFORMED', `malformed ${what} from the manager`, { kind: 'unknown' })
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw malformed()
  const m = msg as Record<string, unknown>
  if (m.error !== undefined) throw typeof m.error === 'string' ? remoteError({ ...m, error: m.error }) : malformed()
  return m
}
