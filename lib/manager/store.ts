import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SwarmdError } from '../types/errors.js'
import { readLog, WriteAheadLog } from './wal.js'

export class StoreError extends SwarmdError {}

/** One change to the store. Values must survive JSON. */
export type Mutation = { op: 'put'; table: string; id: string; value: unknown } | { op: 'delete'; table: string; id: string }

interface Entry {
  index: number
  mutations: Mutation[]
}

interface Snapshot {
  index: number
  tables: Record<string, Record<string, unknown>>
}

const SNAPSHOT = 'snapshot.json'
const walName = (base: number): string => `wal-${String(base).padStart(12, '0')}.log`

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * The manager's durable state: tables of JSON objects by id. Every commit is
 * written ahead to a log and fsynced before it is applied and acknowledged,
 * so whatever a caller saw acknowledged survives `kill -9`. A snapshot
 * (written aside, fsynced, renamed) bounds the log, which restarts after it.
 */
export class Store {
  private readonly tables = new Map<string, Map<string, unknown>>()
  /** Index of the last applied (acknowledged) commit. */
  private lastIndex = 0
  /** Index handed to the last commit, applied or still on its way to disk. */
  private nextIndex = 0
  private inFlight = 0
  private commits = 0
  private snapshotting: Promise<void> | undefined

  private constructor(
    readonly dir: string,
    private wal: WriteAheadLog,
    private readonly snapshotEvery: number,
  ) {}

  /** Opens (creating if needed) the store in `dir`: the snapshot, then every logged commit after it. */
  static async open(dir: string, opts: { snapshotEvery?: number } = {}): Promise<Store> {
    mkdirSync(dir, { recursive: true })
    let snap: Snapshot = { index: 0, tables: {} }
    try {
      snap = JSON.parse(readFileSync(join(dir, SNAPSHOT), 'utf8')) as Snapshot
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError('E_STORE_SNAPSHOT', `cannot read the snapshot in ${dir}: ${(e as Error).message}`, { cause: e })
    }
    const logs = readdirSync(dir)
      .filter(f => /^wal-\d+\.log$/.test(f))
      .sort()
    const current = walName(snap.index)
    const store = new Store(dir, await WriteAheadLog.open(join(dir, current)), opts.snapshotEvery ?? 10_000)
    for (const [table, rows] of Object.entries(snap.tables)) store.tables.set(table, new Map(Object.entries(rows)))
    store.lastIndex = snap.index
    for (const f of logs) {
      for (const rec of readLog(join(dir, f))) {
        let e: Entry
        try {
          e = JSON.parse(rec.toString('utf8')) as Entry
        } catch (err) {
          throw new StoreError('E_STORE_CORRUPT', `unreadable entry in ${f}`, { cause: err })
        }
        if (e.index <= store.lastIndex) continue
        store.applyAll(e.mutations)
        store.lastIndex = e.index
      }
    }
    store.nextIndex = store.lastIndex
    // Logs older than the snapshot are fully contained in it.
    for (const f of logs) if (f < current) rmSync(join(dir, f), { force: true })
    return store
  }

  /** Index of the last acknowledged commit. */
  get index(): number {
    return this.lastIndex
  }

  get<T>(table: string, id: string): T | undefined {
    return this.tables.get(table)?.get(id) as T | undefined
  }

  /** The IDs of a table's rows. */
  ids(table: string): string[] {
    return [...(this.tables.get(table)?.keys() ?? [])]
  }

  list<T>(table: string): T[] {
    return [...(this.tables.get(table)?.values() ?? [])] as T[]
  }

  /**
   * Applies `mutations` atomically and durably: resolves with the commit's
   * index once it is on disk; readers see it only then.
   */
  async commit(mutations: Mutation[]): Promise<number> {
    for (const m of mutations) {
      if (!m.table || !m.id) throw new StoreError('E_STORE_MUTATION', 'a mutation needs a table and an id')
    }
    while (this.snapshotting) await this.snapshotting
    const index = ++this.nextIndex
    const entry: Entry = { index, mutations }
    this.inFlight++
    try {
      // The log resolves appends in order, so commits apply in index order.
      await this.wal.append(Buffer.from(JSON.stringify(entry)))
    } finally {
      this.inFlight--
    }
    this.applyAll(mutations)
    this.lastIndex = index
    if (++this.commits % this.snapshotEvery === 0) await this.snapshot()
    return index
  }

  private applyAll(mutations: Mutation[]): void {
    for (const m of mutations) {
      let t = this.tables.get(m.table)
      if (!t) this.tables.set(m.table, (t = new Map()))
      if (m.op === 'put') t.set(m.id, structuredClone(m.value))
      else t.delete(m.id)
    }
  }

  /**
   * Writes the whole state aside, makes it durable, then starts a new log
   * after it. Commits wait meanwhile, and it waits for those on their way to
   * disk, so no acknowledged commit is only in the log it removes.
   */
  snapshot(): Promise<void> {
    this.snapshotting ??= this.writeSnapshot().finally(() => (this.snapshotting = undefined))
    return this.snapshotting
  }

  private async writeSnapshot(): Promise<void> {
    while (this.inFlight > 0) await new Promise(r => setImmediate(r))
    const snap: Snapshot = { index: this.lastIndex, tables: {} }
    for (const [name, rows] of this.tables) snap.tables[name] = Object.fromEntries(rows)
    const tmp = join(this.dir, `${SNAPSHOT}.tmp`)
    writeFileSync(tmp, JSON.stringify(snap))
    fsyncPath(tmp)
    renameSync(tmp, join(this.dir, SNAPSHOT))
    fsyncPath(this.dir)
    const old = this.wal
    this.wal = await WriteAheadLog.open(join(this.dir, walName(snap.index)))
    await old.close()
    if (old.path !== this.wal.path) rmSync(old.path, { force: true })
  }

  async close(): Promise<void> {
    await this.wal.close()
  }
}
