import { seededRandom } from '../seeded-random.js'

/** Bytes that matter most to decoders: lengths, type tags, the edges of integer ranges. */
const EDGES = [0x00, 0x01, 0x7f, 0x80, 0x8f, 0x9f, 0xc0, 0xc1, 0xcf, 0xd3, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xfe, 0xff]

/**
 * Generated inputs from a seed, so a run can be repeated: random bytes,
 * random JSON values, and mutants of valid encodings (bytes overwritten,
 * inserted, deleted, cut, or a run duplicated).
 */
export class Inputs {
  private readonly random: () => number

  constructor(seed: number) {
    this.random = seededRandom(seed)
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.random() * n)
  }

  chance(p: number): boolean {
    return this.random() < p
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!
  }

  byte(): number {
    return this.chance(0.3) ? this.pick(EDGES) : this.int(256)
  }

  bytes(max: number): Buffer {
    const b = Buffer.allocUnsafe(this.int(max + 1))
    for (let i = 0; i < b.length; i++) b[i] = this.byte()
    return b
  }

  /** `valid` with 1 to `edits` random edits. */
  mutate(valid: Uint8Array, edits = 4): Buffer {
    let b = Buffer.from(valid)
    for (let n = 1 + this.int(edits); n > 0; n--) {
      const at = this.int(b.length + 1)
      switch (this.int(6)) {
        case 0:
        case 1:
          if (at < b.length) b[at] = this.byte()
          break
        case 2:
          b = Buffer.concat([b.subarray(0, at), Buffer.from([this.byte()]), b.subarray(at)])
          break
        case 3:
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + this.int(4))])
          break
        case 4:
          b = b.subarray(0, at)
          break
        default:
          b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + this.int(16)), b.subarray(at)])
      }
    }
    return b
  }

  /** A valid encoding, now and then mutated, now and then random bytes. */
  around(valid: Uint8Array, maxRandom = 64): Buffer {
    const r = this.random()
    if (r < 0.1) return Buffer.from(valid)
    if (r < 0.85) return this.mutate(valid)
    return this.bytes(maxRandom)
  }

  text(max: number): string {
    let s = ''
    for (let n = this.int(max + 1); n > 0; n--) s += String.fromCharCode(this.chance(0.9) ? 0x20 + this.int(95) : this.int(0x3000))
    return s
  }

  /**
   * `valid` (a JSON object) as is, or with a field replaced by a random
   * value, removed, or added, or replaced altogether.
   */
  vary(valid: Record<string, unknown>): unknown {
    const keys = Object.keys(valid)
    switch (this.int(6)) {
      case 0:
        return valid
      case 1:
      case 2:
        return { ...valid, [this.pick(keys)]: this.json(2) }
      case 3: {
        const { [this.pick(keys)]: _, ...rest } = valid
        return rest
      }
      case 4:
        return { ...valid, [this.chance(0.5) ? this.text(8) : '__proto__']: this.json(2) }
      default:
        return this.json()
    }
  }

  /** A random JSON value, at most `depth` deep. */
  json(depth = 3): unknown {
    switch (this.int(depth > 0 ? 8 : 6)) {
      case 0:
        return null
      case 1:
        return this.chance(0.5)
      case 2:
        return this.int(2 ** 32) - 2 ** 31
      case 3:
        return this.random() * 10 ** this.int(20)
      case 4:
      case 5:
        return this.text(12)
      case 6:
        return Array.from({ length: this.int(4) }, () => this.json(depth - 1))
      default:
        return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.text(6), this.json(depth - 1)]))
    }
  }
}
