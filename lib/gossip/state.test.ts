import t from 'tap'
import fc from 'fast-check'
import { Awareness } from './awareness.js'
import { type GossipTuning, profiles } from './config.js'
import {
  type Alive,
  decodeAlive,
  decodeDead,
  decodeSuspect,
  MsgType,
  NodeStateType,
  type PushNodeState,
  type Vsn,
} from './messages.js'
import { MsgpackReader } from './msgpack.js'
import { type Broadcast, retransmitLimit, TransmitLimitedQueue } from './queue.js'
import { type MemberEventType, type NodeState, StateMachine } from './state.js'
import { VirtualClock } from './virtual-clock.js'

const ME = 'me'
const VSN: Vsn = [1, 5, 2, 0, 0, 0]
const EMPTY = Buffer.alloc(0)

/** The real queue, recording what was queued (memberlist's broadcasts, decoded). */
class RecordingQueue extends TransmitLimitedQueue {
  readonly log: Broadcast[] = []
  override queueBroadcast(b: Broadcast): void {
    this.log.push(b)
    super.queueBroadcast(b)
  }
}

type Decoded =
  | ({ type: 'alive' } & ReturnType<typeof decodeAlive>)
  | ({ type: 'suspect' } & ReturnType<typeof decodeSuspect>)
  | ({ type: 'dead' } & ReturnType<typeof decodeDead>)

function decodeBroadcast(msg: Buffer): Decoded {
  const m = new MsgpackReader(msg, 1).struct()
  switch (msg[0]) {
    case MsgType.alive:
      return { type: 'alive', ...decodeAlive(m) }
    case MsgType.suspect:
      return { type: 'suspect', ...decodeSuspect(m) }
    case MsgType.dead:
      return { type: 'dead', ...decodeDead(m) }
    default:
      throw new Error(`unexpected broadcast type ${msg[0]}`)
  }
}

interface Ev {
  type: MemberEventType
  name: string
  at: number
  state: NodeState['state']
  incarnation: number
}

/** A deterministic PRNG (LCG), so node order and shuffles are reproducible. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

function alive(node: string, incarnation: number, o: Partial<Alive> = {}): Alive {
  const i = Number(/\d+$/.exec(node)?.[0] ?? 200) % 250
  return { incarnation, node, addr: `10.0.1.${i + 1}`, port: 7946, meta: EMPTY, vsn: VSN, ...o }
}

/**
 * A state machine with the LAN profile, `n` members in all (me plus n1..n(n-1),
 * all alive at incarnation 1), a real queue and awareness on a virtual clock.
 * The queue, log and events are cleared after setup.
 */
function setup(opts: { n?: number; tuning?: Partial<GossipTuning>; myInc?: number; myMeta?: Buffer; start?: number } = {}) {
  const clock = new VirtualClock(opts.start ?? 1_000)
  const tuning: GossipTuning = { ...profiles.lan, ...opts.tuning }
  let sm: StateMachine | undefined
  const queue = new RecordingQueue({ numNodes: () => sm?.numNodes() ?? 1, retransmitMult: tuning.retransmitMult })
  const awareness = new Awareness(tuning.awarenessMaxMultiplier)
  const events: Ev[] = []
  const conflicts: { existing: string; theirs: string }[] = []
  const ctl = { leaving: false, random: lcg(7) }
  sm = new StateMachine({
    name: ME,
    tuning,
    clock,
    queue,
    awareness,
    vsn: () => VSN,
    leaving: () => ctl.leaving,
    emit: (type, node) => events.push({ type, name: node.name, at: clock.now(), state: node.state, incarnation: node.incarnation }),
    conflict: (existing, other) => conflicts.push({ existing: `${existing.addr}:${existing.port}`, theirs: `${other.addr}:${other.port}` }),
    random: () => ctl.random(),
  })
  sm.aliveNode({ incarnation: opts.myInc ?? 1, node: ME, addr: '10.0.0.1', port: 7946, meta: opts.myMeta ?? EMPTY, vsn: VSN }, true)
  for (let i = 1; i < (opts.n ?? 1); i++) sm.aliveNode(alive(`n${i}`, 1))
  queue.reset()
  queue.log.length = 0
  events.length = 0
  const m = sm
  return {
    sm: m,
    clock,
    queue,
    awareness,
    events,
    conflicts,
    ctl,
    tuning,
    node: (name: string) => m.nodeMap.get(name),
    /** What was queued since the last call, decoded. */
    queued(): Decoded[] {
      const out = queue.log.map(b => decodeBroadcast(b.msg))
      queue.log.length = 0
      return out
    },
    /** Takes everything from the real queue (one transmission), decoded. */
    drain(): Decoded[] {
      return queue.getBroadcasts(2, 1 << 20).map(decodeBroadcast)
    },
  }
}

// ---------------------------------------------------------------- alive

t.test('setup: the local node is alive at incarnation 1, with n members in all', async t => {
  const { sm, node } = setup({ n: 3 })
  t.equal(sm.numNodes(), 3)
  t.equal(node(ME)?.state, 'alive')
  t.equal(node(ME)?.incarnation, 1)
  t.same(sm.local, node(ME))
  t.same([...sm.nodeMap.keys()].sort(), ['me', 'n1', 'n2'])
})

