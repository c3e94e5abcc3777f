import { SwarmdError } from '../types/errors.js'

/**
 * LZW as spoken by Go's `compress/lzw` with LSB bit order and 8-bit literals
 * (what memberlist uses for compressed messages, see reference §3).
 */

/** Thrown for malformed, truncated or oversized LZW input. */
export class LzwError extends SwarmdError {}

const CLEAR = 256
const EOF = 257
const FIRST_FREE = 258
const MIN_WIDTH = 9
const MAX_WIDTH = 12
const TABLE_SIZE = 1 << MAX_WIDTH
/** Go's writer never assigns this code: reaching it makes the writer emit Clear. */
const WRITER_LIMIT = TABLE_SIZE - 1

// Encoder dictionary: open-addressed hash from (prefix code << 8 | byte) to
// code. Slots carry a generation stamp so a Clear is O(1) instead of a fill.
const HASH_BITS = 14
const HASH_SIZE = 1 << HASH_BITS
const HASH_MASK = HASH_SIZE - 1
const GEN_SHIFT = 20 // keys need 12 + 8 bits; the rest of the slot is the stamp
const GEN_LIMIT = 1 << (32 - GEN_SHIFT)
// Module-level so small messages do not pay for allocating tables; encoding is
// synchronous, so no two calls can interleave.
const hashKeys = new Uint32Array(HASH_SIZE)
const hashCodes = new Uint16Array(HASH_SIZE)
let generation = 0

function nextGeneration(): void {
  generation++
  if (generation === GEN_LIMIT) {
    // Stamps are about to repeat: wipe so stale slots cannot look current.
    hashKeys.fill(0)
    generation = 1
  }
}

/** Byte-identical to Go's `lzw.NewWriter(w, lzw.LSB, 8)` fed `input` in one Write, then Close. */
export function lzwEncode(input: Uint8Array): Buffer {
  const n = input.length
  // Worst case: every byte its own 12-bit code, plus the Clear codes (one per
  // table fill, at least 3837 codes apart) and the opening Clear and EOF.
  const out = Buffer.allocUnsafe(Math.ceil(((n + (n >>> 11) + 4) * MAX_WIDTH) / 8))
  let o = 0
  let acc = 0
  let nBits = 0
  let width = MIN_WIDTH

  const emit = (code: number): void => {
    acc |= code << nBits
    nBits += width
    while (nBits >= 8) {
      out[o++] = acc & 0xff
      acc >>>= 8
      nBits -= 8
    }
  }

  emit(CLEAR)
  if (n === 0) {
    emit(EOF)
    if (nBits > 0) out[o++] = acc
    return out.subarray(0, o)
  }

  nextGeneration()
  let stamp = generation << GEN_SHIFT
  let next = FIRST_FREE
  let code = input[0]!

  // Go's writer bumps its code counter after every emitted code, widening when
  // the counter reaches 2^width and clearing when it reaches 4095 (in which
  // case the pending entry is dropped). Returns the code to assign, or -1.
  const advance = (): number => {
    const assigned = next
    if (assigned === 1 << width) width++
    if (assigned === WRITER_LIMIT) {
      emit(CLEAR)
      width = MIN_WIDTH
      next = FIRST_FREE
      nextGeneration()
      stamp = generation << GEN_SHIFT
      return -1
    }
    next = assigned + 1
    return assigned
  }

  for (let i = 1; i < n; i++) {
    const b = input[i]!
    const key = (code << 8) | b
    const tagged = (stamp | key) >>> 0
    let slot = Math.imul(key, 0x9e3779b1) >>> (32 - HASH_BITS)
    let found = -1
    for (;;) {
      const k = hashKeys[slot]!
      if (k === tagged) {
        found = hashCodes[slot]!
        break
      }
      if (k >>> GEN_SHIFT !== generation) break
      slot = (slot + 1) & HASH_MASK
    }
    if (found >= 0) {
      code = found
      continue
    }
    emit(code)
    const assigned = advance()
    if (assigned >= 0) {
      // `slot` is the empty slot the probe stopped at.
      hashKeys[slot] = tagged
      hashCodes[slot] = assigned
    }
    code = b
  }

  emit(code)
  advance()
  emit(EOF)
  if (nBits > 0) out[o++] = acc
  return out.subarray(0, o)
}

// Decoder tables, shared for the same reason as the encoder's.
const prefixOf = new Uint16Array(TABLE_SIZE)
const suffixOf = new Uint8Array(TABLE_SIZE)
const firstOf = new Uint8Array(TABLE_SIZE)
const lengthOf = new Uint16Array(TABLE_SIZE)
for (let c = 0; c < 256; c++) {
  firstOf[c] = c
  suffixOf[c] = c
  lengthOf[c] = 1
}

/**
 * Decodes Go `compress/lzw` (LSB, 8) data up to its EOF code; bytes after EOF
 * are ignored, as Go does. `maxOutput` bounds memory against decompression bombs.
 */
export function lzwDecode(input: Uint8Array, maxOutput = 40 * 1024 * 1024): Buffer {
  let out = Buffer.allocUnsafe(Math.min(maxOutput, Math.max(64, input.length * 4)))
  let o = 0
  let pos = 0
  let acc = 0
  let nBits = 0
  let width = MIN_WIDTH
  let next = FIRST_FREE
  let prev = -1

  for (;;) {
    while (nBits < width) {
      if (pos === input.length) {
        throw new LzwError('E_LZW_TRUNCATED', 'LZW data ends before its EOF code')
      }
      acc |= input[pos++]! << nBits
      nBits += 8
    }
    const code = acc & ((1 << width) - 1)
    acc >>>= width
    nBits -= width

    if (code === CLEAR) {
      width = MIN_WIDTH
      next = FIRST_FREE
      prev = -1
      continue
    }
    if (code === EOF) return out.subarray(0, o)

    // Once the table is full (next === 4096) it is frozen until Clear.
    const growing = prev >= 0 && next < TABLE_SIZE
    let head: number
    if (code < CLEAR) head = code
    else if (code >= FIRST_FREE && code < next) head = firstOf[code]!
    else if (code === next && growing) head = firstOf[prev]! // KwKwK: prev + first byte of prev
    else throw new LzwError('E_LZW_CORRUPT', `invalid LZW code ${code}`)

    // Defining the entry before expanding lets the KwKwK code expand like any other.
    if (growing) {
      prefixOf[next] = prev
      suffixOf[next] = head
      firstOf[next] = firstOf[prev]!
      lengthOf[next] = lengthOf[prev]! + 1
      next++
      if (next === 1 << width && width < MAX_WIDTH) width++
    }
    prev = code

    const len = lengthOf[code]!
    if (o + len > out.length) {
      if (o + len > maxOutput) {
        throw new LzwError('E_LZW_TOO_LARGE', `LZW output exceeds ${maxOutput} bytes`)
      }
      const grown = Buffer.allocUnsafe(Math.min(maxOutput, Math.max(o + len, out.length * 2)))
      out.copy(grown, 0, 0, o)
      out = grown
    }
    let c = code
    for (let i = o + len - 1; i > o; i--) {
      out[i] = suffixOf[c]!
      c = prefixOf[c]!
    }
    out[o] = c
    o += len
  }
}
