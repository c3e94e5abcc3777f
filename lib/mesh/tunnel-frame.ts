import { SwarmdError } from '../types/errors.js'
import type { Vni } from './types.js'
import { VXLAN_HEADER_LEN, readVxlanVni, writeVxlanHeader } from './vxlan.js'

/**
 * The mesh's frame on port 4789, over TCP (a byte stream of frames) and UDP
 * (one frame per datagram):
 *
 *   0   VXLAN header (8): flags 0x08, VNI (0 = connection-level frames)
 *   8   version u8 (1)
 *   9   type u8 (FrameType)
 *   10  flags u8 (FrameFlag)
 *   11  key id u8 (the sealing key; 0 when not sealed)
 *   12  stream id u32 (a DGRAM's flow id; 0 for connection-level frames)
 *   16  body length u32
 *   20  body; when sealed: nonce (12) + ciphertext + GCM tag (16)
 *
 * The 20 header bytes are the AAD of a sealed body, so VNI, type, stream
 * and length are authenticated too.
 */

export const MESH_VERSION = 1
export const FRAME_HEADER_LEN = VXLAN_HEADER_LEN + 12
/** Nonce and tag a sealed body adds. */
export const SEAL_OVERHEAD = 12 + 16
/** The largest DATA payload one frame carries; longer writes are split. */
export const MAX_DATA_PAYLOAD = 64 * 1024
/** The largest body accepted: a full DATA payload sealed, or an OPEN with its preamble. */
export const MAX_BODY = MAX_DATA_PAYLOAD + 1024
export const MAX_ENDPOINT_KEY_BYTES = 512
export const MAX_REASON_BYTES = 256
/** An OPEN's PROXY-protocol preamble (v1 is ≤ 107 bytes, v2 with TLVs a little more). */
export const MAX_PREAMBLE_BYTES = 512

export const FrameType = {
  OPEN: 1,
  OPEN_OK: 2,
  OPEN_FAIL: 3,
  DATA: 4,
  /** A credit update: the receiver consumed this many more bytes of the stream. */
  WINDOW: 5,
  /** The sender's half-close. */
  FIN: 6,
  RST: 7,
  DGRAM: 8,
  PING: 9,
  PONG: 10,
  /** The handshake (tunnel-auth.ts), on VNI 0. First frame of a TCP connection: the dialer's name, address and nonce. */
  HELLO: 11,
  /** The acceptor's answer to HELLO: its name, its nonce, its proof. */
  CHALLENGE: 12,
  /** The dialer's proof, which completes the handshake. */
  AUTH: 13,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]
const MAX_TYPE = FrameType.AUTH

export const FrameFlag = {
  SEALED: 0x01,
  /** A DGRAM travelling back to the flow's originator. */
  REPLY: 0x02,
} as const
const KNOWN_FLAGS = FrameFlag.SEALED | FrameFlag.REPLY

/**
 * Codes: E_FRAME_VXLAN, E_FRAME_VERSION, E_FRAME_TYPE, E_FRAME_FLAGS,
 * E_FRAME_TOO_LARGE, E_FRAME_TRUNCATED (framing: the byte stream is lost),
 * E_FRAME_BODY (one frame's body is bad; framing is intact).
 */
export class FrameError extends SwarmdError {}

export interface FrameHeader {
  vni: Vni
  type: FrameType
  flags: number
  keyId: number
  streamId: number
  /** Body length on the wire (sealed: including nonce and tag). */
  length: number
}

export interface Frame extends FrameHeader {
  /** The raw 20 header bytes (the AAD of a sealed body). */
  header: Buffer
  body: Buffer
}

export function writeFrameHeader(buf: Buffer, offset: number, h: FrameHeader): void {
  writeVxlanHeader(buf, offset, h.vni)
  buf[offset + 8] = MESH_VERSION
  buf[offset + 9] = h.type
  buf[offset + 10] = h.flags
  buf[offset + 11] = h.keyId
  buf.writeUInt32BE(h.streamId, offset + 12)
  buf.writeUInt32BE(h.length, offset + 16)
}

export function encodeFrameHeader(h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LEN)
  writeFrameHeader(b, 0, h)
  return b
}

/** One whole frame in one buffer (tests and cold paths; the hot path writes header and body separately). */
export function encodeFrame(h: Omit<FrameHeader, 'length'>, body: Uint8Array = EMPTY): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LEN + body.length)
  writeFrameHeader(b, 0, { ...h, length: body.length })
  b.set(body, FRAME_HEADER_LEN)
  return b
}

const EMPTY = Buffer.alloc(0)

