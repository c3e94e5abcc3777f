import t from 'tap'
import type { Task } from '../../types/task.js'
import { decisions, iso, node, pass, service, T0, task } from './fixtures.test-helper.js'
import { reconcileSlots } from './slots.js'

t.test('replicated: every slot 1..N gets one task; scaled-down slots go', async t => {
  const web = service('web', { Mode: { Replicated: { Replicas: 3 } } })
  const four = task(web, { slot: 4, node: 'a' })
  const p = pass(T0, [node('a')], [web], [task(web, { slot: 1, node: 'a' }), four])
  reconcileSlots(p, web, 5)
  const created = p.written().filter(x => x.ServiceID === web.ID && x.Status.State === 'pending')
  t.same(created.map(x => x.Slot).sort(), [2, 3], 'the empty slots')
  t.equal(decisions(p)[four.ID], 'remove', 'slot 4 is stopped and forgotten')
})

t.test('global: one task per eligible node, stopped where the node stops being one', async t => {
  const agent = service('agent', { Mode: { Global: {} } })
  const onDrained = task(agent, { node: 'b', slot: 0 })
  const p = pass(T0, [node('a'), node('b', { availability: 'drain' })], [agent], [onDrained])
  reconcileSlots(p, agent, 5)
  const created = p.written().filter(x => x.Status.State === 'assigned')
  t.same(created.map(x => x.NodeID), ['a'])
  t.equal(decisions(p)[onDrained.ID], 'shutdown')
})

t.test('a slot never runs twice: once a task of the current spec runs, the others stop', async t => {
  const web = service('web')
  const stale = task(web, { node: 'b', created: T0, spec: { ContainerSpec: { Image: 'old' } } })
  const current = task(web, { node: 'a', created: T0 + 1_000 })
  const p = pass(T0 + 2_000, [node('a'), node('b')], [web], [stale, current])
  reconcileSlots(p, web, 5)
  t.same(decisions(p), { [stale.ID]: 'shutdown' })
})

t.test("a task on a node that went down is replaced at once; on a node merely unknown it is kept", async t => {
  const web = service('web', { Mode: { Replicated: { Replicas: 2 } } })
  const onDown = task(web, { slot: 1, node: 'a' })
  const onUnknown = task(web, { slot: 2, node: 'b' })
  const p = pass(T0, [node('a', { ready: false }), node('b', { ready: false, unknown: true })], [web], [onDown, onUnknown])
  reconcileSlots(p, web, 5)
  t.equal(decisions(p)[onDown.ID], 'shutdown')
  t.notOk(decisions(p)[onUnknown.ID])
  t.same(p.written().filter(x => x.Status.State === 'pending').map(x => x.Slot), [1])
})

t.test('an ended task: the replacement is there at once, held at ready, and started after the restart delay', async t => {
  const web = service('web', { TaskTemplate: { ContainerSpec: { Image: 'busybox' }, RestartPolicy: { Delay: 2e9 } } })
  const failed = task(web, { node: 'a', state: 'failed', at: T0 })
  const early = pass(T0 + 1_000, [node('a')], [web], [failed])
  reconcileSlots(early, web, 5)
  t.equal(early.nextWake, T0 + 2_000, 'woken when the delay is over')
  t.same(
    early.written().map(x => [x.ID === failed.ID ? 'old' : 'new', x.DesiredState, x.Status.State]),
    [
      ['old', 'shutdown', 'failed'],
      ['new', 'ready', 'pending'],
    ],
    'the failed task is no longer desired; its replacement waits at desired ready',
  )
  const held = early.written().find(x => x.ID !== failed.ID)!
  const stillEarly = pass(T0 + 1_500, [node('a')], [web], [{ ...failed, DesiredState: 'shutdown' } as Task, { ...held, NodeID: 'a', Status: { ...held.Status, State: 'ready' } }])
  reconcileSlots(stillEarly, web, 5)
  t.same(stillEarly.written(), [], 'held until the delay is over')
  t.equal(stillEarly.nextWake, T0 + 2_000)
  const later = pass(T0 + 2_000, [node('a')], [web], [{ ...failed, DesiredState: 'shutdown' } as Task, { ...held, NodeID: 'a', Status: { ...held.Status, State: 'ready' } }])
  reconcileSlots(later, web, 5)
  t.same(later.written().map(x => [x.ID, x.DesiredState]), [[held.ID, 'running']], 'then started, not replaced')
})

t.test("an update's progress: dirty slots, in flight until delay, unstable until monitor, failures", async t => {
  const old = { ContainerSpec: { Image: 'old' } }
  const web = service('web', { Mode: { Replicated: { Replicas: 3 } }, UpdateConfig: { Delay: 1e9, Monitor: 5e9 } }, { UpdateStatus: { State: 'updating', StartedAt: iso(T0), Message: '' } })
  const dirty = task(web, { slot: 1, node: 'a', spec: old, created: T0 - 10_000 })
  const fresh = task(web, { slot: 2, node: 'a', created: T0 + 1, at: T0 + 500 })
  const failed = task(web, { slot: 3, node: 'a', state: 'failed', created: T0 + 1, at: T0 + 800 })
  const p = pass(T0 + 1_000, [node('a')], [web], [dirty, fresh, failed])
  const u = reconcileSlots(p, web, 5)
  t.same(u.dirtySlots.map(d => d.key), ['1'])
  t.equal(u.inFlight, 2, 'slot 2 has not run for the delay yet, slot 3 waits')
  t.ok(u.notStable)
  t.equal(u.failure?.ID, failed.ID)
  t.equal(u.total, 3)
})
