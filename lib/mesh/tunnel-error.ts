import { SwarmdError } from '../errors.js'

/**
 * Codes: E_TUNNEL_OPEN_FAILED (`reason` is the remote's OPEN_FAIL reason),
 * E_TUNNEL_OPEN_TIMEOUT, E_TUNNEL_PEER_UNREACHABLE (the dial failed),
 * E_TUNNEL_PEER_LOST (the connection died or resetPeer), E_TUNNEL_RESET
 * (the peer reset the stream; `reason` is its RST reason),
 * E_TUNNEL_UNKNOWN_VNI, E_TUNNEL_TOO_LARGE, E_TUNNEL_CLOSED, E_TUNNEL_PROTOCOL.
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
