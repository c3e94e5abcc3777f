import fs from 'node:fs'
import type { LogLine, LogOptions } from '../types/logs.js'

export interface TaskLogOptions {
  /** Rotate when the current file would grow past this (default 10 MiB). */
  maxBytes?: number
  /** Files kept, the current one included (default 3). */
  maxFiles?: number
  /** Longer lines are split into pieces of at most this many bytes (default 16 KiB, as Docker). */
  maxLineBytes?: number
}

type Stream = LogLine['stream']

// Wall-clock origin plus the monotonic clock gives nanoseconds that never go
// backwards within a process, so lines keep their order when compared by time.
const originNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint()
let lastNs = 0n

function nowNs(): bigint {
  let ns = originNs + process.hrtime.bigint()
  if (ns <= lastNs) ns = lastNs + 1n
  lastNs = ns
  return ns
}

/** Docker's RFC3339NanoFixed: always nine fraction digits, so times compare as strings. */
export function formatTime(ns: bigint): string {
  const iso = new Date(Number(ns / 1_000_000n)).toISOString()
  return `${iso.slice(0, 19)}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`
}

const TIME_LEN = formatTime(0n).length

/**
 * One task's output on disk, as `<time> <stream> <text>\n` lines in a file
 * rotated at `maxBytes` (`path`, `path.1`, … `path.<maxFiles-1>`, newest
 * first). Writes are synchronous: each is one chunk of at most a pipe's
 * worth into the page cache, and it keeps rotation and the hand-over to
 * followers free of races (a reader sees either all of a chunk or none).
 */
