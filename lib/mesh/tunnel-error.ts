import { SwarmdError } from '../types/errors.js'

/**
 * Codes: E_TUNNEL_OPEN_FAILED (`reason` is the remote's OPEN_FAIL reason),
 * E_TUNNEL_OPEN_TIMEOUT, E_TUNNEL_PEER_UNREACHABLE (the dial failed),
 * E_TUNNEL_PEER_LOST (the connection died or resetPeer), E_TUNNEL_RESET
 * (the peer reset the stream; `reason` is its RST reason),
 * E_TUNNEL_UNKNOWN_VNI, E_TUNNEL_TOO_LARGE, E_TUNNEL_CLOSED, E_TUNNEL_PROTOCOL,
 * E_TUNNEL_AUTH (a side did not prove its name, or not in time; `reason` is
 * the RefusalReason), E_TUNNEL_REFUSED (a cap or the descriptor reserve;
 * `reason` is the RefusalReason, or EMFILE for a dial), E_TUNNEL_AUTH_KEY (a
 * bad shared key).
 */
export class TunnelError extends SwarmdError {
  constructor(
    code: string,
    message: string,
    readonly reason?: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options)
  }
}