t.test('alive about an unknown node adds it and emits join', async t => {
  const { sm, clock, events, node, queued } = setup()
  await clock.advance(500)
  const a = alive('n1', 3, { meta: Buffer.from('role=web'), vsn: [1, 5, 2, 2, 5, 4], port: 17946 })
  sm.aliveNode(a)
  const n = node('n1')
  t.ok(n, 'added')
  t.same(
    { name: n?.name, addr: n?.addr, port: n?.port, meta: n?.meta, incarnation: n?.incarnation, state: n?.state, stateChange: n?.stateChange, vsn: n?.vsn },
    { name: 'n1', addr: '10.0.1.2', port: 17946, meta: Buffer.from('role=web'), incarnation: 3, state: 'alive', stateChange: 1_500, vsn: [1, 5, 2, 2, 5, 4] },
  )
  t.equal(sm.numNodes(), 2)
  t.ok(sm.nodes.includes(n!), 'in the probe list too')
  t.same(events, [{ type: 'join', name: 'n1', at: 1_500, state: 'alive', incarnation: 3 }])
  t.same(queued(), [{ type: 'alive', ...a }], 'the alive is re-broadcast')
})

t.test('a new node goes in at a random position of the probe list', async t => {
  const { sm, ctl } = setup({ n: 4 })
  const before = sm.nodes.map(n => n.name)
  ctl.random = () => 0
  sm.aliveNode(alive('n10', 1))
  t.same(
    sm.nodes.map(n => n.name),
    ['n10', ...before.slice(1), before[0]],
    'offset 0: swapped with the first, which moves to the end',
  )
  ctl.random = () => 0.999
  sm.aliveNode(alive('n11', 1))
  t.equal(sm.nodes[sm.nodes.length - 1]!.name, 'n11', 'offset n: stays at the end')
})

t.test('alive with a bad protocol range is ignored entirely', async t => {
  const { sm, events, queued } = setup()
  for (const vsn of [
    [0, 5, 2, 0, 0, 0],
    [1, 0, 2, 0, 0, 0],
    [3, 2, 2, 0, 0, 0],
  ] as Vsn[]) {
    sm.aliveNode(alive('n1', 1, { vsn }))
    t.notOk(sm.nodeMap.has('n1'), `vsn ${vsn.join(',')} ignored`)
  }
  t.same(events, [])
  t.same(queued(), [])
})

t.test('alive about another node needs a strictly greater incarnation', async t => {
  const { sm, events, node, queued } = setup()
  sm.aliveNode(alive('n1', 5, { meta: Buffer.from('x') }))
  queued()
  events.length = 0
  sm.aliveNode(alive('n1', 5, { meta: Buffer.from('y') }))
  sm.aliveNode(alive('n1', 4, { meta: Buffer.from('z') }))
  sm.aliveNode(alive('n1', 0, { meta: Buffer.from('z') }))
  t.equal(node('n1')?.meta.toString(), 'x', 'equal or lower incarnation: unchanged')
  t.equal(node('n1')?.incarnation, 5)
  t.same(events, [])
  t.same(queued(), [], 'and not re-broadcast')

  sm.aliveNode(alive('n1', 6, { meta: Buffer.from('y'), vsn: [1, 5, 3, 0, 0, 0] }))
  t.equal(node('n1')?.incarnation, 6)
  t.equal(node('n1')?.meta.toString(), 'y')
  t.same(node('n1')?.vsn, [1, 5, 3, 0, 0, 0], 'Vsn updated')
  t.same(events.map(e => e.type), ['update'], 'meta changed: update')
  t.same(queued().map(d => [d.type, d.incarnation]), [['alive', 6]])

  events.length = 0
  sm.aliveNode(alive('n1', 7, { meta: Buffer.from('y') }))
  t.equal(node('n1')?.incarnation, 7)
  t.same(events, [], 'same meta: no event')
  t.same(queued().map(d => [d.type, d.incarnation]), [['alive', 7]], 'still re-broadcast')
})

t.test('conflicting address: ignored and reported, unless the old node left', async t => {
  const { sm, clock, events, conflicts, node, queued } = setup()
  sm.aliveNode(alive('n1', 1, { addr: '10.0.0.2' }))
  queued()
  events.length = 0
  sm.aliveNode(alive('n1', 9, { addr: '10.0.0.3' }))
  sm.aliveNode(alive('n1', 9, { addr: '10.0.0.2', port: 7947 }))
  t.same(conflicts, [
    { existing: '10.0.0.2:7946', theirs: '10.0.0.3:7946' },
    { existing: '10.0.0.2:7946', theirs: '10.0.0.2:7947' },
  ])
  t.same([node('n1')?.addr, node('n1')?.port, node('n1')?.incarnation], ['10.0.0.2', 7946, 1], 'unchanged')
  t.same(queued(), [])

  // Dead (not left): still a conflict with the LAN profile (DeadNodeReclaimTime 0 = never), however long ago.
  sm.deadNode({ incarnation: 1, node: 'n1', from: 'n2' })
  await clock.advance(3_600_000)
  conflicts.length = 0
  sm.aliveNode(alive('n1', 9, { addr: '10.0.0.3' }))
  t.equal(conflicts.length, 1, 'dead an hour ago: conflict')
  t.equal(node('n1')?.state, 'dead')

  // Left: the address may change, even at the same incarnation.
  const { sm: sm2, events: ev2, conflicts: c2, node: node2 } = setup()
  sm2.aliveNode(alive('n1', 4, { addr: '10.0.0.2' }))
  sm2.deadNode({ incarnation: 4, node: 'n1', from: 'n1' })
  ev2.length = 0
  sm2.aliveNode(alive('n1', 4, { addr: '10.0.0.3', port: 8000 }))
  t.same(c2, [])
  t.same([node2('n1')?.addr, node2('n1')?.port, node2('n1')?.state], ['10.0.0.3', 8000, 'alive'])
  t.same(ev2.map(e => e.type), ['join'])
})

