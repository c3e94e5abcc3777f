import t, { type Test } from 'tap'
import fc from 'fast-check'
import { SwarmdError } from '../types/errors.js'
import {
  type Decoded,
  type DecodedMap,
  EMPTY,
  fieldBool,
  fieldBytes,
  fieldString,
  fieldUint,
  MsgpackError,
  MsgpackReader,
  MsgpackTruncatedError,
  MsgpackWriter,
} from './msgpack.js'
import { thrown, hex } from '../test-helpers.test-helper.js'


function written(f: (w: MsgpackWriter) => void, initial?: number): string {
  const w = new MsgpackWriter(initial)
  f(w)
  return w.toBuffer().toString('hex')
}

/** Runs fn, returns what it threw (or fails the test when it does not throw). */

function expectMsgpackError(t: Test, fn: () => unknown, code: string, msg?: string): void {
  const e = thrown(t, fn)
  t.ok(e instanceof MsgpackError, `${msg ?? code}: is a MsgpackError (${String(e)})`)
  t.equal((e as MsgpackError).code, code, msg ?? code)
}

t.test('hex helper sanity', async t => {
  t.equal(hex('a4"Node" cd 461a').toString('hex'), 'a44e6f6465cd461a')
  t.throws(() => hex('zz'))
})

t.test('writer: unsigned integers take the smallest form', async t => {
  const cases: [number, string][] = [
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, 'cc80'],
    [255, 'ccff'],
    [256, 'cd0100'],
    [300, 'cd012c'],
    [17946, 'cd461a'],
    [65535, 'cdffff'],
    [65536, 'ce00010000'],
    [0xffffffff, 'ceffffffff'],
    [0x100000000, 'cf0000000100000000'],
    [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
  ]
  for (const [v, want] of cases) t.equal(written(w => w.uint(v)), want, `uint(${v})`)
})

t.test('writer: uint refuses negatives and non-integers with E_MSGPACK_RANGE', async t => {
  for (const v of [-1, 1.5, NaN, Infinity, -0.5]) {
    expectMsgpackError(t, () => new MsgpackWriter().uint(v), 'E_MSGPACK_RANGE', `uint(${v})`)
  }
})

t.test('writer: uint refuses values beyond u64 with a MsgpackError', async t => {
  for (const v of [2 ** 64, 1e20, Number.MAX_VALUE]) {
    expectMsgpackError(t, () => new MsgpackWriter().uint(v), 'E_MSGPACK_RANGE', `uint(${v})`)
  }
})

t.test('writer: strings are fixstr, then str16 and str32; never str8', async t => {
  t.equal(written(w => w.str('')), 'a0', 'an empty Go string is a zero-length raw, not nil')
  t.equal(written(w => w.str('go1')), 'a3676f31')
  t.equal(written(w => w.str('x'.repeat(31))), 'bf' + '78'.repeat(31))
  t.equal(written(w => w.str('x'.repeat(32))), 'da0020' + '78'.repeat(32), '32 bytes: str16, not str8 (d9)')
  t.equal(written(w => w.str('x'.repeat(40))), 'da0028' + '78'.repeat(40), '40 bytes: da 00 28 as Go writes it')
  t.equal(written(w => w.str('x'.repeat(255))).slice(0, 6), 'da00ff')
  t.equal(written(w => w.str('x'.repeat(65535))).slice(0, 6), 'daffff')
  const big = written(w => w.str('x'.repeat(65536)))
  t.equal(big.slice(0, 10), 'db00010000', '64 KiB: str32')
  t.equal(big.length, (5 + 65536) * 2)
  // Length is in UTF-8 bytes, not UTF-16 units.
  t.equal(written(w => w.str('é')), 'a2c3a9')
  t.equal(written(w => w.str('€'.repeat(11))).slice(0, 6), 'da0021', '11 × 3 bytes = 33 bytes: str16')
})

