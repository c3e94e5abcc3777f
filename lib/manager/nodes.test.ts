import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { VirtualClock } from '../gossip/virtual-clock.js'
import { swarmError } from '../test-helpers.test-helper.js'
import { Nodes } from './nodes.js'
import { Store } from './store.js'

const HB = 5_000

/** Nodes over a real store, on virtual time, with gossip and sessions the test decides. */
async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-nodes-'))
  const store = await Store.open(dir)
  t.teardown(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const clock = new VirtualClock(1_000_000)
  const gossip = new Set<string>()
  const sessions = new Set<string>()
  const dead = new Set<string>()
  let up = true
  const nodes = new Nodes({
    store,
    clock,
    self: 'mgr',
    selfUp: () => up,
    liveness: { inGossip: id => gossip.has(id), deadInGossip: id => dead.has(id), connected: id => sessions.has(id) },
    heartbeatMs: () => HB,
  })
  await nodes.admit({ nodeId: 'mgr', role: 'manager', hostname: 'm', addr: '10.0.0.1', managerAddr: '10.0.0.1:2377' })
  return { store, clock, gossip, dead, sessions, nodes, setUp: (v: boolean) => (up = v) }
}

t.test('this manager is Ready while its gossip runs', async t => {
  const h = await setup(t)
  t.equal(h.nodes.state('mgr'), 'ready')
  h.setUp(false)
  t.equal(h.nodes.state('mgr'), 'down')
})

t.test('a node not heard from since the manager started is Unknown for six heartbeats, then Down', async t => {
  const h = await setup(t)
  await h.store.commit([{ op: 'put', table: 'nodes', id: 'w1', value: { id: 'w1', version: 1, createdAt: '', updatedAt: '', spec: { Labels: {}, Role: 'worker', Availability: 'active' }, hostname: 'w1', addr: '10.0.0.2' } }])
  h.gossip.add('w1')
  t.equal(h.nodes.state('w1'), 'unknown', 'in gossip, but it has not checked in with this manager')
  await h.clock.advance(6 * HB)
  t.equal(h.nodes.state('w1'), 'unknown', 'still within the grace')
  await h.clock.advance(1)
  t.equal(h.nodes.state('w1'), 'down')
  h.nodes.seen('w1')
  t.equal(h.nodes.state('w1'), 'ready', 'a check-in makes it Ready')
})

t.test('a node gossip holds dead is Down at once, grace or not (it died with the old leader)', async t => {
  const h = await setup(t)
  await h.store.commit([{ op: 'put', table: 'nodes', id: 'w2', value: { id: 'w2', version: 1, createdAt: '', updatedAt: '', spec: { Labels: {}, Role: 'manager', Availability: 'active' }, hostname: 'w2', addr: '10.0.0.3' } }])
  t.equal(h.nodes.state('w2'), 'unknown', 'not heard from, gossip does not know it yet')
  h.dead.add('w2')
  t.equal(h.nodes.state('w2'), 'down')
})

t.test('Ready needs a recent check-in; gossip alone or a session alone does not hold it long', async t => {
  const h = await setup(t)
  await h.nodes.admit({ nodeId: 'w1', role: 'worker', hostname: 'w1', addr: '10.0.0.2' })
  h.gossip.add('w1')
  t.equal(h.nodes.state('w1'), 'ready', 'admitted: it checked in, and gossips')
  await h.clock.advance(3 * HB + 999)
  t.equal(h.nodes.state('w1'), 'ready', 'alive in gossip, within three heartbeats and a second')
  await h.clock.advance(1)
  t.equal(h.nodes.state('w1'), 'down', 'no check-in for three heartbeats: Down, whatever gossip says')

  // Gossip says dead, but the session is open (a stall, a partition, a stale rumour): one missed heartbeat more.
  h.nodes.seen('w1')
  h.gossip.delete('w1')
  h.sessions.add('w1')
  t.equal(h.nodes.state('w1'), 'ready')
  await h.clock.advance(1.5 * HB + 499)
  t.equal(h.nodes.state('w1'), 'ready')
  await h.clock.advance(1)
  t.equal(h.nodes.state('w1'), 'down')

  // Gossip says dead and the session is gone (a crash): Down at once.
  h.nodes.seen('w1')
  h.sessions.delete('w1')
  t.equal(h.nodes.state('w1'), 'down')
})

t.test('get by ID, prefix or hostname; update checks the version; remove keeps this manager and live nodes', async t => {
  const h = await setup(t)
  await h.nodes.admit({ nodeId: 'w1aaa', role: 'worker', hostname: 'alpha', addr: '10.0.0.2' })
  await h.nodes.admit({ nodeId: 'w1bbb', role: 'worker', hostname: 'beta', addr: '10.0.0.3' })
  t.equal(h.nodes.get('w1aaa').hostname, 'alpha')
  t.equal(h.nodes.get('beta').id, 'w1bbb')
  t.equal(h.nodes.get('w1b').id, 'w1bbb')
  t.throws(() => h.nodes.get('w1'), swarmError('invalid_argument', 'node w1 is ambiguous (2 matches found)'))
  t.throws(() => h.nodes.get('nope'), swarmError('not_found', 'node nope not found'))

  const n = h.nodes.get('alpha')
  await t.rejects(h.nodes.update('alpha', n.version + 1, { ...n.spec, Availability: 'drain' }), swarmError('unknown', 'update out of sequence'))
  const next = await h.nodes.update('alpha', n.version, { ...n.spec, Availability: 'drain' })
  t.equal(next.spec.Availability, 'drain')
  t.equal(next.version, n.version + 1)

  await t.rejects(h.nodes.remove('mgr', true), { code: 'E_NODE_IS_MANAGER', kind: 'failed_precondition' })
  h.gossip.add('w1aaa')
  await t.rejects(h.nodes.remove('alpha', false), swarmError('failed_precondition', "rpc error: code = FailedPrecondition desc = node w1aaa is not down and can't be removed"))
  t.equal(h.nodes.role('w1aaa'), 'worker')
  await h.nodes.remove('alpha', true)
  t.equal(h.nodes.role('w1aaa'), undefined, 'removed: no role, so its certificate calls nothing')
  t.same(
    h.nodes.list().map(x => x.id).sort(),
    ['mgr', 'w1bbb'],
  )
})

t.test('a node that joins again keeps its spec and gets its new address', async t => {
  const h = await setup(t)
  await h.nodes.admit({ nodeId: 'w1', role: 'worker', hostname: 'w1', addr: '10.0.0.2' })
  const n = h.nodes.get('w1')
  await h.nodes.update('w1', n.version, { ...n.spec, Labels: { zone: 'a' } })
  const again = await h.nodes.admit({ nodeId: 'w1', role: 'worker', hostname: 'w1', addr: '10.0.0.9' })
  t.same(again.spec.Labels, { zone: 'a' })
  t.equal(again.addr, '10.0.0.9')
  t.equal(again.version, n.version + 2)
})

t.test("the scheduler's view: Ready and Active nodes, this node only when it runs tasks", async t => {
  const h = await setup(t)
  await h.nodes.admit({ nodeId: 'w1', role: 'worker', hostname: 'w1', addr: '10.0.0.2' })
  h.gossip.add('w1')
  const view = (runs: boolean) => Object.fromEntries(h.nodes.infos(runs).map(i => [i.id, { ready: i.ready, unknown: i.unknown, role: i.role }]))
  t.same(view(false), { mgr: { ready: false, unknown: false, role: 'manager' }, w1: { ready: true, unknown: false, role: 'worker' } })
  t.same(view(true).mgr, { ready: true, unknown: false, role: 'manager' })
})
