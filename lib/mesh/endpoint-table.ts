import { SwarmdError } from '../types/errors.js'
import { type Endpoint, endpointKey, type Protocol } from './types.js'

/**
 * The cluster-wide endpoint table, with the semantics of Docker's NetworkDB
 * `endpoint_table`: one last-writer-wins register per (network, key), ordered
 * by Lamport clock, deleted entries kept as tombstones for a reaping period.
 *
 * Ordering of two versions of one key: higher clock wins; on equal clocks the
 * owner name decides, then a tombstone beats a value, then the value's bytes.
 * That is a total order, so replicas that saw the same writes hold the same
 * state whatever the order, duplication or batching of delivery (a CRDT).
 *
 * A dead node (removeNode) cannot delete its own entries, so every replica
 * turns them into tombstones at the *same* version: since a tombstone beats a
 * value on a tie, a late or duplicated copy of the old delta never brings an
 * entry back. When the node returns, only writes with higher clocks show
 * entries again. A node that kept its state (a partition, a false "dead")
 * gets its entries back by refuting: the owner is the authority on its own
 * keys, so whenever it is shown a version of one of them that beats its own
 * and says something else (our tombstone for it, or a stale entry from before
 * its restart), it re-writes its real state with a higher clock and returns
 * that for dissemination — as memberlist refutes "dead" with a new
 * incarnation. The owner sees those versions in the full-state exchange the
 * mesh runs when a node (re)joins, and in periodic anti-entropy. A restarted
 * node merges a full state before writing, so its Lamport clock is already
 * past every version of its old entries and its fresh writes win.
 */

/** One register of the table, as disseminated: a value or, with `value: null`, a tombstone. */
export interface TableEntry {
  network: string
  key: string
  clock: number
  /** The node that wrote this version: the endpoint's node for values. */
  owner: string
  value: Endpoint | null
}

/** What a table operation changed in the visible set, and what to disseminate. */
export interface TableUpdate {
  added: Endpoint[]
  removed: Endpoint[]
  /** Same key, different value: the new value. */
  updated: Endpoint[]
  /** Entries to send to the other nodes (own writes and refutations); empty when there is nothing to send. */
  broadcast: TableEntry[]
}

/** A replica's whole table, for anti-entropy (push/pull) and for a joining node. */
export interface FullState {
  /** The sender's Lamport clock: the receiver moves past it. */
  clock: number
  entries: TableEntry[]
}

export interface EndpointFilter {
  service?: string
  protocol?: Protocol
  targetPort?: number
  node?: string
}

export interface EndpointTableOptions {
  /** This node's member name: the owner of the endpoints it sets. */
  self: string
  /** How long tombstones are kept (NetworkDB's reapEntryInterval). */
  reapAfterMs?: number
  /** How long a dead node's mark is kept (NetworkDB reaps failed nodes after 24 h). */
  nodeReapAfterMs?: number
  /** Largest encoded delta message; set() refuses an endpoint that would not fit alone. */
  maxMessageBytes?: number
  now?: () => number
}

export const DEFAULT_REAP_AFTER_MS = 30 * 60_000
export const DEFAULT_NODE_REAP_AFTER_MS = 24 * 3_600_000
/** A memberlist user message's budget for one delta (UDP packet 1400 B minus gossip framing). */
export const DELTA_MAX_BYTES = 1024

interface Register extends TableEntry {
  /** Local time this register became a tombstone; reaping counts from it. */
  tombstonedAt?: number
}

export class EndpointTable {
  readonly self: string
  private lamport = 0
  /** network → key → register */
  private readonly nets = new Map<string, Map<string, Register>>()
  /** Nodes membership declared dead → when; their incoming values are taken as tombstones. */
  private readonly dead = new Map<string, number>()
  private readonly reapAfterMs: number
  private readonly nodeReapAfterMs: number
  private readonly maxMessageBytes: number
  private readonly now: () => number