t.test('writer: []byte is nil when empty, raw family otherwise', async t => {
  t.equal(written(w => w.raw(undefined)), 'c0')
  t.equal(written(w => w.raw(new Uint8Array(0))), 'c0')
  t.equal(written(w => w.raw(Buffer.from([1, 5, 2, 0, 0, 0]))), 'a6010502000000', 'Vsn is a 6-byte raw string')
  t.equal(written(w => w.raw(Buffer.alloc(32, 0xff))), 'da0020' + 'ff'.repeat(32), 'no bin8 (c4)')
  t.equal(written(w => w.raw(Buffer.alloc(70000, 1))).slice(0, 10), 'db00011170')
})

t.test('writer: map headers, bools, nil, raw bytes', async t => {
  t.equal(written(w => w.mapHeader(0)), '80')
  t.equal(written(w => w.mapHeader(15)), '8f')
  t.equal(written(w => w.mapHeader(16)), 'de0010')
  t.equal(written(w => w.bool(true).bool(false).nil()), 'c3c2c0')
  t.equal(written(w => w.byte(0x04).bytes(Buffer.from([1, 2, 3]))), '04010203')
  t.equal(written(w => w.key('Node')), 'a44e6f6465')
})

t.test('writer: grows from a tiny buffer, reset reuses it, toBuffer is a copy', async t => {
  const w = new MsgpackWriter(1)
  w.str('a'.repeat(1000)).uint(0xffffffff).raw(Buffer.alloc(5000, 9))
  t.equal(w.length, 3 + 1000 + 5 + 3 + 5000)
  const first = w.toBuffer()
  const r = new MsgpackReader(first)
  t.equal((r.value() as Buffer).toString(), 'a'.repeat(1000))
  t.equal(r.value(), 0xffffffff)
  t.same(r.value(), Buffer.alloc(5000, 9))
  t.equal(r.pos, first.length)
  w.reset()
  t.equal(w.length, 0)
  w.uint(7)
  t.equal(w.toBuffer().toString('hex'), '07')
  t.equal(first[0], 0xda, 'earlier copy not overwritten by reuse')
})

t.test('reader: every integer width, signed and unsigned', async t => {
  const cases: [string, number | bigint][] = [
    ['00', 0],
    ['7f', 127],
    ['ff', -1],
    ['e0', -32],
    ['cc05', 5],
    ['ccff', 255],
    ['cd0005', 5],
    ['cdffff', 65535],
    ['ce00000005', 5],
    ['ceffffffff', 0xffffffff],
    ['cf0000000000000005', 5],
    ['cf001fffffffffffff', Number.MAX_SAFE_INTEGER],
    ['cf0020000000000000', 2n ** 53n],
    ['cfffffffffffffffff', 2n ** 64n - 1n],
    ['d005', 5],
    ['d0ff', -1],
    ['d080', -128],
    ['d10005', 5],
    ['d18000', -32768],
    ['d200000005', 5],
    ['d280000000', -(2 ** 31)],
    ['d30000000000000005', 5],
    ['d3ffffffffffffffff', -1],
    ['d38000000000000000', -(2n ** 63n)],
    ['d3ffe0000000000001', Number.MIN_SAFE_INTEGER],
  ]
  for (const [h, want] of cases) {
    const r = new MsgpackReader(Buffer.from(h, 'hex'))
    t.equal(r.value(), want, h)
    t.equal(r.pos, h.length / 2, `${h}: consumed exactly`)
  }
})

t.test('reader: floats, bools, nil, arrays and maps of every size class', async t => {
  const f32 = Buffer.alloc(5)
  f32[0] = 0xca
  f32.writeFloatBE(1.5, 1)
  t.equal(new MsgpackReader(f32).value(), 1.5)
  const f64 = Buffer.alloc(9)
  f64[0] = 0xcb
  f64.writeDoubleBE(-2.25, 1)
  t.equal(new MsgpackReader(f64).value(), -2.25)
  t.equal(new MsgpackReader(hex('c3')).value(), true)
  t.equal(new MsgpackReader(hex('c2')).value(), false)
  t.equal(new MsgpackReader(hex('c0')).value(), null)
  t.same(new MsgpackReader(hex('93 01 02 03')).value(), [1, 2, 3])
  t.same(new MsgpackReader(hex('dc0002 01 a1"x"')).value(), [1, Buffer.from('x')])
  t.same(new MsgpackReader(hex('dd00000001 c3')).value(), [true])
  t.same(new MsgpackReader(hex('de0001 a1"k" 05')).value(), { k: 5 })
  t.same(new MsgpackReader(hex('df00000001 a1"k" 06')).value(), { k: 6 })
  t.same(new MsgpackReader(hex('81 a1"k" 81 a1"j" 90')).value(), { k: { j: [] } })
})

