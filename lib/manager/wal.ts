import { closeSync, fsyncSync, openSync, readFileSync, ftruncateSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { SwarmdError } from '../types/errors.js'

export class WalError extends SwarmdError {}

/** Each record: [u32 BE payload length][u32 BE CRC-32 of the payload][payload]. */
const HEADER = 8
/** A record larger than this is corruption, not data (the manager's objects are small). */
export const MAX_RECORD = 64 * 1024 * 1024

/**
 * Reads every intact record of a log file. A torn or corrupt tail (a crash
 * in the middle of a write) ends the log: the file is cut back to the last
 * good record so later appends follow it.
 */
export function readLog(path: string): Buffer[] {
  let buf: Buffer
  try {
    buf = readFileSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new WalError('E_WAL_READ', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  const out: Buffer[] = []
  let off = 0
  while (off + HEADER <= buf.length) {
    const len = buf.readUInt32BE(off)
    const sum = buf.readUInt32BE(off + 4)
    if (len > MAX_RECORD || off + HEADER + len > buf.length) break
    const payload = buf.subarray(off + HEADER, off + HEADER + len)
    if (crc32(payload) !== sum) break
    out.push(Buffer.from(payload))
    off += HEADER + len
  }
  if (off < buf.length) {
    const fd = openSync(path, 'r+')
    try {
      ftruncateSync(fd, off)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  }
  return out
}

export function encodeRecord(payload: Buffer): Buffer {
  if (payload.length > MAX_RECORD) throw new WalError('E_WAL_RECORD', `record of ${payload.length} bytes exceeds ${MAX_RECORD}`)
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

  static async open(path: string): Promise<WriteAheadLog> {
    return new WriteAheadLog(await open(path, 'a'), path)
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