export class TaskLog {
  private readonly maxBytes: number
  private readonly maxFiles: number
  private readonly maxLine: number
  private fd: number
  private size: number
  private readonly partial: Record<Stream, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }
  private readonly followers = new Set<{ line: (l: LogLine) => void; end: () => void }>()
  private closed = false

  constructor(
    readonly path: string,
    opts: TaskLogOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? 10 * 1024 * 1024
    this.maxFiles = Math.max(1, opts.maxFiles ?? 3)
    this.maxLine = Math.max(4, opts.maxLineBytes ?? 16 * 1024)
    this.fd = fs.openSync(path, 'a+', 0o600)
    this.size = fs.fstatSync(this.fd).size
    // A line torn by a crash gets its end, so the next line is not glued to it.
    if (this.size > 0) {
      const last = Buffer.alloc(1)
      fs.readSync(this.fd, last, 0, 1, this.size - 1)
      if (last[0] !== 10) this.size += fs.writeSync(this.fd, '\n')
    }
  }

  /** True once the output has ended (or the log was closed): followers stop here. */
  get ended(): boolean {
    return this.closed
  }

  /** Stores the complete lines of `chunk`; a trailing partial line waits for its end (or `end`). */
  append(stream: Stream, chunk: Buffer): void {
    if (this.closed) return
    const buf = this.partial[stream].length > 0 ? Buffer.concat([this.partial[stream], chunk]) : chunk
    const lines: Buffer[] = []
    let pos = 0
    for (;;) {
      const nl = buf.indexOf(10, pos)
      if (nl < 0) break
      this.split(buf, pos, nl, lines, true)
      pos = nl + 1
    }
    pos = this.split(buf, pos, buf.length, lines, false)
    this.partial[stream] = Buffer.from(buf.subarray(pos))
    this.write(stream, lines)
  }

  /** Writes any partial lines, then ends the log: followers finish, later appends are dropped. */
  end(): void {
    if (this.closed) return
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream].length > 0) this.write(stream, [this.partial[stream]])
      this.partial[stream] = Buffer.alloc(0)
    }
    this.closed = true
    fs.closeSync(this.fd)
    for (const f of this.followers) f.end()
    this.followers.clear()
  }

  /** Reads the stored lines and, with `follow`, the new ones until `signal` aborts or the log ends. */
  read(opts: LogOptions, onLine: (l: LogLine) => void, signal: AbortSignal): Promise<void> {
    // Reading and subscribing happen in one synchronous step, so no line is missed or repeated.
    readTaskLog(this.path, this.maxFiles, opts, onLine)
    if (!opts.follow || this.closed || signal.aborted) return Promise.resolve()
    const since = opts.since !== undefined ? formatTime(BigInt(Math.floor(opts.since)) * 1_000_000n) : undefined
    return new Promise(resolve => {
      const follower = {
        line: (l: LogLine) => {
          if (since === undefined || l.time >= since) onLine(l)
        },
        end: () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      const onAbort = (): void => {
        this.followers.delete(follower)
        resolve()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.followers.add(follower)
    })
  }

  /**
   * Pushes buf[from, to) as lines of at most maxLine bytes, never splitting a
   * UTF-8 character; the remainder too when `whole`, else it is returned as
   * the position where the unfinished line starts.
   */
  private split(buf: Buffer, from: number, to: number, out: Buffer[], whole: boolean): number {
    let pos = from
    while (to - pos > this.maxLine) {
      let end = pos + this.maxLine
      // A UTF-8 character has at most three continuation bytes.
      let b = end
      while (b > end - 3 && ((buf[b] ?? 0) & 0xc0) === 0x80) b--
      if (((buf[b] ?? 0) & 0xc0) !== 0x80) end = b
      out.push(buf.subarray(pos, end))
      pos = end
    }
    if (!whole) return pos
    out.push(buf.subarray(pos, to))
    return to
  }

  private write(stream: Stream, lines: Buffer[]): void {
    if (lines.length === 0) return
    const pending: Buffer[] = []
    let pendingBytes = 0
    const flush = (): void => {
      if (pendingBytes === 0) return
      const data = Buffer.concat(pending, pendingBytes)
      let off = 0
      while (off < data.length) off += fs.writeSync(this.fd, data, off)
      this.size += pendingBytes
      pending.length = 0
      pendingBytes = 0
    }
    const stored: LogLine[] = []
    for (const text of lines) {
      const time = formatTime(nowNs())
      const entry = Buffer.concat([Buffer.from(`${time} ${stream} `), text, Buffer.from('\n')])
      if (this.size + pendingBytes + entry.length > this.maxBytes && this.size + pendingBytes > 0) {
        flush()
        this.rotate()
      }
      pending.push(entry)
      pendingBytes += entry.length
      stored.push({ time, stream, text: text.toString('utf8') })
    }
    flush()
    for (const l of stored) for (const f of this.followers) f.line(l)
  }

  private rotate(): void {
    fs.closeSync(this.fd)
    for (let i = this.maxFiles - 1; i >= 1; i--) {
      const from = i === 1 ? this.path : `${this.path}.${i - 1}`
      try {
        fs.renameSync(from, `${this.path}.${i}`)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      }
    }
    // With a single file there is nothing to rename: start it again.
    this.fd = fs.openSync(this.path, this.maxFiles === 1 ? 'w' : 'a', 0o600)
    this.size = 0
  }
}

/**
 * Delivers the lines stored at `path` and its rotated files, oldest first,
 * filtered by `since` and `tail`. For a task whose log is not open in this
 * process (it ended in an earlier life of the daemon).
 */
export function readTaskLog(path: string, maxFiles: number, opts: LogOptions, onLine: (l: LogLine) => void): void {
  const since = opts.since !== undefined ? formatTime(BigInt(Math.floor(opts.since)) * 1_000_000n) : undefined
  const file = (i: number): Buffer | undefined => {
    try {
      return fs.readFileSync(i === 0 ? path : `${path}.${i}`)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      return undefined
    }
  }
  if (opts.tail === undefined) {
    for (let i = maxFiles - 1; i >= 0; i--) {
      const data = file(i)
      if (!data) continue
      let pos = 0
      while (pos < data.length) {
        let nl = data.indexOf(10, pos)
        if (nl < 0) nl = data.length
        const l = parseLine(data.subarray(pos, nl))
        pos = nl + 1
        if (l && (since === undefined || l.time >= since)) onLine(l)
      }
    }
    return
  }
  // A tail parses from the end, only as far back as it needs: logs can be tens of MiB.
  const picked: LogLine[] = []
  const want = Math.max(0, opts.tail)
  scan: for (let i = 0; i < maxFiles && picked.length < want; i++) {
    const data = file(i)
    if (!data) continue
    let end = data.length
    while (picked.length < want && end >= 0) {
      const nl = end > 0 ? data.lastIndexOf(10, end - 1) : -1
      const l = parseLine(data.subarray(nl + 1, end))
      end = nl
      if (!l) continue
      // Times only grow, so everything further back is older still.
      if (since !== undefined && l.time < since) break scan
      picked.push(l)
    }
  }
  for (let i = picked.length - 1; i >= 0; i--) onLine(picked[i] as LogLine)
}

/** One stored line; undefined for a torn one (the daemon died mid-write). */
function parseLine(b: Buffer): LogLine | undefined {
  if (b.length < TIME_LEN + 8 || b[TIME_LEN] !== 32) return undefined
  const stream = b.toString('latin1', TIME_LEN + 1, TIME_LEN + 7)
  if ((stream !== 'stdout' && stream !== 'stderr') || b[TIME_LEN + 7] !== 32) return undefined
  return { time: b.toString('latin1', 0, TIME_LEN), stream, text: b.toString('utf8', TIME_LEN + 8) }
}