t.test('reader: the str and bin families all decode to the raw bytes', async t => {
  const body = Buffer.from('hello')
  for (const h of ['a5', 'd905', 'da0005', 'db00000005', 'c405', 'c50005', 'c600000005']) {
    const buf = Buffer.concat([Buffer.from(h, 'hex'), body, Buffer.from([0x07])])
    const r = new MsgpackReader(buf)
    t.same(r.value(), body, h)
    t.equal(r.value(), 7, `${h}: position after the raw is right`)
  }
  for (const h of ['a0', 'd900', 'da0000', 'db00000000', 'c400', 'c50000', 'c600000000']) {
    t.same(new MsgpackReader(Buffer.from(h, 'hex')).value(), EMPTY, `${h}: zero-length`)
  }
})

t.test('reader: offset, and struct() over a map', async t => {
  const buf = hex('04 82 a1"a" 01 a1"b" a2"hi"')
  const r = new MsgpackReader(buf, 1)
  const m = r.struct()
  t.equal(m['a'], 1)
  t.same(m['b'], Buffer.from('hi'))
  t.equal(r.pos, buf.length)
  t.equal(Object.getPrototypeOf(m), null, 'prototype-less map: keys like __proto__ are plain data')
  const evil = new MsgpackReader(hex('81 a9"__proto__" 01')).struct()
  t.equal(evil['__proto__'], 1)
  t.equal(({} as Record<string, unknown>)['polluted'], undefined)
})

t.test('reader: errors carry stable codes', async t => {
  expectMsgpackError(t, () => new MsgpackReader(hex('c1')).value(), 'E_MSGPACK_TYPE', 'c1 is never used')
  for (const b of ['c7', 'c8', 'c9', 'd4', 'd5', 'd6', 'd7', 'd8']) {
    expectMsgpackError(t, () => new MsgpackReader(Buffer.from(b + '0000000000000000', 'hex')).value(), 'E_MSGPACK_TYPE', `ext ${b}`)
  }
  expectMsgpackError(t, () => new MsgpackReader(hex('81 01 02')).value(), 'E_MSGPACK_KEY', 'integer map key')
  expectMsgpackError(t, () => new MsgpackReader(hex('81 c0 02')).value(), 'E_MSGPACK_KEY', 'nil map key')
  expectMsgpackError(t, () => new MsgpackReader(hex('91 01')).struct(), 'E_MSGPACK_STRUCT', 'array is not a struct')
  expectMsgpackError(t, () => new MsgpackReader(hex('a1"x"')).struct(), 'E_MSGPACK_STRUCT', 'raw is not a struct')
  expectMsgpackError(t, () => new MsgpackReader(hex('c0')).struct(), 'E_MSGPACK_STRUCT', 'nil is not a struct')
  expectMsgpackError(t, () => new MsgpackReader(hex('05')).struct(), 'E_MSGPACK_STRUCT', 'int is not a struct')
  // 17 nested arrays exceed the depth limit of 16; 16 are fine.
  t.doesNotThrow(() => new MsgpackReader(Buffer.from('91'.repeat(16) + '90', 'hex')).value())
  expectMsgpackError(t, () => new MsgpackReader(Buffer.from('91'.repeat(17) + '90', 'hex')).value(), 'E_MSGPACK_DEPTH')
  expectMsgpackError(t, () => new MsgpackReader(Buffer.from('81a178'.repeat(40) + '90', 'hex')).value(), 'E_MSGPACK_DEPTH', 'nested maps')
})

