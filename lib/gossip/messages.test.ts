import t, { type Test } from 'tap'
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import { SwarmdError } from '../types/errors.js'
import {
  type Alive,
  bytesToIp,
  decodeAck,
  decodeAlive,
  decodeCompress,
  decodeDead,
  decodeErr,
  decodeIndirectPing,
  decodeNack,
  decodePing,
  decodePushNodeState,
  decodePushPullHeader,
  decodeSuspect,
  decodeUserMsgHeader,
  encodeAck,
  encodeAlive,
  encodeCompress,
  encodeDead,
  encodeErr,
  encodeIndirectPing,
  encodeNack,
  encodePing,
  encodePushNodeState,
  encodePushPullHeader,
  encodeSuspect,
  encodeUser,
  encodeUserMsgHeader,
  type IndirectPingReq,
  ipToBytes,
  MsgType,
  NodeStateType,
  type Ping,
  type PushNodeState,
  type Vsn,
} from './messages.js'
import { type DecodedMap, MsgpackError, MsgpackReader, MsgpackTruncatedError } from './msgpack.js'
import { thrown, hex, mutate, type Mutation } from '../test-helpers.test-helper.js'

// ---------------------------------------------------------------- helpers


/** Decodes a message the way the receive path does: skip the type byte, read one map. */
function body(buf: Buffer, offset = 1): DecodedMap {
  const r = new MsgpackReader(buf, offset)
  const m = r.struct()
  if (r.pos !== buf.length) throw new Error(`trailing bytes: read ${r.pos} of ${buf.length}`)
  return m
}

/** Hand-built msgpack, in encodings our writer never produces. */
const enc = {
  fixstr: (b: Buffer) => Buffer.concat([Buffer.from([0xa0 | b.length]), b]),
  str8: (b: Buffer) => Buffer.concat([Buffer.from([0xd9, b.length]), b]),
  str16: (b: Buffer) => Buffer.concat([u16be(0xda, b.length), b]),
  str32: (b: Buffer) => Buffer.concat([u32be(0xdb, b.length), b]),
  bin8: (b: Buffer) => Buffer.concat([Buffer.from([0xc4, b.length]), b]),
  bin16: (b: Buffer) => Buffer.concat([u16be(0xc5, b.length), b]),
  bin32: (b: Buffer) => Buffer.concat([u32be(0xc6, b.length), b]),
}
type RawEnc = keyof typeof enc
const rawEncs = Object.keys(enc) as RawEnc[]

function u16be(tag: number, v: number): Buffer {
  const b = Buffer.alloc(3)
  b[0] = tag
  b.writeUInt16BE(v, 1)
  return b
}
function u32be(tag: number, v: number): Buffer {
  const b = Buffer.alloc(5)
  b[0] = tag
  b.writeUInt32BE(v, 1)
  return b
}

/** Every msgpack integer form that can hold `v` (v >= 0). */
function intForms(v: number): [string, Buffer][] {
  const out: [string, Buffer][] = []
  if (v < 128) out.push(['fixint', Buffer.from([v])])
  if (v < 0x100) out.push(['u8', Buffer.from([0xcc, v])])
  if (v < 0x10000) out.push(['u16', u16be(0xcd, v)])
  if (v < 0x100000000) out.push(['u32', u32be(0xce, v)])
  const u64 = Buffer.alloc(9)
  u64[0] = 0xcf
  u64.writeBigUInt64BE(BigInt(v), 1)
  out.push(['u64', u64])
  if (v < 0x80) out.push(['i8', Buffer.from([0xd0, v])])
  if (v < 0x8000) {
    const b = Buffer.alloc(3)
    b[0] = 0xd1
    b.writeInt16BE(v, 1)
    out.push(['i16', b])
  }
  if (v < 0x80000000) {
    const b = Buffer.alloc(5)
    b[0] = 0xd2
    b.writeInt32BE(v, 1)
    out.push(['i32', b])
  }
  const i64 = Buffer.alloc(9)
  i64[0] = 0xd3
  i64.writeBigInt64BE(BigInt(v), 1)
  out.push(['i64', i64])
  return out
}

/** A msgpack map from pre-encoded values; keys are fixstr. */
function mapOf(entries: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [entries.length < 16 ? Buffer.from([0x80 | entries.length]) : u16be(0xde, entries.length)]
  for (const [k, v] of entries) parts.push(enc.fixstr(Buffer.from(k)), v)
  return Buffer.concat(parts)
}

const fixint = (v: number) => Buffer.from([v])
const nil = Buffer.from([0xc0])
const s = (x: string) => enc.fixstr(Buffer.from(x))


function expectFieldError(t: Test, fn: () => unknown, msg: string, code = 'E_MSGPACK_FIELD'): void {
  const e = thrown(t, fn)
  t.ok(e instanceof MsgpackError, `${msg}: MsgpackError, got ${String(e)}`)
  t.equal((e as MsgpackError).code, code, msg)
}

const VSN: Vsn = [1, 5, 2, 0, 0, 0]

// ---------------------------------------------------------------- golden vectors (§1.4)