  constructor(opts: EndpointTableOptions) {
    this.self = opts.self
    this.reapAfterMs = opts.reapAfterMs ?? DEFAULT_REAP_AFTER_MS
    this.nodeReapAfterMs = opts.nodeReapAfterMs ?? DEFAULT_NODE_REAP_AFTER_MS
    this.maxMessageBytes = opts.maxMessageBytes ?? DELTA_MAX_BYTES
    this.now = opts.now ?? Date.now
  }

  /** The local Lamport clock. */
  get clock(): number {
    return this.lamport
  }

  /** Publishes (or changes) an endpoint of a task on this node. */
  set(e: Endpoint): TableUpdate {
    if (e.node !== this.self) throw new SwarmdError('E_ENDPOINT_NOT_LOCAL', `endpoint ${endpointKey(e)} belongs to node ${e.node}, not ${this.self}`)
    const value = { ...e }
    const size = ENVELOPE_MAX + encodeEntry({ network: e.network, key: endpointKey(e), clock: MAX_CLOCK, owner: e.node, value }).length
    if (size > this.maxMessageBytes) throw new SwarmdError('E_ENDPOINT_TOO_LARGE', `endpoint ${endpointKey(e)} takes ${size} bytes, more than one ${this.maxMessageBytes}-byte message`)
    const key = endpointKey(e)
    const cur = this.reg(e.network, key)
    if (cur?.owner === this.self && cur.value && sameEndpoint(cur.value, value)) return emptyUpdate()
    return this.write(e.network, key, value)
  }

  /** Withdraws an endpoint this node published. Deleting what is absent or already deleted does nothing. */
  delete(network: string, key: string): TableUpdate {
    const cur = this.reg(network, key)
    if (!cur?.value) return emptyUpdate()
    if (cur.owner !== this.self) throw new SwarmdError('E_ENDPOINT_NOT_LOCAL', `endpoint ${key} belongs to node ${cur.owner}, not ${this.self}`)
    return this.write(network, key, null)
  }

  /** Applies entries from other nodes (deltas, or the entries of a full state). */
  apply(entries: readonly TableEntry[]): TableUpdate {
    const u = emptyUpdate()
    for (const entry of entries) {
      this.lamport = Math.max(this.lamport, entry.clock)
      let inc: TableEntry = entry
      const cur = this.reg(inc.network, inc.key)
      if (inc.owner === this.self) {
        if (cur && compareVersions(inc, cur) <= 0) continue
        const mine = cur?.owner === this.self ? cur.value : null
        if (!sameValue(mine, inc.value)) {
          // Refute: our own state, at a clock that beats what we were shown.
          this.merge(u, this.write(inc.network, inc.key, mine))
          continue
        }
      } else if (inc.value && this.dead.has(inc.owner)) {
        inc = { ...inc, value: null }
      }
      if (cur && compareVersions(inc, cur) <= 0) continue
      this.store(u, { ...inc, value: inc.value && { ...inc.value } })
    }
    return u
  }

  fullState(): FullState {
    const entries: TableEntry[] = []
    for (const regs of this.nets.values()) for (const r of regs.values()) entries.push(toEntry(r))
    return { clock: this.lamport, entries }
  }

  mergeFullState(state: FullState): TableUpdate {
    this.lamport = Math.max(this.lamport, state.clock)
    return this.apply(state.entries)
  }

  /**
   * Membership declared `node` dead or gone: all its entries become tombstones
   * at their current versions, here only (every node does this from its own
   * membership view, so nothing is broadcast).
   */
  removeNode(node: string): TableUpdate {
    const u = emptyUpdate()
    if (node === this.self) return u
    this.dead.set(node, this.now())
    for (const regs of this.nets.values()) {
      for (const r of regs.values()) if (r.owner === node && r.value) this.store(u, { ...toEntry(r), value: null })
    }
    return u
  }

  /**
   * Membership sees `node` alive again. Nothing re-appears here: its entries
   * come back with the higher clocks of its refutations or fresh writes (see
   * the top of this file), so entries it no longer has stay deleted.
   */
  nodeBack(node: string): void {
    this.dead.delete(node)
  }