t.test('reader: input that ends inside a value throws MsgpackTruncatedError', async t => {
  const whole = [
    'cc05',
    'cd0102',
    'ce01020304',
    'cf0102030405060708',
    'd005',
    'd10102',
    'd201020304',
    'd30102030405060708',
    'ca3fc00000',
    'cb4002000000000000',
    'a3616263',
    'd903616263',
    'da0003616263',
    'db00000003616263',
    'c403616263',
    'c50003616263',
    'c600000003616263',
    '920102',
    'dc00020102',
    'dd000000020102',
    '82a16101a16202',
    'de0001a16101',
    'df00000001a16101',
  ]
  for (const h of whole) {
    const buf = Buffer.from(h, 'hex')
    t.doesNotThrow(() => new MsgpackReader(buf).value(), `${h} complete`)
    for (let i = 0; i < buf.length; i++) {
      const e = thrown(t, () => new MsgpackReader(buf.subarray(0, i)).value())
      t.ok(e instanceof MsgpackTruncatedError, `${h} cut at ${i}`)
      t.equal((e as MsgpackError).code, 'E_MSGPACK_TRUNCATED')
    }
  }
  t.ok(thrown(t, () => new MsgpackReader(Buffer.alloc(0)).struct()) instanceof MsgpackTruncatedError, 'empty input')
  t.ok(thrown(t, () => new MsgpackReader(hex('01'), 1).value()) instanceof MsgpackTruncatedError, 'offset at the end')
})

t.test('reader: huge declared lengths fail fast as truncation (no allocation, no hang)', async t => {
  for (const h of ['dbffffffff', 'c6ffffffff', 'ddffffffff', 'dfffffffff', 'deffff', 'dcffff', 'daffff']) {
    const start = performance.now()
    const e = thrown(t, () => new MsgpackReader(Buffer.from(h + '00', 'hex')).value())
    t.ok(e instanceof MsgpackTruncatedError, h)
    t.ok(performance.now() - start < 100, `${h} fails fast`)
  }
})

t.test('field accessors: zero values, type checks, ranges', async t => {
  const m: DecodedMap = Object.assign(Object.create(null) as DecodedMap, {
    n: 5,
    neg: -1,
    big: 0x100000000,
    huge: 2n ** 64n - 1n,
    float: 1.5,
    s: Buffer.from('abc'),
    b: true,
    nil: null,
    arr: [1] as Decoded[],
  })
  t.equal(fieldUint(m, 'n'), 5)
  t.equal(fieldUint(m, 'missing'), 0, 'missing is the zero value')
  t.equal(fieldUint(m, 'nil'), 0, 'nil is the zero value')
  t.equal(fieldUint(m, 'n', 5), 5, 'max is inclusive')
  expectMsgpackError(t, () => fieldUint(m, 'n', 4), 'E_MSGPACK_FIELD', 'above max')
  expectMsgpackError(t, () => fieldUint(m, 'neg'), 'E_MSGPACK_FIELD', 'negative')
  expectMsgpackError(t, () => fieldUint(m, 'big'), 'E_MSGPACK_FIELD', 'above u32 by default')
  expectMsgpackError(t, () => fieldUint(m, 'huge'), 'E_MSGPACK_FIELD', 'bigint')
  expectMsgpackError(t, () => fieldUint(m, 'float'), 'E_MSGPACK_FIELD', 'float')
  expectMsgpackError(t, () => fieldUint(m, 's'), 'E_MSGPACK_FIELD', 'raw for an int')
  expectMsgpackError(t, () => fieldUint(m, 'b'), 'E_MSGPACK_FIELD', 'bool for an int')
  t.equal(fieldBool(m, 'b'), true)
  t.equal(fieldBool(m, 'missing'), false)
  t.equal(fieldBool(m, 'nil'), false)
  expectMsgpackError(t, () => fieldBool(m, 'n'), 'E_MSGPACK_FIELD', 'int for a bool')
  t.same(fieldBytes(m, 's'), Buffer.from('abc'))
  t.equal(fieldBytes(m, 'nil').length, 0)
  t.equal(fieldBytes(m, 'missing').length, 0)
  expectMsgpackError(t, () => fieldBytes(m, 'n'), 'E_MSGPACK_FIELD', 'int for bytes')
  expectMsgpackError(t, () => fieldBytes(m, 'arr'), 'E_MSGPACK_FIELD', 'array for bytes')
  t.equal(fieldString(m, 's'), 'abc')
  t.equal(fieldString(m, 'nil'), '')
  expectMsgpackError(t, () => fieldString(m, 'b'), 'E_MSGPACK_FIELD', 'bool for a string')
})