t.test('golden: alive', async t => {
  const want = '0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465a3676f31a4506f7274cd461aa356736ea6010502000000'
  const a: Alive = { incarnation: 1, node: 'go1', addr: '127.0.0.1', port: 17946, meta: Buffer.alloc(0), vsn: VSN }
  t.equal(encodeAlive(a).toString('hex'), want)
  t.equal(
    hex('04 86 a4"Addr" a4 7f000001  ab"Incarnation" 01  a4"Meta" c0  a4"Node" a3"go1"  a4"Port" cd 461a  a3"Vsn" a6 010502000000').toString('hex'),
    want,
    'the annotated form in the spec is the same bytes',
  )
  t.same(decodeAlive(body(Buffer.from(want, 'hex'))), a)
})

t.test('golden: ping with Source* fields', async t => {
  const want =
    '0085a44e6f6465a3676f32a55365714e6f07aa536f7572636541646472a47f000001aa536f757263654e6f6465a3676f31aa536f75726365506f7274cd461a'
  const p: Ping = { seqNo: 7, node: 'go2', sourceAddr: '127.0.0.1', sourcePort: 17946, sourceNode: 'go1' }
  t.equal(encodePing(p).toString('hex'), want)
  t.same(decodePing(body(Buffer.from(want, 'hex'))), p)
})

t.test('golden: ping without Source* fields (omitempty)', async t => {
  const want = '0082a44e6f6465a3676f32a55365714e6f07'
  t.equal(encodePing({ seqNo: 7, node: 'go2' }).toString('hex'), want)
  t.equal(encodePing({ seqNo: 7, node: 'go2', sourceAddr: '', sourcePort: 0, sourceNode: '' }).toString('hex'), want, 'empty values are omitted too')
  t.strictSame(decodePing(body(Buffer.from(want, 'hex'))), { seqNo: 7, node: 'go2' }, 'no Source* keys appear when absent')
})

t.test('golden: pushPullHeader', async t => {
  const want = '0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656e00'
  t.equal(encodePushPullHeader({ nodes: 1, userStateLen: 0, join: true }).toString('hex'), want)
  t.same(decodePushPullHeader(body(Buffer.from(want, 'hex'))), { nodes: 1, userStateLen: 0, join: true })
})

t.test('golden: ping with a 40-byte node name uses str16 (da 00 28), not str8', async t => {
  const name = 'node-0123456789abcdef0123456789abcdef-xy'
  t.equal(name.length, 40)
  const want = Buffer.concat([hex('00 82 a4"Node" da0028'), Buffer.from(name), hex('a5"SeqNo" cd012c')])
  const got = encodePing({ seqNo: 300, node: name })
  t.equal(got.toString('hex'), want.toString('hex'))
  t.same(decodePing(body(got)), { seqNo: 300, node: name })
})

t.test('golden: the serf user message tail of the §1.4 capture decodes as a user message', async t => {
  // `08 01 82 a5"LTime" 01 a4"Node" a2"s1"`: memberlist user type, then serf's messageJoin (type 1) and its map.
  const msg = hex('08 01 82 a5"LTime" 01 a4"Node" a2"s1"')
  t.equal(msg[0], MsgType.user)
  t.same(encodeUser(msg.subarray(1)), msg, 'encodeUser is the type byte then the raw payload')
  const serf = new MsgpackReader(msg, 2).struct()
  t.equal(serf['LTime'], 1)
  t.same(serf['Node'], Buffer.from('s1'))
})

t.test('message type and node state constants', async t => {
  t.same(
    [MsgType.ping, MsgType.indirectPing, MsgType.ack, MsgType.suspect, MsgType.alive, MsgType.dead, MsgType.pushPull, MsgType.compound],
    [0, 1, 2, 3, 4, 5, 6, 7],
  )
  t.same([MsgType.user, MsgType.compress, MsgType.encrypt, MsgType.nack, MsgType.hasCrc, MsgType.err, MsgType.hasLabel], [8, 9, 10, 11, 12, 13, 244])
  t.same(NodeStateType, { alive: 0, suspect: 1, dead: 2, left: 3 })
})

// ---------------------------------------------------------------- round trips

