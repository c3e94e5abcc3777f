import { pino } from 'pino'
import t from 'tap'
import type { Routing, UpMessage } from '../types/session.js'
import type { PortConfig } from '../types/service.js'
import type { PortStatus, Task, TaskStatus } from '../types/task.js'
import { Agent } from './agent.js'
import type { LogLine, LogOptions } from '../types/logs.js'
import type { Executor, ExecutorTask, TaskEvent } from './executor.js'
import type { NodeMesh } from './node-mesh.js'
import type { NodeDns } from './node-dns.js'

const log = pino({ level: 'silent' })
type Emit = (e: TaskEvent) => void

/** An executor in memory: it records what the agent asks and lets the test emit the task's events. */
class FakeExecutor implements Executor {
  readonly kind = 'process' as const
  readonly calls: string[] = []
  readonly started = new Map<string, { task: ExecutorTask; emit: Emit }>()
  readonly adopted = new Map<string, Emit>()
  readonly stops: { id: string; graceMs: number }[] = []
  readonly removed: string[] = []
  recoverable: { taskId: string; running: boolean }[] = []
  startError: Error | undefined
  adoptError: Error | undefined
  stopError: Error | undefined
  logs: Executor['logs'] = async () => undefined

  async start(task: ExecutorTask, emit: Emit): Promise<void> {
    this.calls.push(`start ${task.id}`)
    this.started.set(task.id, { task, emit })
    if (this.startError) throw this.startError
  }
  async stop(taskId: string, graceMs: number): Promise<void> {
    this.calls.push(`stop ${taskId}`)
    this.stops.push({ id: taskId, graceMs })
    if (this.stopError) throw this.stopError
  }
  async remove(taskId: string): Promise<void> {
    this.calls.push(`remove ${taskId}`)
    this.removed.push(taskId)
  }
  async recover(): Promise<{ taskId: string; running: boolean }[]> {
    return this.recoverable
  }
  async adopt(taskId: string, emit: Emit): Promise<void> {
    this.calls.push(`adopt ${taskId}`)
    this.adopted.set(taskId, emit)
    if (this.adoptError) throw this.adoptError
  }
  async close(): Promise<void> {}
  emit(id: string, e: TaskEvent): void {
    const s = this.started.get(id)?.emit ?? this.adopted.get(id)
    if (!s) throw new Error(`task ${id} was not started`)
    s(e)
  }
}

/** A mesh that records what the agent announces; its conflicts are the test's to set. */
function fakeMesh() {
  const calls: string[] = []
  const running: Parameters<NodeMesh['taskRunning']>[0][] = []
  const m = {
    conflicts: new Map<string, string>(),
    sync: async (_r: Routing) => {
      calls.push('sync')
    },
    taskRunning: (x: Parameters<NodeMesh['taskRunning']>[0]) => {
      calls.push(`running ${x.id}`)
      running.push(x)
    },
    taskStopping: async (id: string, drain: boolean) => {
      calls.push(`stopping ${id} ${drain}`)
    },
    // The userspace mesh's answers: no namespaces, VIPs at their loopback twins.
    taskNetworks: () => undefined,
    vipAddress: (v: { loopback: string }) => v.loopback,
  }
  return { mesh: m as unknown as NodeMesh, m, calls, running }
}

const NOW = '2024-01-01T00:00:00.000Z'
function task(id: string, over: Partial<Task> = {}, state: TaskStatus['State'] = 'assigned'): Task {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: NOW,
    UpdatedAt: NOW,
    Labels: {},
    Spec: { ContainerSpec: { Image: 'busybox' } },
    ServiceID: 'svc1',
    Slot: 1,
    NodeID: 'node1',
    Status: { Timestamp: NOW, State: state, Message: state },
    DesiredState: 'running',
    ...over,
  }
}

const ROUTING: Routing = { dataPathPort: 4789, networks: [], services: [] }
type Item = { task: Task; serviceName?: string; ports?: PortConfig[]; networks?: string[] }
const assign = (items: Item[], secrets: Record<string, string> = {}, routing: Routing | undefined = ROUTING) => ({
  t: 'assign',
  tasks: items.map(i => ({ serviceName: 'web', ports: [], networks: [], ...i })),
  secrets,
  ...(routing ? { routing } : {}),
})