t.test('writer → reader round trip (property)', async t => {
  type Item = { k: 'uint'; v: number } | { k: 'str'; v: string } | { k: 'raw'; v: Uint8Array } | { k: 'bool'; v: boolean }
  const item: fc.Arbitrary<Item> = fc.oneof(
    fc.record({ k: fc.constant('uint' as const), v: fc.oneof(fc.nat({ max: 300 }), fc.nat({ max: 0xffffffff }), fc.maxSafeNat()) }),
    fc.record({ k: fc.constant('str' as const), v: fc.string({ unit: 'grapheme', maxLength: 60 }) }),
    fc.record({ k: fc.constant('raw' as const), v: fc.uint8Array({ maxLength: 300 }) }),
    fc.record({ k: fc.constant('bool' as const), v: fc.boolean() }),
  )
  fc.assert(
    fc.property(fc.array(item, { maxLength: 20 }), items => {
      const w = new MsgpackWriter(8).mapHeader(items.length)
      items.forEach((it, i) => {
        w.key(`f${i}`)
        if (it.k === 'uint') w.uint(it.v)
        else if (it.k === 'str') w.str(it.v)
        else if (it.k === 'raw') w.raw(it.v)
        else w.bool(it.v)
      })
      const buf = w.toBuffer()
      const r = new MsgpackReader(buf)
      const m = r.struct()
      if (r.pos !== buf.length) return false
      return items.every((it, i) => {
        const name = `f${i}`
        if (it.k === 'uint') return fieldUint(m, name, Number.MAX_SAFE_INTEGER) === it.v
        if (it.k === 'str') return fieldString(m, name) === it.v
        if (it.k === 'raw') return Buffer.compare(fieldBytes(m, name), Buffer.from(it.v)) === 0
        return fieldBool(m, name) === it.v
      })
    }),
    { numRuns: 300 },
  )
  t.pass('round trips')
})

/** Only MsgpackError (a SwarmdError) may escape, never TypeError/RangeError. */
function decodeOnlyMsgpackErrors(buf: Buffer): void {
  try {
    new MsgpackReader(buf).struct()
  } catch (e) {
    if (!(e instanceof MsgpackError) || !(e instanceof SwarmdError)) throw e
  }
  try {
    const r = new MsgpackReader(buf)
    while (r.pos < buf.length) r.value()
  } catch (e) {
    if (!(e instanceof MsgpackError)) throw e
  }
}

t.test('fuzz: random bytes only ever throw MsgpackError, quickly', async t => {
  let slowest = 0
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), bytes => {
      const start = performance.now()
      decodeOnlyMsgpackErrors(Buffer.from(bytes))
      slowest = Math.max(slowest, performance.now() - start)
    }),
    { numRuns: 3000 },
  )
  t.ok(slowest < 250, `slowest decode ${slowest.toFixed(1)} ms`)
})

t.test('fuzz: headers followed by random bytes (every type byte, long containers)', async t => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }), (first, rest) => {
      decodeOnlyMsgpackErrors(Buffer.concat([Buffer.from([first]), rest]))
      decodeOnlyMsgpackErrors(Buffer.concat([Buffer.from([0x81, 0xa1, 0x78, first]), rest]))
    }),
    { numRuns: 3000 },
  )
  t.pass()
})