t.test('round trip of every message type (examples)', async t => {
  const ping: Ping = { seqNo: 0xffffffff, node: 'target', sourceAddr: '10.1.2.3', sourcePort: 65535, sourceNode: 'me' }
  let b = encodePing(ping)
  t.equal(b[0], MsgType.ping)
  t.same(decodePing(body(b)), ping)

  const ind: IndirectPingReq = { seqNo: 42, target: '192.168.0.9', port: 7946, node: 'n9', nack: true, sourceAddr: '::1', sourcePort: 1, sourceNode: 'src' }
  b = encodeIndirectPing(ind)
  t.equal(b[0], MsgType.indirectPing)
  t.same(decodeIndirectPing(body(b)), ind)
  const indMin: IndirectPingReq = { seqNo: 1, target: '10.0.0.1', port: 0, node: '', nack: false }
  b = encodeIndirectPing(indMin)
  t.strictSame(decodeIndirectPing(body(b)), indMin)
  t.equal(body(b)['Nack'], false, 'Nack is always written, even when false')
  t.equal(Object.keys(body(b)).join(','), 'Nack,Node,Port,SeqNo,Target', 'keys in Go (byte) order, Source* omitted')
  t.equal(Object.keys(body(encodeIndirectPing(ind))).join(','), 'Nack,Node,Port,SeqNo,SourceAddr,SourceNode,SourcePort,Target')

  b = encodeAck({ seqNo: 9, payload: Buffer.from('pong') })
  t.equal(b[0], MsgType.ack)
  t.same(decodeAck(body(b)), { seqNo: 9, payload: Buffer.from('pong') })

  b = encodeNack({ seqNo: 77 })
  t.equal(b.toString('hex'), Buffer.concat([hex('0b 81 a5"SeqNo" 4d')]).toString('hex'))
  t.same(decodeNack(body(b)), { seqNo: 77 })

  b = encodeErr({ error: 'Node was not found' })
  t.equal(b.toString('hex'), hex('0d 81 a5"Error" b2"Node was not found"').toString('hex'))
  t.same(decodeErr(body(b)), { error: 'Node was not found' })

  b = encodeSuspect({ incarnation: 3, node: 'a', from: 'b' })
  t.equal(b.toString('hex'), hex('03 83 a4"From" a1"b" ab"Incarnation" 03 a4"Node" a1"a"').toString('hex'))
  t.same(decodeSuspect(body(b)), { incarnation: 3, node: 'a', from: 'b' })

  b = encodeDead({ incarnation: 300, node: 'a', from: 'a' })
  t.equal(b.toString('hex'), hex('05 83 a4"From" a1"a" ab"Incarnation" cd012c a4"Node" a1"a"').toString('hex'))
  t.same(decodeDead(body(b)), { incarnation: 300, node: 'a', from: 'a' })

  const alive: Alive = { incarnation: 2, node: 'js1', addr: '2001:db8::7', port: 17950, meta: Buffer.from([0xff, 0x80]), vsn: [1, 5, 2, 2, 5, 4] }
  b = encodeAlive(alive)
  t.same(decodeAlive(body(b)), alive)

  const pns: PushNodeState = { name: 'n1', addr: '10.0.0.1', port: 7946, meta: Buffer.from('m'), incarnation: 5, state: NodeStateType.left, vsn: VSN }
  b = encodePushNodeState(pns)
  t.equal(b[0], 0x87, 'a bare map of 7 fields, no type byte')
  t.equal(Object.keys(body(b, 0)).join(','), 'Addr,Incarnation,Meta,Name,Port,State,Vsn')
  t.same(decodePushNodeState(body(b, 0)), pns)

  b = encodeUserMsgHeader(586)
  t.equal(b.toString('hex'), hex('08 81 aa"UserMsgLen" cd024a').toString('hex'))
  t.equal(decodeUserMsgHeader(body(b)), 586)

  b = encodeCompress({ algo: 0, buf: Buffer.from([1, 2, 3]) })
  t.equal(b.toString('hex'), hex('09 82 a4"Algo" 00 a3"Buf" a3 010203').toString('hex'))
  t.same(decodeCompress(body(b)), { algo: 0, buf: Buffer.from([1, 2, 3]) })

  t.same(encodeUser(Buffer.from('hi')), Buffer.from([8, 0x68, 0x69]))
  t.same(encodeUser(new Uint8Array(0)), Buffer.from([8]))
})

t.test('encoders return independent copies (the writer is shared)', async t => {
  const a = encodeSuspect({ incarnation: 1, node: 'first', from: 'x' })
  const copy = Buffer.from(a)
  encodeSuspect({ incarnation: 2, node: 'second-is-longer', from: 'y' })
  t.same(a, copy)
})

// Arbitraries. Names are any Unicode text (no lone surrogates, which UTF-8 cannot carry).
const u32 = fc.integer({ min: 0, max: 0xffffffff })
const port = fc.integer({ min: 0, max: 0xffff })
const nzPort = fc.integer({ min: 1, max: 0xffff })
const name = fc.string({ unit: 'grapheme', maxLength: 50 })
const nzName = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 50 })
const ipv4 = fc.ipV4()
// IPv6 text as produced by bytesToIp for non-mapped addresses; canonical-form issues are tested separately.
const ipv6 = fc.constantFrom('2001:db8::1', '::1', 'fe80::1:2', '2001:db8:0:1:2:3:4:5', 'ff02::1', '1::', '2001:db8:85a3::8a2e:370:7334')
const ip = fc.oneof(ipv4, ipv6)
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map(u => Buffer.from(u))
const vsn = fc.tuple(
  fc.integer({ min: 0, max: 255 }),
  fc.integer({ min: 0, max: 255 }),
  fc.integer({ min: 0, max: 255 }),
  fc.integer({ min: 0, max: 255 }),
  fc.integer({ min: 0, max: 255 }),
  fc.integer({ min: 0, max: 255 }),
) as fc.Arbitrary<Vsn>

const arbPing: fc.Arbitrary<Ping> = fc.record(
  { seqNo: u32, node: name, sourceAddr: ip, sourcePort: nzPort, sourceNode: nzName },
  { requiredKeys: ['seqNo', 'node'], noNullPrototype: true },
)
const arbInd: fc.Arbitrary<IndirectPingReq> = fc.record(
  { seqNo: u32, target: ip, port, node: name, nack: fc.boolean(), sourceAddr: ip, sourcePort: nzPort, sourceNode: nzName },
  { requiredKeys: ['seqNo', 'target', 'port', 'node', 'nack'], noNullPrototype: true },
)
const arbAlive: fc.Arbitrary<Alive> = fc.record({ incarnation: u32, node: name, addr: ip, port, meta: bytes(600), vsn }, { noNullPrototype: true })
const arbPns: fc.Arbitrary<PushNodeState> = fc.record({
  name,
  addr: ip,
  port,
  meta: bytes(600),
  incarnation: u32,
  state: fc.integer({ min: 0, max: 3 }),
  vsn,
}, { noNullPrototype: true })
const arbSD = fc.record({ incarnation: u32, node: name, from: name }, { noNullPrototype: true })

