import { crc32 } from 'node:zlib'
import { SwarmdError } from '../types/errors.js'
import type { Keyring } from './keyring.js'
import { lzwDecode, lzwEncode } from './lzw.js'
import { decodeCompress, encodeCompress, MsgType } from './messages.js'
import { MsgpackReader } from './msgpack.js'
import { decryptPayload, encryptOverhead, encryptPayload } from './security.js'

/**
 * Why an inbound packet or stream was dropped. These are the keys of the
 * `dropped` counters, so they are stable.
 */
export type DropReason =
  | 'label'
  | 'decrypt'
  | 'crc'
  | 'decode'
  | 'truncated'
  | 'unknown_type'
  | 'compress'
  | 'wrong_node'
  | 'version'
  | 'oversize'
  /** A field of the wrong type or out of range (a string for an incarnation, a bool for a port). */
  | 'invalid_field'
  /** A message about a node with no name. */
  | 'invalid_node'
  /** An address missing where one is needed, or not 4 or 16 bytes. */
  | 'invalid_addr'
  /** Versions missing, or not a coherent [pmin, pmax, pcur, dmin, dmax, dcur]. */
  | 'invalid_vsn'

export class PacketError extends SwarmdError {
  constructor(
    readonly reason: DropReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`E_PACKET_${reason.toUpperCase()}`, message, options)
  }
}

/** How this node seals and opens traffic: label, keyring, and memberlist's two migration switches. */
export interface WireSecurity {
  /** '' means no label. */
  label: string
  keyring: Keyring | undefined
  /** 0 when speaking protocol 1, else 1. */
  encryptionVersion: 0 | 1
  verifyIncoming: boolean
  verifyOutgoing: boolean
  skipInboundLabelCheck: boolean
}

export function encryptionEnabled(sec: WireSecurity): boolean {
  return !!sec.keyring && sec.keyring.size > 0
}

/** Bytes the outer layers add to a packet: what the piggyback budget must leave free. */
export function packetOverhead(sec: WireSecurity): number {
  let n = sec.label ? 2 + Buffer.byteLength(sec.label) : 0
  if (encryptionEnabled(sec) && sec.verifyOutgoing) n += encryptOverhead(sec.encryptionVersion)
  return n
}

export function addLabel(buf: Buffer, label: string): Buffer {
  if (!label) return buf
  const l = Buffer.from(label)
  if (l.length > 255) throw new PacketError('label', 'label is longer than 255 bytes')
  const out = Buffer.allocUnsafe(2 + l.length + buf.length)
  out[0] = MsgType.hasLabel
  out[1] = l.length
  l.copy(out, 2)
  buf.copy(out, 2 + l.length)
  return out
}

/** Splits `[244][n][label]` off the front; no header means the empty label. */
export function removeLabel(buf: Buffer): { label: string; rest: Buffer } {
  if (buf.length === 0 || buf[0] !== MsgType.hasLabel) return { label: '', rest: buf }
  if (buf.length < 2) throw new PacketError('label', 'truncated label header')
  const n = buf[1]!
  if (n === 0) throw new PacketError('label', 'label header with empty label')
  if (buf.length < 2 + n) throw new PacketError('label', 'truncated label')
  return { label: buf.subarray(2, 2 + n).toString('utf8'), rest: buf.subarray(2 + n) }
}

export function checkLabel(received: string, sec: WireSecurity): void {
  if (!sec.skipInboundLabelCheck && received !== sec.label) {
    throw new PacketError('label', `unacceptable label ${JSON.stringify(received)}`)
  }
}

/** `[9]{Algo:0, Buf:lzw(msg)}` */
export function compressMessage(msg: Uint8Array): Buffer {
  return encodeCompress({ algo: 0, buf: lzwEncode(msg) })
}

/** Decodes a compress body (after the type byte) into the inner message. */
export function decompressMessage(body: Buffer): Buffer {
  const reader = new MsgpackReader(body)
  const c = decodeCompress(reader.struct())
  return decompressPayload(c.algo, c.buf)
}

export function decompressPayload(algo: number, buf: Buffer): Buffer {
  if (algo !== 0) throw new PacketError('compress', `unknown compression algorithm ${algo}`)
  let out: Buffer
  try {
    out = lzwDecode(buf)
  } catch (e) {
    throw new PacketError('compress', 'cannot decompress', { cause: e })
  }
  if (out.length === 0) throw new PacketError('compress', 'empty decompressed payload')
  return out
}

export function addCrc(buf: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + buf.length)
  out[0] = MsgType.hasCrc
  out.writeUInt32BE(crc32(buf), 1)
  buf.copy(out, 5)
  return out
}

/**
 * Outbound UDP layering, innermost first: compress (only when smaller) →
 * CRC (for peers that speak protocol 5) → encrypt → label.
 */
export function sealPacket(msg: Buffer, opts: { compress: boolean; crc: boolean }, sec: WireSecurity): Buffer {
  let buf = msg
  if (opts.compress) {
    const c = compressMessage(buf)
    if (c.length < buf.length) buf = c
  }
  if (opts.crc) buf = addCrc(buf)
  if (encryptionEnabled(sec) && sec.verifyOutgoing) {
    const aad = sec.label ? Buffer.from(sec.label) : undefined
    buf = encryptPayload(sec.encryptionVersion, sec.keyring!.view()[0]!, buf, aad)
  }
  return addLabel(buf, sec.label)
}

/**
 * Inbound UDP layering: label → decrypt → CRC. Returns the message (type
 * byte first, possibly compound or compressed). Throws PacketError with the
 * reason to count.
 */
export function openPacket(packet: Buffer, sec: WireSecurity): Buffer {
  const { label, rest } = removeLabel(packet)
  checkLabel(label, sec)
  let buf = rest
  if (encryptionEnabled(sec)) {
    try {
      buf = decryptPayload(sec.keyring!.view(), buf, sec.label ? Buffer.from(sec.label) : undefined)
    } catch (e) {
      if (sec.verifyIncoming) throw new PacketError('decrypt', 'cannot decrypt packet', { cause: e })
    }
  }
  if (buf.length === 0) throw new PacketError('truncated', 'empty packet')
  if (buf[0] === MsgType.hasCrc && buf.length >= 5) {
    const want = buf.readUInt32BE(1)
    buf = buf.subarray(5)
    if (crc32(buf) !== want) throw new PacketError('crc', 'CRC mismatch')
  }
  return buf
}
