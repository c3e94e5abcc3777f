import t from 'tap'
import type { Service } from '../types/service.js'
import type { Task, TaskState } from '../types/task.js'
import { PlainRenderer, progressBar, serviceProgress, TerminalRenderer, truncError, type ProgressApi, type ProgressEvent } from './progress.js'

function svc(o: { replicas?: number; global?: boolean; update?: Service['UpdateStatus']; monitorMs?: number }): Service {
  return {
    ID: 'svc1',
    Version: { Index: 1 },
    CreatedAt: '',
    UpdatedAt: '',
    Spec: {
      Name: 'web',
      TaskTemplate: { ContainerSpec: { Image: 'busybox' } },
      Mode: o.global ? { Global: {} } : { Replicated: { Replicas: o.replicas ?? 1 } },
      ...(o.monitorMs !== undefined && { UpdateConfig: { Monitor: o.monitorMs * 1e6 } }),
    },
    Endpoint: { Spec: {} },
    ...(o.update && { UpdateStatus: o.update }),
  }
}

const task = (slot: number, state: TaskState, o: { desired?: TaskState; err?: string; node?: string } = {}): Task => ({
  ID: `t${slot}${state}`,
  Version: { Index: 1 },
  CreatedAt: '',
  UpdatedAt: '',
  Labels: {},
  Spec: { ContainerSpec: { Image: 'busybox' } },
  ServiceID: 'svc1',
  ...(slot && { Slot: slot }),
  NodeID: o.node ?? 'n1',
  Status: { Timestamp: '', State: state, Message: '', ...(o.err && { Err: o.err }) },
  DesiredState: o.desired ?? 'running',
})

/**
 * A scripted daemon: poll i sees frames[min(i, last)]. The clock moves by
 * the poll interval on each sleep.
 */
function scripted(frames: { service: Service; tasks: Task[] }[], nodes = ['n1', 'n2', 'n3']) {
  let poll = 0
  let clock = 0
  const frame = () => frames[Math.min(poll, frames.length - 1)]!
  const api: ProgressApi = {
    service: async () => frame().service,
    tasks: async () => frame().tasks,
    activeNodes: async () => new Set(nodes),
  }
  return {
    api,
    opts: {
      now: () => clock,
      sleep: async (ms: number) => {
        clock += ms
        poll++
      },
    },
    polls: () => poll,
  }
}

function collect(): { events: ProgressEvent[]; sink: { write(e: ProgressEvent): void } } {
  const events: ProgressEvent[] = []
  return { events, sink: { write: e => events.push(e) } }
}

t.test('replicated: placeholders, states, overall count, verify countdown, converged', async t => {
  const s = svc({ replicas: 2 })
  const d = scripted([
    { service: s, tasks: [] },
    { service: s, tasks: [task(1, 'preparing'), task(2, 'pending')] },
    { service: s, tasks: [task(1, 'running'), task(2, 'starting')] },
    { service: s, tasks: [task(1, 'running'), task(2, 'running')] },
  ])
  const lines: string[] = []
  await serviceProgress(d.api, 'web', new PlainRenderer(l => lines.push(l)), d.opts)
  t.same(lines, [
    'overall progress: 0 out of 2 tasks\n',
    '1/2:  \n',
    '2/2:  \n',
    'overall progress: 1 out of 2 tasks\n',
    'overall progress: 2 out of 2 tasks\n',
    'verify: Waiting 5 seconds to verify that tasks are stable...\n',
    'verify: Waiting 4 seconds to verify that tasks are stable...\n',
    'verify: Waiting 3 seconds to verify that tasks are stable...\n',
    'verify: Waiting 2 seconds to verify that tasks are stable...\n',
    'verify: Waiting 1 seconds to verify that tasks are stable...\n',
    'verify: Service converged\n',
  ])
  t.equal(d.polls(), 3 + 25, 'converged at the 4th poll, then the 5 s monitor period at 200 ms')
})

t.test('the frames carry docker\'s bar values and padded state names', async t => {
  const s = svc({ replicas: 2, monitorMs: 200 })
  const d = scripted([
    { service: s, tasks: [task(1, 'preparing'), task(2, 'new', { err: 'no suitable node (scheduling constraints not satisfied on 3 nodes)' })] },
    { service: s, tasks: [task(1, 'running'), task(2, 'running')] },
  ])
  const { events, sink } = collect()
  await serviceProgress(d.api, 'web', sink, d.opts)
  t.same(events.slice(0, 5), [
    { id: 'overall progress', action: '0 out of 2 tasks' },
    { id: '1/2', action: ' ' },
    { id: '2/2', action: ' ' },
    { id: '1/2', action: 'preparing', current: 6, total: 9 },
    { id: '2/2', action: 'no suitable node (scheduling constraints not satisfied on 3 nodes)' },
  ])
  t.same(events.at(-1), { id: 'verify', action: 'Service converged' })
  t.ok(events.some(e => e.id === '1/2' && e.action === 'running  ' && e.current === 9))
})

