import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { ControlNode } from '../control/control-node.js'
import { generateKeyPair, nodeIdFor } from '../control/identity.js'
import type { Session } from '../control/session.js'
import { VirtualClock } from '../gossip/virtual-clock.js'
import type { ClusterRecord } from '../types/node.js'
import type { NetworkRecord } from '../types/network.js'
import type { DownMessage } from '../types/session.js'
import { Cluster, DEFAULT_TIMINGS } from './cluster.js'
import { Manager } from './manager.js'
import { EventLog } from './event-log.js'
import { Store } from './store.js'
import { freePort } from '../test-helpers.test-helper.js'

const HOST = '127.0.0.243'
const HB = DEFAULT_TIMINGS.heartbeatMs


/** A session in memory: what the dispatcher pushes, and whether it was closed. */
function memorySession(): Session & { got: DownMessage[]; isClosed: () => boolean } {
  let done!: () => void
  let closed = false
  const got: DownMessage[] = []
  return {
    got,
    send: m => got.push(m as DownMessage),
    closed: new Promise<void>(r => (done = r)),
    close: async () => {
      closed = true
      done()
    },
    isClosed: () => closed,
  }
}

/** A manager on a real store and a real control node, on virtual time. */
async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-manager-'))
  const store = await Store.open(dir)
  const keys = generateKeyPair()
  const nodeId = nodeIdFor(keys.publicKey)
  const port = await freePort(HOST)
  await Cluster.bootstrap(store, { nodeKey: keys.privateKey, nodePublicKey: keys.publicKey, nodeId, hostname: 'mgr', req: { ListenAddr: `${HOST}:${port}`, AdvertiseAddr: HOST } })
  const control = await ControlNode.create({ privateKey: keys.privateKey, listen: { ip: HOST, port } })
  const clock = new VirtualClock(Date.now())
  const applied: string[][] = []
  const m = new Manager({
    state: store,
    local: store,
    nodeId,
    keys: { nodeKey: keys.privateKey },
    events: new EventLog(),
    control,
    clock,
    timings: DEFAULT_TIMINGS,
    inGossip: () => true,
    deadInGossip: () => false,
    runsTasks: false,
    selfUp: () => true,
    applyGossipKeys: k => applied.push(k),
    onCheckIn: () => undefined,
    onLeadership: () => undefined,
    goReplicated: () => Promise.reject(new Error('one manager in this test')),
    serveApi: () => undefined,
    log: pino({ level: 'silent' }),
  })
  await m.start()
  t.teardown(async () => {
    await m.close()
    await control.stop()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  /** Virtual time moves on, and the periodic work it woke (which writes to the store) finishes. */
  const advance = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= HB) {
      await clock.advance(Math.min(HB, left))
      await new Promise(r => setTimeout(r, 200))
    }
  }
  return { store, m, advance, applied }
}

t.test('node rm: the session closes at once, nothing more is pushed, and the keys it holds go out of use', async t => {
  const h = await setup(t)
  await h.m.networks.create({ Name: 'secure', Driver: 'overlay', Options: { encrypted: '' } })
  await h.m.nodes.admit({ nodeId: 'w1', role: 'worker', hostname: 'w1', addr: '10.0.0.2' })
  const s = memorySession()
  h.m.dispatcher.attach('w1', s)
  t.ok(h.m.dispatcher.connected('w1'))
  const assigned = s.got.filter(x => x.t === 'assign')
  t.equal(assigned.length, 1, 'attached: it got its assignments')
  const held = { gossip: h.store.get<ClusterRecord>('cluster', 'default')!.gossipKeys, network: h.m.networks.get('secure').Keys!.map(k => k.key) }

  await h.m.removeNode('w1', true)
  t.ok(s.isClosed(), 'its session is closed')
  t.notOk(h.m.dispatcher.connected('w1'))
  await h.m.services.create({ Name: 'after', TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, Mode: { Replicated: { Replicas: 1 } } })
  await h.m.kick()
  t.equal(s.got.length, 1, 'nothing pushed after the removal')

  const now = (): { gossip: string[]; network: string[] } => ({ gossip: h.store.get<ClusterRecord>('cluster', 'default')!.gossipKeys, network: h.store.get<NetworkRecord>('networks', h.m.networks.get('secure').ID)!.Keys!.map(k => k.key) })
  const overlap = (a: string[], b: string[]): number => a.filter(k => b.includes(k)).length
  t.equal(overlap(now().gossip, held.gossip), 2, 'one rotation at once')
  t.equal(overlap(now().network, held.network), 2)
  t.same(h.applied.at(-1), now().gossip, 'this node uses the new gossip keys')
  await h.advance(HB)
  t.equal(overlap(now().gossip, held.gossip), 2, 'the next waits two heartbeats, so every node has the new key before it encrypts')
  await h.advance(HB)
  t.equal(overlap(now().gossip, held.gossip), 1)
  await h.advance(2 * HB)
  t.same([overlap(now().gossip, held.gossip), overlap(now().network, held.network)], [0, 0], 'after three rotations it holds no key in use')
  const rotations = h.applied.length
  await h.advance(10 * HB)
  t.equal(h.applied.length, rotations, 'and then they stop')
})

