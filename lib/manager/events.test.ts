import t from 'tap'
import { eventMatches } from './event-filter.js'
import { EventLog } from './event-log.js'
import { clusterEvent, eventJson, type DockerEvent } from './events.js'

const T0 = '2026-03-01T10:00:00.123Z'
const T1 = '2026-03-01T10:05:00.000Z'
const NOW = Date.parse('2026-03-01T11:00:00.000Z')

const service = (o: { replicas?: number; image?: string; updatedAt?: string; update?: string; global?: boolean } = {}) => ({
  ID: 'svc1',
  Version: { Index: 1 },
  CreatedAt: T0,
  UpdatedAt: o.updatedAt ?? T0,
  Spec: { Name: 'web', Mode: o.global ? { Global: {} } : { Replicated: { Replicas: o.replicas ?? 1 } }, TaskTemplate: { ContainerSpec: { Image: o.image ?? 'nginx' } } },
  ...(o.update ? { UpdateStatus: { State: o.update } } : {}),
})

const node = (o: { availability?: string; role?: string; state?: string; name?: string } = {}) => ({
  id: 'node1',
  version: 1,
  createdAt: T0,
  updatedAt: T0,
  hostname: 'docker-swarm-1',
  addr: '127.0.0.1',
  spec: { Labels: {}, Role: o.role ?? 'worker', Availability: o.availability ?? 'active', ...(o.name ? { Name: o.name } : {}) },
  ...(o.state ? { status: { state: o.state } } : {}),
})

t.test('service events: create, update with what changed, remove', async t => {
  const created = clusterEvent('services', undefined, service(), NOW)!
  t.same(created, { Type: 'service', Action: 'create', Actor: { ID: 'svc1', Attributes: { name: 'web' } }, scope: 'swarm', time: Math.floor(Date.parse(T0) / 1000), timeNano: BigInt(Date.parse(T0)) * 1_000_000n })
  const scaled = clusterEvent('services', service(), service({ replicas: 3, updatedAt: T1 }), NOW)!
  t.same(scaled.Actor.Attributes, { name: 'web', 'replicas.old': '1', 'replicas.new': '3' })
  t.equal(scaled.timeNano, BigInt(Date.parse(T1)) * 1_000_000n, "an update's time is the object's UpdatedAt")
  const image = clusterEvent('services', service(), service({ image: 'nginx:2', update: 'updating', updatedAt: T1 }), NOW)!
  t.same(image.Actor.Attributes, { name: 'web', 'image.old': 'nginx', 'image.new': 'nginx:2', 'updatestate.new': 'updating' })
  const done = clusterEvent('services', service({ update: 'updating' }), service({ update: 'completed' }), NOW)!
  t.same(done.Actor.Attributes, { name: 'web', 'updatestate.old': 'updating', 'updatestate.new': 'completed' })
  t.equal(done.timeNano, BigInt(NOW) * 1_000_000n, 'an update that left UpdatedAt as it was happens now')
  t.same(clusterEvent('services', service({ global: true }), service({ global: true }), NOW)!.Actor.Attributes, { name: 'web' }, 'no replicas for a global service')
  const removed = clusterEvent('services', service(), undefined, NOW)!
  t.same([removed.Action, removed.Actor], ['remove', { ID: 'svc1', Attributes: { name: 'web' } }])
  t.equal(removed.time, Math.floor(NOW / 1000), "a removal's time is now")
})

t.test('node events: availability, role and state changes, lower case', async t => {
  t.same(clusterEvent('nodes', undefined, node(), NOW)!.Actor, { ID: 'node1', Attributes: { name: 'docker-swarm-1' } }, 'named by hostname')
  t.same(clusterEvent('nodes', undefined, node({ name: 'n1' }), NOW)!.Actor.Attributes, { name: 'n1' }, "or the spec's name")
  t.same(clusterEvent('nodes', node(), node({ availability: 'drain' }), NOW)!.Actor.Attributes, { name: 'docker-swarm-1', 'availability.old': 'active', 'availability.new': 'drain' })
  t.same(clusterEvent('nodes', node(), node({ role: 'manager' }), NOW)!.Actor.Attributes, { name: 'docker-swarm-1', 'role.old': 'worker', 'role.new': 'manager' })
  t.same(clusterEvent('nodes', node(), node({ state: 'ready' }), NOW)!.Actor.Attributes, { name: 'docker-swarm-1', 'state.old': 'unknown', 'state.new': 'ready' })
  t.same(clusterEvent('nodes', node({ state: 'ready' }), node({ state: 'down' }), NOW)!.Actor.Attributes, { name: 'docker-swarm-1', 'state.old': 'ready', 'state.new': 'down' })
  t.equal(clusterEvent('nodes', node(), undefined, NOW)!.Action, 'remove')
})