t.test('conflicting address: a dead node is reclaimed after DeadNodeReclaimTime', async t => {
  const { sm, clock, conflicts, node } = setup({ tuning: { deadNodeReclaimTime: 10_000 } })
  sm.aliveNode(alive('n1', 2, { addr: '10.0.0.2' }))
  sm.deadNode({ incarnation: 2, node: 'n1', from: 'n2' })
  await clock.advance(10_000)
  sm.aliveNode(alive('n1', 1, { addr: '10.0.0.3' }))
  t.equal(conflicts.length, 1, 'exactly DeadNodeReclaimTime: not yet')
  t.equal(node('n1')?.state, 'dead')
  await clock.advance(1)
  sm.aliveNode(alive('n1', 1, { addr: '10.0.0.3' }))
  t.equal(conflicts.length, 1, 'past it: no new conflict')
  t.same([node('n1')?.addr, node('n1')?.state, node('n1')?.incarnation], ['10.0.0.3', 'alive', 1], 'reclaimed, even with a lower incarnation')
  // An alive (not dead) node is never reclaimed.
  sm.aliveNode(alive('n2', 1, { addr: '10.0.0.4' }))
  await clock.advance(60_000)
  sm.aliveNode(alive('n2', 5, { addr: '10.0.0.5' }))
  t.equal(conflicts.length, 2)
  t.equal(node('n2')?.addr, '10.0.0.4')
})

t.test('alive about myself: lower ignored, identical ignored, anything else refuted', async t => {
  const { sm, awareness, node, queued, events } = setup({ myInc: 3, myMeta: Buffer.from('mine') })
  const me = (o: Partial<Alive>) => ({ incarnation: 3, node: ME, addr: '10.0.0.1', port: 7946, meta: Buffer.from('mine'), vsn: VSN, ...o })

  sm.aliveNode(me({ incarnation: 2, meta: Buffer.from('other') }))
  t.equal(node(ME)?.incarnation, 3, 'lower: ignored')
  sm.aliveNode(me({}))
  t.equal(node(ME)?.incarnation, 3, 'equal with the same meta and vsn: ignored')
  t.equal(awareness.getHealthScore(), 0)
  t.same(queued(), [])

  sm.aliveNode(me({ meta: Buffer.from('stale') }))
  t.equal(node(ME)?.incarnation, 4, 'equal inc, other meta: refuted with max(3+1, 3+1)')
  t.equal(awareness.getHealthScore(), 1, 'awareness +1')
  t.same(queued(), [{ type: 'alive', incarnation: 4, node: ME, addr: '10.0.0.1', port: 7946, meta: Buffer.from('mine'), vsn: VSN }], 'alive with MY meta and vsn')
  t.equal(node(ME)?.meta.toString(), 'mine', 'my meta is not overwritten')

  sm.aliveNode(me({ incarnation: 4, vsn: [1, 5, 2, 2, 5, 4] }))
  t.equal(node(ME)?.incarnation, 5, 'equal inc, other vsn: refuted')
  t.equal(awareness.getHealthScore(), 2)
  t.same(queued().map(d => [d.type, d.incarnation]), [['alive', 5]])

  sm.aliveNode(me({ incarnation: 10 }))
  t.equal(node(ME)?.incarnation, 11, 'higher: refuted with accused + 1')
  t.equal(awareness.getHealthScore(), 3)
  t.same(queued().map(d => [d.type, d.incarnation]), [['alive', 11]])
  t.equal(node(ME)?.state, 'alive')
  t.same(events, [], 'no membership event for refutations')
})

t.test('alive about myself while leaving is ignored', async t => {
  const { sm, ctl, node, queued, awareness } = setup()
  ctl.leaving = true
  sm.aliveNode({ incarnation: 9, node: ME, addr: '10.0.0.1', port: 7946, meta: Buffer.from('x'), vsn: VSN })
  t.equal(node(ME)?.incarnation, 1)
  t.equal(awareness.getHealthScore(), 0)
  t.same(queued(), [])
})

// ---------------------------------------------------------------- suspect

