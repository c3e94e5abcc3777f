import t from 'tap'
import fc from 'fast-check'
import { thrown } from '../test-helpers.test-helper.js'
import {
  FRAME_HEADER_LEN,
  FrameDecoder,
  FrameError,
  FrameFlag,
  FrameType,
  MAX_BODY,
  decodeDgramBody,
  decodeFrame,
  decodeOpenBody,
  decodeTextBody,
  decodeU32Body,
  encodeDgramPrefix,
  encodeFrame,
  encodeOpenBody,
  encodeTextBody,
  encodeU32Body,
  type Frame,
  type FrameHeader,
} from './tunnel-frame.js'

const code = (t: Parameters<typeof thrown>[0], fn: () => unknown): string | undefined => {
  const e = thrown(t, fn)
  t.ok(e instanceof FrameError, 'a FrameError')
  return (e as FrameError).code
}

const arbHeader = fc
  .record({
    vni: fc.integer({ min: 0, max: 0xffffff }),
    type: fc.integer({ min: 1, max: 13 }),
    sealed: fc.boolean(),
    reply: fc.boolean(),
    keyId: fc.integer({ min: 1, max: 255 }),
    streamId: fc.nat({ max: 0xffffffff }),
  })
  .map((r) => ({ vni: r.vni, type: r.type as FrameType, flags: (r.sealed ? FrameFlag.SEALED : 0) | (r.reply ? FrameFlag.REPLY : 0), keyId: r.sealed ? r.keyId : 0, streamId: r.streamId }))

const arbFrame = fc.tuple(arbHeader, fc.uint8Array({ maxLength: 300 })).map(([h, b]) => {
  const body = (h.flags & FrameFlag.SEALED) !== 0 && b.length < 28 ? new Uint8Array(28 + b.length) : b
  return { h, body: Buffer.from(body) }
})

const strip = (f: Frame): FrameHeader & { body: string } => ({ vni: f.vni, type: f.type, flags: f.flags, keyId: f.keyId, streamId: f.streamId, length: f.length, body: f.body.toString('hex') })

/** Splits `buf` at the given cut points (any order, any repetition). */
function chunked(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let prev = 0
  for (const p of points) {
    out.push(buf.subarray(prev, p))
    prev = p
  }
  out.push(buf.subarray(prev))
  return out
}

t.test('header layout', async (t) => {
  const f = encodeFrame({ vni: 4096, type: FrameType.DATA, flags: 0, keyId: 0, streamId: 7 }, Buffer.from('hi'))
  t.equal(f.toString('hex'), '08000000' + '00100000' + '01040000' + '00000007' + '00000002' + '6869')
  t.equal(FRAME_HEADER_LEN, 20)
  const d = decodeFrame(f)
  t.same(strip(d), { vni: 4096, type: FrameType.DATA, flags: 0, keyId: 0, streamId: 7, length: 2, body: '6869' })
  t.equal(d.header.length, 20)
})

