/**
 * Crafted messages at a real Membership on real sockets (UDP and TCP on
 * 127.0.0.1): each malformed one is dropped and counted by reason and never
 * applied; the well-formed control beside it is.
 */
import { createSocket } from 'node:dgram'
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { Membership } from './membership.js'
import { encodeAlive, encodePushNodeState, encodePushPullHeader, MsgType, type Alive, type PushNodeState } from './messages.js'
import { MsgpackWriter } from './msgpack.js'
import { plane } from '../../bench/fuzz/gossip.js'

const VSN = [1, 5, 2, 0, 0, 0] as const

async function member(t: Test): Promise<Membership> {
  const m = await Membership.create({ name: 'target', bind: { ip: '127.0.0.1', port: 0 }, profile: 'local' })
  t.teardown(() => m.shutdown())
  return m
}

const total = (m: Membership): number => Object.values(m.counters.dropped).reduce((a, b) => a + b, 0)

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise(r => setTimeout(r, 10))
  if (!cond()) throw new Error(`timed out waiting for ${what}`)
}

/** Sends one UDP packet and waits until the member has counted it (received, and handled or dropped). */
async function send(m: Membership, packet: Buffer): Promise<void> {
  const before = m.counters.packetsReceived
  const sock = createSocket('udp4')
  await new Promise<void>((resolve, reject) => sock.send(packet, m.address.port, m.address.ip, e => (e ? reject(e) : resolve())))
  sock.close()
  await until(() => m.counters.packetsReceived > before, 'the packet')
}

/** An alive as a map of raw msgpack fields, so any field can hold any type. */
function alive(fields: Record<string, (w: MsgpackWriter) => MsgpackWriter>): Buffer {
  const w = new MsgpackWriter(2048).byte(MsgType.alive).mapHeader(Object.keys(fields).length)
  for (const [k, f] of Object.entries(fields)) f(w.key(k))
  return w.toBuffer()
}

const good = (node: string): Record<string, (w: MsgpackWriter) => MsgpackWriter> => ({
  // Where nothing listens: the member will probe it.
  Addr: w => w.raw(Buffer.from([127, 0, 0, 176])),
  Incarnation: w => w.uint(1),
  Meta: w => w.nil(),
  Node: w => w.str(node),
  Port: w => w.uint(9),
  Vsn: w => w.raw(Buffer.from(VSN)),
})

t.test('alive messages with wrong-typed, missing or contradictory fields are dropped by reason, never applied', async t => {
  const m = await member(t)
  const cases: [string, Buffer, string][] = [
    ['a string where the version belongs', alive({ ...good('s1'), Vsn: w => w.str('abcdef') }), 'invalid_vsn'],
    ['a version string of 3 bytes', alive({ ...good('s2'), Vsn: w => w.str('1.0') }), 'invalid_vsn'],
    ['no version at all', alive({ ...good('s3'), Vsn: w => w.nil() }), 'invalid_vsn'],
    ['versions in an array', alive({ ...good('s4'), Vsn: w => w.byte(0x96).byte(1).byte(5).byte(2).byte(0).byte(0).byte(0) }), 'invalid_field'],
    ['a current protocol outside its own range', alive({ ...good('s5'), Vsn: w => w.raw(Buffer.from([1, 3, 4, 0, 0, 0])) }), 'invalid_vsn'],
    ['a delegate version outside its own range', alive({ ...good('s6'), Vsn: w => w.raw(Buffer.from([1, 5, 2, 2, 4, 5])) }), 'invalid_vsn'],
    ['a protocol range this node does not speak', alive({ ...good('s7'), Vsn: w => w.str('aaaaaa') }), 'version'],
    ['an empty node name', alive(good('')), 'invalid_node'],
    ['a string incarnation', alive({ ...good('s8'), Incarnation: w => w.str('1') }), 'invalid_field'],
    ['a negative incarnation', alive({ ...good('s9'), Incarnation: w => w.byte(0xff) }), 'invalid_field'],
    ['a bool for the port', alive({ ...good('s10'), Port: w => w.bool(true) }), 'invalid_field'],
    ['an address of 5 bytes', alive({ ...good('s11'), Addr: w => w.raw(Buffer.from([127, 0, 0, 1, 1])) }), 'invalid_addr'],
    ['no address', alive({ ...good('s12'), Addr: w => w.nil() }), 'invalid_addr'],
    ['600 bytes of meta', alive({ ...good('s13'), Meta: w => w.raw(Buffer.alloc(600, 1)) }), 'oversize'],
  ]
  for (const [what, packet, reason] of cases) {
    const before = m.counters.dropped[reason] ?? 0
    await send(m, packet)
    t.equal(m.counters.dropped[reason], before + 1, `${what}: dropped as ${reason}`)
  }
  t.same(
    m.allMembers().map(x => x.name),
    ['target'],
    'none of them was applied',
  )
  await send(m, alive(good('control')))
  t.same(m.allMembers().map(x => x.name).sort(), ['control', 'target'], 'a well-formed alive beside them is')
  t.equal(total(m), cases.length, 'and nothing else was dropped')
})