t.test('suspect: lower incarnation, unknown node and non-alive nodes are ignored', async t => {
  const { sm, clock, events, node, queued } = setup({ n: 10 })
  sm.aliveNode(alive('n1', 5))
  queued()
  sm.suspectNode({ incarnation: 4, node: 'n1', from: 'n2' })
  t.equal(node('n1')?.state, 'alive', 'lower incarnation ignored')
  sm.suspectNode({ incarnation: 1, node: 'ghost', from: 'n2' })
  t.notOk(sm.nodeMap.has('ghost'), 'unknown node not added')
  sm.deadNode({ incarnation: 1, node: 'n2', from: 'n3' })
  queued()
  events.length = 0
  const pending = clock.pending()
  sm.suspectNode({ incarnation: 1, node: 'n2', from: 'n3' })
  t.equal(node('n2')?.state, 'dead', 'dead node cannot become suspect')
  t.equal(clock.pending(), pending, 'no timer')
  t.same(events, [])
  t.same(queued(), [])
})

t.test('suspect of an alive node: suspect event, broadcast, timer', async t => {
  const { sm, clock, events, node, queued } = setup({ n: 10 })
  await clock.advance(250)
  const pending = clock.pending()
  sm.suspectNode({ incarnation: 3, node: 'n1', from: 'n2' })
  t.equal(node('n1')?.state, 'suspect')
  t.equal(node('n1')?.incarnation, 3, 'takes the (equal or higher) incarnation of the accusation')
  t.equal(node('n1')?.stateChange, 1_250)
  t.same(events, [{ type: 'suspect', name: 'n1', at: 1_250, state: 'suspect', incarnation: 3 }])
  t.same(queued(), [{ type: 'suspect', incarnation: 3, node: 'n1', from: 'n2' }])
  t.equal(clock.pending(), pending + 1, 'a suspicion timer is armed')
})

t.test('suspect about me is refuted', async t => {
  const { sm, awareness, node, queued, events } = setup({ n: 5 })
  sm.suspectNode({ incarnation: 1, node: ME, from: 'n1' })
  t.equal(node(ME)?.state, 'alive')
  t.equal(node(ME)?.incarnation, 2)
  t.equal(awareness.getHealthScore(), 1)
  t.same(queued().map(d => [d.type, d.node, d.incarnation]), [['alive', ME, 2]])
  sm.suspectNode({ incarnation: 7, node: ME, from: 'n1' })
  t.equal(node(ME)?.incarnation, 8, 'max(mine+1, accused+1)')
  t.equal(awareness.getHealthScore(), 2)
  sm.suspectNode({ incarnation: 1, node: ME, from: 'n1' })
  t.equal(node(ME)?.incarnation, 8, 'old accusation: ignored')
  t.equal(awareness.getHealthScore(), 2)
  t.same(events, [])
})

t.test('more suspects from distinct accusers are confirmations, re-broadcast only when new', async t => {
  const { sm, events, queued } = setup({ n: 10 }) // k = SuspicionMult − 2 = 2
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' })
  t.equal(queued().length, 1, 'first accusation broadcast')
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' })
  t.same(queued(), [], 'same accuser again: nothing new')
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n3' })
  t.same(queued(), [{ type: 'suspect', incarnation: 1, node: 'n1', from: 'n3' }], 'new accuser: confirmation, re-broadcast')
  sm.suspectNode({ incarnation: 2, node: 'n1', from: 'n3' })
  t.same(queued(), [], 'n3 again (even at a higher incarnation)')
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n4' })
  t.equal(queued().length, 1, 'second confirmation')
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n5' })
  t.same(queued(), [], 'k = 2 reached: no more re-broadcasts')
  sm.suspectNode({ incarnation: 0, node: 'n1', from: 'n6' })
  t.same(queued(), [], 'lower incarnation is not a confirmation')
  t.same(events.map(e => e.type), ['suspect'], 'one suspect event')
})

// ---------------------------------------------------------------- suspicion timer (LHA-Suspicion)

async function deathTime(o: { n: number; confirmAt?: number[]; confirmers?: string[]; horizon?: number }): Promise<number | undefined> {
  const { sm, clock, events, node, queued } = setup({ n: o.n, start: 0 })
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' })
  const accusers = o.confirmers ?? ['n3', 'n4', 'n5', 'n6']
  let elapsed = 0
  for (const [i, at] of (o.confirmAt ?? []).entries()) {
    await clock.advance(at - elapsed)
    elapsed = at
    sm.suspectNode({ incarnation: 1, node: 'n1', from: accusers[i]! })
  }
  queued()
  await clock.advance((o.horizon ?? 200_000) - elapsed)
  const dead = events.find(e => e.type === 'dead' && e.name === 'n1')
  if (dead) {
    const q = queued()
    if (q.length !== 1 || q[0]!.type !== 'dead' || q[0]!.from !== ME || q[0]!.incarnation !== 1) throw new Error(`bad dead broadcast ${JSON.stringify(q)}`)
    if (node('n1')?.state !== 'dead') throw new Error('state not dead')
  }
  return dead?.at
}

