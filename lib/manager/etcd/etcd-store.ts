import type { Etcd3, ICompare, IKeyValue } from 'etcd3'
import type { Logger } from 'pino'
import { NO_LEADER, SwarmError } from '../../types/errors.js'
import { timedCommit, type CommitObserver } from '../commit-timing.js'
import type { ChangeListener, StateStore } from '../state-store.js'
import type { Mutation } from '../store.js'

/** Every key swarmd writes lives under this prefix: the state, and the leader's election key. */
export const ROOT = '/swarmd/'
const STATE = `${ROOT}v1/`
const PAGE = 1_000
/** How long a write may take before it is given up (and checked); etcd's own limit is 5 s plus two elections. */
const WRITE_DEADLINE_MS = 4_000

const keyOf = (table: string, id: string): string => `${STATE}${table}/${encodeURIComponent(id)}`
const prefixEnd = (p: string): Buffer => {
  const b = Buffer.from(p)
  b[b.length - 1]!++
  return b
}

/** A leader's token: its campaign key and that key's create revision. Writes fenced by it fail once another leader took over. */
export interface Fence {
  key: string
  revision: string
}

interface Row {
  value: unknown
  /** etcd's mod_revision of the key: what a write compares against. */
  mod: string
}

/**
 * The swarm's state in etcd, with a full copy in memory (swarmkit's
 * MemoryStore over raft): listed at one revision, then kept current by a
 * watch from the next. Reads are served from the copy; `sync()` waits until
 * the copy has caught up with everything committed before it was called.
 * Every commit is one transaction that compares each key it writes with
 * the revision the copy holds (so two managers never both win, and a
 * stale writer gets "update out of sequence"), optionally fenced by the
 * leader's token, and it resolves once the copy shows it: acknowledged
 * after etcd has committed, read-your-writes on this manager.
 */
export class EtcdStore {
  private readonly tables = new Map<string, Map<string, Row>>()
  private revision = 0n
  private readonly waiters: { rev: bigint; resolve: () => void }[] = []
  private readonly listeners = new Set<ChangeListener>()
  private watcher: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | undefined
  private closed = false
  /** Set by the quorum watchdog: writes fail at once with the no-leader text. */
  noLeader = false

  private constructor(
    private readonly client: Etcd3,
    private readonly log: Logger,
    private readonly onCommit: CommitObserver | undefined,
  ) {}

  static async open(client: Etcd3, log: Logger, onCommit?: CommitObserver): Promise<EtcdStore> {
    const s = new EtcdStore(client, log, onCommit)
    await s.load()
    return s
  }

  /** Lists everything at one revision, then watches from the next; again from scratch when the watch breaks. */
  private async load(): Promise<void> {
    const rows = new Map<string, Map<string, Row>>()
    let start = Buffer.from(ROOT)
    let at: string | undefined
    for (;;) {
      // Serializable: a learner (a manager still joining) serves no other reads; the watch brings it up to date.
      const r = await this.client.kv.range({ key: start, range_end: prefixEnd(ROOT), limit: PAGE, serializable: true, ...(at ? { revision: at } : {}) })
      at ??= r.header.revision
      for (const kv of r.kvs) this.place(rows, kv)
      if (!r.more || r.kvs.length === 0) break
      start = Buffer.concat([r.kvs.at(-1)!.key, Buffer.from([0])])
    }
    this.tables.clear()
    for (const [t, m] of rows) this.tables.set(t, m)
    this.revision = BigInt(at)
    for (const l of this.listeners) l('*', '*')
    const w = await this.client.watch().prefix(ROOT).startRevision(String(this.revision + 1n)).create()
    this.watcher = w
    w.on('data', res => this.apply(res.events.map(e => ({ type: e.type, kv: e.kv })), BigInt(res.header.revision)))
    const restart = (why: unknown): void => {
      if (this.closed || this.watcher !== w) return
      this.log.warn({ err: why }, 'etcd watch broke: listing the state again')
      this.watcher = undefined
      void w.cancel().catch(() => undefined)
      void this.reload()
    }
    w.on('error', restart)
    w.on('end', () => restart('end'))
  }

  private async reload(): Promise<void> {
    while (!this.closed) {
      try {
        await this.load()
        return
      } catch (e) {
        this.log.warn({ err: e }, 'cannot list the state from etcd yet')
        await new Promise(r => setTimeout(r, 500).unref())
      }
    }
  }

  /** A key of the state into `rows`; keys outside the state (the election) are not rows. */
  private place(rows: Map<string, Map<string, Row>>, kv: IKeyValue): void {
    const at = rowOf(kv)
    if (!at) return
    let t = rows.get(at.table)
    if (!t) rows.set(at.table, (t = new Map()))
    t.set(at.id, { value: JSON.parse(kv.value.toString()), mod: kv.mod_revision })
  }

  private apply(events: { type: string | number; kv: IKeyValue }[], revision: bigint): void {
    const changed: { table: string; id: string; before: unknown; after: unknown }[] = []
    for (const e of events) {
      const at = rowOf(e.kv)
      if (!at) continue
      const { table, id } = at
      const before = this.get(table, id)
      if (e.type === 'Delete' || e.type === 1) this.tables.get(table)?.delete(id)
      else this.place(this.tables, e.kv)
      changed.push({ table, id, before, after: this.get(table, id) })
    }
    if (revision > this.revision) this.revision = revision
    for (const w of this.waiters.filter(x => x.rev <= this.revision)) {
      this.waiters.splice(this.waiters.indexOf(w), 1)
      w.resolve()
    }
    for (const c of changed) for (const l of this.listeners) l(c.table, c.id, c.before, c.after)
  }