/** Deep strict equality; a property returns it so that failures shrink instead of flooding the TAP output. */
const eq = (a: unknown, b: unknown): boolean => isDeepStrictEqual(a, b)

t.test('round trip of every message type (property)', async t => {
  const runs = { numRuns: 200 }
  fc.assert(fc.property(arbPing, p => eq(decodePing(body(encodePing(p))), p)), runs)
  fc.assert(fc.property(arbInd, p => eq(decodeIndirectPing(body(encodeIndirectPing(p))), p)), runs)
  fc.assert(fc.property(u32, bytes(2000), (seqNo, payload) => eq(decodeAck(body(encodeAck({ seqNo, payload }))), { seqNo, payload })), runs)
  fc.assert(fc.property(u32, seqNo => eq(decodeNack(body(encodeNack({ seqNo }))), { seqNo })), runs)
  fc.assert(fc.property(name, error => eq(decodeErr(body(encodeErr({ error }))), { error })), runs)
  fc.assert(fc.property(arbSD, x => eq(decodeSuspect(body(encodeSuspect(x))), x)), runs)
  fc.assert(fc.property(arbSD, x => eq(decodeDead(body(encodeDead(x))), x)), runs)
  fc.assert(fc.property(arbAlive, a => eq(decodeAlive(body(encodeAlive(a))), a)), runs)
  fc.assert(fc.property(arbPns, p => eq(decodePushNodeState(body(encodePushNodeState(p), 0)), p)), runs)
  fc.assert(
    fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.boolean(), (nodes, userStateLen, join) =>
      eq(decodePushPullHeader(body(encodePushPullHeader({ nodes, userStateLen, join }))), { nodes, userStateLen, join }),
    ),
    runs,
  )
  fc.assert(fc.property(u32, n => decodeUserMsgHeader(body(encodeUserMsgHeader(n))) === n), runs)
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), bytes(3000), (algo, buf) => eq(decodeCompress(body(encodeCompress({ algo, buf }))), { algo, buf })),
    runs,
  )
  // The property checker itself must be able to fail.
  t.notOk(eq(decodePing(body(encodePing({ seqNo: 1, node: 'a', sourcePort: 2 }))), { seqNo: 1, node: 'a' }))
  t.pass('all message types round trip')
})

t.test('long values: str32 names and 70 000-byte payloads round trip', async t => {
  const long = 'ü'.repeat(40000) // 80 000 UTF-8 bytes
  const b = encodeErr({ error: long })
  t.equal(b.subarray(1 + 1 + 6, 1 + 1 + 6 + 5).toString('hex'), 'db00013880', 'str32 header')
  t.equal(decodeErr(body(b)).error, long)
  const payload = Buffer.alloc(70000, 0xab)
  t.same(decodeAck(body(encodeAck({ seqNo: 1, payload }))).payload, payload)
})

// ---------------------------------------------------------------- lenient decoding

t.test('decoder accepts str8/str16/str32/bin8/bin16/bin32 for string and []byte fields', async t => {
  for (const e of rawEncs) {
    const m = mapOf([
      ['Addr', enc[e](Buffer.from([10, 0, 0, 7]))],
      ['Incarnation', fixint(9)],
      ['Meta', enc[e](Buffer.from('meta'))],
      ['Node', enc[e](Buffer.from('nöde'))],
      ['Port', u16be(0xcd, 7946)],
      ['Vsn', enc[e](Buffer.from([1, 5, 2, 2, 5, 4]))],
    ])
    t.same(
      decodeAlive(body(m, 0)),
      { incarnation: 9, node: 'nöde', addr: '10.0.0.7', port: 7946, meta: Buffer.from('meta'), vsn: [1, 5, 2, 2, 5, 4] },
      `alive with ${e}`,
    )
    t.same(decodeSuspect(body(mapOf([['From', enc[e](Buffer.from('b'))], ['Incarnation', fixint(1)], ['Node', enc[e](Buffer.from('a'))]]), 0)), {
      incarnation: 1,
      node: 'a',
      from: 'b',
    })
    t.same(decodeAck(body(mapOf([['Payload', enc[e](Buffer.from('p'))], ['SeqNo', fixint(1)]]), 0)).payload, Buffer.from('p'), `ack payload ${e}`)
    t.same(decodeCompress(body(mapOf([['Algo', fixint(0)], ['Buf', enc[e](Buffer.from('zz'))]]), 0)).buf, Buffer.from('zz'), `compress buf ${e}`)
    t.equal(decodeErr(body(mapOf([['Error', enc[e](Buffer.from('boom'))]]), 0)).error, 'boom', `err ${e}`)
  }
})