t.test('suspect and dead messages about no node, and an indirect ping with no target, are dropped', async t => {
  const m = await member(t)
  const named = (type: number, node: string): Buffer => new MsgpackWriter(256).byte(type).mapHeader(3).key('From').str('x').key('Incarnation').uint(1).key('Node').str(node).toBuffer()
  await send(m, named(MsgType.suspect, ''))
  await send(m, named(MsgType.dead, ''))
  await send(m, named(MsgType.dead, 'target').subarray(0, 9))
  const ind = new MsgpackWriter(256).byte(MsgType.indirectPing).mapHeader(4).key('Nack').bool(false).key('Node').str('n').key('Port').uint(7946).key('SeqNo').uint(3).toBuffer()
  await send(m, ind)
  t.same(m.counters.dropped, { invalid_node: 2, decode: 1, invalid_addr: 1 })
  t.equal(m.members().find(x => x.name === 'target')?.state, 'alive')
})

t.test('a push/pull keeps its good nodes and drops the malformed ones, counted', async t => {
  const m = await member(t)
  const node = (over: Partial<PushNodeState>): Buffer =>
    encodePushNodeState({ name: 'ok', addr: '127.0.0.176', port: 9, meta: Buffer.alloc(0), incarnation: 1, state: 0, vsn: [...VSN], ...over })
  const frame = Buffer.concat([
    encodePushPullHeader({ nodes: 5, userStateLen: 0, join: false }),
    node({ name: '' }),
    node({ name: 'no-vsn', vsn: [0, 0, 0, 0, 0, 0] }),
    // Its versions would fail the whole exchange in memberlist's check: only it goes.
    node({ name: 'gone-no-vsn', state: 2, vsn: [0, 0, 0, 0, 0, 0] }),
    node({ name: 'gone', state: 2, addr: '127.0.0.177' }),
    node({}),
  ])
  // Not half-closed: the member answers on this connection before it merges.
  const s = connect(m.address.port, m.address.ip, () => s.write(frame))
  t.teardown(() => s.destroy())
  const reply = await new Promise<Buffer>((resolve, reject) => {
    s.once('data', resolve)
    s.on('error', reject)
  })
  t.ok(reply[0] === MsgType.pushPull || reply[0] === MsgType.compress, 'answered with its own state')
  await until(() => m.allMembers().some(x => x.name === 'ok'), 'the good node')
  t.same(m.counters.dropped, { invalid_node: 1, invalid_vsn: 2 })
  t.same(m.allMembers().map(x => x.name).sort(), ['ok', 'target'], 'a dead node unknown here stays unknown')
})

t.test('the checks refuse nothing a memberlist node sends of itself', async t => {
  const m = await member(t)
  // Go memberlist's defaults (protocol 2 of 1..5), serf's delegate range, an IPv4-mapped address, a 512-byte meta.
  const real: Alive[] = [
    { incarnation: 1, node: 'go-default', addr: '127.0.0.177', port: 9, meta: Buffer.alloc(0), vsn: [1, 5, 2, 0, 0, 0] },
    { incarnation: 7, node: 'go-newest', addr: '127.0.0.178', port: 9, meta: Buffer.alloc(512, 2), vsn: [1, 5, 5, 0, 0, 0] },
  ]
  for (const a of real) await send(m, encodeAlive(a))
  await send(m, alive({ ...good('go-mapped'), Addr: w => w.raw(Buffer.from('00000000000000000000ffff7f0000b3', 'hex')) }))
  t.same(m.counters.dropped, {})
  t.same(m.allMembers().map(x => x.name).sort(), ['go-default', 'go-mapped', 'go-newest', 'target'])
  t.equal(m.allMembers().find(x => x.name === 'go-mapped')?.addr, '127.0.0.179')
})

t.test('the fuzz bench plane: thousands of datagrams and no finding', async t => {
  const r = await plane.run({ inputs: 3000, deadlineMs: Date.now() + 30_000 })
  t.equal(r.inputs, 3000)
  t.equal(r.crashes, 0)
  for (const reason of ['invalid_field', 'invalid_node', 'invalid_addr', 'decode', 'unknown_type']) t.ok((r.drops[reason] ?? 0) > 0, `some dropped as ${reason}: ${JSON.stringify(r.drops)}`)
})
