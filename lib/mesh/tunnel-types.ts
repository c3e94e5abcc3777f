import type { SealKeyring } from './seal.js'
import type { ReplyRefusal } from './tunnel-flows.js'
import type { RefusalReason } from './tunnel-limits.js'

/** What the tunnel's parts (the Tunnel, its connections, streams and UDP side) share. */

/** What the tunnel needs to know of a network: its keys if it is encrypted. */
export interface TunnelNetwork {
  seal?: SealKeyring
}

export type DropReason = 'malformed' | 'unknown_vni' | 'plaintext' | 'decrypt' | 'replay' | 'unknown_stream' | 'flow_control' | ReplyRefusal

export interface TunnelCounters {
  framesIn: number
  framesOut: number
  bytesIn: number
  bytesOut: number
  datagramsIn: number
  datagramsOut: number
  connectionsOpened: number
  connectionsClosed: number
  /** Frames dropped, by reason; a connection whose framing broke counts once as malformed. */
  dropped: Record<DropReason, number>
  /** Connections refused, or ended, by the tunnel's rules (authentication, caps, timeouts), by reason. */
  refused: Record<RefusalReason, number>
  /** Connections closed after the idle timeout without streams. */
  idleClosed: number
}
