/** A message waiting to be piggybacked on outgoing gossip packets. */
export interface Broadcast {
  /** memberlist's named broadcasts: a new broadcast with the same name replaces the queued one (whatever its type). */
  readonly name?: string
  /** The full encoded message, type byte first. */
  readonly msg: Buffer
  /** Called once when the broadcast is retired (transmit limit reached), replaced/invalidated, or pruned/reset. */
  finished?(): void
}

/** How many times a broadcast is sent before it is retired: mult × ceil(log10(n + 1)). */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1))
}

interface Entry {
  readonly b: Broadcast
  /** Taken once at queue time, like upstream, so the entry's position stays stable. */
  readonly len: number
  /** Upstream's id: it restarts when the queue empties, so two entries can share one. */
  readonly id: number
  /** Never restarts: breaks ties between equal ids (see {@link TransmitLimitedQueue}). */
  readonly seq: number
  transmits: number
}

/** Index of the first element of `desc` (sorted descending) that is <= x. */
function firstAtMost(desc: readonly number[], x: number): number {
  let lo = 0
  let hi = desc.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (desc[mid]! > x) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Index of the first entry of `group` (sorted by id, then seq, ascending) that is not before `e`. */
function firstNotBefore(group: readonly Entry[], e: Entry): number {
  let lo = 0
  let hi = group.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const m = group[mid]!
    if (m.id < e.id || (m.id === e.id && m.seq < e.seq)) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * All entries with one transmit count, in queue order (length descending, then
 * id descending, then seq descending). Entries are grouped by length so that
 * "the first entry that fits in `free` bytes" is a binary search over the
 * distinct lengths followed by a pop, instead of a scan over every entry.
 */
class Tier {
  /** Distinct lengths present, descending. */
  private readonly lens: number[] = []
  /** Entries of one length, by (id, seq) ascending: pop() yields the first in queue order. */
  private readonly groups = new Map<number, Entry[]>()

  add(e: Entry): void {
    let group = this.groups.get(e.len)
    if (group === undefined) {
      group = []
      this.groups.set(e.len, group)
      this.lens.splice(firstAtMost(this.lens, e.len), 0, e.len)
    }
    group.splice(firstNotBefore(group, e), 0, e)
  }

  remove(e: Entry): void {
    const group = this.groups.get(e.len)!
    group.splice(firstNotBefore(group, e), 1)
    if (group.length === 0) this.dropGroup(firstAtMost(this.lens, e.len))
  }

  /** Removes and returns the first entry in queue order whose length is <= free. */
  takeFitting(free: number): Entry | undefined {
    const i = firstAtMost(this.lens, free)
    const len = this.lens[i]
    if (len === undefined) return undefined
    const group = this.groups.get(len)!
    const e = group.pop()!
    if (group.length === 0) this.dropGroup(i)
    return e
  }

  /** Removes up to `count` entries from the end of queue order (smallest, then oldest first). */
  dropLast(count: number): Entry[] {
    const out: Entry[] = []
    while (out.length < count && this.lens.length > 0) {
      const i = this.lens.length - 1
      const group = this.groups.get(this.lens[i]!)!
      const taken = group.splice(0, count - out.length)
      if (group.length === 0) this.dropGroup(i)
      for (const e of taken) out.push(e)
    }
    return out
  }

  /** Every entry, in queue order. */
  *entries(): Generator<Entry> {
    for (const len of this.lens) {
      const group = this.groups.get(len)!
      for (let i = group.length - 1; i >= 0; i--) yield group[i]!
    }
  }

  private dropGroup(lenIndex: number): void {
    this.groups.delete(this.lens[lenIndex]!)
    this.lens.splice(lenIndex, 1)
  }
}

/**
 * memberlist's TransmitLimitedQueue: broadcasts are piggybacked on gossip,
 * least-transmitted first, each until it has been sent `retransmitLimit` times.
 *
 * Queue order is transmits ascending, then message length descending, then id
 * descending (newest first). Entries are bucketed per transmit count and, in a
 * bucket, per length (see {@link Tier}).
 *
 * Ids follow upstream, which restarts its id counter whenever the queue
 * empties (even for a moment, inside getBroadcasts or a named replacement), so
 * tie-breaks between equal-length messages match memberlist's. That restart
 * can give two entries the same (transmits, length, id); upstream's B-tree
 * then treats them as one, silently losing a broadcast. Here both are kept,
 * the more recently queued first.
 *
 * Complexity of getBroadcasts, for T transmit tiers (at most the retransmit
 * limit, e.g. 16 at 1000–9999 nodes), r messages returned and L distinct
 * lengths in a tier: O(T + r·log L) comparisons to choose the messages, never
 * touching an entry that is not returned. Array splices (memmoves) come on
 * top: O(L) when a length group empties or appears, and, for each returned
 * message that is not retired, re-insertion into its same-length group of the
 * next tier, O(group size) worst case and O(1) when it sorts last (the usual
 * case for a new message). queueBroadcast and named replacement cost the same
 * binary searches and splices.
 */
export class TransmitLimitedQueue {
  private readonly numNodes: () => number
  private readonly retransmitMult: number
  /** Index = transmit count. Tiers are created in order (counts only grow by one), so there are no holes. */
  private readonly tiers: Tier[] = []
  private readonly named = new Map<string, Entry>()
  private size = 0
  private idGen = 0
  private seqGen = 0

  constructor(opts: { numNodes: () => number; retransmitMult: number }) {
    this.numNodes = opts.numNodes
    this.retransmitMult = opts.retransmitMult
  }

  queueBroadcast(b: Broadcast): void {
    // The id is taken before a replaced entry is removed: upstream does the
    // same, and the order matters because of the id reset in onRemoved().
    const e: Entry = { b, len: b.msg.length, id: ++this.idGen, seq: ++this.seqGen, transmits: 0 }
    // An empty name means unnamed, as upstream.
    const old = b.name ? this.named.get(b.name) : undefined
    if (old !== undefined) {
      this.tiers[old.transmits]!.remove(old)
      this.named.delete(old.b.name!)
      this.onRemoved(1)
    }
    this.insert(e)
    // Hooks run once the queue is consistent, so one may queue again.
    old?.b.finished?.()
  }

  /**
   * Fills one packet: repeatedly takes, from the lowest non-empty transmit
   * tier, the first message (in queue order) that fits in the space left, so
   * small messages fill the gaps big ones leave. Each message costs
   * `overhead + length` bytes; the total never exceeds `limit`. A message
   * appears at most once per call.
   */
  getBroadcasts(overhead: number, limit: number): Buffer[] {
    if (this.size === 0) return []
    const transmitLimit = retransmitLimit(this.retransmitMult, this.numNodes())
    const out: Buffer[] = []
    const bumped: Entry[] = []
    const retired: Entry[] = []
    let used = 0
    for (let t = 0; t < this.tiers.length; ) {
      const free = limit - used - overhead
      if (free <= 0) break
      const e = this.tiers[t]!.takeFitting(free)
      if (e === undefined) {
        t++
        continue
      }
      used += overhead + e.len
      out.push(e.b.msg)
      if (e.transmits + 1 >= transmitLimit) {
        if (e.b.name) this.named.delete(e.b.name)
        retired.push(e)
      } else {
        // Re-inserted after the walk, or it would be met again in the next tier.
        e.transmits++
        bumped.push(e)
      }
    }
    this.onRemoved(bumped.length + retired.length)
    for (const e of bumped) this.tierAt(e.transmits).add(e)
    this.size += bumped.length
    for (const e of retired) e.b.finished?.()
    return out
  }

  numQueued(): number {
    return this.size
  }

  /** Keeps at most `maxRetain` broadcasts, dropping the most-transmitted (then smallest, then oldest) first. */
  prune(maxRetain: number): void {
    const dropped: Entry[] = []
    for (let t = this.tiers.length - 1; t >= 0 && dropped.length < this.size - maxRetain; t--) {
      for (const e of this.tiers[t]!.dropLast(this.size - maxRetain - dropped.length)) {
        if (e.b.name) this.named.delete(e.b.name)
        dropped.push(e)
      }
    }
    this.onRemoved(dropped.length)
    for (const e of dropped) e.b.finished?.()
  }

  /** Drops every broadcast. */
  reset(): void {
    const all: Entry[] = []
    for (const tier of this.tiers) for (const e of tier.entries()) all.push(e)
    this.tiers.length = 0
    this.named.clear()
    this.onRemoved(all.length)
    for (const e of all) e.b.finished?.()
  }

  private insert(e: Entry): void {
    this.tierAt(e.transmits).add(e)
    if (e.b.name) this.named.set(e.b.name, e)
    this.size++
  }

  private tierAt(transmits: number): Tier {
    while (this.tiers.length <= transmits) this.tiers.push(new Tier())
    return this.tiers[transmits]!
  }

  private onRemoved(count: number): void {
    this.size -= count
    // Upstream's id restart (see the class comment).
    if (this.size === 0) this.idGen = 0
  }
}