  /** The revision the copy has reached. */
  get index(): number {
    return Number(this.revision)
  }

  get<T>(table: string, id: string): T | undefined {
    return this.tables.get(table)?.get(id)?.value as T | undefined
  }

  ids(table: string): string[] {
    return [...(this.tables.get(table)?.keys() ?? [])]
  }

  list<T>(table: string): T[] {
    return [...(this.tables.get(table)?.values() ?? [])].map(r => r.value) as T[]
  }

  /** Called with each changed row, with what it held before and holds now (`'*'` for all, after a relist). */
  onChange(l: ChangeListener): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }

  private caughtUp(rev: bigint): Promise<void> {
    if (this.revision >= rev) return Promise.resolve()
    return new Promise(resolve => this.waiters.push({ rev, resolve }))
  }

  /** Waits until the copy holds everything etcd had committed when called (a linearizable read of the revision). */
  async sync(): Promise<void> {
    this.failFast()
    let rev: string
    try {
      rev = (await this.client.kv.range({ key: Buffer.from(`${ROOT}sync`) }, { deadline: Date.now() + WRITE_DEADLINE_MS })).header.revision
    } catch (e) {
      throw noLeader(e)
    }
    await this.caughtUp(BigInt(rev))
  }

  private failFast(): void {
    if (this.noLeader) throw noLeader()
  }

  /**
   * Commits `mutations` as one transaction: each key must still be at the
   * revision this copy holds (absent keys must still be absent), and with a
   * fence, the leader's campaign key must be the one it created.
   */
  commit(mutations: Mutation[], fence?: Fence): Promise<number> {
    return timedCommit(this.onCommit, () => this.write(mutations, fence))
  }

  private async write(mutations: Mutation[], fence?: Fence): Promise<number> {
    this.failFast()
    const byKey = new Map<string, Mutation>()
    for (const m of mutations) byKey.set(keyOf(m.table, m.id), m)
    const compare: ICompare[] = [...byKey].map(([key, m]) => {
      const cur = this.tables.get(m.table)?.get(m.id)
      return cur ? { key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: cur.mod } : { key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: 0 }
    })
    if (fence) compare.push({ key: Buffer.from(fence.key), target: 'Create', result: 'Equal', create_revision: fence.revision })
    const success = [...byKey].map(([key, m]) =>
      m.op === 'put' ? { request_put: { key: Buffer.from(key), value: Buffer.from(JSON.stringify(m.value)) } } : { request_delete_range: { key: Buffer.from(key) } },
    )
    let res
    try {
      res = await this.client.kv.txn({ compare, success, failure: [] }, { deadline: Date.now() + WRITE_DEADLINE_MS })
    } catch (e) {
      // Indeterminate: it may have committed. What the keys hold now tells.
      if (await this.landed(byKey).catch(() => false)) return Number(this.revision)
      throw noLeader(e)
    }
    if (!res.succeeded) {
      if (fence && !(await this.fenceHolds(fence))) throw new SwarmError('E_NOT_LEADER', 'this manager is no longer the leader')
      throw new SwarmError('E_OUT_OF_SEQUENCE', 'rpc error: code = Unknown desc = update out of sequence')
    }
    await this.caughtUp(BigInt(res.header.revision))
    return Number(res.header.revision)
  }

  /** Whether a write whose outcome is unknown is what the keys hold now (read linearizably, then waited for in the copy). */
  private async landed(byKey: Map<string, Mutation>): Promise<boolean> {
    await this.sync()
    for (const m of byKey.values()) {
      const cur = this.tables.get(m.table)?.get(m.id)
      if (m.op === 'delete' ? cur !== undefined : !cur || JSON.stringify(cur.value) !== JSON.stringify(m.value)) return false
    }
    return true
  }

  private async fenceHolds(fence: Fence): Promise<boolean> {
    const r = await this.client.kv.range({ key: Buffer.from(fence.key) })
    return r.kvs[0]?.create_revision === fence.revision
  }

  /** A view whose commits are fenced by the leader's token: what the leader's components write through. */
  fenced(fence: Fence): StateStore {
    return {
      get: (t, id) => this.get(t, id),
      ids: t => this.ids(t),
      list: t => this.list(t),
      commit: m => this.commit(m, fence),
    }
  }

  async close(): Promise<void> {
    this.closed = true
    await this.watcher?.cancel().catch(() => undefined)
    this.watcher = undefined
  }
}

/** The table and ID a key of the state stands for; undefined for keys outside the state (the election). */
function rowOf(kv: IKeyValue): { table: string; id: string } | undefined {
  const key = kv.key.toString()
  if (!key.startsWith(STATE)) return undefined
  const rest = key.slice(STATE.length)
  const i = rest.indexOf('/')
  return { table: rest.slice(0, i), id: decodeURIComponent(rest.slice(i + 1)) }
}

function noLeader(cause?: unknown): SwarmError {
  return new SwarmError('E_NO_LEADER', NO_LEADER, cause === undefined ? undefined : { cause })
}
