import t, { type Test } from 'tap'
import fc from 'fast-check'
import { COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD, CompoundError, makeCompound, makeCompounds, parseCompound } from './compound.js'
import { decodeAlive, encodeAlive, encodeDead, encodePing, encodeSuspect, encodeUser, MsgType } from './messages.js'
import { MsgpackReader } from './msgpack.js'
import { thrown } from '../test-helpers.test-helper.js'


function expectCompoundError(t: Test, fn: () => unknown, code: string, msg: string): void {
  const e = thrown(t, fn)
  t.ok(e instanceof CompoundError, `${msg}: CompoundError, got ${String(e)}`)
  t.equal((e as CompoundError).code, code, msg)
}

const parts = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.from(`msg-${i}`))

t.test('overhead constants match memberlist (2 bytes header, 2 per part)', async t => {
  t.equal(COMPOUND_HEADER_OVERHEAD, 2)
  t.equal(COMPOUND_PART_OVERHEAD, 2)
  const msgs = [Buffer.alloc(10), Buffer.alloc(20), Buffer.alloc(0)]
  t.equal(makeCompound(msgs).length, COMPOUND_HEADER_OVERHEAD + msgs.length * COMPOUND_PART_OVERHEAD + 30)
})

t.test('layout: [7][count][u16 BE lengths][bodies]', async t => {
  const out = makeCompound([Buffer.from([0xaa]), Buffer.from([]), Buffer.from([1, 2, 3])])
  t.equal(out.toString('hex'), '07' + '03' + '0001' + '0000' + '0003' + 'aa' + '010203')
  t.equal(makeCompound([]).toString('hex'), '0700', 'empty compound')
  const big = Buffer.alloc(300, 7)
  const one = makeCompound([big])
  t.equal(one.subarray(0, 4).toString('hex'), '07' + '01' + '012c', 'length 300 is big-endian 01 2c')
  t.same(one.subarray(4), big)
})

t.test('round trip with real messages', async t => {
  const alive = encodeAlive({ incarnation: 3, node: 'n1', addr: '10.0.0.1', port: 7946, meta: Buffer.from('m'), vsn: [1, 5, 2, 0, 0, 0] })
  const msgs = [
    encodePing({ seqNo: 1, node: 'n2' }),
    alive,
    encodeSuspect({ incarnation: 2, node: 'n3', from: 'n1' }),
    encodeDead({ incarnation: 4, node: 'n4', from: 'n4' }),
    encodeUser(Buffer.from('user payload')),
  ]
  const c = makeCompound(msgs)
  t.equal(c[0], MsgType.compound)
  const { parts: got, truncated } = parseCompound(c.subarray(1))
  t.equal(truncated, 0)
  t.same(got, msgs)
  t.same(decodeAlive(new MsgpackReader(got[1]!, 1).struct()).node, 'n1')
})

t.test('round trip (property), including empty parts', async t => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 255 }), arrs => {
      const msgs = arrs.map(a => Buffer.from(a))
      const c = makeCompound(msgs)
      if (c[0] !== 7 || c[1] !== msgs.length) return false
      const { parts: got, truncated } = parseCompound(c.subarray(1))
      return truncated === 0 && got.length === msgs.length && got.every((p, i) => p.equals(msgs[i]!))
    }),
    { numRuns: 300 },
  )
  t.pass()
})

t.test('a part of exactly 65535 bytes fits the u16 length', async t => {
  const max = Buffer.alloc(65535, 1)
  const { parts: got, truncated } = parseCompound(makeCompound([max, Buffer.from('x')]).subarray(1))
  t.equal(truncated, 0)
  t.equal(got[0]!.length, 65535)
  t.same(got[1], Buffer.from('x'))
})

