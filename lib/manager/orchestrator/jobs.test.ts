import t from 'tap'
import type { Service, ServiceSpec } from '../../types/service.js'
import type { Task, TaskState } from '../../types/task.js'
import { decisions, node, pass, service, T0, task } from './fixtures.test-helper.js'
import { reconcileJob } from './jobs.js'

const job = (mode: ServiceSpec['Mode'], extra: Partial<ServiceSpec> = {}, iteration = 0): Service =>
  service('job', { Mode: mode, ...extra }, { JobStatus: { JobIteration: { Index: iteration } } })
const jobTask = (svc: Service, slot: number, state: TaskState, o: { desired?: TaskState; iteration?: number; node?: string; at?: number; created?: number } = {}): Task => ({
  ...task(svc, { slot, state, desired: o.desired ?? 'complete', node: o.node ?? 'a', ...(o.at !== undefined ? { at: o.at } : {}), ...(o.created !== undefined ? { created: o.created } : {}) }),
  JobIteration: { Index: o.iteration ?? svc.JobStatus!.JobIteration.Index },
})
const created = (p: ReturnType<typeof pass>) => p.written().filter(x => x.Version.Index === 1)

t.test('a replicated job: TotalCompletions slots from 0, at most MaxConcurrent at once, run to completion', async t => {
  const svc = job({ ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 3 } })
  const first = pass(T0, [node('a')], [svc], [])
  reconcileJob(first, svc, 5)
  t.match(
    created(first).map(x => [x.Slot, x.DesiredState, x.JobIteration]),
    [
      [0, 'complete', { Index: 0 }],
      [1, 'complete', { Index: 0 }],
    ],
    'two at once, desired complete, of this iteration',
  )
  const [s0, s1] = created(first).map(x => ({ ...x, NodeID: 'a' }))
  const running = pass(T0 + 1, [node('a')], [svc], [{ ...s0!, Status: { ...s0!.Status, State: 'running' } }, { ...s1!, Status: { ...s1!.Status, State: 'running' } }])
  reconcileJob(running, svc, 5)
  t.same(running.written(), [], 'both run: nothing to do')

  const one = pass(T0 + 2, [node('a')], [svc], [jobTask(svc, 0, 'complete'), jobTask(svc, 1, 'running')])
  reconcileJob(one, svc, 5)
  t.same(created(one).map(x => x.Slot), [2], 'a completion frees room for the last slot')

  const done = pass(T0 + 3, [node('a')], [svc], [jobTask(svc, 0, 'complete'), jobTask(svc, 1, 'complete'), jobTask(svc, 2, 'complete')])
  reconcileJob(done, svc, 5)
  t.same(done.written(), [], 'all complete: the job is done, nothing runs again')
})

t.test('a failed job task is replaced in its slot by the restart policy; `any` never reruns a completed one', async t => {
  const svc = job({ ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } }, { TaskTemplate: { ContainerSpec: { Image: 'busybox' }, RestartPolicy: { Condition: 'any', Delay: 0 } } })
  const failed = jobTask(svc, 0, 'failed', { at: T0 })
  const p = pass(T0 + 10, [node('a')], [svc], [failed])
  reconcileJob(p, svc, 5)
  t.equal(decisions(p)[failed.ID], 'shutdown', 'the failed task is no longer desired')
  t.match(created(p), [{ Slot: 0, DesiredState: 'complete', JobIteration: { Index: 0 } }], 'a new one in slot 0')

  const delayed = job({ ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } }, { TaskTemplate: { ContainerSpec: { Image: 'busybox' }, RestartPolicy: { Delay: 5e9 } } })
  const f2 = jobTask(delayed, 0, 'failed', { at: T0 })
  const early = pass(T0 + 1_000, [node('a')], [delayed], [f2])
  reconcileJob(early, delayed, 5)
  const held = created(early)
  t.match(held, [{ Slot: 0, DesiredState: 'ready' }], 'under a restart delay: held at ready')
  t.equal(early.nextWake, T0 + 5_000)
  const late = pass(T0 + 5_000, [node('a')], [delayed], [{ ...f2, DesiredState: 'shutdown' }, { ...held[0]!, NodeID: 'a', Status: { ...held[0]!.Status, State: 'ready' } }])
  reconcileJob(late, delayed, 5)
  t.same(late.written().map(x => [x.ID, x.DesiredState]), [[held[0]!.ID, 'complete']], 'then started, to run to completion')

  const none = job({ ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } }, { TaskTemplate: { ContainerSpec: { Image: 'busybox' }, RestartPolicy: { Condition: 'none' } } })
  const f3 = jobTask(none, 0, 'failed', { desired: 'shutdown' })
  const p3 = pass(T0 + 10, [node('a')], [none], [f3])
  reconcileJob(p3, none, 5)
  t.same(p3.written(), [], 'condition none: the slot stays failed, it is not filled again')

  const maxed = job({ ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } }, { TaskTemplate: { ContainerSpec: { Image: 'busybox' }, RestartPolicy: { Condition: 'on-failure', Delay: 0, MaxAttempts: 1 } } })
  const tries = [jobTask(maxed, 0, 'failed', { desired: 'shutdown', created: T0 }), jobTask(maxed, 0, 'failed', { desired: 'shutdown', created: T0 + 1 })]
  const p4 = pass(T0 + 10, [node('a')], [maxed], tries)
  reconcileJob(p4, maxed, 5)
  t.same(p4.written(), [], 'max attempts: one restart, then no more')
})

t.test('an update is a new iteration: the old one stops running, its ended tasks stay as history', async t => {
  const svc = job({ ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 2 } }, {}, 1)
  const oldRunning = jobTask(svc, 0, 'running', { iteration: 0 })
  const oldDone = jobTask(svc, 1, 'complete', { iteration: 0 })
  const p = pass(T0, [node('a')], [svc], [oldRunning, oldDone])
  reconcileJob(p, svc, 5)
  t.equal(decisions(p)[oldRunning.ID], 'remove', "the last iteration's running task is removed")
  t.notOk(decisions(p)[oldDone.ID], 'its completed one stays')
  t.same(
    created(p).map(x => [x.Slot, x.JobIteration?.Index]),
    [
      [0, 1],
      [1, 1],
    ],
    'every slot runs again',
  )
})

t.test('a global job: one task per eligible node, none again where it completed; a drained node stops it', async t => {
  const svc = job({ GlobalJob: {} })
  const p = pass(T0, [node('a'), node('b'), node('c', { availability: 'drain' })], [svc], [jobTask(svc, 0, 'complete', { node: 'a' })])
  reconcileJob(p, svc, 5)
  t.match(created(p), [{ NodeID: 'b', Slot: 0, DesiredState: 'complete', Status: { State: 'assigned' } }])

  const onDrained = jobTask(svc, 0, 'running', { node: 'c' })
  const p2 = pass(T0, [node('c', { availability: 'drain' })], [svc], [onDrained])
  reconcileJob(p2, svc, 5)
  t.equal(decisions(p2)[onDrained.ID], 'shutdown')
  t.same(created(p2), [], 'a node no longer eligible gets no task')
})
