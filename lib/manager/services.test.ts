import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { KeyObject } from 'node:crypto'
import { generateKeyPair } from '../control/identity.js'
import { newDataKey, openDataKey } from './data-key.js'
import { swarmError } from '../test-helpers.test-helper.js'
import { Configs } from './configs.js'
import { Networks } from './networks.js'
import { Secrets } from './secrets.js'
import { parseFilters, Services } from './services.js'
import { Store } from './store.js'
import type { Task, TaskState } from '../types/task.js'

/** The data key as a manager opens it: sealed in the store under its node key (another key cannot open it). */
const dataKey = (store: Store, nodeKey: KeyObject) => () => openDataKey(store, { nodeKey })!

async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-services-'))
  const store = await Store.open(dir)
  const nodeKey = generateKeyPair().privateKey
  await store.commit([newDataKey({ nodeKey }).mutation])
  const secrets = new Secrets(store, dataKey(store, nodeKey))
  const configs = new Configs(store)
  const networks = new Networks(store)
  const ingress = await networks.ensureIngress()
  let kicks = 0
  const services = new Services({ store, secrets, configs, networks, kick: () => void kicks++ })
  t.teardown(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, store, nodeKey, secrets, configs, networks, ingress, services, kicks: () => kicks }
}

type Json = Record<string, unknown>
function body(name: string, o: { top?: Json; container?: Json; task?: Json; ports?: Json[] } = {}): Json {
  return {
    Name: name,
    TaskTemplate: { ContainerSpec: { Image: 'busybox', ...o.container }, ...o.task },
    ...(o.ports ? { EndpointSpec: { Ports: o.ports } } : {}),
    ...o.top,
  }
}


t.test('create: an ID, defaults, published ports from 30000, kicks the orchestrator', async t => {
  const { services, kicks } = await setup(t)
  const id = await services.create(body('web', { ports: [{ TargetPort: 80 }, { TargetPort: 443, PublishedPort: 8443 }, { TargetPort: 53, Protocol: 'udp' }] }))
  t.match(id, /^[a-z0-9]{25}$/)
  t.equal(kicks(), 1)
  const s = services.get('web')
  t.equal(s.ID, id)
  t.same(s.Version, { Index: 1 })
  t.same(s.Spec.Mode, { Replicated: { Replicas: 1 } })
  t.same(s.Endpoint.Ports, [
    { Protocol: 'tcp', TargetPort: 80, PublishedPort: 30000, PublishMode: 'ingress' },
    { Protocol: 'tcp', TargetPort: 443, PublishedPort: 8443, PublishMode: 'ingress' },
    { Protocol: 'udp', TargetPort: 53, PublishedPort: 30000, PublishMode: 'ingress' },
  ])
  t.equal(services.get(id.slice(0, 5)).ID, id, 'found by ID prefix')

  const id2 = await services.create(body('api', { ports: [{ TargetPort: 8080 }, { TargetPort: 9000, PublishMode: 'host' }] }))
  t.same(services.get(id2).Endpoint.Ports, [
    { Protocol: 'tcp', TargetPort: 8080, PublishedPort: 30001, PublishMode: 'ingress' },
    { Protocol: 'tcp', TargetPort: 9000, PublishedPort: 0, PublishMode: 'host' },
  ])

  const conflict = 'rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists'
  await t.rejects(services.create(body('web')), swarmError('conflict', conflict), "swarmkit's text")
  await t.rejects(services.create(body('WEB')), swarmError('conflict', conflict.replace('service web', 'service WEB')), 'names conflict whatever their case, as in swarmkit\'s store')
  await t.rejects(services.create(body('web2', { ports: [{ TargetPort: 1, PublishedPort: 30000 }] })), swarmError('invalid_argument', /port '30000' is already in use by service 'web'/))
  t.throws(() => services.get('nope'), swarmError('not_found', 'service nope not found'))
  t.equal(services.find(''), undefined)
  t.equal(services.list().length, 2)
})