t.test('decoder accepts every integer width for integer fields', async t => {
  for (const v of [0, 5, 127, 200, 7946, 65535]) {
    for (const [label, form] of intForms(v)) {
      const a = decodeAlive(body(mapOf([['Addr', s('\x7f\x00\x00\x01')], ['Incarnation', form], ['Node', s('x')], ['Port', form], ['Vsn', s('\x01\x05\x02\x00\x00\x00')]]), 0))
      t.equal(a.incarnation, v, `Incarnation ${v} as ${label}`)
      t.equal(a.port, v, `Port ${v} as ${label}`)
      t.equal(decodePing(body(mapOf([['SeqNo', form], ['Node', nil]]), 0)).seqNo, v, `SeqNo ${v} as ${label}`)
      const h = decodePushPullHeader(body(mapOf([['Nodes', form], ['UserStateLen', form], ['Join', nil]]), 0))
      t.same([h.nodes, h.userStateLen, h.join], [v, v, false], `pushPullHeader ${v} as ${label}`)
    }
  }
  for (const v of [0xffffffff, 70000]) {
    for (const [label, form] of intForms(v)) {
      t.equal(decodeSuspect(body(mapOf([['Incarnation', form]]), 0)).incarnation, v, `Incarnation ${v} as ${label}`)
    }
  }
  for (const v of [0, 1, 2, 3]) {
    for (const [label, form] of intForms(v)) {
      t.equal(decodePushNodeState(body(mapOf([['State', form]]), 0)).state, v, `State ${v} as ${label}`)
    }
  }
})

t.test('decoder: key order does not matter, unknown keys are skipped, missing keys are zero values', async t => {
  const m = mapOf([
    ['Zzz', mapOf([['nested', Buffer.from([0x93, 1, 2, 3])]])],
    ['Node', s('b')],
    ['Extra', Buffer.from([0xcb, 0, 0, 0, 0, 0, 0, 0, 0])],
    ['From', s('a')],
  ])
  t.same(decodeDead(body(m, 0)), { incarnation: 0, node: 'b', from: 'a' })
  t.strictSame(decodeIndirectPing(body(mapOf([]), 0)), { seqNo: 0, target: '', port: 0, node: '', nack: false })
  t.same(decodeAlive(body(mapOf([]), 0)), { incarnation: 0, node: '', addr: '', port: 0, meta: Buffer.alloc(0), vsn: [0, 0, 0, 0, 0, 0] })
})

t.test('nil for empty Meta / Payload / Buf, both ways', async t => {
  const alive = encodeAlive({ incarnation: 1, node: 'a', addr: '1.2.3.4', port: 1, meta: Buffer.alloc(0), vsn: VSN })
  t.equal(body(alive)['Meta'], null, 'empty Meta is written as nil')
  t.ok(alive.includes(hex('a4"Meta" c0')))
  t.equal(body(encodeAck({ seqNo: 1, payload: Buffer.alloc(0) }))['Payload'], null, 'empty Payload is nil')
  t.equal(body(encodeCompress({ algo: 0, buf: Buffer.alloc(0) }))['Buf'], null, 'empty Buf is nil')
  t.equal(body(encodePushNodeState({ name: 'a', addr: '1.2.3.4', port: 1, meta: Buffer.alloc(0), incarnation: 1, state: 0, vsn: VSN }), 0)['Meta'], null)
  for (const empty of [nil, s(''), enc.bin8(Buffer.alloc(0)), enc.str16(Buffer.alloc(0))]) {
    const a = decodeAlive(body(mapOf([['Meta', empty], ['Node', s('a')]]), 0))
    t.equal(a.meta.length, 0, `Meta ${empty.toString('hex')} decodes empty`)
    t.ok(Buffer.isBuffer(a.meta))
    t.equal(decodeAck(body(mapOf([['Payload', empty]]), 0)).payload.length, 0)
  }
})

t.test('decoded byte fields are copies, not views of the packet', async t => {
  const buf = encodeAlive({ incarnation: 1, node: 'a', addr: '1.2.3.4', port: 1, meta: Buffer.from('meta'), vsn: VSN })
  const a = decodeAlive(body(buf))
  buf.fill(0)
  t.equal(a.meta.toString(), 'meta')
  const ackBuf = encodeAck({ seqNo: 1, payload: Buffer.from('data') })
  const ack = decodeAck(body(ackBuf))
  ackBuf.fill(0)
  t.equal(ack.payload.toString(), 'data')
})

// ---------------------------------------------------------------- IP addresses

t.test('IPv4 goes on the wire as 4 bytes, IPv6 as 16', async t => {
  t.same(ipToBytes('127.0.0.1'), Buffer.from([127, 0, 0, 1]))
  t.same(ipToBytes('255.255.255.255'), Buffer.from([255, 255, 255, 255]))
  t.equal(ipToBytes('::1').toString('hex'), '00000000000000000000000000000001')
  t.equal(ipToBytes('2001:db8::ff00:42:8329').toString('hex'), '20010db8000000000000ff0000428329')
  t.equal(ipToBytes('::ffff:10.1.2.3').toString('hex'), '00000000000000000000ffff0a010203')
  t.equal(ipToBytes('::').toString('hex'), '0'.repeat(32))
  const b = encodeAlive({ incarnation: 1, node: 'a', addr: '2001:db8::1', port: 1, meta: Buffer.alloc(0), vsn: VSN })
  t.ok(b.includes(hex('a4"Addr" b0 20010db8000000000000000000000001')), 'Addr is a 16-byte fixstr')
  for (const bad of ['', 'localhost', '1.2.3', '1.2.3.256', 'gg::1']) {
    const e = thrown(t, () => ipToBytes(bad))
    t.ok(e instanceof MsgpackError, `${JSON.stringify(bad)} refused`)
    t.equal((e as MsgpackError).code, 'E_BAD_IP')
  }
})

