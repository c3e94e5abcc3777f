import { SwarmdError } from '../types/errors.js'
import { MsgType } from './messages.js'

/** Per-part overhead inside a compound (its u16 length), and the compound header (type + count). */
export const COMPOUND_PART_OVERHEAD = 2
export const COMPOUND_HEADER_OVERHEAD = 2
const MAX_PARTS = 255

export class CompoundError extends SwarmdError {}

/** `[7][count u8][count × u16 BE lengths][bodies]`, at most 255 parts. */
export function makeCompound(msgs: readonly Uint8Array[]): Buffer {
  if (msgs.length > MAX_PARTS) throw new CompoundError('E_COMPOUND_PARTS', `compound of ${msgs.length} parts (max ${MAX_PARTS})`)
  let size = 2 + msgs.length * 2
  for (const m of msgs) {
    if (m.length > 0xffff) throw new CompoundError('E_COMPOUND_PART', `compound part of ${m.length} bytes (max 65535)`)
    size += m.length
  }
  const out = Buffer.allocUnsafe(size)
  out[0] = MsgType.compound
  out[1] = msgs.length
  let hdr = 2
  let body = 2 + msgs.length * 2
  for (const m of msgs) {
    out.writeUInt16BE(m.length, hdr)
    hdr += 2
    out.set(m, body)
    body += m.length
  }
  return out
}

/** Splits a batch into compounds of at most 255 parts each, as newer memberlist does. */
export function makeCompounds(msgs: readonly Uint8Array[]): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < msgs.length; i += MAX_PARTS) out.push(makeCompound(msgs.slice(i, i + MAX_PARTS)))
  return out
}

/**
 * Parses a compound body (after the type byte). Parts that run past the end
 * are counted as truncated and the complete ones kept, as memberlist does.
 */
export function parseCompound(buf: Buffer): { parts: Buffer[]; truncated: number } {
  if (buf.length < 1) throw new CompoundError('E_COMPOUND_SHORT', 'missing compound length byte')
  const n = buf[0]!
  if (buf.length < 1 + n * 2) throw new CompoundError('E_COMPOUND_SHORT', 'truncated len slice')
  const parts: Buffer[] = []
  let off = 1 + n * 2
  for (let i = 0; i < n; i++) {
    const len = buf.readUInt16BE(1 + i * 2)
    if (off + len > buf.length) return { parts, truncated: n - i }
    parts.push(buf.subarray(off, off + len))
    off += len
  }
  return { parts, truncated: 0 }
}