t.test('an ambiguous ID prefix', async t => {
  const { services } = await setup(t)
  // IDs are random base36: with 37 services two share a first character.
  const ids: string[] = []
  for (let i = 0; i < 37; i++) ids.push(await services.create(body(`s${i}`)))
  const first = ids.map(i => i[0]!).find((c, i, all) => all.indexOf(c) !== i)!
  const n = ids.filter(i => i[0] === first).length
  t.throws(() => services.find(first), swarmError('invalid_argument', `service ${first} is ambiguous (${n} matches found)`))
})

t.test('update: versions, rolling updates, kept ports, refused changes', async t => {
  const { services, kicks, store } = await setup(t)
  const id = await services.create(body('web', { ports: [{ TargetPort: 80 }] }))
  await t.rejects(services.update(id, 5, body('web'), false), swarmError('unknown', 'rpc error: code = Unknown desc = update out of sequence'))

  // Replicas only: no rolling update.
  await services.update(id, 1, body('web', { ports: [{ TargetPort: 80 }], top: { Mode: { Replicated: { Replicas: 3 } } } }), false)
  let s = services.get(id)
  t.same(s.Version, { Index: 2 })
  t.same(s.Spec.Mode, { Replicated: { Replicas: 3 } })
  t.equal(s.UpdateStatus, undefined)
  t.equal(s.PreviousSpec?.TaskTemplate.ContainerSpec.Image, 'busybox', 'the previous spec is kept')
  t.same(s.PreviousSpec?.Mode, { Replicated: { Replicas: 1 } })
  t.equal(s.Endpoint.Ports?.[0]?.PublishedPort, 30000, 'the published port is kept')

  // The image changes: a rolling update, the old spec kept for rollback.
  await services.update(id, 2, body('web', { ports: [{ TargetPort: 80 }], container: { Image: 'busybox:2' }, top: { Mode: { Replicated: { Replicas: 3 } } } }), false)
  s = services.get(id)
  t.match(s.UpdateStatus, { State: 'updating', Message: 'update in progress', StartedAt: String })
  t.equal(s.PreviousSpec?.TaskTemplate.ContainerSpec.Image, 'busybox')
  t.equal(s.Spec.TaskTemplate.ContainerSpec.Image, 'busybox:2')
  t.equal(s.Endpoint.Ports?.[0]?.PublishedPort, 30000)
  t.equal(kicks(), 3)

  // Scaled after that update: the old update's status goes, so the CLI follows the new convergence.
  await services.update(id, 3, body('web', { ports: [{ TargetPort: 80 }], container: { Image: 'busybox:2' }, top: { Mode: { Replicated: { Replicas: 5 } } } }), false)
  s = services.get(id)
  t.equal(s.UpdateStatus, undefined, 'no UpdateStatus after a scale')
  t.same(s.Spec.Mode, { Replicated: { Replicas: 5 } })

  await t.rejects(services.update(id, 4, body('web2'), false), swarmError('invalid_argument', 'rpc error: code = Unimplemented desc = renaming services is not supported'))
  await t.rejects(services.update(id, 4, body('web', { top: { Mode: { Global: {} } } }), false), swarmError('invalid_argument', 'rpc error: code = Unimplemented desc = service mode change is not allowed'))
  await t.rejects(services.update('nope', 1, body('nope'), false), swarmError('not_found', 'service nope not found'))
  t.same(services.get(id).Version, { Index: 4 }, 'refused updates change nothing')
})

t.test('rollback swaps back to the previous spec', async t => {
  const { services } = await setup(t)
  const id = await services.create(body('web'))
  await t.rejects(services.update(id, 1, undefined, true), swarmError('unknown', `rpc error: code = FailedPrecondition desc = service ${id} does not have a previous spec`))
  await services.update(id, 1, body('web', { container: { Image: 'busybox:2' } }), false)
  await services.update(id, 2, undefined, true)
  const s = services.get(id)
  t.equal(s.Spec.TaskTemplate.ContainerSpec.Image, 'busybox')
  t.equal(s.PreviousSpec?.TaskTemplate.ContainerSpec.Image, 'busybox:2')
  t.match(s.UpdateStatus, { State: 'rollback_started', Message: 'manually requested rollback' })
  t.same(s.Version, { Index: 3 })
})

