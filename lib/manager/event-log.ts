import type { DockerEvent } from './events.js'

/** dockerd keeps the last 256 events for `--since` (daemon/events eventsLimit). */
const LIMIT = 256

/**
 * The events a node has seen: the last few for `docker events --since`,
 * and every new one to whoever listens. A node keeps one for its life, so
 * a listener outlasts the manager role changing under it.
 */
export class EventLog {
  private readonly ring: DockerEvent[] = []
  private readonly listeners = new Set<(e: DockerEvent) => void>()

  constructor(private readonly limit = LIMIT) {}

  publish(e: DockerEvent): void {
    this.ring.push(e)
    if (this.ring.length > this.limit) this.ring.shift()
    for (const l of this.listeners) l(e)
  }

  /**
   * The kept events from `since` to `until` (Unix nanoseconds, inclusive),
   * oldest first, as moby's loadBufferedEvents: none unless one is given,
   * and from the newest back to the first older than `since`.
   */
  kept(since: bigint | undefined, until: bigint | undefined): DockerEvent[] {
    if (since === undefined && until === undefined) return []
    const out: DockerEvent[] = []
    for (let i = this.ring.length - 1; i >= 0; i--) {
      const e = this.ring[i]!
      if (since !== undefined && e.timeNano < since) break
      if (until === undefined || e.timeNano <= until) out.unshift(e)
    }
    return out
  }

  /** Calls `l` with every event from now on, until the returned function is called. */
  listen(l: (e: DockerEvent) => void): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }
}