t.test('strict header validation', async (t) => {
  const good = encodeFrame({ vni: 5000, type: FrameType.FIN, flags: 0, keyId: 0, streamId: 1 })
  const mod = (i: number, v: number): Buffer => {
    const b = Buffer.from(good)
    b[i] = v
    return b
  }
  t.equal(code(t, () => decodeFrame(mod(0, 0x00))), 'E_FRAME_VXLAN')
  t.equal(decodeFrame(mod(1, 0xff)).vni, 5000, 'reserved VXLAN bytes are ignored')
  t.equal(code(t, () => decodeFrame(mod(8, 2))), 'E_FRAME_VERSION')
  t.equal(code(t, () => decodeFrame(mod(9, 0))), 'E_FRAME_TYPE')
  t.equal(code(t, () => decodeFrame(mod(9, 14))), 'E_FRAME_TYPE')
  t.equal(code(t, () => decodeFrame(mod(10, 0x04))), 'E_FRAME_FLAGS')
  t.equal(code(t, () => decodeFrame(mod(11, 3))), 'E_FRAME_FLAGS', 'a key id needs the sealed flag')
  t.equal(code(t, () => decodeFrame(mod(10, 1))), 'E_FRAME_TRUNCATED', 'sealed bodies hold at least nonce and tag')
  t.equal(code(t, () => decodeFrame(good.subarray(0, 19))), 'E_FRAME_TRUNCATED')
  t.equal(code(t, () => decodeFrame(Buffer.concat([good, Buffer.alloc(1)]))), 'E_FRAME_TRUNCATED')
  const big = Buffer.from(good)
  big.writeUInt32BE(MAX_BODY + 1, 16)
  t.equal(code(t, () => decodeFrame(big)), 'E_FRAME_TOO_LARGE')
  t.equal(code(t, () => new FrameDecoder().push(big, () => {})), 'E_FRAME_TOO_LARGE', 'the stream decoder refuses it before buffering')
})

t.test('stream decoder: frames across arbitrary chunking, zero-copy inside a chunk', async (t) => {
  const frames = [0, 1, 5, 70_000 - 20, 19, 20, 21].map((n, i) => encodeFrame({ vni: 4096 + i, type: FrameType.DATA, flags: 0, keyId: 0, streamId: i }, Buffer.alloc(Math.min(n, 65536), i)))
  const all = Buffer.concat(frames)
  for (const size of [1, 2, 7, 19, 20, 21, 4096, all.length]) {
    const got: Frame[] = []
    const d = new FrameDecoder()
    for (let i = 0; i < all.length; i += size) d.push(all.subarray(i, i + size), (f) => got.push(f))
    t.equal(got.length, frames.length, `chunk size ${size}`)
    t.ok(d.idle)
    t.same(got.map((f) => f.streamId), [0, 1, 2, 3, 4, 5, 6])
    t.ok(got.every((f, i) => Buffer.concat([f.header, f.body]).equals(frames[i]!)))
  }
  const whole: Frame[] = []
  new FrameDecoder().push(all, (f) => whole.push(f))
  t.equal(whole[1]!.body.buffer, all.buffer, 'a frame inside one chunk is a view of it')
})

t.test('a failed decoder stays failed', async (t) => {
  const d = new FrameDecoder()
  t.equal(code(t, () => d.push(Buffer.alloc(20), () => {})), 'E_FRAME_VXLAN')
  t.equal(code(t, () => d.push(encodeFrame({ vni: 1, type: FrameType.FIN, flags: 0, keyId: 0, streamId: 1 }), () => {})), 'E_FRAME_VXLAN')
})

