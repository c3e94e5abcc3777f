import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { VirtualClock } from '../../gossip/virtual-clock.js'
import { newId } from '../ids.js'
import { planner } from '../placement.js'
import { Store } from '../store.js'
import type { Service, ServiceSpec } from '../../types/service.js'
import type { Task, TaskState } from '../../types/task.js'
import { node } from './fixtures.test-helper.js'
import { Orchestrator, type NodeInfo } from './orchestrator.js'

const S = 1e9

/** An orchestrator on a real store, with a clock and nodes the test moves. */
async function setup(t: Test, nodes: NodeInfo[]) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-orch-'))
  const store = await Store.open(dir)
  const clock = new VirtualClock(Date.parse('2026-01-01T00:00:00Z'))
  const o = new Orchestrator({ store, clock, nodes: () => nodes, planner, changed: () => undefined, log: pino({ level: 'silent' }) })
  t.teardown(async () => {
    await o.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const tasks = (svc?: string): Task[] => store.list<Task>('tasks').filter(x => !svc || x.ServiceID === svc)
  const live = (svc: string): Task[] => tasks(svc).filter(x => x.DesiredState === 'running')
  const service = async (spec: Partial<ServiceSpec> & { replicas?: number }): Promise<Service> => {
    const { replicas, ...rest } = spec
    const s: Service = {
      ID: newId(),
      Version: { Index: 1 },
      CreatedAt: new Date(clock.now()).toISOString(),
      UpdatedAt: new Date(clock.now()).toISOString(),
      Spec: { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, Mode: { Replicated: { Replicas: replicas ?? 1 } }, ...rest },
      Endpoint: { Spec: {} },
    }
    await store.commit([{ op: 'put', table: 'services', id: s.ID, value: s }])
    await o.kick()
    return s
  }
  const update = async (s: Service, change: (spec: ServiceSpec) => void): Promise<Service> => {
    const cur = store.get<Service>('services', s.ID)!
    const spec = structuredClone(cur.Spec)
    change(spec)
    const next: Service = { ...cur, Version: { Index: cur.Version.Index + 1 }, Spec: spec, PreviousSpec: cur.Spec, UpdateStatus: { State: 'updating', StartedAt: new Date(clock.now()).toISOString(), Message: 'update in progress' } }
    await store.commit([{ op: 'put', table: 'services', id: s.ID, value: next }])
    await o.kick()
    return next
  }
  /** What an agent would report: the task reached `state` now. */
  const report = async (task: Task, state: TaskState, err?: string): Promise<void> => {
    await o.report(task.NodeID!, [{ id: task.ID, status: { Timestamp: new Date(clock.now()).toISOString(), State: state, Message: state, ...(err ? { Err: err } : {}) } }])
    await o.kick()
  }
  /** Every assigned task that is wanted starts running; every one that is not wanted stops. */
  const agentsRun = async (): Promise<void> => {
    for (const x of tasks()) {
      if (x.DesiredState === 'running' && x.Status.State === 'assigned') await report(x, 'running')
      else if (x.DesiredState !== 'running' && ['assigned', 'running'].includes(x.Status.State) && nodes.find(n => n.id === x.NodeID)?.ready) await report(x, 'shutdown')
    }
  }
  const advance = async (ms: number): Promise<void> => {
    await clock.advance(ms)
    await o.kick()
  }
  return { store, o, tasks, live, service, update, report, agentsRun, advance }
}

t.test('replicas spread over the nodes, one task per slot', async t => {
  const nodes = [node('a'), node('b'), node('c')]
  const h = await setup(t, nodes)
  const s = await h.service({ replicas: 5 })
  const l = h.live(s.ID)
  t.equal(l.length, 5)
  t.same(l.map(x => x.Slot).sort(), [1, 2, 3, 4, 5])
  t.ok(l.every(x => x.Status.State === 'assigned' && x.Status.Message === 'scheduler assigned task to node'))
  const per = ['a', 'b', 'c'].map(id => l.filter(x => x.NodeID === id).length).sort()
  t.same(per, [1, 2, 2])
  await h.o.kick()
  t.equal(h.tasks(s.ID).length, 5, 'a second pass changes nothing')
})

t.test('no suitable node: the task stays pending with swarm\'s explanation', async t => {
  const h = await setup(t, [node('a', { availability: 'drain' }), node('b', { ready: false })])
  const s = await h.service({ replicas: 1 })
  const [task] = h.tasks(s.ID)
  t.equal(task!.Status.State, 'pending')
  t.equal(task!.Status.Err, 'no suitable node (2 nodes not available for new tasks)')
})

t.test('a dead node: its tasks are replaced at once; back, its stale task is stopped', async t => {
  const nodes = [node('a'), node('b')]
  const h = await setup(t, nodes)
  const s = await h.service({ replicas: 2 })
  await h.agentsRun()
  const onB = h.live(s.ID).find(x => x.NodeID === 'b')!
  nodes[1] = node('b', { ready: false })
  await h.o.kick()
  const old = h.store.get<Task>('tasks', onB.ID)!
  t.equal(old.DesiredState, 'shutdown', 'the lost task is no longer wanted')
  const repl = h.live(s.ID).filter(x => x.Slot === onB.Slot)
  t.equal(repl.length, 1)
  t.equal(repl[0]!.NodeID, 'a', 'its slot runs on the live node, with no restart delay')
  await h.agentsRun()
  nodes[1] = node('b')
  await h.o.kick()
  const { tasks } = await (async () => ({ tasks: h.tasks(s.ID).filter(x => x.NodeID === 'b') }))()
  t.ok(tasks.every(x => x.DesiredState !== 'running'), 'nothing is moved back, and the stale task stays unwanted')
})

t.test('restart policy: delay, conditions and max attempts', async t => {
  const h = await setup(t, [node('a')])
  const s = await h.service({ replicas: 1, TaskTemplate: { ContainerSpec: { Image: 'x' }, RestartPolicy: { Condition: 'on-failure', Delay: 2 * S, MaxAttempts: 2 } } })
  await h.agentsRun()
  let [task] = h.live(s.ID)
  await h.report(task!, 'failed', 'task: non-zero exit (1)')
  t.equal(h.live(s.ID).length, 0, 'the restart waits for the delay')
  t.equal(h.store.get<Task>('tasks', task!.ID)!.DesiredState, 'shutdown')
  const held = h.tasks(s.ID).filter(x => x.DesiredState === 'ready')
  t.match(held, [{ Slot: 1, NodeID: 'a', Status: { State: 'assigned' } }], 'its replacement is there at once, placed, held at ready')
  await h.advance(2_100)
  t.equal(h.live(s.ID).length, 1, 'then started')
  t.equal(h.live(s.ID)[0]!.ID, held[0]!.ID, 'the held task itself')
  t.equal(h.live(s.ID)[0]!.Slot, 1)
  await h.agentsRun()
  ;[task] = h.live(s.ID)
  await h.report(task!, 'failed', 'task: non-zero exit (1)')
  await h.advance(2_100)
  await h.agentsRun()
  ;[task] = h.live(s.ID)
  await h.report(task!, 'failed', 'task: non-zero exit (1)')
  await h.advance(10_000)
  t.equal(h.live(s.ID).length, 0, 'two restarts, then no more')
  t.equal(h.tasks(s.ID).length, 3)

  const done = await h.service({ Name: 'job', replicas: 1, TaskTemplate: { ContainerSpec: { Image: 'x' }, RestartPolicy: { Condition: 'on-failure', Delay: 0 } } })
  await h.agentsRun()
  await h.report(h.live(done.ID)[0]!, 'complete')
  await h.advance(1_000)
  t.equal(h.live(done.ID).length, 0, 'on-failure: a task that completed is not restarted')
})

t.test('scale down removes tasks; history keeps five per slot', async t => {
  const h = await setup(t, [node('a'), node('b')])
  const s = await h.service({ replicas: 3, TaskTemplate: { ContainerSpec: { Image: 'x' }, RestartPolicy: { Condition: 'any', Delay: 0 } } })
  await h.agentsRun()
  const cur = h.store.get<Service>('services', s.ID)!
  await h.store.commit([{ op: 'put', table: 'services', id: s.ID, value: { ...cur, Spec: { ...cur.Spec, Mode: { Replicated: { Replicas: 1 } } } } }])
  await h.o.kick()
  t.same(h.tasks(s.ID).filter(x => x.DesiredState === 'remove').map(x => x.Slot).sort(), [2, 3])
  await h.agentsRun()
  await h.o.kick()
  t.equal(h.tasks(s.ID).length, 1, 'removed tasks leave no history')
  for (let i = 0; i < 8; i++) {
    await h.agentsRun()
    await h.report(h.live(s.ID)[0]!, 'failed', 'task: non-zero exit (1)')
    await h.advance(10)
  }
  await h.agentsRun()
  t.equal(h.tasks(s.ID).length, 6, 'the running task and five of history')
})

t.test('global: one task per eligible node; drain stops it there', async t => {
  const nodes = [node('a'), node('b', { labels: { disk: 'ssd' } }), node('c', { labels: { disk: 'ssd' } })]
  const h = await setup(t, nodes)
  const s = await h.service({ Mode: { Global: {} }, TaskTemplate: { ContainerSpec: { Image: 'x' }, Placement: { Constraints: ['node.labels.disk==ssd'] } } })
  t.same(h.live(s.ID).map(x => x.NodeID).sort(), ['b', 'c'])
  t.ok(h.live(s.ID).every(x => x.Slot === 0 && x.Status.State === 'assigned'))
  nodes.push(node('d', { labels: { disk: 'ssd' } }))
  await h.o.kick()
  t.same(h.live(s.ID).map(x => x.NodeID).sort(), ['b', 'c', 'd'], 'a new node gets its task')
  nodes[1] = node('b', { labels: { disk: 'ssd' }, availability: 'drain' })
  await h.o.kick()
  t.same(h.live(s.ID).map(x => x.NodeID).sort(), ['c', 'd'], 'drained: no task there, and none moved elsewhere')
})

t.test('rolling update: parallelism, monitor, completion', async t => {
  const h = await setup(t, [node('a'), node('b')])
  const s = await h.service({ replicas: 4, UpdateConfig: { Parallelism: 2, Delay: 1 * S, Monitor: 1 * S } })
  await h.agentsRun()
  await h.update(s, spec => (spec.TaskTemplate.ContainerSpec.Env = ['V=2']))
  const stopping = h.tasks(s.ID).filter(x => x.DesiredState === 'shutdown')
  t.equal(stopping.length, 2, 'stop-first, two slots at a time')
  await h.agentsRun()
  t.equal(h.live(s.ID).filter(x => x.Spec.ContainerSpec.Env).length, 2, 'their new tasks start')
  await h.agentsRun()
  t.equal(h.tasks(s.ID).filter(x => x.DesiredState === 'shutdown').length, 2, 'the next slots wait for the batch to run')
  await h.advance(1_010)
  t.equal(h.tasks(s.ID).filter(x => x.DesiredState === 'shutdown').length, 4, 'then go, after the update delay')
  await h.agentsRun()
  await h.agentsRun()
  t.equal(h.store.get<Service>('services', s.ID)!.UpdateStatus!.State, 'updating', 'not complete before the monitor period')
  await h.advance(1_100)
  const done = h.store.get<Service>('services', s.ID)!.UpdateStatus!
  t.same([done.State, done.Message], ['completed', 'update completed'])
  t.equal(h.live(s.ID).filter(x => x.Spec.ContainerSpec.Env?.[0] === 'V=2').length, 4)
})

t.test('start-first: the new task runs before the old one stops', async t => {
  const h = await setup(t, [node('a')])
  const s = await h.service({ replicas: 1, UpdateConfig: { Order: 'start-first', Monitor: 1 * S } })
  await h.agentsRun()
  const [old] = h.live(s.ID)
  await h.update(s, spec => (spec.TaskTemplate.ContainerSpec.Env = ['V=2']))
  t.equal(h.live(s.ID).length, 2, 'both in the slot')
  t.equal(h.store.get<Task>('tasks', old!.ID)!.DesiredState, 'running')
  await h.agentsRun()
  t.equal(h.store.get<Task>('tasks', old!.ID)!.DesiredState, 'shutdown', 'the old one stops once the new one runs')
})

t.test('a failed update rolls back when told to', async t => {
  const h = await setup(t, [node('a')])
  const s = await h.service({ replicas: 2, UpdateConfig: { Parallelism: 1, FailureAction: 'rollback', Monitor: 5 * S } })
  await h.agentsRun()
  await h.update(s, spec => (spec.TaskTemplate.ContainerSpec.Image = 'broken'))
  await h.agentsRun()
  const fresh = h.live(s.ID).find(x => x.Spec.ContainerSpec.Image === 'broken')!
  await h.report(fresh, 'failed', 'task: non-zero exit (1)')
  const svc = h.store.get<Service>('services', s.ID)!
  t.equal(svc.UpdateStatus!.State, 'rollback_started')
  t.match(svc.UpdateStatus!.Message, /update rolled back due to failure or early termination of task/)
  t.equal(svc.Spec.TaskTemplate.ContainerSpec.Image, 'busybox', 'the previous spec is back')

  const p = await h.service({ Name: 'p', replicas: 2, UpdateConfig: { Parallelism: 1, FailureAction: 'pause' } })
  await h.agentsRun()
  await h.update(p, spec => (spec.TaskTemplate.ContainerSpec.Image = 'broken'))
  await h.agentsRun()
  await h.report(h.live(p.ID).find(x => x.Spec.ContainerSpec.Image === 'broken')!, 'failed', 'task: non-zero exit (1)')
  const paused = h.store.get<Service>('services', p.ID)!.UpdateStatus!
  t.equal(paused.State, 'paused')
  t.match(paused.Message, /^update paused due to failure or early termination of task /)
})

t.test('reports: only the task\'s own node, only forward', async t => {
  const h = await setup(t, [node('a'), node('b')])
  const s = await h.service({ replicas: 1 })
  const [task] = h.live(s.ID)
  const other = task!.NodeID === 'a' ? 'b' : 'a'
  await h.o.report(other, [{ id: task!.ID, status: { Timestamp: new Date().toISOString(), State: 'failed', Message: 'x' } }])
  t.equal(h.store.get<Task>('tasks', task!.ID)!.Status.State, 'assigned', 'another node cannot speak for it')
  await h.report(task!, 'running')
  await h.report(task!, 'starting')
  t.equal(h.store.get<Task>('tasks', task!.ID)!.Status.State, 'running', 'states never go back')
})

t.test('a removed service: its tasks are stopped, then forgotten', async t => {
  const h = await setup(t, [node('a')])
  const s = await h.service({ replicas: 2 })
  await h.agentsRun()
  await h.store.commit([{ op: 'delete', table: 'services', id: s.ID }])
  await h.o.kick()
  t.ok(h.tasks(s.ID).every(x => x.DesiredState === 'remove'))
  await h.agentsRun()
  await h.o.kick()
  t.equal(h.tasks(s.ID).length, 0)
})

t.test('a node not heard from since the manager started (unknown) keeps its tasks, and gets no new ones', async t => {
  const nodes = [node('a'), node('b')]
  const h = await setup(t, nodes)
  const s = await h.service({ replicas: 2 })
  const g = await h.service({ Name: 'g', Mode: { Global: {} } })
  await h.agentsRun()
  nodes[1] = node('b', { ready: false, unknown: true })
  await h.o.kick()
  t.equal(h.live(s.ID).length, 2, 'no replica replaced')
  t.same(h.live(s.ID).map(x => x.NodeID).sort(), ['a', 'b'])
  t.same(h.live(g.ID).map(x => x.NodeID).sort(), ['a', 'b'], 'its global task stays')
  const more = await h.service({ Name: 'more', replicas: 2 })
  t.same(h.live(more.ID).map(x => x.NodeID), ['a', 'a'], 'new tasks go to the Ready node')
})
