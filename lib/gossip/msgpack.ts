import { SwarmdError } from '../types/errors.js'

/**
 * The msgpack dialect of hashicorp/go-msgpack with a zero-valued MsgpackHandle,
 * which memberlist uses for every message: the legacy "raw" spec. Written by
 * hand because general msgpack libraries emit str8/bin, which Go encodes
 * differently, and sort map keys differently.
 *
 * Encoding: structs are maps with their Go field names in byte order; strings
 * and byte slices are fixstr / str16 / str32 (never str8, never bin);
 * non-negative integers take the smallest unsigned form; nil is 0xc0.
 */

export class MsgpackError extends SwarmdError {}

/** Thrown when the input ends inside a value: a stream reader waits for more bytes. */
export class MsgpackTruncatedError extends MsgpackError {
  /** How long the input must at least be before a retry can get further. */
  readonly needed: number

  constructor(needed = 0) {
    super('E_MSGPACK_TRUNCATED', 'msgpack: unexpected end of input')
    this.needed = needed
  }
}

/**
 * Encodes one Go struct as a map. `fields` must already be in Go's order
 * (byte-wise ascending names); callers list them as literals, so no sort runs.
 */
export class MsgpackWriter {
  private buf: Buffer
  private pos = 0

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial)
  }

  get length(): number {
    return this.pos
  }

  reset(): this {
    this.pos = 0
    return this
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  byte(b: number): this {
    this.ensure(1)
    this.buf[this.pos++] = b
    return this
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
    return this
  }

  mapHeader(n: number): this {
    if (n < 16) return this.byte(0x80 | n)
    this.ensure(3)
    this.buf[this.pos] = 0xde
    this.buf.writeUInt16BE(n, this.pos + 1)
    this.pos += 3
    return this
  }

  /** An unsigned integer; `max` is the Go field's range (u16, u32...), checked so nothing is silently cut. */
  uint(v: number, max = 2 ** 64 - 1): this {
    if (!Number.isInteger(v) || v < 0 || v > max || v >= 2 ** 64) {
      throw new MsgpackError('E_MSGPACK_RANGE', `msgpack: ${v} is not an unsigned integer in 0..${max}`)
    }
    if (v < 128) return this.byte(v)
    if (v < 0x100) {
      this.ensure(2)
      this.buf[this.pos] = 0xcc
      this.buf[this.pos + 1] = v
      this.pos += 2
    } else if (v < 0x10000) {
      this.ensure(3)
      this.buf[this.pos] = 0xcd
      this.buf.writeUInt16BE(v, this.pos + 1)
      this.pos += 3
    } else if (v < 0x100000000) {
      this.ensure(5)
      this.buf[this.pos] = 0xce
      this.buf.writeUInt32BE(v, this.pos + 1)
      this.pos += 5
    } else {
      this.ensure(9)
      this.buf[this.pos] = 0xcf
      this.buf.writeBigUInt64BE(BigInt(v), this.pos + 1)
      this.pos += 9
    }
    return this
  }

  bool(v: boolean): this {
    return this.byte(v ? 0xc3 : 0xc2)
  }

  nil(): this {
    return this.byte(0xc0)
  }

  /** A Go string. */
  str(s: string): this {
    const n = Buffer.byteLength(s)
    this.rawHeader(n)
    this.ensure(n)
    this.pos += this.buf.write(s, this.pos, 'utf8')
    return this
  }

  /** A Go []byte: nil (0xc0) when empty, as Go writes a nil slice. */
  raw(b: Uint8Array | undefined): this {
    if (!b || b.length === 0) return this.nil()
    this.rawHeader(b.length)
    return this.bytes(b)
  }

  private rawHeader(n: number): void {
    if (n < 32) {
      this.byte(0xa0 | n)
    } else if (n < 0x10000) {
      this.ensure(3)
      this.buf[this.pos] = 0xda
      this.buf.writeUInt16BE(n, this.pos + 1)
      this.pos += 3
    } else {
      this.ensure(5)
      this.buf[this.pos] = 0xdb
      this.buf.writeUInt32BE(n, this.pos + 1)
      this.pos += 5
    }
  }

  /** Field name then value, for struct maps. */
  key(name: string): this {
    return this.str(name)
  }

  /** A copy of what was written. */
  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos))
  }
}

/** A decoded value: raw strings and bin are kept as Buffers (views into the input). */
export type Decoded = Buffer | number | bigint | boolean | null | Decoded[] | DecodedMap
export interface DecodedMap {
  [key: string]: Decoded
}

const MAX_DEPTH = 16

/**
 * Map keys are Go field names, the same few dozen in every message: intern
 * them instead of decoding UTF-8 for every key of every packet.
 */
const keyCache = new Map<number, { bytes: Buffer; str: string }>()

function keyString(b: Buffer): string {
  if (b.length > 32) return b.toString('utf8')
  let h = b.length
  for (let i = 0; i < b.length; i++) h = (Math.imul(h, 31) + b[i]!) | 0
  const hit = keyCache.get(h)
  if (hit && hit.bytes.length === b.length) {
    let same = true
    for (let i = 0; i < b.length && same; i++) same = hit.bytes[i] === b[i]
    if (same) return hit.str
  }
  const str = b.toString('utf8')
  if (keyCache.size < 1024) keyCache.set(h, { bytes: Buffer.from(b), str })
  return str
}

/**
 * Decodes one msgpack value at `offset`. Accepts every integer width, the str
 * and bin families (either may carry a Go string or []byte), nil, bools,
 * floats, arrays and maps. Map keys are decoded as UTF-8 strings.
 * Throws MsgpackTruncatedError when the input ends early, MsgpackError when it
 * is malformed.
 */