t.test('VIPs: ingress for published ports, one per --network, none for dnsrr; released on remove', async t => {
  const { services, networks, ingress, store } = await setup(t)
  const back = (await networks.create({ Name: 'back', Driver: 'overlay' })).Id
  const pub = await services.create(body('pub', { ports: [{ TargetPort: 80 }] }))
  t.same(
    services.get(pub).Endpoint.VirtualIPs?.map(v => v.NetworkID),
    [ingress.ID],
  )
  t.match(services.get(pub).Endpoint.VirtualIPs?.[0]?.Addr, /^10\.0\.0\.\d+\/24$/)

  const both = await services.create(body('both', { ports: [{ TargetPort: 80 }], task: { Networks: [{ Target: 'back' }] } }))
  t.same(
    services.get(both).Endpoint.VirtualIPs?.map(v => v.NetworkID),
    [ingress.ID, back],
  )
  const plain = await services.create(body('plain'))
  t.equal(services.get(plain).Endpoint.VirtualIPs, undefined, 'no network, no VIP')
  const dns = await services.create(body('dns', { task: { Networks: [{ Target: back }] }, top: { EndpointSpec: { Mode: 'dnsrr' } } }))
  t.equal(services.get(dns).Endpoint.VirtualIPs, undefined)
  t.same(networks.vips(dns), [])

  // Leaving the network on update drops its VIP.
  await services.update(both, 1, body('both', { ports: [{ TargetPort: 80 }] }), false)
  t.same(
    services.get(both).Endpoint.VirtualIPs?.map(v => v.NetworkID),
    [ingress.ID],
  )
  await services.update(both, 2, body('both'), false)
  t.equal(services.get(both).Endpoint.VirtualIPs, undefined)
  t.same(networks.vips(both), [])

  t.equal(networks.vips(pub).length, 1)
  await services.remove(pub)
  t.same(networks.vips(pub), [])
  t.same(store.list('vips').length, 0)
  t.equal(services.find(pub), undefined)

  await t.rejects(
    services.create(body('bad', { task: { Networks: [{ Target: 'ingress' }] } })),
    swarmError('invalid_argument', 'rpc error: code = InvalidArgument desc = Service cannot be explicitly attached to the ingress network "ingress"'),
  )
})

t.test('publishing without an ingress network is refused', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-services-'))
  const store = await Store.open(dir)
  t.teardown(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const services = new Services({ store, secrets: new Secrets(store, () => newDataKey({ nodeKey: generateKeyPair().privateKey }).box), configs: new Configs(store), networks: new Networks(store), kick: () => undefined })
  await t.rejects(
    services.create(body('web', { ports: [{ TargetPort: 80 }] })),
    swarmError('failed_precondition', 'rpc error: code = FailedPrecondition desc = service needs ingress network, but no ingress network is present'),
  )
})

const NOW = Date.parse('2024-01-01T00:00:00.000Z')
function task(id: string, serviceId: string, o: { slot?: number; node?: string; desired?: TaskState; state?: TaskState; age?: number } = {}): Task {
  const at = new Date(NOW + (o.age ?? 0)).toISOString()
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: at,
    UpdatedAt: at,
    Labels: {},
    Spec: { ContainerSpec: { Image: 'busybox' } },
    ServiceID: serviceId,
    ...(o.slot !== undefined ? { Slot: o.slot } : {}),
    ...(o.node ? { NodeID: o.node } : {}),
    Status: { Timestamp: at, State: o.state ?? 'running', Message: '' },
    DesiredState: o.desired ?? 'running',
  }
}