  /** Visible endpoints of one network, in key order. */
  endpoints(network: string, filter: EndpointFilter = {}): Endpoint[] {
    const regs = this.nets.get(network)
    if (!regs) return []
    const out: Endpoint[] = []
    for (const r of regs.values()) {
      const v = r.value
      if (!v) continue
      if (filter.service !== undefined && v.service !== filter.service) continue
      if (filter.protocol !== undefined && v.protocol !== filter.protocol) continue
      if (filter.targetPort !== undefined && v.targetPort !== filter.targetPort) continue
      if (filter.node !== undefined && v.node !== filter.node) continue
      out.push({ ...v })
    }
    return out.sort((a, b) => cmpStr(endpointKey(a), endpointKey(b)))
  }

  /** Drops tombstones older than the reaping period, and old dead-node marks. Returns how many tombstones went. */
  reap(now: number = this.now()): number {
    let n = 0
    for (const [net, regs] of this.nets) {
      for (const [key, r] of regs) {
        if (r.tombstonedAt !== undefined && now - r.tombstonedAt >= this.reapAfterMs) {
          regs.delete(key)
          n++
        }
      }
      if (regs.size === 0) this.nets.delete(net)
    }
    for (const [node, since] of this.dead) if (now - since >= this.nodeReapAfterMs) this.dead.delete(node)
    return n
  }

  /** One live endpoint by its key (not a copy: do not change it), or undefined. */
  get(network: string, key: string): Endpoint | undefined {
    return this.reg(network, key)?.value ?? undefined
  }

  private reg(network: string, key: string): Register | undefined {
    return this.nets.get(network)?.get(key)
  }

  /** A local write: a new version owned by this node, one past every clock seen. */
  private write(network: string, key: string, value: Endpoint | null): TableUpdate {
    const u = emptyUpdate()
    const entry: TableEntry = { network, key, clock: ++this.lamport, owner: this.self, value }
    this.store(u, entry)
    u.broadcast.push(toEntry(entry))
    return u
  }

  /** Replaces a register (the caller has decided the new version wins) and records the visible change. */
  private store(u: TableUpdate, entry: TableEntry): void {
    let regs = this.nets.get(entry.network)
    if (!regs) this.nets.set(entry.network, (regs = new Map()))
    const before = regs.get(entry.key)?.value ?? null
    const r: Register = { ...entry }
    if (!entry.value) r.tombstonedAt = this.now()
    regs.set(entry.key, r)
    const after = entry.value
    if (before && after) {
      if (!sameEndpoint(before, after)) u.updated.push({ ...after })
    } else if (after) u.added.push({ ...after })
    else if (before) u.removed.push({ ...before })
  }

  private merge(into: TableUpdate, from: TableUpdate): void {
    into.added.push(...from.added)
    into.removed.push(...from.removed)
    into.updated.push(...from.updated)
    into.broadcast.push(...from.broadcast)
  }
}

function emptyUpdate(): TableUpdate {
  return { added: [], removed: [], updated: [], broadcast: [] }
}

function toEntry(r: TableEntry): TableEntry {
  return { network: r.network, key: r.key, clock: r.clock, owner: r.owner, value: r.value && { ...r.value } }
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

const ENDPOINT_FIELDS = ['network', 'service', 'serviceName', 'task', 'node', 'protocol', 'targetPort', 'host', 'port'] as const

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return ENDPOINT_FIELDS.every(f => a[f] === b[f])
}

function sameValue(a: Endpoint | null, b: Endpoint | null): boolean {
  return a === null || b === null ? a === b : sameEndpoint(a, b)
}

/** The total order of versions of one key: > 0 when `a` wins. */
export function compareVersions(a: TableEntry, b: TableEntry): number {
  if (a.clock !== b.clock) return a.clock - b.clock
  if (a.owner !== b.owner) return cmpStr(a.owner, b.owner)
  if (!a.value || !b.value) return (a.value ? 0 : 1) - (b.value ? 0 : 1)
  for (const f of ENDPOINT_FIELDS) {
    const av = a.value[f]
    const bv = b.value[f]
    if (av !== bv) return typeof av === 'number' ? av - (bv as number) : cmpStr(av, bv as string)
  }
  return 0
}

// ---------------------------------------------------------------- codec