t.test('bodies', async (t) => {
  const o = { window: 262144, endpointKey: 'task1/tcp/80', preamble: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n') }
  t.same(decodeOpenBody(encodeOpenBody(o)), o)
  t.same(decodeOpenBody(encodeOpenBody({ ...o, preamble: Buffer.alloc(0) })).preamble.length, 0)
  t.equal(code(t, () => decodeOpenBody(Buffer.alloc(3))), 'E_FRAME_BODY')
  t.equal(code(t, () => decodeOpenBody(Buffer.concat([encodeOpenBody(o), Buffer.alloc(1)]))), 'E_FRAME_BODY')
  const bad = encodeOpenBody(o)
  bad[6] = 0xff
  t.equal(code(t, () => decodeOpenBody(bad)), 'E_FRAME_BODY', 'the endpoint key must be UTF-8')
  t.equal(code(t, () => encodeOpenBody({ ...o, endpointKey: '' })), 'E_FRAME_BODY')
  t.equal(code(t, () => encodeOpenBody({ ...o, window: 0 })), 'E_FRAME_BODY')
  t.equal(code(t, () => encodeOpenBody({ ...o, preamble: Buffer.alloc(513) })), 'E_FRAME_BODY')
  t.equal(decodeU32Body(encodeU32Body(65536)), 65536)
  t.equal(code(t, () => decodeU32Body(Buffer.alloc(4))), 'E_FRAME_BODY')
  t.equal(code(t, () => decodeU32Body(Buffer.alloc(5))), 'E_FRAME_BODY')
  t.equal(code(t, () => encodeU32Body(0)), 'E_FRAME_BODY')
  t.equal(decodeTextBody(encodeTextBody('ECONNREFUSED')), 'ECONNREFUSED')
  t.equal(code(t, () => encodeTextBody('x'.repeat(257))), 'E_FRAME_BODY')
  t.equal(code(t, () => decodeTextBody(Buffer.alloc(257))), 'E_FRAME_BODY')
  const dg = decodeDgramBody(Buffer.concat([encodeDgramPrefix('t/udp/53'), Buffer.from('q')]))
  t.same({ k: dg.endpointKey, p: dg.payload.toString() }, { k: 't/udp/53', p: 'q' })
  t.equal(code(t, () => decodeDgramBody(Buffer.from([0, 9, 1]))), 'E_FRAME_BODY')
  t.equal(code(t, () => decodeDgramBody(Buffer.from([0]))), 'E_FRAME_BODY')
  t.equal(code(t, () => encodeDgramPrefix('')), 'E_FRAME_BODY')
})

t.test('property: encode∘decode = id over any chunking', async () => {
  fc.assert(
    fc.property(fc.array(arbFrame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 10 }), (frames, cuts) => {
      const wire = Buffer.concat(frames.map((f) => encodeFrame(f.h, f.body)))
      const got: Frame[] = []
      const d = new FrameDecoder()
      for (const c of chunked(wire, cuts)) d.push(c, (f) => got.push(f))
      if (!d.idle || got.length !== frames.length) return false
      return got.every((f, i) => {
        const e = frames[i]!
        return f.vni === e.h.vni && f.type === e.h.type && f.flags === e.h.flags && f.keyId === e.h.keyId && f.streamId === e.h.streamId && f.body.equals(e.body)
      })
    }),
  )
})

t.test('property: random bytes never throw anything but FrameError', async () => {
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    // mostly-valid streams with a few bytes flipped reach deeper states
    fc.tuple(fc.array(arbFrame, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 })).map(([fs, flips]) => {
      const b = Buffer.concat(fs.map((f) => encodeFrame(f.h, f.body)))
      for (const [at, v] of flips) b[at % b.length] = v
      return new Uint8Array(b)
    }),
  )
  fc.assert(
    fc.property(anyBytes, fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
      const d = new FrameDecoder()
      try {
        for (const c of chunked(Buffer.from(bytes), cuts)) d.push(c, () => {})
      } catch (e) {
        if (!(e instanceof FrameError)) throw e
      }
      try {
        decodeFrame(Buffer.from(bytes))
      } catch (e) {
        if (!(e instanceof FrameError)) throw e
      }
      for (const body of [decodeOpenBody, decodeU32Body, decodeTextBody, decodeDgramBody]) {
        try {
          body(Buffer.from(bytes))
        } catch (e) {
          if (!(e instanceof FrameError)) throw e
        }
      }
    }),
    { numRuns: 2000 },
  )
})

t.test('decoding is linear: one large frame in 1-byte chunks', async (t) => {
  const f = encodeFrame({ vni: 4096, type: FrameType.DATA, flags: 0, keyId: 0, streamId: 1 }, Buffer.alloc(65536, 7))
  let got: Frame | undefined
  const d = new FrameDecoder()
  const start = process.hrtime.bigint()
  for (let i = 0; i < f.length; i++) d.push(f.subarray(i, i + 1), (x) => (got = x))
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  t.ok(got?.body.equals(Buffer.alloc(65536, 7)))
  t.ok(ms < 500, `took ${ms.toFixed(1)} ms`)
})