t.test('IPv4-mapped 16-byte address decodes to IPv4 (and is re-sent as 4 bytes)', async t => {
  const mapped = Buffer.from('00000000000000000000ffff7f000001', 'hex')
  t.equal(bytesToIp(mapped), '127.0.0.1')
  const m = mapOf([
    ['Addr', enc.fixstr(mapped)],
    ['Incarnation', fixint(1)],
    ['Meta', nil],
    ['Node', s('go1')],
    ['Port', u16be(0xcd, 17946)],
    ['Vsn', s('\x01\x05\x02\x00\x00\x00')],
  ])
  const a = decodeAlive(body(m, 0))
  t.equal(a.addr, '127.0.0.1')
  t.equal(
    encodeAlive(a).toString('hex'),
    '0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465a3676f31a4506f7274cd461aa356736ea6010502000000',
    're-encoding gives the golden alive with a 4-byte address',
  )
  t.equal(decodePing(body(mapOf([['SourceAddr', enc.bin8(mapped)]]), 0)).sourceAddr, '127.0.0.1')
  t.equal(decodeIndirectPing(body(mapOf([['Target', enc.str8(mapped)]]), 0)).target, '127.0.0.1')
  // Not mapped: a non-zero byte in the prefix, or 0000 instead of ffff.
  t.not(bytesToIp(Buffer.from('00000000000000000001ffff7f000001', 'hex')), '127.0.0.1')
  t.equal(bytesToIp(Buffer.from('0000000000000000000000007f000001', 'hex')), '::7f00:1', 'IPv4-compatible (::a.b.c.d) stays IPv6')
})

t.test('IPv6 round trip through messages', async t => {
  for (const addr of ['2001:db8::1', '::1', 'fe80::1', '2001:db8:85a3::8a2e:370:7334', '2001:db8:1:2:3:4:5:6', '::', '1::']) {
    const a: Alive = { incarnation: 1, node: 'v6', addr, port: 7946, meta: Buffer.alloc(0), vsn: VSN }
    t.equal(decodeAlive(body(encodeAlive(a))).addr, addr, addr)
    t.equal(decodePing(body(encodePing({ seqNo: 1, node: 'x', sourceAddr: addr }))).sourceAddr, addr)
  }
})

t.test('IPv6 bytes → text → bytes is the identity (property, non-mapped)', async t => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat({ max: 7 }), fc.nat({ max: 8 }), (raw, zstart, zlen) => {
      const b = Buffer.from(raw)
      // Bias towards runs of zero groups, where the "::" compression happens.
      b.fill(0, zstart * 2, Math.min(16, (zstart + zlen) * 2))
      const mapped = b.subarray(0, 10).every(x => x === 0) && b[10] === 0xff && b[11] === 0xff
      fc.pre(!mapped)
      const text = bytesToIp(b)
      return Buffer.compare(ipToBytes(text), b) === 0
    }),
    { numRuns: 2000 },
  )
  t.pass()
})

t.test('IPv6 text is canonical (RFC 5952: the longest run of zero groups becomes ::)', async t => {
  for (const canonical of ['1:0:0:1::1', '0:0:1::1', '2001:0:0:1::1', 'fe80:0:0:1::']) {
    t.equal(new URL(`http://[${canonical}]/`).hostname, `[${canonical}]`, `${canonical} is canonical (WHATWG URL agrees)`)
    const via = bytesToIp(ipToBytes(canonical))
    t.equal(via, canonical, `${canonical} decodes to itself (got ${via})`)
  }
})

t.test('16-byte IPv6 from fixed vectors', async t => {
  t.equal(bytesToIp(Buffer.from('20010db8000000000000000000000001', 'hex')), '2001:db8::1')
  t.equal(bytesToIp(Buffer.from('fe800000000000000000000000000001', 'hex')), 'fe80::1')
  t.equal(bytesToIp(Buffer.from('00000000000000000000000000000000', 'hex')), '::')
  t.equal(bytesToIp(Buffer.from('20010db8000100020003000400050006', 'hex')), '2001:db8:1:2:3:4:5:6')
  t.equal(bytesToIp(Buffer.from('20010db8000000010000000000000001', 'hex')), '2001:db8:0:1::1', 'a single zero group is not compressed')
})

// ---------------------------------------------------------------- errors