t.test('tasks(): Docker filters', async t => {
  const { services, store } = await setup(t)
  const web = await services.create(body('web', { top: { Mode: { Replicated: { Replicas: 2 } }, Labels: { tier: 'front', team: 'a' } } }))
  const api = await services.create(body('api', { top: { Mode: { Global: {} } } }))
  const all = [
    task('aaa1', web, { slot: 2, node: 'node1' }),
    task('aaa2', web, { slot: 1, node: 'node2', age: 1 }),
    task('bbb1', web, { slot: 1, node: 'node2', desired: 'shutdown', state: 'shutdown', age: 0 }),
    task('bbb2', api, { node: 'node1', desired: 'ready', state: 'complete' }),
    task('ccc1', api, { node: 'node2', desired: 'remove', state: 'failed' }),
    task('ccc2', api, { desired: 'accepted', state: 'pending' }),
  ]
  await store.commit(all.map(x => ({ op: 'put' as const, table: 'tasks', id: x.ID, value: x })))
  const f = (o: Record<string, string[]>) =>
    services
      .tasks(new Map(Object.entries(o)), ref => ({ n1: 'node1', n2: 'node2', node1: 'node1', node2: 'node2' })[ref])
      .map(x => x.ID)
  t.same(f({}), ['bbb2', 'ccc1', 'ccc2', 'aaa2', 'bbb1', 'aaa1'], 'by slot, then newest first')
  t.same(f({ service: ['web'] }).sort(), ['aaa1', 'aaa2', 'bbb1'])
  t.same(f({ service: [api] }).sort(), ['bbb2', 'ccc1', 'ccc2'])
  t.throws(() => f({ service: ['nope'] }), swarmError('not_found', 'service nope not found'), 'a service that is not there: moby resolves it first')
  t.same(f({ node: ['n1'] }).sort(), ['aaa1', 'bbb2'])
  t.same(f({ node: ['node2'] }).sort(), ['aaa2', 'bbb1', 'ccc1'])
  t.throws(() => f({ node: ['n9'] }), swarmError('not_found', 'node n9 not found'))
  t.same(f({ 'desired-state': ['running'] }).sort(), ['aaa1', 'aaa2'], 'desired states match exactly, as swarmkit\'s')
  t.same(f({ 'desired-state': ['Shutdown', 'remove'] }).sort(), ['bbb1', 'ccc1'], 'in any case')
  t.same(f({ 'desired-state': ['ready'] }), ['bbb2'])
  t.same(f({ 'desired-state': ['accepted'] }), ['ccc2'])
  t.throws(() => f({ 'desired-state': ['running', 'sleeping'] }), swarmError('invalid_argument', "Invalid desired-state filter: 'sleeping'"))
  t.same(f({ id: ['aaa'] }).sort(), ['aaa1', 'aaa2'])
  t.same(f({ id: ['ccc2', 'bbb1'] }).sort(), ['bbb1', 'ccc2'])
  t.same(f({ name: ['web.1'] }).sort(), ['aaa2', 'bbb1'])
  t.same(f({ name: ['web.1.aaa'] }), ['aaa2'], "a task's name ends with its ID")
  t.same(f({ name: ['api.node1'] }), ['bbb2'], 'a global task is named by its node')
  t.same(f({ name: ['web'] }).sort(), ['aaa1', 'aaa2', 'bbb1'])
  t.same(f({ label: ['tier'] }).sort(), ['aaa1', 'aaa2', 'bbb1'], "the service's labels")
  t.same(f({ label: ['tier=front', 'team=a'] }).length, 3, 'every label must match')
  t.same(f({ label: ['tier=back'] }), [])
  t.same(f({ runtime: ['container'] }).length, 6)
  t.same(f({ runtime: ['plugin'] }), [])
  t.same(f({ service: ['web'], node: ['n2'], 'desired-state': ['running'] }), ['aaa2'], 'filters combine')
  t.same(f({ service: [] }).length, 6, 'an empty filter list filters nothing')
  t.throws(() => f({ bogus: ['1'] }), swarmError('invalid_argument', "Invalid filter 'bogus'"), "Docker 20.10's text for an unknown key")
  // _up-to-date: the tasks of their service's current spec (the progress of an update counts those).
  const fresh = { ...task('ddd1', web, { slot: 1, node: 'node1', age: 2 }), Spec: services.get(web).Spec.TaskTemplate }
  await store.commit([{ op: 'put', table: 'tasks', id: fresh.ID, value: fresh }])
  t.same(f({ service: ['web'], '_up-to-date': ['true'] }), ['ddd1'], 'only the task of the current spec')
  t.same(f({ service: ['web'] }).length, 4, 'without it, every task')
})

