import { closeSync, fsyncSync, openSync, readFileSync, ftruncateSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { SwarmdError } from '../types/errors.js'
import { FILE_MODE } from './owner-only.js'

export class WalError extends SwarmdError {}

/** Damage in a log that no crash explains: the file is left as it is. */
export class WalCorruptError extends WalError {
  constructor(
    readonly path: string,
    /** Where the first bad record starts. */
    readonly offset: number,
    readonly problem: string,
  ) {
    super('E_WAL_CORRUPT', `${path} at byte ${offset}: ${problem}`)
  }
}

/** Each record: [u32 BE payload length][u32 BE CRC-32 of the payload][payload]; never empty. */
const HEADER = 8
/** A record larger than this is corruption, not data (the manager's objects are small). */
export const MAX_RECORD = 64 * 1024 * 1024

/** Why no intact record of at most `max` bytes starts at `off`, or undefined if one does. */
export function recordProblem(buf: Buffer, off: number, max = MAX_RECORD): string | undefined {
  if (off + HEADER > buf.length) return 'a record header cut short'
  const len = buf.readUInt32BE(off)
  // A zero-filled tail (a file extended but never written) reads as empty records.
  if (len === 0) return 'an empty record'
  if (len > max) return `a record length of ${len} bytes`
  if (off + HEADER + len > buf.length) return `a record of ${len} bytes of which the file holds ${buf.length - off - HEADER}`
  if (crc32(buf.subarray(off + HEADER, off + HEADER + len)) !== buf.readUInt32BE(off + 4)) return 'a record whose checksum does not match'
  return undefined
}

/** The payload of the intact record at `off` (check it with recordProblem first). */
export function recordPayload(buf: Buffer, off: number): Buffer {
  return buf.subarray(off + HEADER, off + HEADER + buf.readUInt32BE(off))
}

export interface LogRecord {
  /** Where the record starts in its file. */
  offset: number
  payload: Buffer
}

/**
 * Reads every record of a log file. A torn tail is what a crash in the
 * middle of an append leaves: damage from some record to the end of the
 * file with no intact record after it. With `tornTail: 'cut'` (the log being
 * appended to) it is cut off, so later appends follow the last good record.
 * Any other damage (intact records after a bad one, or a torn tail where
 * none may be) throws WalCorruptError, and the file is not touched.
 */
export function readLog(path: string, opts: { tornTail: 'cut' | 'refuse' }): LogRecord[] {
  let buf: Buffer
  try {
    buf = readFileSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new WalError('E_WAL_READ', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  const out: LogRecord[] = []
  let off = 0
  while (off < buf.length) {
    const problem = recordProblem(buf, off)
    if (problem) {
      const next = nextIntactRecord(buf, off + 1)
      if (next !== undefined) throw new WalCorruptError(path, off, `${problem}, with intact records after it (the next at byte ${next})`)
      if (opts.tornTail === 'refuse') throw new WalCorruptError(path, off, `${problem} in a log that is no longer appended to`)
      cut(path, off)
      return out
    }
    out.push({ offset: off, payload: Buffer.from(recordPayload(buf, off)) })
    off += HEADER + buf.readUInt32BE(off)
  }
  return out
}

function nextIntactRecord(buf: Buffer, from: number): number | undefined {
  for (let p = from; p + HEADER < buf.length; p++) if (recordProblem(buf, p) === undefined) return p
  return undefined
}

function cut(path: string, length: number): void {
  const fd = openSync(path, 'r+')
  try {
    ftruncateSync(fd, length)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

export function encodeRecord(payload: Buffer, max = MAX_RECORD): Buffer {
  if (payload.length === 0) throw new WalError('E_WAL_RECORD', 'a record cannot be empty')
  if (payload.length > max) throw new WalError('E_WAL_RECORD', `record of ${payload.length} bytes exceeds ${max}`)
  const out = Buffer.allocUnsafe(HEADER + payload.length)
  out.writeUInt32BE(payload.length, 0)
  out.writeUInt32BE(crc32(payload), 4)
  payload.copy(out, HEADER)
  return out
}

interface Pending {
  record: Buffer
  resolve: () => void
  reject: (e: Error) => void
}

/**
 * An append-only log with group commit: records appended while a write and
 * fsync are in flight go out together in the next one. `append` resolves
 * only after the record is on disk (fdatasync), so a caller can acknowledge.
 */
export class WriteAheadLog {
  private queue: Pending[] = []
  private flushing = false
  private closed = false

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
  ) {}

  /** Opens for appending, creating the file if needed; it is the owner's alone (0600), whatever the umask or its old mode. */
  static async open(path: string): Promise<WriteAheadLog> {
    const fh = await open(path, 'a', FILE_MODE)
    try {
      await fh.chmod(FILE_MODE)
    } catch (e) {
      await fh.close()
      throw new WalError('E_WAL_OPEN', `cannot restrict ${path} to its owner: ${(e as Error).message}`, { cause: e })
    }
    return new WriteAheadLog(fh, path)
  }

  append(payload: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new WalError('E_WAL_CLOSED', 'the log is closed'))
    const record = encodeRecord(payload)
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject })
      if (!this.flushing) void this.flush()
    })
  }

  private async flush(): Promise<void> {
    this.flushing = true
    while (this.queue.length > 0) {
      const batch = this.queue
      this.queue = []
      try {
        await this.fh.write(Buffer.concat(batch.map(p => p.record)))
        await this.fh.datasync()
        for (const p of batch) p.resolve()
      } catch (e) {
        const err = new WalError('E_WAL_WRITE', `cannot write ${this.path}: ${(e as Error).message}`, { cause: e })
        for (const p of batch) p.reject(err)
      }
    }
    this.flushing = false
  }

  async close(): Promise<void> {
    this.closed = true
    while (this.flushing) await new Promise(r => setImmediate(r))
    await this.fh.close()
  }
}