t.test('wrong field types throw MsgpackError E_MSGPACK_FIELD', async t => {
  const cases: [string, () => unknown][] = [
    ['Node as int', () => decodeAlive(body(mapOf([['Node', fixint(1)]]), 0))],
    ['Node as bool', () => decodeSuspect(body(mapOf([['Node', Buffer.from([0xc3])]]), 0))],
    ['From as array', () => decodeDead(body(mapOf([['From', Buffer.from([0x91, 0x01])]]), 0))],
    ['Incarnation as string', () => decodeAlive(body(mapOf([['Incarnation', s('1')]]), 0))],
    ['Incarnation negative', () => decodeSuspect(body(mapOf([['Incarnation', Buffer.from([0xff])]]), 0))],
    ['Incarnation > u32', () => decodeDead(body(mapOf([['Incarnation', intForms(0x100000000)[0]![1]]]), 0))],
    ['Incarnation u64 max (bigint)', () => decodeDead(body(mapOf([['Incarnation', Buffer.from('cfffffffffffffffff', 'hex')]]), 0))],
    ['Incarnation float', () => decodeDead(body(mapOf([['Incarnation', Buffer.from('cb3ff8000000000000', 'hex')]]), 0))],
    ['Port > u16', () => decodeAlive(body(mapOf([['Port', u32be(0xce, 70000)]]), 0))],
    ['SourcePort > u16', () => decodePing(body(mapOf([['SourcePort', u32be(0xce, 65536)]]), 0))],
    ['State 4', () => decodePushNodeState(body(mapOf([['State', fixint(4)]]), 0))],
    ['Algo 256', () => decodeCompress(body(mapOf([['Algo', u16be(0xcd, 256)]]), 0))],
    ['Meta as bool', () => decodeAlive(body(mapOf([['Meta', Buffer.from([0xc2])]]), 0))],
    ['Addr as map', () => decodeAlive(body(mapOf([['Addr', Buffer.from([0x80])]]), 0))],
    ['Payload as int', () => decodeAck(body(mapOf([['Payload', fixint(3)]]), 0))],
    ['Buf as int', () => decodeCompress(body(mapOf([['Buf', fixint(3)]]), 0))],
    ['Join as int', () => decodePushPullHeader(body(mapOf([['Join', fixint(1)]]), 0))],
    ['Nack as string', () => decodeIndirectPing(body(mapOf([['Nack', s('true')]]), 0))],
    ['Vsn as array', () => decodePushNodeState(body(mapOf([['Vsn', Buffer.from([0x96, 1, 5, 2, 0, 0, 0])]]), 0))],
    ['UserMsgLen as string', () => decodeUserMsgHeader(body(mapOf([['UserMsgLen', s('9')]]), 0))],
    ['Error as int', () => decodeErr(body(mapOf([['Error', fixint(9)]]), 0))],
    ['SeqNo as nil-free bin', () => decodeNack(body(mapOf([['SeqNo', enc.bin8(Buffer.from([1]))]]), 0))],
  ]
  for (const [msg, fn] of cases) expectFieldError(t, fn, msg)
  expectFieldError(t, () => decodeAlive(body(mapOf([['Vsn', s('\x01\x05\x02')]]), 0)), 'Vsn of 3 bytes', 'E_BAD_VSN')
})

t.test('encoders refuse field values their own decoders (and Go) reject', async t => {
  const base: Alive = { incarnation: 1, node: 'a', addr: '1.2.3.4', port: 1, meta: Buffer.alloc(0), vsn: VSN }
  const bad: [string, () => Buffer][] = [
    ['Port 70000', () => encodeAlive({ ...base, port: 70000 })],
    ['Incarnation 2^33', () => encodeAlive({ ...base, incarnation: 2 ** 33 })],
    ['Vsn byte 300', () => encodeAlive({ ...base, vsn: [1, 5, 2, 0, 0, 300] })],
    ['SourcePort 65536', () => encodePing({ seqNo: 1, node: 'a', sourcePort: 65536 })],
    ['State 4', () => encodePushNodeState({ name: 'a', addr: '1.2.3.4', port: 1, meta: Buffer.alloc(0), incarnation: 1, state: 4, vsn: VSN })],
    ['Algo 256', () => encodeCompress({ algo: 256, buf: Buffer.from([1]) })],
  ]
  for (const [what, fn] of bad) {
    const e = thrown(t, fn)
    t.ok(e instanceof MsgpackError, `${what}: refused with a MsgpackError, got ${String(e)}`)
  }
})

t.test('addresses of a wrong length throw MsgpackError E_BAD_IP', async t => {
  for (const n of [1, 3, 5, 6, 15, 17]) {
    expectFieldError(t, () => decodeAlive(body(mapOf([['Addr', enc.bin8(Buffer.alloc(n, 1))]]), 0)), `Addr of ${n} bytes`, 'E_BAD_IP')
    expectFieldError(t, () => decodeIndirectPing(body(mapOf([['Target', enc.bin8(Buffer.alloc(n, 1))]]), 0)), `Target of ${n} bytes`, 'E_BAD_IP')
  }
})

t.test('truncated messages throw MsgpackTruncatedError at every cut', async t => {
  const msgs: Buffer[] = [
    encodeAlive({ incarnation: 1, node: 'go1', addr: '127.0.0.1', port: 17946, meta: Buffer.from('meta'), vsn: VSN }),
    encodePing({ seqNo: 7, node: 'go2', sourceAddr: '127.0.0.1', sourcePort: 17946, sourceNode: 'go1' }),
    encodeIndirectPing({ seqNo: 7, target: '::1', port: 1, node: 'n', nack: true }),
    encodePushPullHeader({ nodes: 1, userStateLen: 0, join: true }),
    encodeAck({ seqNo: 1, payload: Buffer.alloc(40, 1) }),
    encodeErr({ error: 'x'.repeat(40) }),
    encodeCompress({ algo: 0, buf: Buffer.alloc(300, 2) }),
  ]
  let cuts = 0
  for (const m of msgs) {
    for (let i = 1; i < m.length; i++) {
      const e = thrown(t, () => new MsgpackReader(m.subarray(0, i), 1).struct())
      if (!(e instanceof MsgpackTruncatedError)) t.fail(`type ${m[0]} cut at ${i}: ${String(e)}`)
      cuts++
    }
  }
  t.ok(cuts > 200, `${cuts} cuts, all truncated`)
})

// ---------------------------------------------------------------- fuzz

const decoders: [string, (m: DecodedMap) => unknown][] = [
  ['ping', decodePing],
  ['indirectPing', decodeIndirectPing],
  ['ack', decodeAck],
  ['nack', decodeNack],
  ['err', decodeErr],
  ['suspect', decodeSuspect],
  ['alive', decodeAlive],
  ['dead', decodeDead],
  ['pushPullHeader', decodePushPullHeader],
  ['pushNodeState', decodePushNodeState],
  ['userMsgHeader', decodeUserMsgHeader],
  ['compress', decodeCompress],
]

