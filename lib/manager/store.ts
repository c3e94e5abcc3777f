import { closeSync, fchmodSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SwarmdError } from '../types/errors.js'
import { timedCommit, type CommitObserver } from './commit-timing.js'
import { FILE_MODE, restrictToOwner } from './owner-only.js'
import type { ChangeListener, Mutation } from './state-store.js'
import { encodeRecord, readLog, recordPayload, recordProblem, WalCorruptError, WriteAheadLog } from './wal.js'

export class StoreError extends SwarmdError {}

/** What an operator can do about a damaged store (swarmd keeps one manager, so no other holds the state). */
const RECOVERY =
  'swarmd will not start on it, and has changed nothing. Keep these files for inspection, then restore the data dir from a backup that holds a later snapshot; ' +
  'once the swarm has several managers, --force-new-cluster on a healthy one rebuilds it.'

/** The store's files are damaged in a way no crash explains: where, and what to do. */
export class StoreCorruptError extends StoreError {
  constructor(
    readonly file: string,
    readonly offset: number,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super('E_STORE_CORRUPT', `the manager's store is damaged: ${file} at byte ${offset}: ${problem}. ${RECOVERY}`, options)
  }
}

export type { Mutation } from './state-store.js'

interface Entry {
  index: number
  mutations: Mutation[]
}

interface Snapshot {
  index: number
  tables: Record<string, Record<string, unknown>>
}

/**
 * One record in the log's framing, so a flipped bit is found; a file that
 * starts with `{` is the older bare JSON, read unchecked until the next
 * snapshot replaces it.
 */
const SNAPSHOT = 'snapshot.json'
/** A snapshot is one record, bounded only by the length field. */
const MAX_SNAPSHOT = 0xffffffff
const walName = (base: number): string => `wal-${String(base).padStart(12, '0')}.log`

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function readSnapshot(dir: string): Snapshot {
  const path = join(dir, SNAPSHOT)
  let buf: Buffer
  try {
    buf = readFileSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { index: 0, tables: {} }
    throw new StoreError('E_STORE_READ', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  let text = buf
  if (buf[0] !== 0x7b) {
    const problem = recordProblem(buf, 0, MAX_SNAPSHOT) ?? (recordPayload(buf, 0).length + 8 !== buf.length ? 'bytes after the snapshot record' : undefined)
    if (problem) throw new StoreCorruptError(path, 0, problem)
    text = recordPayload(buf, 0)
  }
  let snap: Snapshot
  try {
    snap = JSON.parse(text.toString('utf8')) as Snapshot
  } catch (e) {
    throw new StoreCorruptError(path, 0, `a snapshot that is not JSON (${(e as Error).message})`, { cause: e })
  }
  if (!Number.isSafeInteger(snap?.index) || snap.index < 0 || typeof snap.tables !== 'object' || snap.tables === null) {
    throw new StoreCorruptError(path, 0, 'a snapshot without its index and tables')
  }
  return snap
}

function parseEntry(file: string, offset: number, payload: Buffer): Entry {
  let e: Entry
  try {
    e = JSON.parse(payload.toString('utf8')) as Entry
  } catch (err) {
    throw new StoreCorruptError(file, offset, `an entry that is not JSON (${(err as Error).message})`, { cause: err })
  }
  if (!Number.isSafeInteger(e?.index) || !Array.isArray(e.mutations)) throw new StoreCorruptError(file, offset, 'an entry without its index and mutations')
  return e
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
  private readonly listeners = new Set<ChangeListener>()

  private constructor(
    readonly dir: string,
    private wal: WriteAheadLog,
    private readonly snapshotEvery: number,
    private readonly onCommit: CommitObserver | undefined,
  ) {}

  /**
   * Opens (creating if needed) the store in `dir`: the snapshot, then every
   * logged commit after it. A torn last record of the log being appended to
   * is cut off; any other damage throws StoreCorruptError (E_STORE_CORRUPT)
   * before anything on disk is changed.
   */
  static async open(dir: string, opts: { snapshotEvery?: number; onCommit?: CommitObserver } = {}): Promise<Store> {
    restrictToOwner(dir)
    const snap = readSnapshot(dir)
    const current = walName(snap.index)
    const logs = readdirSync(dir)
      .filter(f => /^wal-\d+\.log$/.test(f))
      .sort()
    // Logs older than the snapshot are fully contained in it; the newest is the one appended to.
    const live = logs.filter(f => f >= current)
    const entries: Entry[] = []
    for (const [i, f] of live.entries()) {
      const file = join(dir, f)
      let records
      try {
        records = readLog(file, { tornTail: i === live.length - 1 ? 'cut' : 'refuse' })
      } catch (e) {
        if (e instanceof WalCorruptError) throw new StoreCorruptError(e.path, e.offset, e.problem, { cause: e })
        throw e
      }
      for (const r of records) entries.push(parseEntry(file, r.offset, r.payload))
    }
    const store = new Store(dir, await WriteAheadLog.open(join(dir, current)), opts.snapshotEvery ?? 10_000, opts.onCommit)
    for (const [table, rows] of Object.entries(snap.tables)) store.tables.set(table, new Map(Object.entries(rows)))
    store.lastIndex = snap.index
    for (const e of entries) {
      if (e.index <= store.lastIndex) continue
      store.applyAll(e.mutations)
      store.lastIndex = e.index
    }
    store.nextIndex = store.lastIndex
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
  commit(mutations: Mutation[]): Promise<number> {
    return timedCommit(this.onCommit, () => this.write(mutations))
  }

  private async write(mutations: Mutation[]): Promise<number> {
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
    const before = this.listeners.size ? mutations.map(m => this.get(m.table, m.id)) : []
    this.applyAll(mutations)
    this.lastIndex = index
    for (const [i, m] of this.listeners.size ? mutations.entries() : []) {
      for (const l of this.listeners) l(m.table, m.id, before[i], this.get(m.table, m.id))
    }
    if (++this.commits % this.snapshotEvery === 0) await this.snapshot()
    return index
  }

  /** Called with each row a commit changed, once it is durable and applied. */
  onChange(l: ChangeListener): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
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
    const fd = openSync(tmp, 'w', FILE_MODE)
    try {
      // A leftover of a crash keeps its old mode through open: set it.
      fchmodSync(fd, FILE_MODE)
      writeFileSync(fd, encodeRecord(Buffer.from(JSON.stringify(snap)), MAX_SNAPSHOT))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
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
