import t from 'tap'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { LzwError, lzwDecode, lzwEncode } from './lzw.js'
import { SwarmdError } from '../types/errors.js'

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** Same sequence as Go's `x = x*1103515245 + 12345; byte(x >> 16)` on a uint32. */
function lcg(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = (x >>> 16) & 0xff
  }
  return out
}

/** Packs [code, width] pairs LSB-first, to build streams Go's writer never produces. */
function pack(codes: ReadonlyArray<readonly [number, number]>): Buffer {
  const out: number[] = []
  let acc = 0
  let nBits = 0
  for (const [code, width] of codes) {
    acc |= code << nBits
    nBits += width
    while (nBits >= 8) {
      out.push(acc & 0xff)
      acc >>>= 8
      nBits -= 8
    }
  }
  if (nBits > 0) out.push(acc)
  return Buffer.from(out)
}

function lzwErrorCode(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    if (err instanceof LzwError) return err.code
    throw err
  }
}

// Produced by Go 1.19's compress/lzw (NewWriter(w, LSB, 8), one Write, Close).
// Small outputs are given whole; large ones by length and SHA-256.
const mod251 = Buffer.alloc(3000)
for (let i = 0; i < mod251.length; i++) mod251[i] = (i * 7919) % 251
const goldenHex: Array<[string, Buffer, string]> = [
  ['empty', Buffer.alloc(0), '000302'],
  ['a', Buffer.from('a'), '00c30404'],
  ['abababababab (KwKwK)', Buffer.from('abababababab'), '00c388114870a0c180'],
]
const goldenHash: Array<[string, Buffer, number, string]> = [
  ['3000 bytes i*7919%251', mod251, 1390, '1f15adc4847bac5b8069567b6e15f4dd0bd90a835974515c0205172be206a4d8'],
  [
    '5000 bytes of a repeated phrase',
    Buffer.from('swarmd gossip '.repeat(358)).subarray(0, 5000),
    431,
    'e3122af802d51a580856f089063c860ed164360cd9eac2838dbe94e75f48b9ca',
  ],
  // Three table fills, so three mid-stream Clear codes.
  ['12000 LCG bytes, seed 1', lcg(12000, 1), 16421, '6c11c506995391f572c902434ab6cdc0237a6722f264e6b3ac8c5ad4955369aa'],
  // The last data code makes the writer widen to 10 bits, so EOF is 10 bits wide.
  ['255 LCG bytes, seed 7', lcg(255, 7), -1, 'f947aa8f56c0543c48ed239e97b94d801b17f2601997a03cc243f551044e351a'],
  // The last data code fills the table: Clear, then EOF at 9 bits.
  ['3955 LCG bytes, seed 7', lcg(3955, 7), -1, '99dfb190f66478c2f9357e0b5439345dc9e43af1f9a93aa0654650ce28cdba1f'],
]

t.test('encodes byte-identically to Go and decodes Go output', async t => {
  for (const [name, input, hex] of goldenHex) {
    t.equal(lzwEncode(input).toString('hex'), hex, `encode ${name}`)
    t.same(lzwDecode(Buffer.from(hex, 'hex')), input, `decode ${name}`)
  }
  for (const [name, input, len, hash] of goldenHash) {
    const encoded = lzwEncode(input)
    if (len >= 0) t.equal(encoded.length, len, `length ${name}`)
    // A matching hash means `encoded` is Go's output, so decoding it decodes Go's bytes.
    t.equal(sha256(encoded), hash, `encode ${name}`)
    t.ok(lzwDecode(encoded).equals(input), `decode ${name}`)
  }
})

t.test('round trips arbitrary bytes', async t => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), input => lzwDecode(lzwEncode(input)).equals(input)),
    { numRuns: 300 },
  )
  t.pass('300 runs')
})

t.test('round trips long inputs across table resets', async t => {
  // Random bytes give about one code per byte; a small alphabet gives long
  // strings. Both fill the 4096-entry table several times.
  const long = fc.oneof(
    fc.uint8Array({ minLength: 5000, maxLength: 20000 }),
    fc
      .array(fc.integer({ min: 0, max: 3 }), { minLength: 20000, maxLength: 60000 })
      .map(a => Uint8Array.from(a)),
  )
  fc.assert(
    fc.property(long, input => lzwDecode(lzwEncode(input)).equals(input)),
    { numRuns: 40 },
  )
  t.pass('40 runs')
})