t.test('secret, config and network events; none for other tables', async t => {
  const secret = { secret: { ID: 'sec1', Version: { Index: 1 }, CreatedAt: T0, UpdatedAt: T0, Spec: { Name: 'pw' } }, sealed: 'xx' }
  t.same(clusterEvent('secrets', undefined, secret, NOW)!.Actor, { ID: 'sec1', Attributes: { name: 'pw' } })
  const config = { ID: 'cfg1', CreatedAt: T0, UpdatedAt: T0, Spec: { Name: 'site.conf', Data: 'eA==' } }
  t.same(clusterEvent('configs', undefined, config, NOW)!.Type, 'config', 'a config stored as its object')
  t.same(clusterEvent('configs', { config }, undefined, NOW)!.Actor, { ID: 'cfg1', Attributes: { name: 'site.conf' } }, 'or beside its data')
  const net = { ID: 'net1', Name: 'backend', Created: T0, Keys: [{ tag: 1, key: 'a' }] }
  t.same(clusterEvent('networks', undefined, net, NOW)!.Actor, { ID: 'net1', Attributes: { name: 'backend' } })
  t.equal(clusterEvent('networks', net, { ...net, Keys: [{ tag: 2, key: 'b' }] }, NOW), undefined, "a network's key rotation is no event")
  t.equal(clusterEvent('networks', net, { ...net, Labels: { a: 'b' } }, NOW)!.Action, 'update')
  for (const table of ['tasks', 'cluster', 'keys', 'certs']) t.equal(clusterEvent(table, undefined, { ID: 'x' }, NOW), undefined, `no event for ${table}`)
  t.equal(clusterEvent('services', undefined, undefined, NOW), undefined)
})

t.test('eventJson: one line, timeNano as the exact integer', async t => {
  const e = clusterEvent('services', undefined, service(), NOW)!
  const line = eventJson(e)
  t.ok(line.endsWith('}\n'))
  t.equal(
    line,
    `{"Type":"service","Action":"create","Actor":{"ID":"svc1","Attributes":{"name":"web"}},"scope":"swarm","time":${Math.floor(Date.parse(T0) / 1000)},"timeNano":${BigInt(Date.parse(T0)) * 1_000_000n}}\n`,
  )
  t.match(line, /"timeNano":\d{19}\}/, 'nineteen digits, beyond a double')
})

const ev = (Type: DockerEvent['Type'], Action: DockerEvent['Action'], ID: string, name: string, extra: Record<string, string> = {}): DockerEvent => ({
  Type,
  Action,
  Actor: { ID, Attributes: { name, ...extra } },
  scope: 'swarm',
  time: 0,
  timeNano: 0n,
})

t.test("eventMatches: moby's daemon/events/filter.go", async t => {
  const f = (o: Record<string, string[]>) => new Map(Object.entries(o))
  const svc = ev('service', 'create', 'abc123', 'web')
  const nd = ev('node', 'update', 'xyz789', 'web-host', { 'availability.new': 'drain' })
  t.ok(eventMatches(f({}), svc), 'no filter: everything')
  t.ok(eventMatches(f({ type: ['service'] }), svc))
  t.notOk(eventMatches(f({ type: ['service'] }), nd))
  t.ok(eventMatches(f({ type: ['service', 'node'] }), nd), 'any of the values')
  t.ok(eventMatches(f({ event: ['create'] }), svc))
  t.notOk(eventMatches(f({ event: ['update'] }), svc))
  t.ok(eventMatches(f({ service: ['abc'] }), svc), 'by ID prefix')
  t.ok(eventMatches(f({ service: ['web'] }), svc), 'by name')
  t.notOk(eventMatches(f({ service: ['api'] }), svc))
  t.ok(eventMatches(f({ service: ['web'] }), nd), 'moby matches the name whatever the type: web-host starts with web')
  t.notOk(eventMatches(f({ node: ['other'] }), svc), 'another type key with no match excludes')
  t.notOk(eventMatches(f({ container: ['x'] }), svc), 'a container filter excludes swarm events')
  t.ok(eventMatches(f({ scope: ['swarm'] }), svc))
  t.notOk(eventMatches(f({ scope: ['local'] }), svc))
  t.ok(eventMatches(f({ label: ['availability.new=drain'] }), nd), 'labels are matched among the attributes')
  t.notOk(eventMatches(f({ label: ['availability.new=active'] }), nd))
  t.notOk(eventMatches(f({ image: ['nginx'] }), svc))
  t.ok(eventMatches(f({ image: ['abc123'] }), svc), "image matches the actor's ID too")
  t.ok(eventMatches(f({ whatever: ['1'] }), svc), 'keys moby does not know filter nothing')
})

t.test('EventLog: the last 256 for --since, between since and until, and listeners', async t => {
  const log = new EventLog(3)
  const at = (n: number) => ({ ...ev('service', 'update', `s${n}`, 'web'), timeNano: BigInt(n) })
  const heard: string[] = []
  const stop = log.listen(e => heard.push(e.Actor.ID))
  for (const n of [1, 2, 3, 4, 5]) log.publish(at(n))
  t.same(heard, ['s1', 's2', 's3', 's4', 's5'])
  stop()
  log.publish(at(6))
  t.equal(heard.length, 5, 'a listener that stopped hears no more')
  const ids = (since?: bigint, until?: bigint) => log.kept(since, until).map(e => e.Actor.ID)
  t.same(ids(), [], 'no since and no until: nothing kept is sent')
  t.same(ids(0n), ['s4', 's5', 's6'], 'only the newest are kept')
  t.same(ids(5n), ['s5', 's6'], 'since is inclusive')
  t.same(ids(undefined, 5n), ['s4', 's5'], 'until is inclusive')
  t.same(ids(5n, 5n), ['s5'])
})