/**
 * Binary encoding of deltas and full states. A delta message:
 *   u8 1, varint count, entries
 * a full state:
 *   u8 2, varint clock, varint count, entries
 * an entry:
 *   u8 flags (bit 0: value), varint clock, str network, str owner, then
 *   a value: str service, str serviceName, str task, u8 protocol (0 tcp, 1 udp),
 *            u16 targetPort, str host, u16 port  (node = owner, key derived)
 *   or a tombstone: str key
 * where varint is unsigned LEB128 in its shortest form, at most 2^53 - 1, and
 * str is u8 length + UTF-8. Big-endian u16.
 */
export class EndpointDecodeError extends SwarmdError {
  constructor(message: string) {
    super('E_ENDPOINT_DECODE', `endpoint table message: ${message}`)
  }
}

const TAG_DELTA = 1
const TAG_FULL = 2
const MAX_CLOCK = Number.MAX_SAFE_INTEGER
/** Tag plus the largest count varint a delta can need. */
const ENVELOPE_MAX = 1 + 3
const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp']

class Writer {
  private readonly parts: number[] = []
  private readonly chunks: Buffer[] = []

  byte(b: number): void {
    this.parts.push(b)
  }

  varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new SwarmdError('E_ENDPOINT_FIELD', `not a clock or count: ${n}`)
    while (n >= 0x80) {
      this.parts.push((n % 0x80) | 0x80)
      n = Math.floor(n / 0x80)
    }
    this.parts.push(n)
  }

  u16(n: number, what: string): void {
    if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new SwarmdError('E_ENDPOINT_FIELD', `${what} must be 0..65535, got ${n}`)
    this.parts.push(n >> 8, n & 0xff)
  }

  str(s: string, what: string): void {
    const b = Buffer.from(s, 'utf8')
    if (b.length > 255) throw new SwarmdError('E_ENDPOINT_FIELD', `${what} is ${b.length} bytes, at most 255`)
    this.parts.push(b.length)
    this.flush()
    this.chunks.push(b)
  }

  private flush(): void {
    if (this.parts.length) this.chunks.push(Buffer.from(this.parts.splice(0)))
  }

  done(): Buffer {
    this.flush()
    return Buffer.concat(this.chunks)
  }
}

function writeEntry(w: Writer, e: TableEntry): void {
  if (e.clock < 1) throw new SwarmdError('E_ENDPOINT_FIELD', `clock must be at least 1, got ${e.clock}`)
  w.byte(e.value ? 1 : 0)
  w.varint(e.clock)
  w.str(e.network, 'network')
  w.str(e.owner, 'owner')
  const v = e.value
  if (!v) {
    w.str(e.key, 'key')
    return
  }
  if (v.node !== e.owner || v.network !== e.network || endpointKey(v) !== e.key) {
    throw new SwarmdError('E_ENDPOINT_FIELD', `entry ${e.network}/${e.key} does not match its endpoint ${v.network}/${endpointKey(v)} on ${v.node}`)
  }
  w.str(v.service, 'service')
  w.str(v.serviceName, 'serviceName')
  w.str(v.task, 'task')
  w.byte(PROTOCOLS.indexOf(v.protocol))
  w.u16(v.targetPort, 'targetPort')
  w.str(v.host, 'host')
  w.u16(v.port, 'port')
}

function encodeEntry(e: TableEntry): Buffer {
  const w = new Writer()
  writeEntry(w, e)
  return w.done()
}

/**
 * Packs entries into as few delta messages as fit in `maxBytes` each, in
 * order. Throws E_ENDPOINT_TOO_LARGE for an entry that cannot fit alone.
 */
export function encodeDeltas(entries: readonly TableEntry[], maxBytes = DELTA_MAX_BYTES): Buffer[] {
  const out: Buffer[] = []
  let batch: Buffer[] = []
  let size = 0
  const close = (): void => {
    if (!batch.length) return
    const w = new Writer()
    w.byte(TAG_DELTA)
    w.varint(batch.length)
    out.push(Buffer.concat([w.done(), ...batch]))
    batch = []
    size = 0
  }
  for (const e of entries) {
    const b = encodeEntry(e)
    if (1 + varintLength(1) + b.length > maxBytes) throw new SwarmdError('E_ENDPOINT_TOO_LARGE', `entry ${e.network}/${e.key} takes ${b.length} bytes, more than one ${maxBytes}-byte message`)
    if (batch.length && 1 + varintLength(batch.length + 1) + size + b.length > maxBytes) close()
    batch.push(b)
    size += b.length
  }
  close()
  return out
}