export class MsgpackReader {
  pos: number

  constructor(
    private readonly buf: Buffer,
    offset = 0,
  ) {
    this.pos = offset
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MsgpackTruncatedError(this.pos + n)
  }

  private rawOf(n: number): Buffer {
    this.need(n)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }

  value(depth = 0): Decoded {
    if (depth > MAX_DEPTH) throw new MsgpackError('E_MSGPACK_DEPTH', 'msgpack: nesting too deep')
    this.need(1)
    const b = this.buf[this.pos++]!
    if (b < 0x80) return b
    if (b >= 0xe0) return b - 0x100
    if (b >= 0xa0 && b <= 0xbf) return this.rawOf(b & 0x1f)
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth)
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth)
    const buf = this.buf
    switch (b) {
      case 0xc0:
        return null
      case 0xc2:
        return false
      case 0xc3:
        return true
      case 0xc4:
      case 0xd9:
        this.need(1)
        return this.rawOf(buf[this.pos++]!)
      case 0xc5:
      case 0xda: {
        this.need(2)
        const n = buf.readUInt16BE(this.pos)
        this.pos += 2
        return this.rawOf(n)
      }
      case 0xc6:
      case 0xdb: {
        this.need(4)
        const n = buf.readUInt32BE(this.pos)
        this.pos += 4
        return this.rawOf(n)
      }
      case 0xca:
        this.need(4)
        this.pos += 4
        return buf.readFloatBE(this.pos - 4)
      case 0xcb:
        this.need(8)
        this.pos += 8
        return buf.readDoubleBE(this.pos - 8)
      case 0xcc:
        this.need(1)
        return buf[this.pos++]!
      case 0xcd:
        this.need(2)
        this.pos += 2
        return buf.readUInt16BE(this.pos - 2)
      case 0xce:
        this.need(4)
        this.pos += 4
        return buf.readUInt32BE(this.pos - 4)
      case 0xcf: {
        this.need(8)
        this.pos += 8
        const v = buf.readBigUInt64BE(this.pos - 8)
        return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v
      }
      case 0xd0:
        this.need(1)
        this.pos += 1
        return buf.readInt8(this.pos - 1)
      case 0xd1:
        this.need(2)
        this.pos += 2
        return buf.readInt16BE(this.pos - 2)
      case 0xd2:
        this.need(4)
        this.pos += 4
        return buf.readInt32BE(this.pos - 4)
      case 0xd3: {
        this.need(8)
        this.pos += 8
        const v = buf.readBigInt64BE(this.pos - 8)
        return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v
      }
      case 0xdc: {
        this.need(2)
        this.pos += 2
        return this.array(buf.readUInt16BE(this.pos - 2), depth)
      }
      case 0xdd: {
        this.need(4)
        this.pos += 4
        return this.array(buf.readUInt32BE(this.pos - 4), depth)
      }
      case 0xde: {
        this.need(2)
        this.pos += 2
        return this.map(buf.readUInt16BE(this.pos - 2), depth)
      }
      case 0xdf: {
        this.need(4)
        this.pos += 4
        return this.map(buf.readUInt32BE(this.pos - 4), depth)
      }
      default:
        throw new MsgpackError('E_MSGPACK_TYPE', `msgpack: unsupported type byte 0x${b.toString(16)}`)
    }
  }

  private array(n: number, depth: number): Decoded[] {
    // Each element takes at least one byte: a count beyond the input is truncation, not a huge allocation.
    this.need(n)
    const out: Decoded[] = []
    for (let i = 0; i < n; i++) out.push(this.value(depth + 1))
    return out
  }

  private map(n: number, depth: number): DecodedMap {
    this.need(n * 2)
    const out: DecodedMap = Object.create(null) as DecodedMap
    for (let i = 0; i < n; i++) {
      const k = this.value(depth + 1)
      if (!Buffer.isBuffer(k)) throw new MsgpackError('E_MSGPACK_KEY', 'msgpack: map key is not a string')
      out[keyString(k)] = this.value(depth + 1)
    }
    return out
  }

  /** Decodes a value that must be a map (a Go struct). */
  struct(): DecodedMap {
    const v = this.value()
    if (v === null || typeof v !== 'object' || Buffer.isBuffer(v) || Array.isArray(v)) {
      throw new MsgpackError('E_MSGPACK_STRUCT', 'msgpack: expected a map')
    }
    return v
  }
}

/** Field accessors: a missing or nil field is Go's zero value; a wrong type is an error. */
export function fieldUint(m: DecodedMap, name: string, max = 0xffffffff): number {
  const v = m[name]
  if (v === undefined || v === null) return 0
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new MsgpackError('E_MSGPACK_FIELD', `msgpack: field ${name} is not an integer in 0..${max}`)
  }
  return v
}

export function fieldBool(m: DecodedMap, name: string): boolean {
  const v = m[name]
  if (v === undefined || v === null) return false
  if (typeof v !== 'boolean') throw new MsgpackError('E_MSGPACK_FIELD', `msgpack: field ${name} is not a bool`)
  return v
}

export function fieldBytes(m: DecodedMap, name: string): Buffer {
  const v = m[name]
  if (v === undefined || v === null) return EMPTY
  if (!Buffer.isBuffer(v)) throw new MsgpackError('E_MSGPACK_FIELD', `msgpack: field ${name} is not raw bytes`)
  return v
}

export function fieldString(m: DecodedMap, name: string): string {
  return fieldBytes(m, name).toString('utf8')
}

export const EMPTY: Buffer = Buffer.alloc(0)
