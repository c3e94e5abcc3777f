import t from 'tap'
import type { UpdateConfig } from '../../types/service.js'
import { iso, node, pass, service, T0, task } from './fixtures.test-helper.js'
import { advanceUpdate, updateState } from './update.js'

const cfg = (c: Partial<UpdateConfig> = {}): Required<UpdateConfig> => ({ Parallelism: 1, Delay: 0, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first', ...c })
const updating = service('web', { Mode: { Replicated: { Replicas: 4 } } }, { UpdateStatus: { State: 'updating', StartedAt: iso(T0), Message: 'update in progress' }, PreviousSpec: service('web').Spec })
const progress = { inFlight: 0, notStable: false, failure: undefined, cfg: cfg(), total: 4, dirtyLeft: 0, failed: 0 }

t.test('done when no slot is dirty, none in flight, all stable', async t => {
  const next = updateState(updating, progress, T0 + 60_000)!
  t.equal(next.UpdateStatus!.State, 'completed')
  t.equal(next.UpdateStatus!.CompletedAt, iso(T0 + 60_000))
  t.equal(next.Version.Index, 2)
  t.equal(updateState(updating, { ...progress, dirtyLeft: 1 }, T0), undefined)
  t.equal(updateState(updating, { ...progress, inFlight: 1 }, T0), undefined)
  t.equal(updateState(updating, { ...progress, notStable: true }, T0), undefined)
})

t.test('a failure pauses, rolls back, or is ignored, per the failure action and ratio', async t => {
  const failure = task(updating, { state: 'failed' })
  const failed = { ...progress, failure, failed: 1, dirtyLeft: 2 }
  t.equal(updateState(updating, failed, T0)!.UpdateStatus!.State, 'paused')
  t.match(updateState(updating, failed, T0)!.UpdateStatus!.Message, `paused due to failure or early termination of task ${failure.ID}`)
  const rolled = updateState(updating, { ...failed, cfg: cfg({ FailureAction: 'rollback' }) }, T0)!
  t.equal(rolled.UpdateStatus!.State, 'rollback_started')
  t.same(rolled.Spec, updating.PreviousSpec)
  t.equal(updateState(updating, { ...failed, cfg: cfg({ FailureAction: 'continue' }) }, T0), undefined)
  t.equal(updateState(updating, { ...failed, cfg: cfg({ MaxFailureRatio: 0.5 }) }, T0), undefined, '1 of 4 failed is within a ratio of 0.5')
})

t.test('dirty slots start as parallelism allows, stop-first or start-first', async t => {
  const old = { ContainerSpec: { Image: 'old' } }
  const tasks = [1, 2, 3, 4].map(slot => task(updating, { slot, node: 'a', spec: old }))
  const newTasks: string[] = []
  const p = pass(T0, [node('a')], [updating], tasks)
  advanceUpdate(p, updating, { dirtySlots: tasks.map(x => ({ key: String(x.Slot), live: [x] })), inFlight: 0, notStable: false, failure: undefined, cfg: cfg({ Parallelism: 2 }), total: 4, newTask: k => (newTasks.push(k), tasks[0]!) })
  t.same(
    [...p.muts.values()].filter(m => m.table === 'tasks').map(m => (m as { value: { Slot: number; DesiredState: string } }).value).map(v => [v.Slot, v.DesiredState]),
    [
      [1, 'shutdown'],
      [2, 'shutdown'],
    ],
    'two slots stopped first',
  )
  t.same(newTasks, [])

  const q = pass(T0, [node('a')], [updating], tasks)
  advanceUpdate(q, updating, { dirtySlots: tasks.map(x => ({ key: String(x.Slot), live: [x] })), inFlight: 1, notStable: true, failure: undefined, cfg: cfg({ Parallelism: 2, Order: 'start-first' }), total: 4, newTask: k => (newTasks.push(k), tasks[0]!) })
  t.same(newTasks, ['1'], 'one in flight already: one more, started before the old one stops')
  t.equal([...q.muts.values()].filter(m => m.table === 'tasks').length, 0)
})

t.test('a paused update starts nothing', async t => {
  const paused = { ...updating, UpdateStatus: { ...updating.UpdateStatus!, State: 'paused' as const } }
  const x = task(paused, { spec: { ContainerSpec: { Image: 'old' } } })
  const p = pass(T0, [node('a')], [paused], [x])
  advanceUpdate(p, paused, { dirtySlots: [{ key: '1', live: [x] }], inFlight: 0, notStable: false, failure: undefined, cfg: cfg(), total: 1, newTask: () => x })
  t.equal(p.muts.size, 0)
})