t.test("tasks(): '_up-to-date' keeps the tasks that run the service's current spec", async t => {
  const { services, store } = await setup(t)
  const web = await services.create(body('web'))
  const current = services.get(web).Spec.TaskTemplate
  const fresh = { ...task('new1', web, { slot: 1 }), Spec: current }
  const stale = task('old1', web, { slot: 1, desired: 'shutdown', state: 'shutdown' })
  const orphan = { ...task('orph', 'gone', { slot: 1 }), Spec: current }
  await store.commit([fresh, stale, orphan].map(x => ({ op: 'put' as const, table: 'tasks', id: x.ID, value: x })))
  const f = (o: Record<string, string[]>) => services.tasks(new Map(Object.entries(o)), () => undefined).map(x => x.ID)
  t.same(f({ service: [web], '_up-to-date': ['true'] }), ['new1'])
  t.same(f({ '_up-to-date': ['true'] }), ['new1'], "a task whose service is gone is not up to date")
  t.same(f({ service: [web] }).sort(), ['new1', 'old1'])
})

t.test('parseFilters: both Docker formats and the errors', async t => {
  t.same(parseFilters(null), new Map())
  t.same(parseFilters(''), new Map())
  t.same(parseFilters('{"service":{"web":true,"api":false},"node":["n1","n2"]}'), new Map([
    ['service', ['web']],
    ['node', ['n1', 'n2']],
  ]))
  t.same(parseFilters('{"id":[1]}'), new Map([['id', ['1']]]))
  t.throws(() => parseFilters('{'), swarmError('invalid_argument', /^invalid filter: /))
  t.throws(() => parseFilters('[1]'), swarmError('invalid_argument', 'invalid filter: it must be a JSON object'))
  t.throws(() => parseFilters('null'), swarmError('invalid_argument', 'invalid filter: it must be a JSON object'))
  t.throws(() => parseFilters('{"name":"web"}'), swarmError('invalid_argument', "invalid filter 'name'"))
  t.throws(() => parseFilters('{"name":null}'), swarmError('invalid_argument', "invalid filter 'name'"))
})

t.test('status(): running, desired and completed counts', async t => {
  const { services, store } = await setup(t)
  const web = await services.create(body('web', { top: { Mode: { Replicated: { Replicas: 3 } } } }))
  const api = await services.create(body('api', { top: { Mode: { Global: {} } } }))
  const all = [
    task('w1', web, { slot: 1 }),
    task('w2', web, { slot: 2, state: 'starting' }),
    task('w3', web, { slot: 3, state: 'running', desired: 'shutdown' }),
    task('w4', web, { slot: 3, state: 'complete', desired: 'shutdown' }),
    task('g1', api, { node: 'n1' }),
    task('g2', api, { node: 'n2', state: 'preparing' }),
    task('g3', api, { node: 'n3', desired: 'shutdown', state: 'shutdown' }),
  ]
  await store.commit(all.map(x => ({ op: 'put' as const, table: 'tasks', id: x.ID, value: x })))
  t.same(services.status(services.get(web)), { RunningTasks: 1, DesiredTasks: 3, CompletedTasks: 0 }, 'completions count for jobs only')
  t.same(services.status(services.get(api)), { RunningTasks: 1, DesiredTasks: 2, CompletedTasks: 0 })
})