t.test('truncated parts are counted, complete ones kept', async t => {
  const msgs = [Buffer.from('aaaa'), Buffer.from('bbbbbb'), Buffer.from('cc')]
  const body = makeCompound(msgs).subarray(1) // [3][lens ×3][aaaa][bbbbbb][cc]
  const hdr = 1 + 3 * 2
  t.equal(body.length, hdr + 12)

  let r = parseCompound(body.subarray(0, hdr + 4 + 3)) // cut inside part 2
  t.same(r.parts, [msgs[0]])
  t.equal(r.truncated, 2)

  r = parseCompound(body.subarray(0, hdr + 10)) // exactly after part 2
  t.same(r.parts, [msgs[0], msgs[1]])
  t.equal(r.truncated, 1)

  r = parseCompound(body.subarray(0, hdr)) // lengths only
  t.same(r.parts, [])
  t.equal(r.truncated, 3)

  r = parseCompound(body.subarray(0, hdr + 11))
  t.equal(r.parts.length, 2)
  t.equal(r.truncated, 1, 'one byte short of the last part')

  // Every cut: parts is a prefix of the input and parts + truncated = count.
  for (let cut = hdr; cut <= body.length; cut++) {
    const { parts: got, truncated } = parseCompound(body.subarray(0, cut))
    t.equal(got.length + truncated, 3, `cut ${cut}: all parts accounted for`)
    got.forEach((p, i) => t.same(p, msgs[i], `cut ${cut}: part ${i} intact`))
  }
})

t.test('trailing bytes after the last part are ignored', async t => {
  const c = makeCompound([Buffer.from('x')])
  const { parts: got, truncated } = parseCompound(Buffer.concat([c.subarray(1), Buffer.from('junk')]))
  t.same(got, [Buffer.from('x')])
  t.equal(truncated, 0)
})

t.test('parsed parts are views of the input (no copies)', async t => {
  const body = makeCompound([Buffer.from('abc')]).subarray(1)
  const { parts: got } = parseCompound(body)
  body[body.length - 1] = 0x7a
  t.equal(got[0]!.toString(), 'abz')
})

t.test('makeCompounds splits batches of more than 255 parts', async t => {
  t.same(makeCompounds([]), [], 'nothing to send')
  const one = makeCompounds(parts(1))
  t.equal(one.length, 1)
  t.equal(one[0]![1], 1)

  const exact = makeCompounds(parts(255))
  t.equal(exact.length, 1, '255 parts fit one compound')
  t.equal(exact[0]![1], 255)

  const over = makeCompounds(parts(256))
  t.equal(over.length, 2, '256 parts need two')
  t.same(over.map(c => c[1]), [255, 1])

  const msgs = parts(600)
  const many = makeCompounds(msgs)
  t.same(many.map(c => c[1]), [255, 255, 90])
  const back = many.flatMap(c => {
    const r = parseCompound(c.subarray(1))
    t.equal(r.truncated, 0)
    return r.parts
  })
  t.same(back, msgs, 'order preserved across compounds')
  t.equal(makeCompounds(parts(510)).length, 2)
  t.equal(makeCompounds(parts(511)).length, 3)
})

t.test('errors', async t => {
  expectCompoundError(t, () => makeCompound(parts(256)), 'E_COMPOUND_PARTS', '256 parts in one compound')
  t.doesNotThrow(() => makeCompound(parts(255)))
  expectCompoundError(t, () => parseCompound(Buffer.alloc(0)), 'E_COMPOUND_SHORT', 'no count byte')
  expectCompoundError(t, () => parseCompound(Buffer.from([2, 0, 1, 0])), 'E_COMPOUND_SHORT', 'length table cut short')
  expectCompoundError(t, () => parseCompound(Buffer.from([1, 0])), 'E_COMPOUND_SHORT', 'one of two length bytes')
  expectCompoundError(t, () => parseCompound(Buffer.from([255])), 'E_COMPOUND_SHORT', '255 parts announced, no lengths')
  t.same(parseCompound(Buffer.from([0])), { parts: [], truncated: 0 }, 'zero parts is valid')
})

t.test('a part longer than 65535 bytes is refused with a CompoundError', async t => {
  const e = thrown(t, () => makeCompound([Buffer.alloc(65536)]))
  t.ok(e instanceof CompoundError, `got ${String(e)}`)
})

t.test('fuzz: parseCompound on random bytes returns or throws CompoundError only', async t => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), raw => {
      const buf = Buffer.from(raw)
      try {
        const { parts: got, truncated } = parseCompound(buf)
        const n = buf[0]!
        return got.length + truncated === n && got.every(p => p.length <= buf.length)
      } catch (e) {
        if (e instanceof CompoundError) return true
        throw e
      }
    }),
    { numRuns: 3000 },
  )
  t.pass()
})