/** Parses and validates the header at `offset`; the caller guarantees FRAME_HEADER_LEN bytes. */
export function parseFrameHeader(buf: Buffer, offset: number, maxBody = MAX_BODY): FrameHeader {
  const vni = readVxlanVni(buf, offset)
  if (vni < 0) throw new FrameError('E_FRAME_VXLAN', 'VXLAN header without the I flag')
  const version = buf[offset + 8]!
  if (version !== MESH_VERSION) throw new FrameError('E_FRAME_VERSION', `unsupported mesh frame version ${version}`)
  const type = buf[offset + 9]!
  if (type < 1 || type > MAX_TYPE) throw new FrameError('E_FRAME_TYPE', `unknown mesh frame type ${type}`)
  const flags = buf[offset + 10]!
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new FrameError('E_FRAME_FLAGS', `unknown mesh frame flags 0x${flags.toString(16)}`)
  const keyId = buf[offset + 11]!
  const sealed = (flags & FrameFlag.SEALED) !== 0
  if (!sealed && keyId !== 0) throw new FrameError('E_FRAME_FLAGS', 'key id on a plaintext frame')
  const length = buf.readUInt32BE(offset + 16)
  if (length > maxBody) throw new FrameError('E_FRAME_TOO_LARGE', `mesh frame body of ${length} bytes exceeds ${maxBody}`)
  if (sealed && length < SEAL_OVERHEAD) throw new FrameError('E_FRAME_TRUNCATED', `sealed body of ${length} bytes is shorter than nonce and tag`)
  return { vni, type: type as FrameType, flags, keyId, streamId: buf.readUInt32BE(offset + 12), length }
}

/** Exactly one frame (a UDP datagram). */
export function decodeFrame(buf: Buffer, maxBody = MAX_BODY): Frame {
  if (buf.length < FRAME_HEADER_LEN) throw new FrameError('E_FRAME_TRUNCATED', `frame of ${buf.length} bytes is shorter than its header`)
  const h = parseFrameHeader(buf, 0, maxBody)
  if (buf.length !== FRAME_HEADER_LEN + h.length) throw new FrameError('E_FRAME_TRUNCATED', `frame says ${h.length} body bytes, datagram has ${buf.length - FRAME_HEADER_LEN}`)
  return { ...h, header: buf.subarray(0, FRAME_HEADER_LEN), body: buf.subarray(FRAME_HEADER_LEN) }
}

/**
 * Splits a TCP byte stream into frames, whatever the chunking. Linear time:
 * a frame inside one chunk is a zero-copy view of it; a frame spanning
 * chunks is assembled once into its own buffer. After a FrameError the
 * stream's framing is lost and the decoder refuses further input.
 */
export class FrameDecoder {
  private readonly scratch = Buffer.allocUnsafe(FRAME_HEADER_LEN)
  private scratchLen = 0
  /** The frame being assembled across chunks, once its header is known. */
  private partial: Buffer | undefined
  private partialHeader: FrameHeader | undefined
  private partialLen = 0
  private failed: FrameError | undefined

  constructor(private readonly maxBody = MAX_BODY) {}

  /** Feeds one chunk; `onFrame` sees each complete frame in order (it may keep the buffers). */
  push(chunk: Buffer, onFrame: (f: Frame) => void): void {
    if (this.failed) throw this.failed
    try {
      this.consume(chunk, onFrame)
    } catch (e) {
      if (e instanceof FrameError) this.failed = e
      throw e
    }
  }

  /** True when no partial frame is pending (a clean end of stream). */
  get idle(): boolean {
    return this.scratchLen === 0 && this.partial === undefined
  }

  private consume(chunk: Buffer, onFrame: (f: Frame) => void): void {
    let off = 0
    const n = chunk.length
    if (this.scratchLen > 0) {
      const take = Math.min(FRAME_HEADER_LEN - this.scratchLen, n)
      chunk.copy(this.scratch, this.scratchLen, 0, take)
      this.scratchLen += take
      off = take
      if (this.scratchLen < FRAME_HEADER_LEN) return
      const h = parseFrameHeader(this.scratch, 0, this.maxBody)
      this.scratchLen = 0
      this.startPartial(h, this.scratch, 0)
    }
    if (this.partial) {
      const p = this.partial
      const take = Math.min(p.length - this.partialLen, n - off)
      chunk.copy(p, this.partialLen, off, off + take)
      this.partialLen += take
      off += take
      if (this.partialLen < p.length) return
      const h = this.partialHeader!
      this.partial = undefined
      this.partialHeader = undefined
      onFrame({ ...h, header: p.subarray(0, FRAME_HEADER_LEN), body: p.subarray(FRAME_HEADER_LEN) })
    }
    while (n - off >= FRAME_HEADER_LEN) {
      const h = parseFrameHeader(chunk, off, this.maxBody)
      const end = off + FRAME_HEADER_LEN + h.length
      if (end > n) {
        this.startPartial(h, chunk, off)
        const have = n - off
        chunk.copy(this.partial!, 0, off, n)
        this.partialLen = have
        return
      }
      onFrame({ ...h, header: chunk.subarray(off, off + FRAME_HEADER_LEN), body: chunk.subarray(off + FRAME_HEADER_LEN, end) })
      off = end
    }
    if (off < n) {
      chunk.copy(this.scratch, 0, off, n)
      this.scratchLen = n - off
    }
  }