t.test('timer fires → dead: n=10 nodes, LAN (min 4 s, max 24 s, k=2)', async t => {
  t.equal(await deathTime({ n: 10 }), 24_000, 'no confirmations: max, 24 s')
  t.equal(await deathTime({ n: 10, confirmAt: [0, 0] }), 4_000, 'two confirmations: min, 4 s')
  t.equal(await deathTime({ n: 10, confirmAt: [0] }), 11_381, 'one confirmation: 24 − ln2/ln3·20 s, floored to ms')
  t.equal(await deathTime({ n: 10, confirmAt: [2_000, 3_000] }), 4_000, 'confirmations before min: still min')
  t.equal(await deathTime({ n: 10, confirmAt: [6_000, 7_000] }), 7_000, 'first at 6 s moves it to 11.381 s; the second at 7 s makes it overdue: fires then')
  t.equal(await deathTime({ n: 10, confirmAt: [6_000] }), 11_381, 'one confirmation at 6 s: 11.381 s after the suspicion began')
  t.equal(await deathTime({ n: 10, confirmAt: [12_000] }), 12_000, 'one confirmation after 11.381 s: overdue, fires at once')
  t.equal(await deathTime({ n: 10, confirmAt: [0, 0, 0, 0] }), 4_000, 'more than k confirmations change nothing')
})

t.test('timer at exact boundaries: not a millisecond early', async t => {
  const { sm, clock, events } = setup({ n: 10, start: 0 })
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' })
  await clock.advance(23_999)
  t.same(events.filter(e => e.type === 'dead'), [], 'alive at 23.999 s')
  await clock.advance(1)
  t.same(events.filter(e => e.type === 'dead').map(e => e.at), [24_000])
})

t.test('suspicion timeout scales with the cluster size', async t => {
  t.equal(await deathTime({ n: 3 }), 4_000, 'n=3: k=0 (n−2 < 2), the timer starts at min')
  t.equal(await deathTime({ n: 4 }), 24_000, 'n=4: k=2')
  t.equal(await deathTime({ n: 100, horizon: 100_000 }), 48_000, 'n=100: max 48 s')
  t.equal(await deathTime({ n: 100, confirmAt: [0, 0], horizon: 100_000 }), 8_000, 'n=100: min 8 s')
  // n=3 expects no confirmations: an extra accuser is not re-broadcast.
  const { sm, queued } = setup({ n: 3 })
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' })
  queued()
  sm.suspectNode({ incarnation: 1, node: 'n1', from: ME })
  t.same(queued(), [], 'k=0: no confirmations counted')
})

t.test('alive with a higher incarnation clears the suspicion; no death follows', async t => {
  const { sm, clock, events, node, queued } = setup({ n: 10, start: 0 })
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' })
  await clock.advance(1_000)
  sm.aliveNode(alive('n1', 1))
  t.equal(node('n1')?.state, 'suspect', 'same incarnation: suspect beats alive')
  queued()
  sm.aliveNode(alive('n1', 2))
  t.equal(node('n1')?.state, 'alive')
  t.equal(node('n1')?.stateChange, 1_000)
  t.same(events.map(e => e.type), ['suspect', 'alive'], 'an alive event, not a join')
  t.same(queued().map(d => [d.type, d.incarnation]), [['alive', 2]])
  t.equal(clock.pending(), 0, 'timer cancelled')
  await clock.advance(100_000)
  t.same(events.map(e => e.type), ['suspect', 'alive'], 'no death')
  t.equal(node('n1')?.state, 'alive')

  // A fresh suspicion afterwards gets a fresh timer.
  sm.suspectNode({ incarnation: 2, node: 'n1', from: 'n3' })
  await clock.advance(24_000)
  t.same(events.map(e => e.type), ['suspect', 'alive', 'suspect', 'dead'])
})

t.test('suspicion: old timer does not kill a node that changed state meanwhile', async t => {
  const { sm, clock, events, node } = setup({ n: 10, start: 0 })
  sm.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' })
  sm.deadNode({ incarnation: 1, node: 'n1', from: 'n3' })
  sm.aliveNode(alive('n1', 2))
  await clock.advance(100_000)
  t.same(events.map(e => e.type), ['suspect', 'dead', 'join'])
  t.equal(node('n1')?.state, 'alive')
})

// ---------------------------------------------------------------- dead

t.test('dead: lower incarnation ignored, applied once, left when From == Node', async t => {
  const { sm, clock, events, node, queued } = setup({ n: 5 })
  sm.aliveNode(alive('n1', 4))
  queued()
  events.length = 0
  sm.deadNode({ incarnation: 3, node: 'n1', from: 'n2' })
  t.equal(node('n1')?.state, 'alive', 'lower incarnation ignored')
  t.same(queued(), [])
  await clock.advance(100)
  sm.deadNode({ incarnation: 4, node: 'n1', from: 'n2' })
  t.equal(node('n1')?.state, 'dead')
  t.equal(node('n1')?.stateChange, 1_100)
  t.same(events, [{ type: 'dead', name: 'n1', at: 1_100, state: 'dead', incarnation: 4 }])
  t.same(queued(), [{ type: 'dead', incarnation: 4, node: 'n1', from: 'n2' }])
  sm.deadNode({ incarnation: 9, node: 'n1', from: 'n3' })
  t.equal(events.length, 1, 'already dead: ignored')
  t.equal(node('n1')?.incarnation, 4)
  t.same(queued(), [])

  sm.deadNode({ incarnation: 1, node: 'n2', from: 'n2' })
  t.equal(node('n2')?.state, 'left')
  t.same(events.slice(1).map(e => [e.type, e.name]), [['left', 'n2']])
  t.same(queued(), [{ type: 'dead', incarnation: 1, node: 'n2', from: 'n2' }])
  sm.deadNode({ incarnation: 2, node: 'n2', from: 'n3' })
  t.equal(node('n2')?.state, 'left', 'left stays left')
  sm.deadNode({ incarnation: 1, node: 'ghost', from: 'n3' })
  t.notOk(sm.nodeMap.has('ghost'))
})

