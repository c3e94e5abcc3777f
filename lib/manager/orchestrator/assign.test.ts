import t from 'tap'
import type { Task } from '../../types/task.js'
import { planner } from '../placement.js'
import { assignPending } from './assign.js'
import { node, pass, service, task } from './fixtures.test-helper.js'

t.test('pending tasks get a node, spread; those that fit nowhere keep the reason', async t => {
  const web = service('web', { Mode: { Replicated: { Replicas: 3 } } })
  const picky = service('picky', { TaskTemplate: { ContainerSpec: { Image: 'x' }, Placement: { Constraints: ['node.labels.zone==z'] } } })
  const pending = [1, 2, 3].map(slot => task(web, { slot, state: 'pending' }))
  const stuck = task(picky, { state: 'pending' })
  const p = pass(0, [node('a'), node('b')], [web, picky], [...pending, stuck])
  assignPending(p, planner)
  const placed = pending.map(x => (p.muts.get(`tasks/${x.ID}`) as { value: Task }).value)
  t.ok(placed.every(x => x.Status.State === 'assigned' && x.Status.Message === 'scheduler assigned task to node'))
  t.same(placed.map(x => x.NodeID).sort(), ['a', 'a', 'b'])
  const s = (p.muts.get(`tasks/${stuck.ID}`) as { value: Task }).value
  t.equal(s.NodeID, undefined)
  t.equal(s.Status.State, 'pending')
  t.equal(s.Status.Err, 'no suitable node (scheduling constraints not satisfied on 2 nodes)')

  // The same reason again is not written again.
  const q = pass(0, [node('a'), node('b')], [picky], [s])
  assignPending(q, planner)
  t.equal(q.muts.size, 0)
})

t.test("the scheduler counts this pass's own writes: a replacement avoids the node it just filled", async t => {
  const web = service('web', { Mode: { Replicated: { Replicas: 2 } } })
  const p = pass(0, [node('a'), node('b')], [web], [task(web, { slot: 1, node: 'a' })])
  p.put(task(web, { slot: 2, state: 'pending' }))
  assignPending(p, planner)
  const placed = p.written().find(x => x.Slot === 2)!
  t.equal(placed.NodeID, 'b')
})