  private startPartial(h: FrameHeader, src: Buffer, srcOff: number): void {
    const p = Buffer.allocUnsafe(FRAME_HEADER_LEN + h.length)
    src.copy(p, 0, srcOff, srcOff + FRAME_HEADER_LEN)
    this.partial = p
    this.partialHeader = h
    this.partialLen = FRAME_HEADER_LEN
  }
}

// --- bodies -----------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true })

function text(buf: Uint8Array, what: string): string {
  try {
    return utf8.decode(buf)
  } catch {
    throw new FrameError('E_FRAME_BODY', `${what} is not UTF-8`)
  }
}

function bodyError(what: string): FrameError {
  return new FrameError('E_FRAME_BODY', what)
}

export interface OpenBody {
  /** The opener's receive window for this stream (bytes). */
  window: number
  /** Which local endpoint the receiving node should connect (`task/protocol/targetPort`). */
  endpointKey: string
  /** Bytes the receiver sends to the task before any data (a PROXY protocol header), possibly empty. */
  preamble: Buffer
}

/** OPEN: u32 window, u16 key length, key, u16 preamble length, preamble. */
export function encodeOpenBody(o: OpenBody): Buffer {
  const key = Buffer.from(o.endpointKey, 'utf8')
  if (key.length === 0 || key.length > MAX_ENDPOINT_KEY_BYTES) throw bodyError(`endpoint key of ${key.length} bytes`)
  if (o.preamble.length > MAX_PREAMBLE_BYTES) throw bodyError(`preamble of ${o.preamble.length} bytes exceeds ${MAX_PREAMBLE_BYTES}`)
  if (!Number.isInteger(o.window) || o.window < 1 || o.window > 0xffffffff) throw bodyError(`window ${o.window}`)
  const b = Buffer.allocUnsafe(8 + key.length + o.preamble.length)
  b.writeUInt32BE(o.window, 0)
  b.writeUInt16BE(key.length, 4)
  key.copy(b, 6)
  b.writeUInt16BE(o.preamble.length, 6 + key.length)
  b.set(o.preamble, 8 + key.length)
  return b
}

export function decodeOpenBody(b: Buffer): OpenBody {
  if (b.length < 8) throw bodyError('OPEN body too short')
  const window = b.readUInt32BE(0)
  if (window === 0) throw bodyError('OPEN with a zero window')
  const keyLen = b.readUInt16BE(4)
  if (keyLen === 0 || keyLen > MAX_ENDPOINT_KEY_BYTES || 8 + keyLen > b.length) throw bodyError('OPEN endpoint key length')
  const endpointKey = text(b.subarray(6, 6 + keyLen), 'endpoint key')
  const preLen = b.readUInt16BE(6 + keyLen)
  if (preLen > MAX_PREAMBLE_BYTES || 8 + keyLen + preLen !== b.length) throw bodyError('OPEN preamble length')
  return { window, endpointKey, preamble: b.subarray(8 + keyLen) }
}

/** OPEN_OK (the acceptor's receive window) and WINDOW (a credit increment): one u32, never 0. */
export function encodeU32Body(n: number): Buffer {
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw bodyError(`credit ${n}`)
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n, 0)
  return b
}

export function decodeU32Body(b: Buffer): number {
  if (b.length !== 4) throw bodyError(`credit body of ${b.length} bytes`)
  const n = b.readUInt32BE(0)
  if (n === 0) throw bodyError('zero credit')
  return n
}

/** OPEN_FAIL and RST reasons (an errno-like code such as ECONNREFUSED): short UTF-8. */
export function encodeTextBody(s: string): Buffer {
  const b = Buffer.from(s, 'utf8')
  if (b.length > MAX_REASON_BYTES) throw bodyError(`text body of ${b.length} bytes`)
  return b
}

export function decodeTextBody(b: Buffer): string {
  if (b.length > MAX_REASON_BYTES) throw bodyError(`text body of ${b.length} bytes`)
  return text(b, 'text body')
}

/** A request DGRAM's body starts with the endpoint key (u16 length + UTF-8); a REPLY's is the bare payload. */
export function encodeDgramPrefix(endpointKey: string): Buffer {
  const key = Buffer.from(endpointKey, 'utf8')
  if (key.length === 0 || key.length > MAX_ENDPOINT_KEY_BYTES) throw bodyError(`endpoint key of ${key.length} bytes`)
  const b = Buffer.allocUnsafe(2 + key.length)
  b.writeUInt16BE(key.length, 0)
  key.copy(b, 2)
  return b
}

export function decodeDgramBody(b: Buffer): { endpointKey: string; payload: Buffer } {
  if (b.length < 2) throw bodyError('DGRAM body too short')
  const keyLen = b.readUInt16BE(0)
  if (keyLen === 0 || keyLen > MAX_ENDPOINT_KEY_BYTES || 2 + keyLen > b.length) throw bodyError('DGRAM endpoint key length')
  return { endpointKey: text(b.subarray(2, 2 + keyLen), 'endpoint key'), payload: b.subarray(2 + keyLen) }
}