t.test('jobs: a JobIteration from 0, one more per update (no rolling update); status counts the current iteration', async t => {
  const { services, store } = await setup(t)
  const job = await services.create(body('job', { top: { Mode: { ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 3 } } } }))
  const gjob = await services.create(body('gjob', { top: { Mode: { GlobalJob: {} } } }))
  t.match(services.get(job), { Spec: { Mode: { ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 3 } } }, JobStatus: { JobIteration: { Index: 0 }, LastExecution: String } })
  const it = (n: number) => ({ JobIteration: { Index: n } })
  const all = [
    { ...task('j1', job, { slot: 0, state: 'complete', desired: 'complete' }), ...it(0) },
    { ...task('j2', job, { slot: 1, state: 'running', desired: 'complete' }), ...it(0) },
    { ...task('g1', gjob, { node: 'n1', state: 'complete', desired: 'complete' }), ...it(0) },
    { ...task('g2', gjob, { node: 'n2', state: 'running', desired: 'complete' }), ...it(0) },
  ]
  await store.commit(all.map(x => ({ op: 'put' as const, table: 'tasks', id: x.ID, value: x })))
  t.same(services.status(services.get(job)), { RunningTasks: 1, DesiredTasks: 2, CompletedTasks: 1 }, 'MaxConcurrent desired')
  t.same(services.status(services.get(gjob)), { RunningTasks: 1, DesiredTasks: 1, CompletedTasks: 1 }, 'the tasks not complete yet desired')

  await services.update(job, 1, body('job', { container: { Image: 'busybox:2' }, top: { Mode: { ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 3 } } } }), false)
  const s = services.get(job)
  t.same(s.JobStatus?.JobIteration, { Index: 1 })
  t.equal(s.UpdateStatus, undefined, 'a job has no rolling update')
  t.same(services.status(s), { RunningTasks: 0, DesiredTasks: 2, CompletedTasks: 0 }, "the last iteration's tasks no longer count")
  await t.rejects(services.update(job, 2, body('job'), false), swarmError('invalid_argument', 'rpc error: code = Unimplemented desc = service mode change is not allowed'))
  await t.rejects(
    services.create(body('bad', { top: { Mode: { GlobalJob: {} }, UpdateConfig: { Parallelism: 1 } } })),
    swarmError('invalid_argument', 'rpc error: code = InvalidArgument desc = Jobs may not have an update config'),
  )
})

t.test('secrets: sealed in the store, refused removal while used, values for the dispatcher', async t => {
  const { services, secrets, dir, store, nodeKey } = await setup(t)
  const PLAIN = 'correct horse battery staple'
  const data = Buffer.from(PLAIN).toString('base64')
  t.same(secrets.values(['x']), {}, 'no data key yet: nothing')
  const id = await secrets.create({ Name: 'db', Data: data, Labels: { a: 'b' } })
  const id2 = await secrets.create({ Name: 'api', Data: Buffer.from('other').toString('base64') })
  await t.rejects(secrets.create({ Name: 'db', Data: data }), swarmError('conflict', 'rpc error: code = AlreadyExists desc = secret db already exists'))
  t.match(secrets.get('db'), { ID: id, Spec: { Name: 'db', Labels: { a: 'b' } } })
  t.equal(secrets.find(id)?.Spec.Name, 'db')
  t.equal(secrets.find(id2.slice(0, 8))?.Spec.Name, 'api')
  t.equal(secrets.find(''), undefined)
  t.throws(() => secrets.get('nope'), swarmError('not_found', 'secret nope not found'))
  t.same(secrets.values([]), {})
  t.same(secrets.values([id, 'unknown']), { [id]: data })
  t.notOk(JSON.stringify(secrets.list()).includes(data), 'the API objects carry no value')

  await services.create(body('web', { container: { Secrets: [{ SecretName: 'db', SecretID: id }] } }))
  await t.rejects(secrets.remove('db'), swarmError('failed_precondition', "rpc error: code = InvalidArgument desc = secret 'db' is in use by the following service: web"))
  await services.create(body('web2', { container: { Secrets: [{ SecretName: 'db', SecretID: id }] } }))
  await t.rejects(secrets.remove(id), swarmError('failed_precondition', "rpc error: code = InvalidArgument desc = secret 'db' is in use by the following services: web, web2"))
  await secrets.remove(id2)
  t.equal(secrets.find('api'), undefined)

  await store.snapshot()
  for (const f of readdirSync(dir)) {
    const content = readFileSync(join(dir, f))
    t.notOk(content.includes(PLAIN), `${f} does not hold the plaintext`)
    t.notOk(content.includes(data), `${f} does not hold the base64 value`)
  }

  // Another Secrets on the same store (the manager restarted) unseals with the node key, and with no other.
  t.same(new Secrets(store, dataKey(store, nodeKey)).values([id]), { [id]: data })
  t.throws(() => new Secrets(store, dataKey(store, generateKeyPair().privateKey)).values([id]))
})