/** Lets the agent's setImmediate flushes and promise chains run. */
const settle = async (n = 3): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise(r => setImmediate(r))
}

function setup(o: { mesh?: NodeMesh; dns?: NodeDns } = {}) {
  const ex = new FakeExecutor()
  const sent: UpMessage[] = []
  const agent = new Agent({ executor: ex, nodeId: 'node1', hostname: 'host1', log, ...(o.mesh ? { mesh: o.mesh } : {}), ...(o.dns ? { dns: o.dns } : {}) })
  agent.connect(m => sent.push(m))
  /** Every status reported for a task, oldest first. */
  const statuses = (id: string): TaskStatus[] => sent.flatMap(m => (m.t === 'status' ? m.updates.filter(u => u.id === id).map(u => u.status) : []))
  const last = (id: string): TaskStatus | undefined => statuses(id).at(-1)
  return { ex, sent, agent, statuses, last }
}

t.test('an assignment starts the task, reports accepted, then relays the executor events', async t => {
  const { ex, agent, statuses, last, sent } = setup()
  const ports: PortConfig[] = [
    { TargetPort: 80, PublishedPort: 30000, Protocol: 'tcp', PublishMode: 'ingress' },
    { TargetPort: 53, PublishedPort: 5353, Protocol: 'udp', PublishMode: 'host' },
    { TargetPort: 90 },
  ]
  agent.receive(assign([{ task: task('t1', { Slot: 3 }), ports }]))
  await settle()
  t.same(statuses('t1').map(s => s.State), ['accepted'])
  t.same(ex.calls, ['start t1'])
  const et = ex.started.get('t1')!.task
  t.match(et, { id: 't1', serviceId: 'svc1', serviceName: 'web', slot: 3, nodeId: 'node1', nodeHostname: 'host1', secrets: [] })
  t.same(et.ports, [
    { TargetPort: 80, Protocol: 'tcp', PublishMode: 'ingress' },
    { TargetPort: 53, Protocol: 'udp', PublishMode: 'host', PublishedPort: 5353 },
    { TargetPort: 90, Protocol: 'tcp', PublishMode: 'ingress' },
  ])

  // The same assignment again starts nothing more.
  agent.receive(assign([{ task: task('t1', { Slot: 3 }), ports }]))
  await settle()
  t.same(ex.calls, ['start t1'])

  const portStatus: PortStatus[] = [
    { Protocol: 'tcp', TargetPort: 80, PublishedPort: 30000, PublishMode: 'ingress' },
    { Protocol: 'udp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'host' },
  ]
  const before = sent.length
  ex.emit('t1', { state: 'preparing', message: 'preparing' })
  ex.emit('t1', { state: 'running', message: 'started', pid: 42, containerId: 'c1', ports: portStatus })
  await settle()
  t.equal(sent.length, before + 1, 'updates of one tick travel in one message')
  t.match(last('t1'), { State: 'running', Message: 'started', ContainerStatus: { ContainerID: 'c1', PID: 42 }, PortStatus: { Ports: [portStatus[1]] } })
  t.notOk(last('t1')!.Err)

  ex.emit('t1', { state: 'complete', message: 'finished', exitCode: 0 })
  await settle()
  t.same(last('t1')!.ContainerStatus, { ContainerID: 'c1', PID: 42, ExitCode: 0 }, 'container status accumulates')
  t.same(last('t1')!.PortStatus, { Ports: [portStatus[1]] }, 'ports kept from the running state')

  // Over is over: later events are not relayed.
  const n = statuses('t1').length
  ex.emit('t1', { state: 'failed', message: 'late', err: 'late' })
  await settle()
  t.equal(statuses('t1').length, n)
})

t.test('counters: starts, exits by code, and a restart only where the slot\'s last task exited by itself', async t => {
  const { ex, agent } = setup()
  const svc = { id: 'svc1', name: 'web', labels: {}, ports: [], vips: [] }
  const routed = (items: Item[], services = [svc]) => assign(items, {}, { ...ROUTING, services })
  agent.receive(routed([{ task: task('a1', { Slot: 1 }) }, { task: task('b1', { Slot: 2 }) }]))
  await settle()
  ex.emit('a1', { state: 'running', message: 'started' })
  ex.emit('a1', { state: 'failed', message: 'started', err: 'task: non-zero exit (3)', exitCode: 3 })
  // b1 is stopped by the agent (an update, a scale down): its slot's next task is no restart.
  agent.receive(routed([{ task: task('b1', { Slot: 2, DesiredState: 'shutdown' }) }]))
  ex.emit('b1', { state: 'shutdown', message: 'shutdown', exitCode: 143 })
  await settle()
  t.same(agent.counters, { starts: 2, restarts: 0, exits: { 3: 1, 143: 1 } })
  agent.receive(routed([{ task: task('a2', { Slot: 1 }) }, { task: task('b2', { Slot: 2 }) }]))
  await settle()
  t.same([agent.counters.starts, agent.counters.restarts], [4, 1], 'a2 restarts slot 1; b2 replaces a stopped task')
  agent.receive(routed([{ task: task('a3', { Slot: 1 }) }]))
  await settle()
  t.equal(agent.counters.restarts, 1, 'one exit, one restart')
  ex.emit('a3', { state: 'complete', message: 'finished', exitCode: 0 })
  agent.receive(routed([], []))
  agent.receive(routed([{ task: task('a4', { Slot: 1 }) }]))
  await settle()
  t.same([agent.counters.restarts, agent.counters.exits[0]], [1, 1], 'a slot of a service the swarm no longer has is forgotten')
})

t.test('failure to start: rejected before starting, failed after', async t => {
  const { ex, agent, last } = setup()
  ex.startError = new Error('No such image: nope')
  agent.receive(assign([{ task: task('t1') }]))
  await settle()
  t.match(last('t1'), { State: 'rejected', Message: 'No such image: nope', Err: 'No such image: nope' })

  const ex2 = setup()
  ex2.ex.start = async (task, emit) => {
    emit({ state: 'starting', message: 'starting' })
    throw new Error('exec failed')
  }
  ex2.agent.receive(assign([{ task: task('t2') }]))
  await settle()
  t.match(ex2.last('t2'), { State: 'failed', Err: 'exec failed' })
  // A failure reported after the task is over changes nothing.
  ex2.ex.start = async (_task, emit) => {
    emit({ state: 'complete', message: 'done' })
    throw new Error('too late')
  }
  ex2.agent.receive(assign([{ task: task('t2') }, { task: task('t3') }]))
  await settle()
  t.equal(ex2.last('t3')!.State, 'complete')
})

t.test('desired shutdown stops with the spec grace period and reports shutdown; the task stays (with its log) while it is listed', async t => {
  const { ex, agent, last, statuses } = setup()
  const spec = { ContainerSpec: { Image: 'busybox', StopGracePeriod: 3_500_000_000 } }
  agent.receive(assign([{ task: task('t1', { Spec: spec }) }, { task: task('t2') }]))
  await settle()
  ex.emit('t1', { state: 'running', message: 'started' })
  ex.emit('t2', { state: 'running', message: 'started' })
  await settle()
  agent.receive(assign([{ task: task('t1', { Spec: spec, DesiredState: 'shutdown' }, 'running') }, { task: task('t2', { DesiredState: 'shutdown' }, 'running') }]))
  await settle()
  t.same(ex.stops, [
    { id: 't1', graceMs: 3500 },
    { id: 't2', graceMs: 10_000 },
  ])
  t.equal(last('t1')!.State, 'shutdown')
  t.equal(last('t2')!.State, 'shutdown')
  t.same(ex.calls.filter(c => c.endsWith('t1')), ['start t1', 'stop t1'], 'not removed while the history lists it')

  // Asked again: already over, nothing more.
  agent.receive(assign([{ task: task('t1', { Spec: spec, DesiredState: 'shutdown' }, 'shutdown') }, { task: task('t2', { DesiredState: 'shutdown' }, 'shutdown') }]))
  await settle()
  t.equal(ex.stops.length, 2)
  t.same(ex.removed, [])
  t.equal(statuses('t1').filter(s => s.State === 'shutdown').length, 1)

  // A task this node never ran that the manager wants down: just reported shut down.
  agent.receive(assign([{ task: task('t9', { DesiredState: 'shutdown' }, 'assigned') }, { task: task('t8', { DesiredState: 'shutdown' }, 'complete') }]))
  await settle()
  t.equal(last('t9')!.State, 'shutdown')
  t.same(statuses('t8'), [], 'an over task is not reported again')
  t.notOk(ex.calls.some(c => c.endsWith('t9')))

  // Out of the history (not in that last list): removed, once.
  t.same(ex.removed.sort(), ['t1', 't2'])
  agent.receive(assign([]))
  await settle()
  t.equal(ex.removed.length, 2)
})

t.test('an ended task keeps its logs while listed', async t => {
  const { ex, agent, sent } = setup()
  const asked: string[] = []
  ex.logs = async (id, _o, onLine) => {
    asked.push(id)
    onLine({ time: NOW, stream: 'stderr', text: `last words of ${id}` })
  }
  agent.receive(assign([{ task: task('t1') }]))
  await settle()
  ex.emit('t1', { state: 'failed', message: 'started', err: 'task: non-zero exit (1)', exitCode: 1 })
  agent.receive(assign([{ task: task('t1', { DesiredState: 'shutdown' }, 'failed') }]))
  await settle()
  t.same(ex.removed, [])
  agent.receive({ t: 'logs', req: 7, taskIds: ['t1'], opts: {} })
  await settle(5)
  await new Promise(r => setTimeout(r, 30))
  t.same(asked, ['t1'])
  t.match(sent.find(m => m.t === 'log'), { req: 7, lines: [{ task: 't1', line: { text: 'last words of t1' } }] })
})

t.test('a task held at desired ready is handed over with a hold, released once the manager wants it running', async t => {
  const { ex, agent } = setup()
  agent.receive(assign([{ task: task('t1', { DesiredState: 'ready' }) }]))
  await settle()
  const hold = ex.started.get('t1')!.task.hold
  t.ok(hold, 'the executor gets a hold')
  let released = false
  void hold!.then(() => (released = true))
  agent.receive(assign([{ task: task('t1', { DesiredState: 'ready' }, 'ready') }]))
  await settle()
  t.notOk(released, 'still held')
  agent.receive(assign([{ task: task('t1', {}, 'ready') }]))
  await settle()
  t.ok(released, 'released once desired running')
  t.equal(ex.calls.filter(c => c === 'start t1').length, 1, 'started once')
  agent.receive(assign([{ task: task('t2') }]))
  await settle()
  t.notOk(ex.started.get('t2')!.task.hold, 'a task wanted running at once has no hold')
})

t.test('a failing stop still reports shutdown', async t => {
  const { ex, agent, last } = setup()
  agent.receive(assign([{ task: task('t1') }]))
  await settle()
  ex.stopError = new Error('no such process')
  agent.receive(assign([{ task: task('t1', { DesiredState: 'shutdown' }) }]))
  await settle()
  t.equal(last('t1')!.State, 'shutdown')
  t.same(ex.removed, [], 'kept while listed')
})

t.test('tasks no longer listed are stopped, then forgotten', async t => {
  const { ex, agent, last } = setup()
  agent.receive(assign([{ task: task('t1') }]))
  await settle()
  ex.emit('t1', { state: 'running', message: 'started' })
  agent.receive(assign([]))
  await settle()
  t.same(ex.stops, [{ id: 't1', graceMs: 10_000 }])
  t.equal(last('t1')!.State, 'shutdown')
  t.same(ex.removed, ['t1'], 'stopped, then removed and forgotten')
  agent.receive(assign([]))
  await settle()
  t.same(ex.removed, ['t1'])
})

t.test('after a restart: wanted recovered tasks are adopted, the rest stopped; lost ones fail', async t => {
  const { ex, agent, last, statuses } = setup()
  ex.recoverable = [
    { taskId: 'keep', running: true },
    { taskId: 'extra', running: true },
    { taskId: 'down', running: true },
  ]
  await agent.init()
  agent.receive(
    assign([
      { task: task('keep', {}, 'running') },
      { task: task('lost', {}, 'running') },
      { task: task('down', { DesiredState: 'shutdown' }, 'running') },
      { task: task('new') },
    ]),
  )
  await settle()
  t.ok(ex.adopted.has('keep'))
  t.notOk(ex.started.has('keep'))
  t.ok(ex.started.has('new'))
  t.match(last('lost'), { State: 'failed', Message: 'task not found on the node', Err: 'task: not running after the node restarted' })
  t.notOk(ex.started.has('lost'))
  t.same(
    ex.stops.map(s => s.id).sort(),
    ['down', 'extra'],
  )
  t.equal(ex.stops.find(s => s.id === 'extra')!.graceMs, 0, 'what the manager does not know is stopped at once')
  t.ok(ex.removed.includes('extra'))
  t.equal(last('down')!.State, 'shutdown')
  t.same(statuses('keep'), [], 'an adopted task is not re-accepted')

  ex.emit('keep', { state: 'complete', message: 'finished', exitCode: 0 })
  await settle()
  t.match(last('keep'), { State: 'complete', ContainerStatus: { ExitCode: 0 } })

  // Recovery is for the first assignment only.
  agent.receive(assign([{ task: task('extra2', {}, 'running') }]))
  await settle()
  t.equal(last('extra2')!.State, 'failed')
})

t.test('an adoption that fails reports the task failed', async t => {
  const { ex, agent, last } = setup()
  ex.recoverable = [{ taskId: 'a', running: true }]
  ex.adoptError = new Error('gone')
  await agent.init()
  agent.receive(assign([{ task: task('a', {}, 'running') }]))
  await settle()
  t.match(last('a'), { State: 'failed', Err: 'gone' })
})

t.test('connect re-reports every known status; nothing is lost while disconnected', async t => {
  const { ex, agent } = setup()
  agent.receive(assign([{ task: task('t1') }, { task: task('t2') }]))
  await settle()
  agent.disconnect()
  ex.emit('t1', { state: 'running', message: 'started' })
  await settle()
  const again: UpMessage[] = []
  agent.connect(m => again.push(m))
  await settle()
  const updates = again.flatMap(m => (m.t === 'status' ? m.updates : []))
  const latest = new Map(updates.map(u => [u.id, u.status.State]))
  t.same(Object.fromEntries(latest), { t1: 'running', t2: 'accepted' })
})

t.test('logs: lines stream in batches, then logs-end; errors and cancels end it', async t => {
  const { ex, agent, sent } = setup()
  let seenOpts: LogOptions | undefined
  const line = (text: string): LogLine => ({ time: NOW, stream: 'stdout', text })
  ex.logs = async (id, opts, onLine) => {
    seenOpts = opts
    for (let i = 0; i < (id === 'big' ? 501 : 2); i++) onLine(line(`${id}-${i}`))
  }
  agent.receive({ t: 'logs', req: 7, taskIds: ['a', 'b'], opts: { tail: 5 } })
  await settle()
  await new Promise(r => setTimeout(r, 30))
  t.same(seenOpts, { tail: 5 })
  const logs = sent.filter(m => m.t === 'log')
  t.same(
    logs.flatMap(m => (m.t === 'log' ? m.lines.map(l => `${l.task}:${l.line.text}`) : [])),
    ['a:a-0', 'a:a-1', 'b:b-0', 'b:b-1'],
  )
  t.same(sent.at(-1), { t: 'logs-end', req: 7 })

  sent.length = 0
  agent.receive({ t: 'logs', req: 8, taskIds: ['big'], opts: {} })
  await settle()
  const batches = sent.filter(m => m.t === 'log').map(m => (m.t === 'log' ? m.lines.length : 0))
  t.same(batches, [500, 1], 'a full batch goes at once')
  t.same(sent.at(-1), { t: 'logs-end', req: 8 })

  sent.length = 0
  ex.logs = async () => {
    throw new Error('no such task')
  }
  agent.receive({ t: 'logs', req: 9, taskIds: ['x'], opts: {} })
  await settle()
  t.same(sent, [{ t: 'logs-end', req: 9, error: 'no such task' }])

  // Follow until cancelled: the abort is not an error.
  sent.length = 0
  ex.logs = (_id, _o, onLine, signal) =>
    new Promise((resolve, reject) => {
      onLine(line('first'))
      signal.addEventListener('abort', () => reject(new Error('aborted')))
    })
  agent.receive({ t: 'logs', req: 10, taskIds: ['f'], opts: { follow: true } })
  await settle()
  agent.receive({ t: 'logs-cancel', req: 10 })
  await settle()
  t.same(sent.map(m => m.t), ['log', 'logs-end'])
  t.same(sent.at(-1), { t: 'logs-end', req: 10 })

  // close() ends follows too.
  sent.length = 0
  agent.receive({ t: 'logs', req: 11, taskIds: ['f'], opts: { follow: true } })
  await settle()
  agent.close()
  await settle()
  t.same(sent, [], 'nothing is sent after close')
})

t.test('junk messages are ignored', async t => {
  const { agent, sent, ex } = setup()
  agent.receive(null)
  agent.receive('x')
  agent.receive({ t: 'assign' })
  agent.receive({ t: 'logs-cancel', req: 99 })
  await settle()
  t.same(sent, [])
  t.same(ex.calls, [])
})

t.test('secrets reach the executor as files; the default mode is left out', async t => {
  const { ex, agent } = setup()
  const spec = {
    ContainerSpec: {
      Image: 'busybox',
      Secrets: [
        { SecretID: 's1', SecretName: 'db', File: { Name: 'db', Mode: 0o444 } },
        { SecretID: 's2', SecretName: 'api', File: { Name: 'api.txt', Mode: 0o400 } },
        { SecretID: 's3', SecretName: 'plain' },
        { SecretID: 'missing', SecretName: 'missing' },
      ],
    },
  }
  const b64 = (s: string) => Buffer.from(s).toString('base64')
  agent.receive(assign([{ task: task('t1', { Spec: spec }) }], { s1: b64('one'), s2: b64('two'), s3: b64('three') }))
  await settle()
  t.same(ex.started.get('t1')!.task.secrets, [
    { name: 'db', data: Buffer.from('one') },
    { name: 'api.txt', data: Buffer.from('two'), mode: 0o400 },
    { name: 'plain', data: Buffer.from('three') },
  ])
})

t.test('SWARMD_VIP_<NAME> for services sharing a network, not the ingress one', async t => {
  const { ex, agent } = setup()
  const routing: Routing = {
    dataPathPort: 4789,
    networks: [
      { id: 'ing', vni: 4096, ingress: true },
      { id: 'back', vni: 4097, ingress: false },
      { id: 'other', vni: 4098, ingress: false },
    ],
    services: [
      { id: 's1', name: 'db-main.v2', labels: {}, ports: [], vips: [{ network: 'ing', loopback: '127.1.0.2' }, { network: 'back', loopback: '127.1.1.2' }] },
      { id: 's2', name: 'edge', labels: {}, ports: [], vips: [{ network: 'ing', loopback: '127.1.0.3' }] },
      { id: 's3', name: 'far', labels: {}, ports: [], vips: [{ network: 'other', loopback: '127.1.2.2' }] },
    ],
  }
  const spec = { ContainerSpec: { Image: 'busybox', Env: ['A=1'] } }
  const global = task('t3')
  delete global.Slot
  agent.receive(assign([{ task: task('t1', { Spec: spec }), networks: ['ing', 'back'] }, { task: task('t2'), networks: ['ing'] }, { task: global, networks: ['other'] }], {}, routing))
  await settle()
  t.same(ex.started.get('t1')!.task.spec.ContainerSpec.Env, ['SWARMD_VIP_DB_MAIN_V2=127.1.1.2', 'A=1'])
  t.equal(ex.started.get('t2')!.task.spec.ContainerSpec.Env, undefined, 'no env added when no service shares a network')
  t.same(ex.started.get('t3')!.task.spec.ContainerSpec.Env, ['SWARMD_VIP_FAR=127.1.2.2'])
  t.equal(ex.started.get('t3')!.task.slot, 0, "a global service's task has slot 0")
})

t.test('the mesh: running tasks announced, withdrawn (drained) before stop, port conflicts shown as Err', async t => {
  const { mesh, m, calls, running } = fakeMesh()
  const { ex, agent, last } = setup({ mesh })
  const ports: PortConfig[] = [{ TargetPort: 80, PublishedPort: 8080, Protocol: 'tcp', PublishMode: 'ingress' }]
  agent.receive(assign([{ task: task('t1'), ports, networks: ['ing'] }]))
  await settle()
  t.same(calls, ['sync'])
  const ps: PortStatus[] = [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }]
  ex.emit('t1', { state: 'running', message: 'started', ports: ps })
  await settle()
  t.same(running, [{ id: 't1', serviceId: 'svc1', serviceName: 'web', ports, networks: ['ing'], addresses: {}, status: ps }])
  t.notOk(last('t1')!.PortStatus, 'ingress ports are not in the task status')

  // The mesh could not listen on the published port: the task shows it.
  m.conflicts.set('svc1', 'cannot listen on 0.0.0.0:8080/tcp: port is already allocated')
  agent.receive(assign([{ task: task('t1', {}, 'running'), ports, networks: ['ing'] }]))
  await settle()
  t.match(last('t1'), { State: 'running', Err: 'cannot listen on 0.0.0.0:8080/tcp: port is already allocated' })
  m.conflicts.clear()
  agent.receive(assign([{ task: task('t1', {}, 'running'), ports, networks: ['ing'] }]))
  await settle()
  t.match(last('t1'), { State: 'running' })
  t.notOk(last('t1')!.Err, 'the error goes once the port is free')

  // An event while a conflict stands carries it as Err.
  m.conflicts.set('svc1', 'cannot listen on 0.0.0.0:8080/tcp: port is already allocated')
  ex.emit('t1', { state: 'running', message: 'still', ports: ps })
  await settle()
  t.equal(last('t1')!.Err, 'cannot listen on 0.0.0.0:8080/tcp: port is already allocated')
  m.conflicts.clear()

  calls.length = 0
  ex.calls.length = 0
  await agent.stopAll()
  t.same(calls, ['stopping t1 true'])
  t.same(ex.calls, ['stop t1', 'remove t1'], 'withdrawn before stopped')

  // A task that ends by itself is withdrawn without the drain.
  agent.receive(assign([{ task: task('t2'), ports, networks: ['ing'] }], {}, undefined))
  await settle()
  calls.length = 0
  ex.emit('t2', { state: 'failed', message: 'exit', err: 'task: non-zero exit (1)', exitCode: 1 })
  await settle()
  t.same(calls, ['stopping t2 false'])
  t.match(last('t2'), { State: 'failed', Err: 'task: non-zero exit (1)', ContainerStatus: { ExitCode: 1 } })
})