t.test('decoder errors', async t => {
  const a = Buffer.from('00c30404', 'hex')
  t.equal(lzwErrorCode(() => lzwDecode(a.subarray(0, 3))), 'E_LZW_TRUNCATED', 'missing EOF')
  t.equal(lzwErrorCode(() => lzwDecode(Buffer.alloc(0))), 'E_LZW_TRUNCATED', 'empty input')
  t.equal(lzwErrorCode(() => lzwDecode(pack([[256, 9], [258, 9]]))), 'E_LZW_CORRUPT', 'unknown code after Clear')
  t.equal(
    lzwErrorCode(() => lzwDecode(pack([[256, 9], [97, 9], [259, 9]]))),
    'E_LZW_CORRUPT',
    'code beyond the next free one',
  )
  const err = t.throws(() => lzwDecode(pack([[256, 9], [300, 9]])))
  t.ok(err instanceof SwarmdError, 'LzwError is a SwarmdError')
})

t.test('decoder accepts a missing leading Clear and ignores bytes after EOF', async t => {
  t.same(lzwDecode(pack([[104, 9], [105, 9], [257, 9]])), Buffer.from('hi'))
  t.same(lzwDecode(Buffer.concat([Buffer.from('00c30404', 'hex'), Buffer.from([0xff, 0xff])])), Buffer.from('a'))
})

t.test('decoder freezes a full table until the next Clear', async t => {
  // Width the decoder reads the j-th code after a Clear with: it grows when
  // the next free code (257 + j) reaches a power of two, and stops at 12.
  const widthAt = (j: number): number => Math.min(12, (257 + j).toString(2).length)
  const codes: Array<[number, number]> = [[256, 9]]
  const expected: number[] = []
  const literals = 4000 // more than the 3838 that fill codes 258..4095
  for (let j = 0; j < literals; j++) {
    codes.push([j & 0xff, widthAt(j)])
    expected.push(j & 0xff)
  }
  // Code 4095 is the last entry made: the pair of literals 3837 and 3838.
  // Later literals added nothing, so it still means that pair.
  codes.push([4095, 12])
  expected.push(3837 & 0xff, 3838 & 0xff)
  codes.push([256, 12], [0x7a, 9], [257, 9])
  expected.push(0x7a)
  t.same(lzwDecode(pack(codes)), Buffer.from(expected))
})

t.test('output size cap', async t => {
  const zeros = Buffer.alloc(100_000)
  const encoded = lzwEncode(zeros)
  t.ok(encoded.length < 2000, 'zeros compress well')
  t.ok(lzwDecode(encoded, zeros.length).equals(zeros), 'exactly at the cap is fine')
  t.equal(lzwErrorCode(() => lzwDecode(encoded, zeros.length - 1)), 'E_LZW_TOO_LARGE')
})

const decodeOrLzwError = (input: Uint8Array): boolean => {
  try {
    return Buffer.isBuffer(lzwDecode(input, 1 << 20))
  } catch (err) {
    return err instanceof LzwError
  }
}

t.test('fuzz: random bytes only ever decode or throw LzwError', async t => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 4000, size: 'max' }), decodeOrLzwError), { numRuns: 1000 })
  t.pass('1000 runs')
})

t.test('fuzz: mutated encodings only ever decode or throw LzwError', async t => {
  const source = fc.oneof(
    fc.uint8Array({ maxLength: 6000, size: 'max' }),
    fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 20000, size: 'max' }).map(a => Uint8Array.from(a)),
  )
  const mutated = fc
    .tuple(
      source,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 }),
      fc.option(fc.nat()),
    )
    .map(([source, flips, cut]) => {
      const enc = Buffer.from(lzwEncode(source))
      for (const [at, bit] of flips) enc[at % enc.length]! ^= 1 << bit
      return cut === null ? enc : enc.subarray(0, cut % (enc.length + 1))
    })
  fc.assert(fc.property(mutated, decodeOrLzwError), { numRuns: 1000 })
  t.pass('1000 runs')
})
