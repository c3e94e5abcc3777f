import { readFileSync, readdirSync } from 'node:fs'

/**
 * What the tunnel allows itself, so that nobody who reaches 4789 can take
 * the process's file descriptors (and with them its local API, its
 * published ports and its control plane) or hold sockets for free.
 */
export interface TunnelLimits {
  /** A connection must finish the handshake within this (both sides). */
  handshakeTimeoutMs: number
  /** Inbound connections still in their handshake, in all; a newcomer beyond it ends the oldest (a legitimate handshake takes a round trip, a held one is what gets ended). */
  maxUnauthenticated: number
  /** Inbound connections still in their handshake from one IP address; beyond it the newcomer is refused. */
  maxUnauthenticatedPerSource: number
  /** Authenticated inbound connections from one peer (a pair needs one; a second lives while simultaneous dials settle or a retired one drains). */
  maxConnectionsPerPeer: number
  /** A connection without streams this long is closed by its dialer (its acceptor waits twice as long); 0: never. */
  idleTimeoutMs: number
  /** The process's descriptor limit (default: the soft RLIMIT_NOFILE, from /proc/self/limits). */
  fdLimit: number
  /** Descriptors left to the rest of the process: no tunnel connection is accepted or dialled above fdLimit - fdReserve. */
  fdReserve: number
}

export type RefusalReason =
  /** The peer's proof did not verify, or it is not the node that was dialled. */
  | 'auth'
  /** A frame other than the handshake's before the handshake completed. */
  | 'unauthenticated'
  | 'handshake_timeout'
  /** The oldest handshake, ended to make room for a newer one. */
  | 'unauthenticated_cap'
  /** Too many handshakes from the newcomer's IP address. */
  | 'source_cap'
  /** Too many authenticated connections from the peer. */
  | 'peer_cap'
  /** The process is near its descriptor limit. */
  | 'fd_reserve'

export const REFUSAL_REASONS: readonly RefusalReason[] = ['auth', 'unauthenticated', 'handshake_timeout', 'unauthenticated_cap', 'source_cap', 'peer_cap', 'fd_reserve']

export const DEFAULT_LIMITS: Omit<TunnelLimits, 'fdLimit'> = {
  handshakeTimeoutMs: 5_000,
  maxUnauthenticated: 128,
  maxUnauthenticatedPerSource: 16,
  maxConnectionsPerPeer: 4,
  idleTimeoutMs: 600_000,
  fdReserve: 128,
}

/** The soft limit on open files, from /proc/self/limits; Infinity when unknown or unlimited. */
export function readFdLimit(limits = '/proc/self/limits'): number {
  let text: string
  try {
    text = readFileSync(limits, 'utf8')
  } catch {
    return Infinity
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text)
  return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity
}

/** Descriptors open in this process now (the listing's own descriptor excluded). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length - 1
}

/** How often the descriptors are counted; between counts, the tunnel's own opens and closes are added. */
const FD_RECOUNT_MS = 100

/** What a connection holds against the limits; only ConnectionLimits sets `slot`. */
export interface Slotted {
  /** The remote IP address. */
  readonly source: string
  readonly dialed: boolean
  peer: string | undefined
  slot: 'handshake' | 'peer' | undefined
}

/** Admission of tunnel connections: the caps, and the descriptor reserve. */
export class ConnectionLimits {
  private handshaking = 0
  private readonly bySource = new Map<string, number>()
  private readonly byPeer = new Map<string, number>()
  private counted = 0
  private countedAt = -Infinity
  /** Tunnel sockets opened minus closed since the last count. */
  private delta = 0

  constructor(
    readonly limits: TunnelLimits,
    private readonly clock: () => number = () => performance.now(),
    private readonly countFds: () => number = openFds,
  ) {}

  /** Why a new inbound connection from `source` is refused, if it is. */
  admitInbound(source: string): RefusalReason | undefined {
    if ((this.bySource.get(source) ?? 0) >= this.limits.maxUnauthenticatedPerSource) return 'source_cap'
    return this.fdsLeft() ? undefined : 'fd_reserve'
  }

  /** Every handshake slot is taken: the oldest must make room for a newcomer. */
  get handshakesFull(): boolean {
    return this.handshaking >= this.limits.maxUnauthenticated
  }

  /** Why a dial is refused, if it is. */
  admitDial(): RefusalReason | undefined {
    return this.fdsLeft() ? undefined : 'fd_reserve'
  }

  /** A socket the tunnel keeps (inbound ones: after admitInbound allowed them). */
  opened(c: Slotted): void {
    this.delta++
    if (c.dialed) return
    c.slot = 'handshake'
    this.handshaking++
    this.bySource.set(c.source, (this.bySource.get(c.source) ?? 0) + 1)
  }

  /** An inbound connection proved its peer: it leaves the handshake caps and takes one of the peer's; the reason if the peer has too many. */
  authenticated(c: Slotted): RefusalReason | undefined {
    this.release(c)
    const n = this.byPeer.get(c.peer!) ?? 0
    if (n >= this.limits.maxConnectionsPerPeer) return 'peer_cap'
    this.byPeer.set(c.peer!, n + 1)
    c.slot = 'peer'
    return undefined
  }

  closed(c: Slotted): void {
    this.delta--
    this.release(c)
  }

  private release(c: Slotted): void {
    if (c.slot === 'handshake') {
      this.handshaking--
      decrement(this.bySource, c.source)
    } else if (c.slot === 'peer') decrement(this.byPeer, c.peer!)
    c.slot = undefined
  }

  private fdsLeft(): boolean {
    const { fdLimit, fdReserve } = this.limits
    if (!Number.isFinite(fdLimit)) return true
    const now = this.clock()
    if (now - this.countedAt >= FD_RECOUNT_MS) {
      try {
        this.counted = this.countFds()
      } catch {
        // No /proc: the reserve cannot be measured, so it is not enforced.
        this.counted = -Infinity
      }
      this.countedAt = now
      this.delta = 0
    }
    return this.counted + this.delta < fdLimit - fdReserve
  }
}

function decrement(m: Map<string, number>, k: string): void {
  const n = (m.get(k) ?? 0) - 1
  if (n > 0) m.set(k, n)
  else m.delete(k)
}
