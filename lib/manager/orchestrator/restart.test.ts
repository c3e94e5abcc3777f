import t from 'tap'
import type { RestartPolicy } from '../../types/service.js'
import { service, T0, task } from './fixtures.test-helper.js'
import { restartDecision } from './restart.js'

const S = 1e9
const policy = (p: Partial<RestartPolicy> = {}): Required<RestartPolicy> => ({ Condition: 'any', Delay: 5 * S, MaxAttempts: 0, Window: 0, ...p })
const svc = service('web')

t.test('a task that did not end by itself is replaced at once', async t => {
  for (const state of ['shutdown', 'orphaned', 'running'] as const) {
    t.same(restartDecision(task(svc, { state }), [], svc.Spec.TaskTemplate, policy(), T0), { now: true }, state)
  }
})

t.test('the delay counts from when the task ended', async t => {
  const last = task(svc, { state: 'failed', at: T0 })
  t.same(restartDecision(last, [last], svc.Spec.TaskTemplate, policy(), T0 + 1_000), { at: T0 + 5_000 })
  t.same(restartDecision(last, [last], svc.Spec.TaskTemplate, policy(), T0 + 5_000), { now: true })
})

t.test('conditions: none never, on-failure not after a clean exit, any always', async t => {
  const done = task(svc, { state: 'complete' })
  const failed = task(svc, { state: 'failed' })
  const later = T0 + 10_000
  t.same(restartDecision(failed, [failed], svc.Spec.TaskTemplate, policy({ Condition: 'none' }), later), { never: true })
  t.same(restartDecision(done, [done], svc.Spec.TaskTemplate, policy({ Condition: 'on-failure' }), later), { never: true })
  t.same(restartDecision(failed, [failed], svc.Spec.TaskTemplate, policy({ Condition: 'on-failure' }), later), { now: true })
  t.same(restartDecision(done, [done], svc.Spec.TaskTemplate, policy({ Condition: 'any' }), later), { now: true })
  t.same(restartDecision(task(svc, { state: 'rejected' }), [], svc.Spec.TaskTemplate, policy({ Condition: 'on-failure' }), later), { now: true })
})

t.test('max attempts count the tasks of the current spec within the window', async t => {
  const later = T0 + 100_000
  const a = task(svc, { state: 'failed', created: T0 })
  const b = task(svc, { state: 'failed', created: T0 + 10_000 })
  const old = task(svc, { state: 'failed', created: T0, spec: { ContainerSpec: { Image: 'old' } } })
  t.same(restartDecision(b, [a, b], svc.Spec.TaskTemplate, policy({ MaxAttempts: 2 }), later), { now: true }, 'two attempts, two allowed restarts')
  const c = task(svc, { state: 'failed', created: T0 + 20_000 })
  t.same(restartDecision(c, [a, b, c], svc.Spec.TaskTemplate, policy({ MaxAttempts: 2 }), later), { never: true }, 'the first run and two restarts')
  t.same(restartDecision(c, [old, b, c], svc.Spec.TaskTemplate, policy({ MaxAttempts: 2 }), later), { now: true }, "another spec's tasks do not count")
  t.same(restartDecision(c, [a, b, c], svc.Spec.TaskTemplate, policy({ MaxAttempts: 2, Window: 85 * S }), later), { now: true }, 'attempts older than the window do not count')
})