t.test('configs: shown with their data, labels the only update, refused removal while used, values for the dispatcher', async t => {
  const { services, configs, secrets } = await setup(t)
  const data = Buffer.from('listen 80;\n').toString('base64')
  const id = await configs.create({ Name: 'nginx.conf', Data: data, Labels: { 'com.docker.stack.namespace': 'st' } })
  await configs.create({ Name: 'other', Data: data })
  await t.rejects(configs.create({ Name: 'other', Data: data }), swarmError('conflict', 'rpc error: code = AlreadyExists desc = config other already exists'))
  await t.rejects(configs.create({ Name: 'big', Data: Buffer.alloc(1000 * 1024).toString('base64') }), swarmError('invalid_argument', 'rpc error: code = InvalidArgument desc = config data must be larger than 0 and less than 1024000 bytes'))
  t.match(configs.get('nginx.conf'), { ID: id, Version: { Index: 1 }, Spec: { Name: 'nginx.conf', Data: data } })
  t.throws(() => configs.get('nope'), swarmError('not_found', 'config nope not found'))

  // The list filters dockerd passes to swarmkit for configs: name and id prefixes, labels (`names` is the secrets' only).
  const names = (f: Record<string, string[]>) => configs.list(new Map(Object.entries(f))).map(c => c.Spec.Name).sort()
  t.same(names({ label: ['com.docker.stack.namespace'] }), ['nginx.conf'])
  t.same(names({ label: ['com.docker.stack.namespace=st'] }), ['nginx.conf'])
  t.same(names({ label: ['com.docker.stack.namespace=other'] }), [])
  t.same(names({ name: ['ngi'] }), ['nginx.conf'], 'name is a prefix')
  t.throws(() => names({ names: ['ngi'] }), swarmError('invalid_argument', "Invalid filter 'names'"), 'no names filter for configs, as moby')
  t.same(names({ id: [id.slice(0, 5)] }), ['nginx.conf'])
  t.throws(() => configs.list(new Map([['driver', ['x']]])), swarmError('invalid_argument', "Invalid filter 'driver'"))

  // Immutable: only the labels change, at the version read; the same data may be sent again (a stack redeploy does).
  await configs.update(id, 1, { Name: 'nginx.conf', Data: data, Labels: { a: 'b' } })
  t.match(configs.get(id), { Version: { Index: 2 }, Spec: { Labels: { a: 'b' }, Data: data } })
  const LABELS_ONLY = 'rpc error: code = InvalidArgument desc = only updates to Labels are allowed'
  await t.rejects(configs.update(id, 2, { Name: 'nginx.conf', Data: Buffer.from('changed').toString('base64') }), swarmError('invalid_argument', LABELS_ONLY))
  await t.rejects(configs.update(id, 2, { Name: 'renamed' }), swarmError('invalid_argument', LABELS_ONLY))
  await t.rejects(configs.update(id, 1, { Name: 'nginx.conf' }), swarmError('unknown', 'rpc error: code = Unknown desc = update out of sequence'))
  t.same(configs.values([id, 'unknown']), { [id]: data })

  // A service refers to it by name or ID, with a default target (the name) and mode 0444.
  await services.create(body('web', { container: { Configs: [{ ConfigName: 'nginx.conf' }, { ConfigID: id, ConfigName: 'nginx.conf', File: { Name: '/etc/nginx.conf', Mode: 0o400 } }] } }))
  t.same(services.get('web').Spec.TaskTemplate.ContainerSpec.Configs, [
    { File: { Name: 'nginx.conf', UID: '0', GID: '0', Mode: 0o444 }, ConfigID: id, ConfigName: 'nginx.conf' },
    { File: { Name: '/etc/nginx.conf', UID: '0', GID: '0', Mode: 0o400 }, ConfigID: id, ConfigName: 'nginx.conf' },
  ])
  await t.rejects(configs.remove('nginx.conf'), swarmError('failed_precondition', "rpc error: code = InvalidArgument desc = config 'nginx.conf' is in use by the following service: web"))
  await t.rejects(
    services.create(body('web2', { container: { Configs: [{ ConfigName: 'nope' }, { ConfigName: 'gone' }] } })),
    swarmError('invalid_argument', 'rpc error: code = InvalidArgument desc = configs not found: nope, gone'),
  )
  await t.rejects(
    services.create(body('web2', { container: { Configs: [{ ConfigName: 'nginx.conf', File: { Name: '/a' } }, { ConfigName: 'other', File: { Name: '/a' } }] } })),
    swarmError('invalid_argument', "rpc error: code = InvalidArgument desc = config references 'nginx.conf' and 'other' have a conflicting target: '/a'"),
  )
  await t.rejects(services.create(body('web2', { container: { Configs: [{ ConfigName: 'other', Runtime: {} }] } })), swarmError('invalid_argument', 'config references with a Runtime target are not supported'))
  // A secret and a config of the same name are different objects: the secret is still missing.
  await t.rejects(services.create(body('web2', { container: { Secrets: [{ SecretName: 'other' }] } })), swarmError('invalid_argument', 'rpc error: code = InvalidArgument desc = secret not found: other'))
  t.equal(secrets.find('other'), undefined)
  await services.remove('web')
  await configs.remove('nginx.conf')
  t.same(configs.list().map(c => c.Spec.Name), ['other'])
})