t.test('a task failing during verification restarts the wait', async t => {
  const s = svc({ replicas: 1, monitorMs: 1000 })
  const d = scripted([
    { service: s, tasks: [task(1, 'running')] },
    { service: s, tasks: [task(1, 'running')] },
    { service: s, tasks: [task(1, 'failed', { desired: 'shutdown', err: 'task: non-zero exit (1)' }), task(1, 'starting')] },
    { service: s, tasks: [task(1, 'running')] },
  ])
  const lines: string[] = []
  await serviceProgress(d.api, 'web', new PlainRenderer(l => lines.push(l)), d.opts)
  t.same(lines, [
    'overall progress: 0 out of 1 tasks\n',
    '1/1:  \n',
    'overall progress: 1 out of 1 tasks\n',
    'verify: Waiting 1 seconds to verify that tasks are stable...\n',
    'overall progress: 0 out of 1 tasks\n',
    'verify: Detected task failure\n',
    'overall progress: 1 out of 1 tasks\n',
    'verify: Waiting 1 seconds to verify that tasks are stable...\n',
    'verify: Service converged\n',
  ])
})

t.test('the slot with the lowest desired state wins; tasks on down nodes are skipped', async t => {
  const s = svc({ replicas: 1, monitorMs: 200 })
  const d = scripted([
    { service: s, tasks: [task(1, 'running', { desired: 'shutdown' }), task(1, 'running', { node: 'gone' })] },
    { service: s, tasks: [task(1, 'running', { desired: 'shutdown' }), task(1, 'running')] },
  ])
  const lines: string[] = []
  await serviceProgress(d.api, 'web', new PlainRenderer(l => lines.push(l)), d.opts)
  t.same(lines.slice(0, 3), ['overall progress: 0 out of 1 tasks\n', '1/1:  \n', 'overall progress: 1 out of 1 tasks\n'])
})

t.test('more than 20 replicas: only the overall line', async t => {
  const s = svc({ replicas: 21, monitorMs: 200 })
  const tasks = Array.from({ length: 21 }, (_, i) => task(i + 1, 'running'))
  const d = scripted([{ service: s, tasks }])
  const { events, sink } = collect()
  await serviceProgress(d.api, 'web', sink, d.opts)
  t.same(
    events.map(e => e.id),
    ['overall progress', 'overall progress', 'verify', 'verify'],
  )
})

t.test('global: one line per node, by 12-char node ID', async t => {
  const s = svc({ global: true, monitorMs: 200 })
  const nodeA = 'aaaaaaaaaaaaaaaaaaaaaaaaa'
  const nodeB = 'bbbbbbbbbbbbbbbbbbbbbbbbb'
  const d = scripted(
    [
      { service: s, tasks: [] },
      { service: s, tasks: [task(0, 'assigned', { node: nodeA }), task(0, 'running', { node: nodeB })] },
      { service: s, tasks: [task(0, 'running', { node: nodeA }), task(0, 'running', { node: nodeB })] },
    ],
    [nodeA, nodeB],
  )
  const { events, sink } = collect()
  await serviceProgress(d.api, 'web', sink, d.opts)
  t.same(events.slice(0, 5), [
    { id: 'overall progress', action: 'waiting for new tasks' },
    { id: 'overall progress', action: '0 out of 2 tasks' },
    { id: 'aaaaaaaaaaaa', action: 'assigned ', current: 4, total: 9 },
    { id: 'bbbbbbbbbbbb', action: 'running  ', current: 9, total: 9 },
    { id: 'overall progress', action: '1 out of 2 tasks' },
  ])
  t.same(events.at(-1), { id: 'verify', action: 'Service converged' })
})

t.test('update paused and rollback paused are errors with the daemon\'s message', async t => {
  const paused = scripted([{ service: svc({ update: { State: 'paused', Message: 'update paused due to failure or early termination of task x' } }), tasks: [] }])
  await t.rejects(serviceProgress(paused.api, 'web', collect().sink, paused.opts), { message: 'service update paused: update paused due to failure or early termination of task x' })
  const rb = scripted([{ service: svc({ update: { State: 'rollback_paused', Message: 'rollback paused' } }), tasks: [] }])
  await t.rejects(serviceProgress(rb.api, 'web', collect().sink, rb.opts), { message: 'service rollback paused: rollback paused' })
})