t.test('dead about me is refuted unless leaving', async t => {
  const { sm, ctl, awareness, node, queued, events, queue } = setup()
  sm.deadNode({ incarnation: 1, node: ME, from: 'n1' })
  t.equal(node(ME)?.state, 'alive')
  t.equal(node(ME)?.incarnation, 2)
  t.equal(awareness.getHealthScore(), 1)
  t.same(queued().map(d => [d.type, d.node, d.incarnation]), [['alive', ME, 2]])
  sm.deadNode({ incarnation: 2, node: ME, from: ME })
  t.equal(node(ME)?.incarnation, 3, 'even a leave message is refuted when not leaving')
  t.equal(node(ME)?.state, 'alive')
  queued()
  queue.reset()

  ctl.leaving = true
  let finished = 0
  sm.onLeaveBroadcast = () => finished++
  sm.deadNode({ incarnation: 3, node: ME, from: ME })
  t.equal(node(ME)?.state, 'left')
  t.same(events.map(e => [e.type, e.name]), [['left', ME]])
  t.same(queued(), [{ type: 'dead', incarnation: 3, node: ME, from: ME }])
  t.equal(awareness.getHealthScore(), 2, 'no refutation while leaving')
  // The leave hook fires once the broadcast has been sent retransmitLimit times.
  const limit = retransmitLimit(profiles.lan.retransmitMult, sm.numNodes())
  t.equal(limit, 4)
  for (let i = 1; i < limit; i++) {
    t.equal(queue.getBroadcasts(2, 1400).length, 1)
    t.equal(finished, 0, `not finished after ${i} transmissions`)
  }
  queue.getBroadcasts(2, 1400)
  t.equal(finished, 1, 'finished after the last transmission')
})

t.test('ordering at the same incarnation: dead beats suspect beats alive', async t => {
  const { sm, node, clock } = setup({ n: 5 })
  sm.aliveNode(alive('n1', 3))
  sm.suspectNode({ incarnation: 3, node: 'n1', from: 'n2' })
  t.equal(node('n1')?.state, 'suspect', 'suspect beats alive at the same incarnation')
  sm.aliveNode(alive('n1', 3))
  t.equal(node('n1')?.state, 'suspect', 'alive does not beat suspect at the same incarnation')
  sm.deadNode({ incarnation: 3, node: 'n1', from: 'n2' })
  t.equal(node('n1')?.state, 'dead', 'dead beats suspect at the same incarnation')
  t.equal(clock.pending(), 0, 'dead clears the suspicion timer')
  sm.suspectNode({ incarnation: 3, node: 'n1', from: 'n3' })
  t.equal(node('n1')?.state, 'dead', 'suspect does not beat dead')
  sm.aliveNode(alive('n1', 3))
  t.equal(node('n1')?.state, 'dead', 'alive does not beat dead at the same incarnation')
  sm.aliveNode(alive('n1', 4))
  t.equal(node('n1')?.state, 'alive', 'only a higher incarnation revives')
  // Alive → dead directly at the same incarnation.
  sm.aliveNode(alive('n2', 2))
  sm.deadNode({ incarnation: 2, node: 'n2', from: 'n3' })
  t.equal(node('n2')?.state, 'dead')
})

// ---------------------------------------------------------------- push/pull merge

function pns(name: string, state: number, incarnation: number, o: Partial<PushNodeState> = {}): PushNodeState {
  const a = alive(name, incarnation)
  return { name, addr: a.addr, port: a.port, meta: EMPTY, incarnation, state, vsn: VSN, ...o }
}

t.test('mergeState: remote alive → alive, remote dead → only suspect, remote left → left', async t => {
  const { sm, events, node, queued } = setup({ n: 6 })
  sm.mergeState([
    pns('new1', NodeStateType.alive, 2),
    pns('n1', NodeStateType.dead, 1),
    pns('n2', NodeStateType.left, 1),
    pns('n3', NodeStateType.suspect, 1),
    pns('n4', NodeStateType.alive, 5),
    pns('ghost', NodeStateType.dead, 1),
    pns('ghost2', NodeStateType.left, 1),
  ])
  t.equal(node('new1')?.state, 'alive')
  t.equal(node('n1')?.state, 'suspect', 'remote dead is downgraded to suspect')
  t.equal(node('n2')?.state, 'left')
  t.equal(node('n3')?.state, 'suspect')
  t.equal(node('n4')?.incarnation, 5)
  t.notOk(sm.nodeMap.has('ghost'), 'dead unknown: not added')
  t.notOk(sm.nodeMap.has('ghost2'), 'left unknown: not added')
  t.same(
    events.map(e => [e.type, e.name]),
    [
      ['join', 'new1'],
      ['suspect', 'n1'],
      ['left', 'n2'],
      ['suspect', 'n3'],
    ],
  )
  const q = queued()
  t.same(q.find(d => d.node === 'n1'), { type: 'suspect', incarnation: 1, node: 'n1', from: ME }, 'the suspicion is ours')
  t.same(q.find(d => d.node === 'n2'), { type: 'dead', incarnation: 1, node: 'n2', from: 'n2' }, 'a leave (From == Node)')
  // Our own suspicion coming back is not a confirmation.
  sm.suspectNode({ incarnation: 1, node: 'n1', from: ME })
  t.same(queued(), [])
})