/** Decodes with the generic reader and every decoder: only MsgpackError (a SwarmdError) may escape. */
function fuzzOne(buf: Buffer, offset: number): void {
  let m: DecodedMap
  try {
    m = new MsgpackReader(buf, offset).struct()
  } catch (e) {
    if (e instanceof MsgpackError && e instanceof SwarmdError) return
    throw e
  }
  for (const [, d] of decoders) {
    try {
      d(m)
    } catch (e) {
      if (!(e instanceof MsgpackError)) throw e
    }
  }
}

const validEncodings = fc.oneof(
  arbPing.map(encodePing),
  arbInd.map(encodeIndirectPing),
  arbAlive.map(encodeAlive),
  arbPns.map(p => Buffer.concat([Buffer.from([MsgType.pushPull]), encodePushNodeState(p)])),
  arbSD.map(encodeSuspect),
  arbSD.map(encodeDead),
  fc.tuple(u32, bytes(100)).map(([seqNo, payload]) => encodeAck({ seqNo, payload })),
  fc.tuple(fc.nat(), fc.nat(), fc.boolean()).map(([nodes, userStateLen, join]) => encodePushPullHeader({ nodes, userStateLen, join })),
  bytes(100).map(buf => encodeCompress({ algo: 0, buf })),
)

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('set', 'insert', 'delete', 'cut'),
  at: fc.nat(),
  // Bytes that matter most to a msgpack reader: lengths and type tags.
  byte: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x00, 0x7f, 0x80, 0x8f, 0x9f, 0xc0, 0xc1, 0xcf, 0xd3, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff)),
}) as fc.Arbitrary<Mutation>


t.test('fuzz: random bytes into struct() and every decoder throw only MsgpackError', async t => {
  let slowest = 0
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), raw => {
      const start = performance.now()
      fuzzOne(Buffer.from(raw), 0)
      slowest = Math.max(slowest, performance.now() - start)
    }),
    { numRuns: 3000 },
  )
  t.ok(slowest < 250, `never hangs: slowest ${slowest.toFixed(1)} ms`)
})

t.test('fuzz: mutated valid encodings throw only MsgpackError', async t => {
  let slowest = 0
  let decodedSome = 0
  fc.assert(
    fc.property(validEncodings, fc.array(mutation, { minLength: 1, maxLength: 6 }), (valid, muts) => {
      const b = mutate(valid, muts)
      const start = performance.now()
      fuzzOne(b, 1)
      fuzzOne(b, 0)
      slowest = Math.max(slowest, performance.now() - start)
      try {
        new MsgpackReader(b, 1).struct()
        decodedSome++
      } catch {
        /* counted above */
      }
    }),
    { numRuns: 3000 },
  )
  t.ok(slowest < 250, `never hangs: slowest ${slowest.toFixed(1)} ms`)
  t.ok(decodedSome > 0, `some mutants still parse (${decodedSome}), so decoders were exercised on odd values`)
})

/** Maps with the right keys but random msgpack values of every kind. */
const anyValue: fc.Arbitrary<Buffer> = fc.letrec<{ v: Buffer }>(tie => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: 0, max: 0xffffffff }).chain(v => fc.constantFrom(...intForms(v).map(f => f[1]))),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(v => {
      const b = Buffer.alloc(9)
      b[0] = 0xcf
      b.writeBigUInt64BE(v, 1)
      return b
    }),
    fc.integer({ min: -(2 ** 31), max: -1 }).map(v => u32be(0xd2, v >>> 0)),
    fc.double().map(v => {
      const b = Buffer.alloc(9)
      b[0] = 0xcb
      b.writeDoubleBE(v, 1)
      return b
    }),
    fc.constantFrom(Buffer.from([0xc0]), Buffer.from([0xc2]), Buffer.from([0xc3])),
    fc.tuple(fc.constantFrom(...rawEncs), fc.uint8Array({ maxLength: 20 })).map(([e, u]) => enc[e](Buffer.from(u))),
    fc.array(tie('v'), { maxLength: 3 }).map(items => Buffer.concat([Buffer.from([0x90 | items.length]), ...items])),
    fc.array(fc.tuple(fc.string({ maxLength: 5 }), tie('v')), { maxLength: 3 }).map(mapOf),
  ),
})).v

t.test('fuzz: right keys, random value types → only MsgpackError', async t => {
  const keys = ['Addr', 'Algo', 'Buf', 'Error', 'From', 'Incarnation', 'Join', 'Meta', 'Nack', 'Name', 'Node', 'Nodes', 'Payload', 'Port', 'SeqNo', 'SourceAddr', 'SourceNode', 'SourcePort', 'State', 'Target', 'UserMsgLen', 'UserStateLen', 'Vsn']
  let errors = 0
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(...keys), anyValue), { maxLength: 10 }), entries => {
      const m = body(mapOf(entries), 0)
      for (const [, d] of decoders) {
        try {
          d(m)
        } catch (e) {
          if (!(e instanceof MsgpackError)) throw e
          errors++
        }
      }
    }),
    { numRuns: 2000 },
  )
  t.ok(errors > 0, `wrong types were seen and refused (${errors} refusals)`)
})