export function encodeFullState(state: FullState): Buffer {
  const w = new Writer()
  w.byte(TAG_FULL)
  w.varint(state.clock)
  w.varint(state.entries.length)
  for (const e of state.entries) writeEntry(w, e)
  return w.done()
}

function varintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    len++
  }
  return len
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

class Reader {
  pos = 0
  constructor(private readonly b: Uint8Array) {}

  byte(): number {
    const v = this.b[this.pos]
    if (v === undefined) throw new EndpointDecodeError(`truncated at byte ${this.pos}`)
    this.pos++
    return v
  }

  varint(what: string): number {
    let n = 0
    let scale = 1
    for (let i = 0; ; i++) {
      const b = this.byte()
      n += (b & 0x7f) * scale
      if (!(b & 0x80)) {
        if (i > 0 && b === 0) throw new EndpointDecodeError(`${what}: varint not in its shortest form`)
        break
      }
      scale *= 0x80
      if (i === 7) throw new EndpointDecodeError(`${what}: varint too long`)
    }
    if (n > MAX_CLOCK) throw new EndpointDecodeError(`${what}: ${n} is beyond 2^53 - 1`)
    return n
  }

  u16(): number {
    return (this.byte() << 8) | this.byte()
  }

  str(what: string): string {
    const len = this.byte()
    if (this.pos + len > this.b.length) throw new EndpointDecodeError(`${what}: truncated string`)
    const bytes = this.b.subarray(this.pos, this.pos + len)
    this.pos += len
    try {
      return utf8.decode(bytes)
    } catch {
      throw new EndpointDecodeError(`${what}: not UTF-8`)
    }
  }

  entry(): TableEntry {
    const flags = this.byte()
    if (flags > 1) throw new EndpointDecodeError(`unknown entry flags 0x${flags.toString(16)}`)
    const clock = this.varint('clock')
    if (clock < 1) throw new EndpointDecodeError('clock 0')
    const network = this.str('network')
    const owner = this.str('owner')
    if (!flags) return { network, key: this.str('key'), clock, owner, value: null }
    const service = this.str('service')
    const serviceName = this.str('serviceName')
    const task = this.str('task')
    const protocol = PROTOCOLS[this.byte()]
    if (!protocol) throw new EndpointDecodeError('unknown protocol')
    const targetPort = this.u16()
    const host = this.str('host')
    const port = this.u16()
    const value: Endpoint = { network, service, serviceName, task, node: owner, protocol, targetPort, host, port }
    return { network, key: endpointKey(value), clock, owner, value }
  }

  end(): void {
    if (this.pos !== this.b.length) throw new EndpointDecodeError(`${this.b.length - this.pos} trailing bytes`)
  }
}

/** Decodes one delta message; throws EndpointDecodeError on anything malformed. */
export function decodeDelta(buf: Uint8Array): TableEntry[] {
  const r = new Reader(buf)
  if (r.byte() !== TAG_DELTA) throw new EndpointDecodeError('not a delta')
  const entries = readEntries(r)
  if (!entries.length) throw new EndpointDecodeError('empty delta')
  return entries
}

export function decodeFullState(buf: Uint8Array): FullState {
  const r = new Reader(buf)
  if (r.byte() !== TAG_FULL) throw new EndpointDecodeError('not a full state')
  const clock = r.varint('clock')
  return { clock, entries: readEntries(r) }
}

function readEntries(r: Reader): TableEntry[] {
  const count = r.varint('count')
  const entries: TableEntry[] = []
  // Each entry takes at least 5 bytes, so a huge count fails on the bytes, not on memory.
  for (let i = 0; i < count; i++) entries.push(r.entry())
  r.end()
  return entries
}