t.test('rollback: the reason, counts "rolling back update", then the completion message', async t => {
  const started = svc({ replicas: 1, monitorMs: 200, update: { State: 'rollback_started', Message: 'manually requested rollback' } })
  const done = svc({ replicas: 1, monitorMs: 200, update: { State: 'rollback_completed', Message: 'rollback completed' } })
  const d = scripted([
    { service: started, tasks: [task(1, 'starting')] },
    { service: done, tasks: [task(1, 'running')] },
  ])
  const lines: string[] = []
  await serviceProgress(d.api, 'web', new PlainRenderer(l => lines.push(l)), d.opts)
  t.same(lines, [
    'rollback: manually requested rollback\n',
    'overall progress: rolling back update: 0 out of 1 tasks\n',
    '1/1:  \n',
    'overall progress: rolling back update: 1 out of 1 tasks\n',
    'verify: Waiting 1 seconds to verify that tasks are stable...\n',
    'verify: Service converged\n',
    'rollback: rollback completed\n',
  ])
})

t.test('an update already completed when first seen ends at once', async t => {
  const d = scripted([{ service: svc({ update: { State: 'completed', Message: 'update completed' } }), tasks: [] }])
  const { events, sink } = collect()
  await serviceProgress(d.api, 'web', sink, d.opts)
  t.same(events, [])
})

t.test('Ctrl-C stops watching and says the operation continues', async t => {
  const ac = new AbortController()
  const d = scripted([{ service: svc({ replicas: 1 }), tasks: [] }])
  const lines: string[] = []
  await serviceProgress(d.api, 'web', new PlainRenderer(l => lines.push(l)), {
    now: d.opts.now,
    sleep: async () => ac.abort(),
    signal: ac.signal,
  })
  t.same(lines.slice(-2), ['Operation continuing in background.\n', 'Use `swarmctl service ps web` to check progress.\n'])
})

t.test('the default sleep polls every 200 ms of real time', async t => {
  const d = scripted([{ service: svc({ replicas: 1, monitorMs: 300 }), tasks: [task(1, 'running')] }])
  const start = Date.now()
  await serviceProgress(d.api, 'web', collect().sink, {})
  const took = Date.now() - start
  t.ok(took >= 300 && took < 1500, `took ${took} ms`)
})

t.test('bars and errors as jsonmessage draws them', async t => {
  t.equal(progressBar(9, 9, 200), `[${'='.repeat(50)}>] `)
  t.equal(progressBar(8, 9, 200), `[${'='.repeat(44)}>${' '.repeat(6)}] `)
  t.equal(progressBar(1, 9, 200), `[=====>${' '.repeat(45)}] `)
  t.equal(progressBar(9, 9, 80), '', 'no bar on narrow terminals')
  t.equal(progressBar(0, 0, 200), '')
  t.equal(truncError('a\nb'), 'a b')
  t.equal(truncError('x'.repeat(80)), 'x'.repeat(74) + '…')
})

t.test('off a terminal: no bars, each line once until it changes', async t => {
  const lines: string[] = []
  const r = new PlainRenderer(l => lines.push(l))
  r.write({ id: 'overall progress', action: '0 out of 1 tasks' })
  r.write({ id: 'overall progress', action: '0 out of 1 tasks' })
  r.write({ id: '1/1', action: 'running  ', current: 9, total: 9 })
  r.write({ id: 'overall progress', action: '1 out of 1 tasks' })
  t.same(lines, ['overall progress: 0 out of 1 tasks\n', 'overall progress: 1 out of 1 tasks\n'])
})

t.test('on a terminal: each ID keeps its line, redrawn with cursor moves', async t => {
  let s = ''
  const r = new TerminalRenderer(x => (s += x), () => 200)
  r.write({ id: 'overall progress', action: '0 out of 1 tasks' })
  r.write({ id: '1/1', action: ' ' })
  r.write({ id: '1/1', action: 'running  ', current: 9, total: 9 })
  r.write({ id: 'overall progress', action: '1 out of 1 tasks' })
  r.write({ id: 'verify', action: 'Service converged', message: true })
  const bar = `[${'='.repeat(50)}>] `
  t.equal(
    s,
    '\n\x1b[1A\x1b[2K\roverall progress: 0 out of 1 tasks \r\x1b[1B' +
      '\n\x1b[1A\x1b[2K\r1/1:   \r\x1b[1B' +
      `\x1b[1A\x1b[2K\r1/1: running   ${bar}\r\x1b[1B` +
      '\x1b[2A\x1b[2K\roverall progress: 1 out of 1 tasks \r\x1b[2B' +
      'verify: Service converged\n',
  )
})