t.test("the kernel data plane: a task's addresses reach the mesh, its networks the executor, VIPs are the VIPs", async t => {
  const { mesh, m, running } = fakeMesh()
  const net = { ID: 'be', Spec: { Name: 'be', Labels: {}, DriverConfiguration: { Name: 'overlay' as const }, Scope: 'swarm' as const }, DriverState: { Name: 'overlay' as const, Options: {} }, IPAMOptions: { Driver: { Name: 'default' as const }, Configs: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] } }
  const given: unknown[] = []
  // Ingress first (a task with a published port): it has no names, so it is not the task's resolver.
  const placed = [
    { network: 'ing', bridge: 'swbr4096', address: '10.0.0.5/24', gateway: '10.0.0.1', mtu: 1450, ingress: true },
    { network: 'be', bridge: 'swbr4097', address: '10.0.1.5/24', gateway: '10.0.1.1', mtu: 1450 },
  ]
  Object.assign(m, {
    taskNetworks: (a: unknown) => (given.push(a), placed),
    vipAddress: (v: { addr?: string }) => v.addr,
  })
  // The node's DNS answers on the host's loopback, which a task in its own namespace cannot reach.
  const dns = { address: '127.0.0.11:53', sync: () => undefined } as unknown as NodeDns
  const { ex, agent } = setup({ mesh, dns })
  const r: Routing = { ...ROUTING, networks: [{ id: 'be', vni: 4097, ingress: false }], services: [{ id: 'svc2', name: 'api', labels: {}, ports: [], vips: [{ network: 'be', loopback: '127.1.1.2', addr: '10.0.1.2' }] }] }
  agent.receive({ t: 'assign', tasks: [{ task: task('t1', { NetworksAttachments: [{ Network: net, Addresses: ['10.0.1.5/24'] }] }), serviceName: 'web', ports: [], networks: ['be'] }], secrets: {}, routing: r })
  await settle()
  const et = ex.started.get('t1')!.task
  t.same(et.networks, placed)
  t.same(given, [[{ Network: net, Addresses: ['10.0.1.5/24'] }]])
  t.ok(et.spec.ContainerSpec.Env?.includes('SWARMD_VIP_API=10.0.1.2'), 'the VIP itself, not its loopback twin')
  t.ok(et.spec.ContainerSpec.Env?.includes('SWARMD_DNS=10.0.1.1:53'), "the DNS at the task's gateway, as its resolv.conf says")
  ex.emit('t1', { state: 'running', message: 'started' })
  await settle()
  t.same(running[0]?.addresses, { be: '10.0.1.5' })
})
