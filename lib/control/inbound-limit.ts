import type { ConnectionGater, MultiaddrConnection } from '@libp2p/interface'

/** The source address of an inbound connection, or undefined when it has none (not IP). */
function sourceHost(maConn: MultiaddrConnection): string | undefined {
  return maConn.remoteAddr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value
}

export interface PendingUpgradeLimit extends Required<Pick<ConnectionGater, 'denyInboundConnection' | 'denyInboundUpgradedConnection'>> {
  /** Connections refused so far because their source already had `max` upgrades under way. */
  readonly refused: number
}

/**
 * A connection gater that bounds how many inbound connections one source
 * address may have in the upgrade (multistream-select, Noise, yamux) at
 * once. libp2p only caps the pending upgrades of all sources together, so a
 * peer dripping handshake bytes on a few connections held every slot and no
 * other node could join or call in; with this it holds at most `max`, and
 * its further connections are closed at once. A slot is given back when the
 * upgrade completes or the connection closes, whichever comes first.
 */
export function pendingUpgradeLimit(max: number): PendingUpgradeLimit {
  const pending = new Map<string, number>()
  const release = new WeakMap<MultiaddrConnection, () => void>()
  let refused = 0
  return {
    get refused() {
      return refused
    },
    denyInboundConnection(maConn) {
      const host = sourceHost(maConn)
      if (host === undefined) return false
      const n = pending.get(host) ?? 0
      if (n >= max) {
        refused++
        return true
      }
      pending.set(host, n + 1)
      let held = true
      const done = (): void => {
        if (!held) return
        held = false
        const left = (pending.get(host) ?? 1) - 1
        if (left > 0) pending.set(host, left)
        else pending.delete(host)
      }
      release.set(maConn, done)
      maConn.addEventListener('close', done, { once: true })
      return false
    },
    denyInboundUpgradedConnection(_peer, maConn) {
      release.get(maConn)?.()
      return false
    },
  }
}
