import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import type { LogLine } from '../types/logs.js'
import type { Session } from '../control/session.js'
import { Dispatcher } from './dispatcher.js'
import type { DownMessage, Routing } from '../types/session.js'
import { Store } from './store.js'
import type { Service } from '../types/service.js'
import type { Task, TaskState, TaskStatus } from '../types/task.js'

const NOW = '2024-01-01T00:00:00.000Z'

/** A session in memory: what the dispatcher sends, and `end()` to play the stream ending. */
function fakeSession() {
  const sent: DownMessage[] = []
  let end!: () => void
  const closed = new Promise<void>(r => (end = r))
  let closes = 0
  const s: Session & { sent: DownMessage[]; end: () => void; closes: () => number } = {
    sent,
    send: m => void sent.push(m as DownMessage),
    closed,
    close: async () => {
      closes++
      end()
    },
    end: () => end(),
    closes: () => closes,
  }
  return s
}

function svc(id: string, name: string, over: Partial<Service> = {}): Service {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: NOW,
    UpdatedAt: NOW,
    Spec: { Name: name, TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, Mode: { Replicated: { Replicas: 1 } } },
    Endpoint: { Spec: {}, Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 30000, PublishMode: 'ingress' }] },
    ...over,
  }
}

function task(id: string, node: string, state: TaskState, desired: TaskState, secrets: string[] = [], serviceId = 's1'): Task {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: NOW,
    UpdatedAt: NOW,
    Labels: {},
    Spec: { ContainerSpec: { Image: 'busybox', Secrets: secrets.map(s => ({ SecretID: s, SecretName: `name-${s}` })) } },
    ServiceID: serviceId,
    Slot: 1,
    NodeID: node,
    Status: { Timestamp: NOW, State: state, Message: state },
    DesiredState: desired,
  }
}

const ROUTING: Routing = {
  dataPathPort: 4789,
  networks: [{ id: 'ing', vni: 4096, ingress: true }],
  services: [{ id: 's1', name: 'web', labels: {}, ports: [], vips: [{ network: 'ing', loopback: '127.1.0.2' }] }],
}