const jobService = (mode: Service['Spec']['Mode'], iteration = 0): Service => ({ ...svc({}), Spec: { ...svc({}).Spec, Mode: mode }, JobStatus: { JobIteration: { Index: iteration } } })
const jobTask = (slot: number, state: TaskState, o: { node?: string; iteration?: number; err?: string } = {}): Task => ({
  ...task(slot, state, { desired: 'complete', ...(o.node && { node: o.node }), ...(o.err && { err: o.err }) }),
  ID: `j${slot}${state}${o.node ?? ''}`,
  Slot: slot,
  JobIteration: { Index: o.iteration ?? 0 },
})

t.test('a replicated job: job progress and active tasks, slot+1 bars up to complete, then "job complete" (no verify)', async t => {
  const s = jobService({ ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 3 } }, 1)
  const d = scripted([
    { service: s, tasks: [jobTask(0, 'complete', { iteration: 0 })] },
    { service: s, tasks: [jobTask(0, 'running', { iteration: 1 }), jobTask(1, 'preparing', { iteration: 1 })] },
    { service: s, tasks: [jobTask(0, 'complete', { iteration: 1 }), jobTask(1, 'failed', { iteration: 1, err: 'task: non-zero exit (1)' }), jobTask(2, 'running', { iteration: 1 })] },
    { service: s, tasks: [jobTask(0, 'complete', { iteration: 1 }), jobTask(1, 'complete', { iteration: 1 }), jobTask(2, 'complete', { iteration: 1 })] },
  ])
  const { events, sink } = collect()
  await serviceProgress(d.api, 'job', sink, d.opts)
  t.same(events.slice(0, 5), [
    { id: 'job progress', action: '0 out of 3 complete', current: 0, total: 3 },
    { id: 'active tasks', action: '0 out of 2 tasks' },
    { id: '1/3', action: ' ' },
    { id: '2/3', action: ' ' },
    { id: '3/3', action: ' ' },
  ])
  t.ok(events.some(e => e.id === 'active tasks' && e.action === '0 out of 2 tasks'), "the last iteration's tasks do not count")
  t.ok(events.some(e => e.id === '1/3' && e.action === 'running  ' && e.current === 9 && e.total === 10))
  t.ok(events.some(e => e.id === '2/3' && e.action === 'task: non-zero exit (1)'))
  t.ok(events.some(e => e.id === 'active tasks' && e.action === '1 out of 2 tasks'), 'a failed task is not active; of min(total - complete, max concurrent)')
  t.same(events.slice(-3), [
    { id: 'job progress', action: '3 out of 3 complete', current: 3, total: 3 },
    { id: 'active tasks', action: '0 out of 0 tasks' },
    { id: '', action: 'job complete', message: true },
  ])
  t.equal(d.polls(), 3, 'done at the 4th poll, no verification')
  const lines: string[] = []
  const plain = scripted([{ service: s, tasks: [jobTask(0, 'complete', { iteration: 1 }), jobTask(1, 'complete', { iteration: 1 }), jobTask(2, 'complete', { iteration: 1 })] }])
  await serviceProgress(plain.api, 'job', new PlainRenderer(l => lines.push(l)), plain.opts)
  t.same(lines, ['active tasks: 0 out of 2 tasks\n', '1/3:  \n', '2/3:  \n', '3/3:  \n', 'active tasks: 0 out of 0 tasks\n', 'job complete\n'], 'off a terminal the bars (job progress, task states) are not drawn')
})

t.test('a global job: waits for tasks, then the nodes it started on, by full node ID', async t => {
  const s = jobService({ GlobalJob: {} })
  const d = scripted([
    { service: s, tasks: [] },
    { service: s, tasks: [jobTask(0, 'running', { node: 'node-a' }), jobTask(0, 'assigned', { node: 'node-b' })] },
    { service: s, tasks: [jobTask(0, 'complete', { node: 'node-a' }), jobTask(0, 'complete', { node: 'node-b' }), jobTask(0, 'running', { node: 'node-late' })] },
  ])
  const { events, sink } = collect()
  await serviceProgress(d.api, 'gjob', sink, d.opts)
  t.same(events[0], { id: 'job progress', action: 'waiting for tasks' })
  t.same(events[1], { id: 'job progress', action: '0 out of 2 complete', current: 0, total: 2 })
  t.ok(events.some(e => e.id === 'node-b' && e.action.trim() === 'assigned'))
  t.notOk(events.some(e => e.id === 'node-late'), 'a node that came later is not followed')
  t.same(events.slice(-2), [
    { id: 'job progress', action: '2 out of 2 complete', current: 2, total: 2 },
    { id: '', action: 'job complete', message: true },
  ])
})