t.test("a node whose last task on an encrypted network stopped: that network's keys rotate past it, three times, and no other's", async t => {
  const h = await setup(t)
  await h.m.networks.create({ Name: 'secure', Driver: 'overlay', Options: { encrypted: '' } })
  await h.m.networks.create({ Name: 'other', Driver: 'overlay', Options: { encrypted: '' } })
  for (const w of ['w1', 'w2']) await h.m.nodes.admit({ nodeId: w, role: 'worker', hostname: w, addr: '10.0.0.2' })
  const spec = (replicas: number) => ({ Name: 'sec', TaskTemplate: { ContainerSpec: { Image: 'busybox' }, Networks: [{ Target: 'secure' }], Placement: { Constraints: ['node.hostname==w1'] } }, Mode: { Replicated: { Replicas: replicas } } })
  await h.m.services.create(spec(1))
  await h.m.kick()
  const secure = h.m.networks.get('secure').ID
  const ring = (name: string): string[] => h.store.get<NetworkRecord>('networks', h.m.networks.get(name).ID)!.Keys!.map(k => k.key)
  const [s1, s2] = [memorySession(), memorySession()]
  const w1 = h.m.dispatcher.attach('w1', s1)
  h.m.dispatcher.attach('w2', s2)
  const sent = (s: ReturnType<typeof memorySession>) => {
    const m = s.got.filter(x => x.t === 'assign').at(-1)
    if (m?.t !== 'assign') throw new Error('no assignment')
    return m
  }
  t.equal(sent(s1).tasks.length, 1, 'w1 runs the task')
  t.same(sent(s1).routing.networks.find(n => n.id === secure)?.keys?.map(k => k.key), ring('secure'), 'w1 has the keys')
  t.same(sent(s2).routing.networks.find(n => n.id === secure), { id: secure, name: 'secure', vni: h.m.networks.get('secure').Vni, ingress: false, subnet: h.m.networks.get('secure').Subnet, gateway: h.m.networks.get('secure').Gateway, encrypted: true }, 'w2 knows it is encrypted, without keys')

  const held = ring('secure')
  const other = ring('other')
  const svc = h.m.services.get('sec')
  await h.m.services.update('sec', svc.Version.Index, spec(0), false)
  await h.m.kick()
  const task = sent(s1).tasks[0]!.task
  t.equal(task.DesiredState, 'remove', 'scaled to 0: the task is told to go')
  t.same(ring('secure'), held, 'while it stops, no rotation')
  w1({ t: 'status', updates: [{ id: task.ID, status: { Timestamp: new Date().toISOString(), State: 'shutdown', Message: 'shutdown' } }] })
  await new Promise(r => setTimeout(r, 200))
  const overlap = (): number => ring('secure').filter(k => held.includes(k)).length
  t.equal(overlap(), 2, 'stopped: one rotation at once')
  t.equal(sent(s1).routing.networks.find(n => n.id === secure)?.keys, undefined, 'w1 no longer gets the keys')
  await h.advance(HB)
  t.equal(overlap(), 2, 'the next waits two heartbeats')
  await h.advance(HB)
  t.equal(overlap(), 1)
  await h.advance(2 * HB)
  t.equal(overlap(), 0, 'after three rotations w1 holds no key of it in use')
  await h.advance(10 * HB)
  t.equal(overlap(), 0)
  t.equal(ring('secure').length, 3)
  t.same(ring('other'), other, "another network's keys do not rotate")
  t.same(h.applied, [], 'nor do the gossip keys')
})