t.test('mergeState: remote dead/left about me is refuted', async t => {
  const { sm, node, awareness } = setup({ n: 3 })
  sm.mergeState([pns(ME, NodeStateType.dead, 1, { addr: '10.0.0.1' })])
  t.equal(node(ME)?.state, 'alive')
  t.equal(node(ME)?.incarnation, 2)
  sm.mergeState([pns(ME, NodeStateType.left, 2, { addr: '10.0.0.1' })])
  t.equal(node(ME)?.incarnation, 3)
  t.equal(awareness.getHealthScore(), 2)
})

t.test('verifyProtocol: error texts for protocol and delegate version mismatches', async t => {
  const { sm } = setup({ n: 3 }) // local nodes all [1,5,2,0,0,0]
  t.equal(sm.verifyProtocol([pns('r', NodeStateType.alive, 1)]), undefined, 'same versions: compatible')
  t.equal(
    sm.verifyProtocol([pns('r', NodeStateType.alive, 1, { vsn: [1, 5, 2, 2, 5, 4] })]),
    "Node 'r' delegate protocol version (4) is incompatible: [2, 0]",
  )
  t.equal(
    sm.verifyProtocol([pns('r', NodeStateType.alive, 1, { vsn: [3, 5, 3, 0, 0, 0] })]),
    "Node 'me' protocol version (2) is incompatible: [3, 5]",
    'the remote is fine, one of ours is not',
  )
  t.equal(
    sm.verifyProtocol([pns('r', NodeStateType.alive, 1, { vsn: [1, 2, 3, 0, 0, 0] })]),
    "Node 'r' protocol version (3) is incompatible: [1, 2]",
  )
  t.equal(
    sm.verifyProtocol([pns('r', NodeStateType.alive, 1, { vsn: [1, 5, 2, 0, 0, 1] })]),
    "Node 'r' delegate protocol version (1) is incompatible: [0, 0]",
  )
  // Non-alive remote nodes do not narrow the ranges, but are still checked.
  t.equal(
    sm.verifyProtocol([pns('r', NodeStateType.dead, 1, { vsn: [5, 5, 7, 0, 0, 0] })]),
    "Node 'r' protocol version (7) is incompatible: [1, 5]",
    'a dead remote [5,5,…] does not raise the minimum to 5, but its pcur 7 is checked',
  )
  t.equal(sm.verifyProtocol([pns('r', NodeStateType.dead, 1, { vsn: [1, 5, 2, 0, 0, 0] })]), undefined)
  // A serf-like cluster.
  const serf = setup({ n: 1 })
  serf.sm.nodeMap.get(ME)!.vsn = [1, 5, 2, 2, 5, 4]
  t.equal(serf.sm.verifyProtocol([pns('s1', NodeStateType.alive, 1, { vsn: [1, 5, 2, 2, 5, 5] })]), undefined, 'serf [1,5,2,2,5,5] with us at [1,5,2,2,5,4]')
  // Local non-alive nodes do not narrow the ranges either.
  const mixed = setup({ n: 3 })
  mixed.sm.aliveNode(alive('old', 1, { vsn: [1, 1, 0, 0, 0, 0] }))
  // The first offending node in probe order is named.
  t.match(mixed.sm.verifyProtocol([]), /^Node '(me|n1|n2|old)' protocol version \((2|0)\) is incompatible: \[1, 1\]$/, 'alive old node caps pmax at 1')
  mixed.sm.deadNode({ incarnation: 1, node: 'old', from: 'n1' })
  t.equal(mixed.sm.verifyProtocol([]), "Node 'old' protocol version (0) is incompatible: [1, 5]", 'dead: no longer narrows the range, but is still checked')
})

// ---------------------------------------------------------------- reaping, random nodes