async function setup(t: Test, routing: () => Routing = () => ROUTING) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-dispatcher-'))
  const store = await Store.open(dir)
  const secretCalls: string[][] = []
  const reports: { nodeId: string; updates: { id: string; status: TaskStatus }[] }[] = []
  let reportError: Error | undefined
  let routingCalls = 0
  const withdrawn: string[] = []
  const d = new Dispatcher({
    store,
    routing: () => {
      routingCalls++
      return routing()
    },
    secrets: ids => {
      secretCalls.push([...ids].sort())
      return Object.fromEntries(ids.map(id => [id, Buffer.from(`value-${id}`).toString('base64')]))
    },
    configs: ids => Object.fromEntries(ids.map(id => [id, Buffer.from(`config-${id}`).toString('base64')])),
    report: async (nodeId, updates) => {
      if (reportError) throw reportError
      reports.push({ nodeId, updates })
    },
    keysWithdrawn: id => void withdrawn.push(id),
    log: pino({ level: 'silent' }),
  })
  t.teardown(async () => {
    await d.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const put = (table: string, o: { ID: string }) => store.commit([{ op: 'put', table, id: o.ID, value: o }])
  return {
    d,
    store,
    put,
    secretCalls,
    reports,
    withdrawn,
    setReportError: (e: Error | undefined) => (reportError = e),
    routingCalls: () => routingCalls,
  }
}

const tick = () => new Promise(r => setImmediate(r))
const assignOf = (m: DownMessage | undefined) => {
  if (m?.t !== 'assign') throw new Error(`not an assignment: ${JSON.stringify(m)}`)
  return m
}

t.test('attach pushes the node its tasks, with only the secrets its running tasks use', async t => {
  const { d, put, secretCalls } = await setup(t)
  await put('services', svc('s1', 'web'))
  await put('tasks', task('a', 'n1', 'running', 'running', ['sec1', 'sec2']))
  await put('tasks', task('b', 'n1', 'running', 'shutdown', ['sec3']))
  await put('tasks', task('c', 'n1', 'failed', 'running', ['sec4']))
  await put('tasks', task('d', 'n1', 'complete', 'shutdown', ['sec5']))
  await put('tasks', task('e', 'n2', 'running', 'running', ['sec6']))
  await put('tasks', task('f', 'n1', 'assigned', 'running', [], 'gone'))
  const s = fakeSession()
  t.notOk(d.connected('n1'))
  d.attach('n1', s)
  t.ok(d.connected('n1'))
  t.equal(s.sent.length, 1)
  const m = assignOf(s.sent[0])
  t.same(
    m.tasks.map(x => x.task.ID),
    ['a', 'b', 'c', 'd', 'f'],
    "the node's tasks, the ended ones of the history too (the node keeps their logs while they are listed)",
  )
  t.same(m.tasks[0], { task: task('a', 'n1', 'running', 'running', ['sec1', 'sec2']), serviceName: 'web', ports: svc('s1', 'web').Endpoint.Ports, networks: ['ing'] })
  t.same(m.tasks[4], { task: task('f', 'n1', 'assigned', 'running', [], 'gone'), serviceName: '', ports: [], networks: [] }, 'a task whose service is gone')
  t.same(secretCalls, [['sec1', 'sec2', 'sec4']])
  t.same(Object.keys(m.secrets).sort(), ['sec1', 'sec2', 'sec4'])
  t.equal(Buffer.from(m.secrets.sec1!, 'base64').toString(), 'value-sec1')
  t.same(m.routing, ROUTING)
  t.notOk(JSON.stringify(m).includes('sec6'), "another node's secrets are not sent")
})

t.test('configs go, like secrets, only to the nodes whose running tasks use them', async t => {
  const { d, put } = await setup(t)
  await put('services', svc('s1', 'web'))
  const withConfigs = (x: Task, ids: string[]): Task => ({ ...x, Spec: { ContainerSpec: { ...x.Spec.ContainerSpec, Configs: ids.map(id => ({ ConfigID: id, ConfigName: `name-${id}` })) } } })
  await put('tasks', withConfigs(task('a', 'n1', 'running', 'running'), ['cfg1']))
  await put('tasks', withConfigs(task('b', 'n1', 'running', 'shutdown'), ['cfg2']))
  await put('tasks', withConfigs(task('c', 'n2', 'running', 'running'), ['cfg3']))
  const s = fakeSession()
  d.attach('n1', s)
  const m = assignOf(s.sent[0])
  t.same(Object.keys(m.configs), ['cfg1'], 'not those of a task being stopped, nor of another node')
  t.equal(Buffer.from(m.configs.cfg1!, 'base64').toString(), 'config-cfg1')
  t.same(m.secrets, {})
})

t.test('pushAll sends only what changed', async t => {
  const { d, put, routingCalls } = await setup(t)
  await put('services', svc('s1', 'web'))
  await put('tasks', task('a', 'n1', 'assigned', 'running'))
  const s1 = fakeSession()
  const s2 = fakeSession()
  d.attach('n1', s1)
  d.attach('n2', s2)
  t.equal(s1.sent.length, 1)
  t.equal(s2.sent.length, 1)
  t.same(assignOf(s2.sent[0]).tasks, [])
  const before = routingCalls()
  d.pushAll()
  t.equal(routingCalls(), before + 1, 'the routing is computed once for all nodes')
  t.equal(s1.sent.length, 1)
  t.equal(s2.sent.length, 1)
  await put('tasks', task('b', 'n2', 'assigned', 'running'))
  d.pushAll()
  t.equal(s1.sent.length, 1, 'n1 saw no change')
  t.equal(s2.sent.length, 2)
  t.same(
    assignOf(s2.sent[1]).tasks.map(x => x.task.ID),
    ['b'],
  )
})

t.test('status reaches report(); log and junk messages without a request are ignored', async t => {
  const { d, reports, setReportError } = await setup(t)
  const s = fakeSession()
  const onMsg = d.attach('n1', s)
  const st: TaskStatus = { Timestamp: NOW, State: 'running', Message: 'started' }
  onMsg({ t: 'status', updates: [{ id: 'a', status: st }] })
  await tick()
  t.same(reports, [{ nodeId: 'n1', updates: [{ id: 'a', status: st }] }])
  setReportError(new Error('store closed'))
  onMsg({ t: 'status', updates: [{ id: 'b', status: st }] })
  await tick()
  t.equal(reports.length, 1, 'a failed report is logged, not thrown')
  onMsg(null)
  onMsg(7)
  onMsg({ t: 'status' })
  onMsg({ t: 'log', req: 99, lines: [{ task: 'a', line: { time: NOW, stream: 'stdout', text: 'x' } }] })
  onMsg({ t: 'logs-end', req: 99 })
  t.pass('ignored')
})

t.test('logs: a round trip with the node', async t => {
  const { d } = await setup(t)
  const s = fakeSession()
  const onMsg = d.attach('n1', s)
  const got: string[] = []
  const ac = new AbortController()
  const p = d.logs('n1', ['a', 'b'], { tail: 10 }, (task, l) => got.push(`${task}:${l.text}`), ac.signal)
  const req = s.sent.at(-1)
  t.match(req, { t: 'logs', taskIds: ['a', 'b'], opts: { tail: 10 } })
  const n = (req as { req: number }).req
  const line = (text: string): LogLine => ({ time: NOW, stream: 'stdout', text })
  onMsg({ t: 'log', req: n, lines: [{ task: 'a', line: line('one') }, { task: 'b', line: line('two') }] })
  onMsg({ t: 'log', req: n + 1000, lines: [{ task: 'a', line: line('other request') }] })
  onMsg({ t: 'logs-end', req: n })
  await p
  t.same(got, ['a:one', 'b:two'])
  // Ended requests see no more lines.
  onMsg({ t: 'log', req: n, lines: [{ task: 'a', line: line('late') }] })
  t.same(got, ['a:one', 'b:two'])

  const p2 = d.logs('n1', ['a'], {}, () => undefined, ac.signal)
  const n2 = (s.sent.at(-1) as { req: number }).req
  t.not(n2, n, 'each request has its own number')
  onMsg({ t: 'logs-end', req: n2, error: 'task a not found' })
  await t.rejects(p2, { message: 'task a not found' })
})

t.test('logs: abort sends logs-cancel; a closed session ends the request; no session is an error', async t => {
  const { d } = await setup(t)
  const s = fakeSession()
  d.attach('n1', s)
  const ac = new AbortController()
  const p = d.logs('n1', ['a'], { follow: true }, () => undefined, ac.signal)
  const n = (s.sent.at(-1) as { req: number }).req
  ac.abort()
  await p
  t.same(s.sent.at(-1), { t: 'logs-cancel', req: n })

  const p2 = d.logs('n1', ['a'], { follow: true }, () => undefined, new AbortController().signal)
  s.end()
  await p2
  t.pass('resolved when the session closed')
  await tick()
  t.notOk(d.connected('n1'), 'the closed session is forgotten')
  await t.rejects(d.logs('n1', ['a'], {}, () => undefined, new AbortController().signal), { message: 'node n1 is not connected' })
})

t.test('a second attach for the node closes the first', async t => {
  const { d, put } = await setup(t)
  await put('tasks', task('a', 'n1', 'assigned', 'running'))
  const first = fakeSession()
  const second = fakeSession()
  d.attach('n1', first)
  d.attach('n1', second)
  t.equal(first.closes(), 1)
  t.equal(second.sent.length, 1, 'the new session gets the assignments even though they did not change')
  await tick()
  t.ok(d.connected('n1'), "the first session's end does not forget the second")
  await put('tasks', task('b', 'n1', 'assigned', 'running'))
  d.pushAll()
  t.equal(first.sent.length, 1)
  t.equal(second.sent.length, 2)
  await d.close()
  t.equal(second.closes(), 1)
  t.notOk(d.connected('n1'))
})

t.test("each node gets its own addresses on the networks, and its tasks the networks they have addresses on", async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-dispatcher-'))
  const store = await Store.open(dir)
  const d = new Dispatcher({
    store,
    routing: () => ROUTING,
    nodeAttachments: () => [
      { NodeID: 'n1', NetworkID: 'ing', Addr: '10.0.0.254/24' },
      { NodeID: 'n1', NetworkID: 'be', Addr: '10.0.1.254/24' },
      { NodeID: 'n2', NetworkID: 'ing', Addr: '10.0.0.253/24' },
    ],
    secrets: () => ({}),
    configs: () => ({}),
    report: async () => undefined,
    log: pino({ level: 'silent' }),
  })
  t.teardown(async () => {
    await d.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const attached = { ...task('a', 'n1', 'running', 'running'), NetworksAttachments: [{ Network: { ID: 'be' }, Addresses: ['10.0.1.250/24'] }] } as unknown as Task
  await store.commit([
    { op: 'put', table: 'services', id: 's1', value: svc('s1', 'web') },
    { op: 'put', table: 'tasks', id: 'a', value: attached },
  ])
  const s1 = fakeSession()
  const s3 = fakeSession()
  d.attach('n1', s1)
  d.attach('n3', s3)
  const m = assignOf(s1.sent[0])
  t.same(m.routing.nodeAddrs, { ing: '10.0.0.254/24', be: '10.0.1.254/24' })
  t.same(m.tasks[0]?.networks, ['be'], 'from its attachments, not its VIPs')
  t.equal(assignOf(s3.sent[0]).routing.nodeAddrs, undefined, 'a node without addresses gets none')
})

const ring = (first: number) => [first, first + 1, first + 2].map(tag => ({ tag, key: Buffer.alloc(32, tag).toString('base64') }))
const SEC_KEYS = ring(4)

/** Encrypted ingress, an encrypted network `sec` (service s1's VIP is there) and a plain one. */
const SEALED: Routing = {
  dataPathPort: 4789,
  networks: [
    { id: 'ing', vni: 4096, ingress: true, encrypted: true, keys: ring(1) },
    { id: 'sec', vni: 4097, ingress: false, encrypted: true, keys: SEC_KEYS },
    { id: 'plain', vni: 4098, ingress: false },
  ],
  services: [
    { id: 's1', name: 'web', labels: {}, ports: [], vips: [{ network: 'sec', loopback: '127.1.1.2' }] },
    { id: 's2', name: 'other', labels: {}, ports: [], vips: [{ network: 'plain', loopback: '127.1.2.2' }] },
  ],
}

const netOf = (m: DownMessage | undefined, id: string) => assignOf(m).routing.networks.find(n => n.id === id)

t.test("an encrypted network's keys go only to the nodes with tasks on it; the others know it is encrypted", async t => {
  const { d, put, withdrawn } = await setup(t, () => SEALED)
  await put('services', svc('s1', 'web'))
  await put('services', svc('s2', 'other'))
  await put('tasks', task('a', 'n1', 'running', 'running'))
  await put('tasks', task('b', 'n2', 'running', 'running', [], 's2'))
  // n3's task is not on sec by its service, but its attachments put it there.
  await put('tasks', { ...task('c', 'n3', 'assigned', 'running', [], 's2'), NetworksAttachments: [{ Network: { ID: 'sec' }, Addresses: ['10.0.1.9/24'] }] } as unknown as Task)
  // n4's task on sec has ended: nothing there is to run.
  await put('tasks', task('e', 'n4', 'failed', 'shutdown'))
  const [s1, s2, s3, s4] = [fakeSession(), fakeSession(), fakeSession(), fakeSession()]
  d.attach('n1', s1)
  d.attach('n2', s2)
  d.attach('n3', s3)
  d.attach('n4', s4)
  t.same(netOf(s1.sent[0], 'sec'), SEALED.networks[1], 'a node with a task on it gets its keys')
  t.same(netOf(s3.sent[0], 'sec'), SEALED.networks[1], 'so does one whose task has an address there')
  for (const [n, s] of [['n2', s2], ['n4', s4]] as const) {
    t.same(netOf(s.sent[0], 'sec'), { id: 'sec', vni: 4097, ingress: false, encrypted: true }, `${n}: no task to run there: marked encrypted, no keys`)
    t.same(netOf(s.sent[0], 'ing'), SEALED.networks[0], `${n}: the encrypted ingress network's keys go to every node (each answers published ports over the sealed tunnel)`)
    t.same(netOf(s.sent[0], 'plain'), SEALED.networks[2], `${n}: a plain network as it is`)
  }
  for (const k of SEC_KEYS) t.notOk(JSON.stringify([...s2.sent, ...s4.sent]).includes(k.key), `key ${k.tag} is nowhere in what n2 and n4 were sent`)
  d.pushAll()
  t.same(withdrawn, [], 'no one left a network: no rotation')
})

t.test('a node keeps the keys while its last task there stops, then loses them and the network is reported for rotation', async t => {
  const { d, put, withdrawn } = await setup(t, () => SEALED)
  await put('services', svc('s1', 'web'))
  await put('tasks', task('a', 'n1', 'running', 'running'))
  await put('tasks', task('b', 'n2', 'running', 'running'))
  const s1 = fakeSession()
  const s2 = fakeSession()
  const onMsg = d.attach('n1', s1)
  d.attach('n2', s2)
  t.ok(netOf(s1.sent.at(-1), 'sec')?.keys)

  await put('tasks', task('a', 'n1', 'running', 'shutdown'))
  d.pushAll()
  t.ok(netOf(s1.sent.at(-1), 'sec')?.keys, 'told to stop, still running: its draining connections keep their keys')
  t.same(withdrawn, [])

  // The node reports the task stopped; the orchestrator records it (here: the store, as report() would).
  const stopped: TaskStatus = { Timestamp: NOW, State: 'shutdown', Message: 'shutdown' }
  await put('tasks', task('a', 'n1', 'shutdown', 'shutdown'))
  const pushes = s1.sent.length
  onMsg({ t: 'status', updates: [{ id: 'a', status: stopped }] })
  await tick()
  await tick()
  t.equal(s1.sent.length, pushes + 1, 'pushed at once, without waiting for another change')
  t.same(netOf(s1.sent.at(-1), 'sec'), { id: 'sec', vni: 4097, ingress: false, encrypted: true }, 'its last task there stopped: no keys')
  t.ok(netOf(s1.sent.at(-1), 'ing')?.keys, 'ingress keys stay')
  t.same(withdrawn, ['sec'], 'the network is reported once, so its keys rotate past what the node holds')
  t.ok(netOf(s2.sent.at(-1), 'sec')?.keys, 'the other node keeps them')

  d.pushAll()
  t.same(withdrawn, ['sec'], 'and only once')
})

t.test("a node that is gone loses the keys once its tasks are told to stop; a removed network's holders are forgotten", async t => {
  let routing = SEALED
  const { d, put, withdrawn } = await setup(t, () => routing)
  await put('services', svc('s1', 'web'))
  await put('tasks', task('a', 'n1', 'running', 'running'))
  await put('tasks', task('b', 'n2', 'running', 'running'))
  const s1 = fakeSession()
  d.attach('n1', s1)
  d.attach('n2', fakeSession())
  s1.end()
  await tick()
  d.pushAll()
  t.same(withdrawn, [], 'disconnected with a task to run: still owed the keys (it comes back)')
  await put('tasks', task('a', 'n1', 'running', 'shutdown'))
  d.pushAll()
  t.same(withdrawn, ['sec'], 'its task told to stop (its node is down): no draining is waited for')

  routing = { ...SEALED, networks: SEALED.networks.filter(n => n.id !== 'sec') }
  await put('tasks', task('b', 'n2', 'running', 'shutdown'))
  d.pushAll()
  t.same(withdrawn, ['sec'], 'a network that is gone needs no rotation')
})

t.test("a removed node (detach) is no longer tracked: its cut-off already rotates every network's keys", async t => {
  const { d, put, withdrawn } = await setup(t, () => SEALED)
  await put('services', svc('s1', 'web'))
  await put('tasks', task('a', 'n1', 'running', 'running'))
  d.attach('n1', fakeSession())
  await d.detach('n1')
  await put('tasks', task('a', 'n1', 'running', 'shutdown'))
  d.pushAll()
  t.same(withdrawn, [])
})