t.test('tasks and services filtered by label: the service\'s labels (a stack\'s namespace)', async t => {
  const { services, store } = await setup(t)
  const a = await services.create(body('st_web', { top: { Labels: { 'com.docker.stack.namespace': 'st' } } }))
  const b = await services.create(body('other'))
  const task = (id: string, serviceId: string): Task => ({
    ID: id, Version: { Index: 1 }, CreatedAt: '2024-01-01T00:00:00.000Z', UpdatedAt: '2024-01-01T00:00:00.000Z', Labels: {},
    Spec: { ContainerSpec: { Image: 'busybox' } }, ServiceID: serviceId, Slot: 1, Status: { Timestamp: '2024-01-01T00:00:00.000Z', State: 'running', Message: '' }, DesiredState: 'running',
  })
  await store.commit([task('t1', a), task('t2', b)].map(x => ({ op: 'put', table: 'tasks', id: x.ID, value: x })))
  t.same(services.tasks(new Map([['label', ['com.docker.stack.namespace=st']]]), () => undefined).map(x => x.ID), ['t1'])
  t.same(services.tasks(new Map([['label', ['com.docker.stack.namespace']]]), () => undefined).map(x => x.ID), ['t1'])
  t.same(services.tasks(new Map([['label', ['com.docker.stack.namespace=x']]]), () => undefined).map(x => x.ID), [])
})