t.test('reapAndShuffle removes dead/left nodes older than GossipToTheDeadTime only', async t => {
  const { sm, clock, node, tuning } = setup({ n: 7, start: 0 })
  t.equal(tuning.gossipToTheDeadTime, 30_000)
  sm.deadNode({ incarnation: 1, node: 'n1', from: 'n5' })
  sm.deadNode({ incarnation: 1, node: 'n2', from: 'n2' })
  sm.suspectNode({ incarnation: 1, node: 'n3', from: 'n5' })
  await clock.advance(10_000)
  sm.deadNode({ incarnation: 1, node: 'n4', from: 'n5' })
  await clock.advance(20_000) // n1, n2: exactly 30 s
  sm.reapAndShuffle()
  t.same(sm.nodes.map(n => n.name).sort(), ['me', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6'], 'exactly GossipToTheDeadTime: kept')
  await clock.advance(1)
  sm.reapAndShuffle()
  t.same(sm.nodes.map(n => n.name).sort(), ['me', 'n3', 'n4', 'n5', 'n6'], 'dead n1 and left n2 reaped')
  t.notOk(node('n1'))
  t.notOk(node('n2'))
  t.equal(sm.numNodes(), 5)
  // n3 was suspect for 30 s: the timer (24 s) made it dead at 24 s, so it is reaped 30 s after that.
  t.equal(node('n3')?.state, 'dead')
  await clock.advance(10_000) // 40.001 s
  sm.reapAndShuffle()
  t.same(sm.nodes.map(n => n.name).sort(), ['me', 'n3', 'n5', 'n6'], 'n4 (dead at 10 s) reaped; n3 (dead at 24 s) not yet')
  await clock.advance(13_999) // 54 s: n3 dead for exactly 30 s
  sm.reapAndShuffle()
  t.ok(node('n3'), 'n3 kept at exactly 30 s')
  await clock.advance(1)
  sm.reapAndShuffle()
  t.same(sm.nodes.map(n => n.name).sort(), ['me', 'n5', 'n6'])
  await clock.advance(1_000_000)
  sm.reapAndShuffle()
  t.same(sm.nodes.map(n => n.name).sort(), ['me', 'n5', 'n6'], 'alive nodes are never reaped')
})

t.test('reapAndShuffle shuffles the probe order', async t => {
  const { sm } = setup({ n: 30 })
  const before = sm.nodes.map(n => n.name)
  sm.reapAndShuffle()
  const after = sm.nodes.map(n => n.name)
  t.same([...after].sort(), [...before].sort(), 'same members')
  t.not(after.join(','), before.join(','), 'different order')
  t.equal(new Set(sm.nodes).size, 30)
})

t.test('randomNodes never returns excluded or duplicate nodes (property)', async t => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 0, max: 50 }),
      fc.integer(),
      fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
      (n, k, seed, excludedFlags) => {
        const { sm, ctl } = setup({ n })
        ctl.random = lcg(seed)
        const excluded = new Set(sm.nodes.filter((_, i) => excludedFlags[i]).map(x => x.name))
        const got = sm.randomNodes(k, x => excluded.has(x.name))
        const names = got.map(x => x.name)
        return (
          got.length <= k &&
          new Set(names).size === names.length &&
          names.every(x => !excluded.has(x)) &&
          got.every(x => sm.nodeMap.get(x.name) === x)
        )
      },
    ),
    { numRuns: 300 },
  )
  t.pass()
})

t.test('randomNodes: returns min(k, eligible) when the draws cover every node', async t => {
  const { sm, ctl } = setup({ n: 10 })
  let i = 0
  ctl.random = () => ((i++ % 10) + 0.5) / 10 // visits every index in turn
  const notMeOrN1 = (x: NodeState) => x.name === ME || x.name === 'n1'
  t.equal(sm.randomNodes(3, notMeOrN1).length, 3)
  i = 0
  const all = sm.randomNodes(100, notMeOrN1)
  t.equal(all.length, 8, 'all 8 eligible nodes, each once')
  t.same(all.map(x => x.name).sort(), ['n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'])
  t.same(sm.randomNodes(3, () => true), [], 'everything excluded')
  t.same(sm.randomNodes(0, () => false), [], 'k = 0')
  // With a stuck random source, at most 3n draws are made, and duplicates are skipped.
  let draws = 0
  ctl.random = () => (draws++, 0)
  t.same(sm.randomNodes(5, () => false).map(x => x.name), [sm.nodes[0]!.name])
  t.equal(draws, 30, '3n draws')
})

// ---------------------------------------------------------------- queue invalidation

t.test('a newer message about a node replaces the queued one', async t => {
  const { sm, queue, drain } = setup({ n: 6 })
  sm.aliveNode(alive('n1', 2))
  t.equal(queue.numQueued(), 1)
  sm.suspectNode({ incarnation: 2, node: 'n1', from: 'n2' })
  t.equal(queue.numQueued(), 1, 'suspect replaced the alive')
  sm.suspectNode({ incarnation: 2, node: 'n1', from: 'n3' })
  t.equal(queue.numQueued(), 1, 'a confirmation replaced the first suspect')
  sm.deadNode({ incarnation: 2, node: 'n1', from: 'n4' })
  t.equal(queue.numQueued(), 1, 'dead replaced the suspect')
  sm.suspectNode({ incarnation: 1, node: 'n2', from: 'n3' })
  t.equal(queue.numQueued(), 2, 'another node: queued alongside')
  sm.suspectNode({ incarnation: 1, node: ME, from: 'n3' })
  sm.deadNode({ incarnation: 2, node: ME, from: 'n3' })
  t.equal(queue.numQueued(), 3, 'two refutations about me: one alive queued')
  const sent = drain()
  t.same(
    sent.map(d => [d.type, d.node, d.incarnation, 'from' in d ? d.from : '']).sort(),
    [
      ['alive', ME, 3, ''],
      ['dead', 'n1', 2, 'n4'],
      ['suspect', 'n2', 1, 'n3'],
    ],
    'only the newest message per node goes out',
  )
  // The queue is still the transmit-limited queue: the same 3 go out again.
  t.equal(drain().length, 3)
})
