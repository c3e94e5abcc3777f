import t, { type Test } from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SwarmError, type ErrorKind } from '../types/errors.js'
import { networkObject } from '../api/network-object.js'
import { overlaps, parsePrefix, type Prefix } from './ipv4.js'
import { loopbackAddr, loopbackSubnet } from './network-allocator.js'
import { Networks } from './networks.js'
import { Store } from './store.js'
import type { Service } from '../types/service.js'
import type { Task } from '../types/task.js'

/** A store in a temp dir; `reopen` closes it and opens it again, as after a restart. */
async function open(t: Test): Promise<{ store: Store; n: Networks; reopen: () => Promise<Networks> }> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-networks-'))
  let store = await Store.open(dir)
  t.teardown(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const reopen = async (): Promise<Networks> => {
    await store.close()
    store = await Store.open(dir)
    return new Networks(store)
  }
  return { store, n: new Networks(store), reopen }
}

const overlay = (Name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ Name, Driver: 'overlay', ...extra })
const withSubnet = (Name: string, Subnet: string, Gateway?: string): Record<string, unknown> =>
  overlay(Name, { IPAM: { Driver: 'default', Config: [{ Subnet, ...(Gateway ? { Gateway } : {}) }], Options: {} } })

/** Rejects with a SwarmError of this kind (the API answers each kind with one status) and exact message. */
async function rejects(t: Test, p: Promise<unknown>, kind: ErrorKind, message: string): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  t.ok(e instanceof SwarmError, `rejects: ${message}`)
  t.equal((e as SwarmError).kind, kind)
  t.equal((e as SwarmError).message, message)
}

function service(id: string, extra: Partial<Service['Spec']> = {}, networks: string[] = []): Service {
  const t0 = new Date().toISOString()
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: t0,
    UpdatedAt: t0,
    Spec: { Name: id, TaskTemplate: { ContainerSpec: { Image: 'busybox' }, Networks: networks.map(Target => ({ Target })) }, Mode: { Replicated: { Replicas: 1 } }, ...extra },
    Endpoint: { Spec: {} },
  }
}

t.test('ensureIngress creates the routing mesh network as swarm init does, once', async t => {
  const { n } = await open(t)
  const ing = await n.ensureIngress()
  t.match(ing, { Name: 'ingress', Ingress: true, Subnet: '10.0.0.0/24', Gateway: '10.0.0.1', Vni: 4096, Loopback: '127.1.0.0/24' })
  t.equal((await n.ensureIngress()).ID, ing.ID)
  t.equal(n.list().length, 1)
  const obj = networkObject(ing)
  t.match(obj, { Name: 'ingress', Id: ing.ID, Scope: 'swarm', Driver: 'overlay', Ingress: true, Attachable: false, ConfigOnly: false, Containers: null })
  t.same(obj.IPAM, { Driver: 'default', Options: null, Config: [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }] })
  t.equal(obj.Options['com.docker.network.driver.overlay.vxlanid_list'], '4096')
})

t.test('VNIs and subnets: first free, released on rm, reused, persisted', async t => {
  const { n, reopen } = await open(t)
  await n.ensureIngress()
  const a = await n.create(overlay('a'))
  const b = await n.create(overlay('b'))
  t.match(n.get('a'), { ID: a.Id, Vni: 4097, Subnet: '10.0.1.0/24', Gateway: '10.0.1.1', Loopback: '127.1.1.0/24' })
  t.match(n.get('b'), { ID: b.Id, Vni: 4098, Subnet: '10.0.2.0/24' })
  t.same(a.Warning, '')
  await n.remove('a')
  // By name or ID, not find('a'): that also matches an ID prefix, and ingress's random ID may start with "a".
  t.notOk(n.list().some(x => x.Name === 'a' || x.ID === a.Id), 'a is gone')
  const c = await n.create(overlay('c'))
  t.match(n.get(c.Id), { Vni: 4097, Subnet: '10.0.1.0/24' }, 'the freed VNI and subnet are taken again')
  // After a restart the allocations come back from the store.
  const again = await reopen()
  t.same(
    again.list().map(x => [x.Name, x.Vni, x.Subnet]),
    [
      ['b', 4098, '10.0.2.0/24'],
      ['c', 4097, '10.0.1.0/24'],
      ['ingress', 4096, '10.0.0.0/24'],
    ],
  )
  await again.create(overlay('d'))
  t.match(again.get('d'), { Vni: 4099, Subnet: '10.0.3.0/24' })
})

t.test('subnets: given ones are checked like dockerd, overlaps refused, auto allocation skips them', async t => {
  const { n } = await open(t)
  await n.ensureIngress()
  await n.create(withSubnet('big', '10.0.2.0/23', '10.0.3.254'))
  t.match(n.get('big'), { Subnet: '10.0.2.0/23', Gateway: '10.0.3.254' })
  await n.create(overlay('auto1'))
  await n.create(overlay('auto2'))
  t.equal(n.get('auto1').Subnet, '10.0.1.0/24')
  t.equal(n.get('auto2').Subnet, '10.0.4.0/24', 'the /23 is skipped whole')
  const overlap = 'invalid pool request: Pool overlaps with other one on this address space'
  await rejects(t, n.create(withSubnet('x', '10.0.3.0/24')), 'permission_denied', overlap)
  await rejects(t, n.create(withSubnet('x', '10.0.0.0/16')), 'permission_denied', overlap)
  await rejects(t, n.create(withSubnet('x', '10.0.0.128/25')), 'permission_denied', overlap)
  await rejects(t, n.create(withSubnet('x', '10.0.0.1/24')), 'invalid_argument', 'invalid network config:\ninvalid subnet 10.0.0.1/24: it should be 10.0.0.0/24')
  await rejects(t, n.create(withSubnet('x', 'foo')), 'invalid_argument', 'invalid network config:\ninvalid subnet foo: invalid CIDR block notation')
  await rejects(t, n.create(withSubnet('x', '10.010.0.0/16')), 'invalid_argument', 'invalid network config:\ninvalid subnet 10.010.0.0/16: invalid CIDR block notation')
  await rejects(t, n.create(withSubnet('x', '10.5.0.0/24', '10.9.9.1')), 'invalid_argument', "invalid network config:\ninvalid gateway 10.9.9.1: parent subnet 10.5.0.0/24 doesn't contain this address")
  await rejects(
    t,
    n.create(withSubnet('x', '10.5.0.1/24', 'nope')),
    'invalid_argument',
    'invalid network config:\n* invalid subnet 10.5.0.1/24: it should be 10.5.0.0/24\n* invalid gateway nope: invalid address',
  )
  await rejects(t, n.create(withSubnet('x', 'fd00::/64')), 'invalid_argument', 'swarmd overlay networks are IPv4 only: IPv6 is not supported')
  await rejects(
    t,
    n.create(overlay('x', { IPAM: { Config: [{ Subnet: '10.7.0.0/24' }, { Subnet: '10.8.0.0/24' }] } })),
    'invalid_argument',
    'swarmd overlay networks take one subnet: give --subnet once',
  )
  t.notOk(n.find('x'), 'nothing refused was stored')
  await n.create(withSubnet('outside', '192.168.50.0/24'))
  t.match(n.get('outside'), { Subnet: '192.168.50.0/24', Gateway: '192.168.50.1' })
})

t.test('names, drivers and options: dockerd and swarmkit texts', async t => {
  const { n } = await open(t)
  await n.create(overlay('web'))
  await rejects(t, n.create(overlay('web')), 'conflict', 'network with name web already exists')
  await rejects(t, n.create(overlay('bridge')), 'permission_denied', 'operation is not permitted on predefined bridge network ')
  await rejects(t, n.create(overlay('host')), 'permission_denied', 'operation is not permitted on predefined host network ')
  await rejects(t, n.create(overlay('  ')), 'invalid_argument', 'invalid name: name is empty')
  await rejects(t, n.create({ Driver: 'overlay' }), 'invalid_argument', 'invalid name: name is empty')
  await rejects(t, n.create(overlay('my net')), 'invalid_argument', 'rpc error: code = InvalidArgument desc = name must be valid as a DNS name component')
  await rejects(t, n.create(overlay('-web')), 'invalid_argument', 'rpc error: code = InvalidArgument desc = name must be valid as a DNS name component')
  await rejects(t, n.create(overlay('a'.repeat(64))), 'invalid_argument', 'rpc error: code = InvalidArgument desc = name must be 63 characters or fewer')
  await rejects(t, n.create({ Name: 'b1', Driver: 'bridge' }), 'invalid_argument', 'swarmd supports only the overlay driver: create the network with "-d overlay" ("bridge" networks are not available)')
  await rejects(t, n.create(overlay('s1', { Scope: 'local' })), 'permission_denied', 'cannot downgrade network scope for overlay networks')
  await rejects(t, n.create(overlay('s1', { EnableIPv4: false })), 'invalid_argument', 'IPv4 cannot be disabled in a Swarm scoped network')
  await rejects(t, n.create(overlay('s1', { Labels: { 'com.docker.swarm.predefined': 'true' } })), 'permission_denied', 'rpc error: code = PermissionDenied desc = label com.docker.swarm.predefined is for internally created predefined networks and cannot be applied by users')
  await rejects(t, n.create(overlay('s1', { IPAM: { Driver: 'infoblox', Config: [] } })), 'invalid_argument', 'rpc error: code = InvalidArgument desc = error during lookup of plugin infoblox')
  await rejects(t, n.create(overlay('s1', { Options: { 'com.docker.network.driver.overlay.vxlanid_list': '5000' } })), 'invalid_argument', 'swarmd allocates VXLAN IDs itself: the option com.docker.network.driver.overlay.vxlanid_list is not supported')
  await rejects(t, n.create(overlay('s1', { ConfigOnly: true })), 'invalid_argument', 'swarmd does not support config-only networks (--config-only, --config-from)')
  await rejects(t, n.create({ Name: 7 }), 'invalid_argument', 'invalid JSON: json: cannot unmarshal number into Go struct field CreateRequest.Name of type string')
  await rejects(t, n.create(overlay('s1', { Attachable: 'yes' })), 'invalid_argument', 'invalid JSON: json: cannot unmarshal string into Go struct field CreateRequest.Attachable of type bool')
  await n.create({ Name: 'web_2-x', Driver: '', Scope: 'swarm', Attachable: true, Internal: true, Labels: { team: 'a' }, Options: { 'com.docker.network.driver.mtu': '1400' } })
  t.match(networkObject(n.get('web_2-x')), { Attachable: true, Internal: true, Labels: { team: 'a' }, Options: { 'com.docker.network.driver.mtu': '1400' } })
})

t.test('get: by ID, name or unique prefix', async t => {
  const { store, n } = await open(t)
  const ids: string[] = []
  // Names with a dash can never look like an ID prefix.
  for (const name of ['n-a', 'n-b', 'n-c', 'n-d', 'n-e', 'n-f', 'n-g', 'n-h']) ids.push((await n.create(overlay(name))).Id)
  t.equal(n.get(ids[0]!).Name, 'n-a')
  t.equal(n.get('n-b').ID, ids[1])
  // A prefix that only one ID has.
  const unique = ids.map(id => [...Array(id.length).keys()].map(i => id.slice(0, i + 1)).find(p => ids.filter(x => x.startsWith(p)).length === 1)!)
  t.equal(n.get(unique[2]!).Name, 'n-c')
  await rejects(t, Promise.resolve().then(() => n.get('zzzz-none')), 'not_found', 'network zzzz-none not found')
  // Two IDs sharing a prefix make it ambiguous.
  const twin = { ...n.get('n-h'), ID: ids[7]!.slice(0, 3) + 'z'.repeat(22), Name: 'twin', Vni: 9999, Subnet: '10.99.0.0/24' }
  await store.commit([{ op: 'put', table: 'networks', id: twin.ID, value: twin }])
  await rejects(t, Promise.resolve().then(() => n.get(ids[7]!.slice(0, 3))), 'invalid_argument', `network ${ids[7]!.slice(0, 3)} is ambiguous (2 matches found based on ID prefix)`)
  t.equal(n.find(''), undefined)
})

t.test('ingress: one only, not attachable, overlay only, removable once no service publishes', async t => {
  const { store, n } = await open(t)
  const ing = await n.ensureIngress()
  await rejects(t, n.create(overlay('ing2', { Ingress: true })), 'conflict', `rpc error: code = AlreadyExists desc = ingress network (${ing.ID}) is already present`)
  await rejects(t, n.create(overlay('ing2', { Ingress: true, Attachable: true })), 'invalid_argument', 'rpc error: code = InvalidArgument desc = ingress network cannot be attachable')
  await rejects(t, n.create({ Name: 'ing2', Driver: 'macvlan', Ingress: true }), 'permission_denied', 'Ingress network can only be global scope network')
  const pub = service('pubsvc', { EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }] } })
  const hostOnly = service('hostsvc', { EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8081, PublishMode: 'host' }] } })
  await store.commit([
    { op: 'put', table: 'services', id: pub.ID, value: pub },
    { op: 'put', table: 'services', id: hostOnly.ID, value: hostOnly },
  ])
  t.same(
    n.users(ing).map(s => s.ID),
    ['pubsvc'],
  )
  await rejects(t, n.remove('ingress'), 'failed_precondition', 'rpc error: code = FailedPrecondition desc = ingress network cannot be removed because service pubsvc depends on it')
  await store.commit([{ op: 'delete', table: 'services', id: pub.ID }])
  await n.remove('ingress')
  t.equal(n.ingress(), undefined)
  // A custom ingress network takes its place; swarm init's ensureIngress keeps it.
  const custom = await n.create(overlay('my-ingress', { Ingress: true, IPAM: { Config: [{ Subnet: '10.11.0.0/16' }] } }))
  t.equal((await n.ensureIngress()).ID, custom.Id)
  t.match(n.get('my-ingress'), { Ingress: true, Vni: 4096 })
})

t.test('rm refused while a service or a live task uses the network', async t => {
  const { store, n } = await open(t)
  const { Id } = await n.create(overlay('backend'))
  const svc = service('svc1', {}, [Id])
  await store.commit([{ op: 'put', table: 'services', id: svc.ID, value: svc }])
  await rejects(t, n.remove('backend'), 'failed_precondition', `rpc error: code = FailedPrecondition desc = network ${Id} is in use by service svc1`)
  await store.commit([{ op: 'delete', table: 'services', id: svc.ID }])
  const t0 = new Date().toISOString()
  const task = (id: string, state: Task['Status']['State'], desired: Task['DesiredState']): Task => ({
    ID: id,
    Version: { Index: 1 },
    CreatedAt: t0,
    UpdatedAt: t0,
    Labels: {},
    Spec: { ContainerSpec: { Image: 'busybox' }, Networks: [{ Target: Id }] },
    ServiceID: 'svc1',
    Status: { Timestamp: t0, State: state, Message: '' },
    DesiredState: desired,
  })
  await store.commit([
    { op: 'put', table: 'tasks', id: 'dead', value: task('dead', 'failed', 'shutdown') },
    { op: 'put', table: 'tasks', id: 'live', value: task('live', 'running', 'running') },
  ])
  await rejects(t, n.remove(Id.slice(0, 12)), 'failed_precondition', `rpc error: code = FailedPrecondition desc = network ${Id} is in use by task live`)
  await store.commit([{ op: 'delete', table: 'tasks', id: 'live' }])
  await n.remove(Id)
  await rejects(t, n.remove('backend'), 'not_found', 'network backend not found')
})

t.test('VIPs: one per (service, network), lowest free host, a loopback twin, released and persisted', async t => {
  const { n, reopen } = await open(t)
  await n.ensureIngress()
  const { Id } = await n.create(overlay('front'))
  const v1 = await n.allocateVip('svc1', 'front')
  t.same(v1, { ServiceID: 'svc1', NetworkID: Id, Addr: '10.0.1.2/24', Loopback: '127.1.1.2' })
  t.same(await n.allocateVip('svc1', Id), v1, 'asking again gives the same VIP')
  t.equal((await n.allocateVip('svc2', 'front')).Addr, '10.0.1.3/24')
  t.same(await n.allocateVip('svc1', 'ingress'), { ServiceID: 'svc1', NetworkID: n.get('ingress').ID, Addr: '10.0.0.2/24', Loopback: '127.1.0.2' })
  await n.releaseVips('svc1')
  t.same(n.vips('svc1'), [])
  t.equal((await n.allocateVip('svc3', 'front')).Addr, '10.0.1.2/24', 'a released VIP is free again')
  // syncVips: keeps what stays, adds what is new, drops what left.
  const synced = await n.syncVips('svc2', ['ingress'])
  t.same(
    synced.map(v => v.Addr),
    ['10.0.0.2/24'],
  )
  t.same(
    n.vips('svc2').map(v => v.Addr),
    ['10.0.0.2/24'],
  )
  const both = await n.syncVips('svc4', ['front', 'ingress'])
  t.same(
    both.map(v => v.Addr),
    ['10.0.1.3/24', '10.0.0.3/24'],
  )
  const again = await reopen()
  t.same(
    again.vips('svc4').map(v => v.Loopback).sort(),
    ['127.1.0.3', '127.1.1.3'],
  )
  // A /29 has hosts .1-.6, the gateway takes .1: five VIPs, then swarmkit's error.
  await again.create(withSubnet('tiny', '10.20.0.0/29'))
  const got: string[] = []
  for (let i = 0; i < 5; i++) got.push((await again.allocateVip(`s${i}`, 'tiny')).Addr)
  t.same(got, ['10.20.0.2/29', '10.20.0.3/29', '10.20.0.4/29', '10.20.0.5/29', '10.20.0.6/29'])
  await rejects(t, again.allocateVip('s9', 'tiny'), 'resource_exhausted', 'could not find an available IP while allocating VIP')
  // Removing the network takes its VIPs along.
  await again.remove('tiny')
  t.same(again.vips('s0'), [])
})

t.test("a VIP never takes an address a live task or a node holds; removing the network drops the nodes' addresses", async t => {
  const { store, n } = await open(t)
  const { Id } = await n.create(withSubnet('tiny', '10.21.0.0/29'))
  const held = (id: string, state: Task['Status']['State'], addr: string): Task =>
    ({ ID: id, Spec: {}, Status: { State: state }, DesiredState: 'running', NetworksAttachments: [{ Network: { ID: Id }, Addresses: [addr] }] }) as unknown as Task
  await store.commit([
    { op: 'put', table: 'tasks', id: 'a', value: held('a', 'running', '10.21.0.2/29') },
    { op: 'put', table: 'tasks', id: 'b', value: held('b', 'failed', '10.21.0.3/29') },
    { op: 'put', table: 'attachments', id: `n1/${Id}`, value: { NodeID: 'n1', NetworkID: Id, Addr: '10.21.0.4/29' } },
  ])
  t.same([(await n.allocateVip('s1', 'tiny')).Addr, (await n.allocateVip('s2', 'tiny')).Addr], ['10.21.0.3/29', '10.21.0.5/29'], "skips the running task's .2 and the node's .4; the failed task's .3 is free")
  t.same(n.nodeAttachments().map(a => a.Addr), ['10.21.0.4/29'])
  await n.remove('tiny')
  t.same(n.nodeAttachments(), [])
})

t.test('encrypted networks: a ring of three keys, the middle one primary, rotated', async t => {
  const { n } = await open(t)
  await n.create(overlay('secure', { Options: { encrypted: '' } }))
  await n.create(overlay('plain'))
  t.equal(n.keys('plain'), undefined)
  const ring = n.keys('secure')!
  t.same(
    ring.keys.map(k => k.tag),
    [1, 2, 3],
  )
  t.equal(ring.primary.tag, 2)
  t.equal(Buffer.from(ring.keys[0]!.key, 'base64').length, 32)
  t.equal(new Set(ring.keys.map(k => k.key)).size, 3)
  t.equal(networkObject(n.get('secure')).Options.encrypted, '')
  t.equal(await n.rotateKeys(), 1)
  const next = n.keys('secure')!
  t.same(
    next.keys.map(k => k.tag),
    [2, 3, 4],
  )
  t.equal(next.primary.key, ring.keys[2]!.key, 'the key added last time encrypts now')
  t.same(next.keys.slice(0, 2), ring.keys.slice(1))
})

t.test('concurrent creates never share a VNI or a subnet', async t => {
  const { n } = await open(t)
  const names = [...Array(20).keys()].map(i => `n${i}`)
  await Promise.all(names.map(x => n.create(overlay(x))))
  const all = n.list()
  t.equal(new Set(all.map(x => x.Vni)).size, 20)
  t.equal(new Set(all.map(x => x.Subnet)).size, 20)
  t.same(
    all.map(x => x.Vni).sort((a, b) => a - b),
    [...Array(20).keys()].map(i => 4096 + i),
  )
})

t.test('prefix overlap agrees with brute force; loopback ranges are distinct', async t => {
  const small = fc.record({ addr: fc.integer({ min: 0, max: 255 }), bits: fc.integer({ min: 24, max: 32 }) })
  const toPrefix = (p: { addr: number; bits: number }): Prefix => parsePrefix(`10.0.0.${p.addr}/${p.bits}`) as Prefix
  const members = (p: Prefix): Set<number> => {
    const size = 2 ** (32 - p.bits)
    const start = Math.floor(p.addr / size) * size
    return new Set([...Array(size).keys()].map(i => start + i))
  }
  fc.assert(
    fc.property(small, small, (a, b) => {
      const pa = toPrefix(a)
      const pb = toPrefix(b)
      const mb = members(pb)
      return overlaps(pa, pb) === [...members(pa)].some(x => mb.has(x))
    }),
  )
  fc.assert(
    fc.property(fc.integer({ min: 4096, max: 4096 + 65279 }), fc.integer({ min: 4096, max: 4096 + 65279 }), (x, y) => (loopbackSubnet(x) === loopbackSubnet(y)) === (x === y)),
  )
  t.equal(loopbackSubnet(4096 + 65279), '127.255.255.0/24')
  t.throws(() => loopbackSubnet(4096 + 65280))
  t.equal(loopbackAddr('10.0.4.77/22', '10.0.4.0/22', '127.1.9.0/24'), '127.1.9.77')
})

t.test("IPAM configs of the wrong shape get Go's decoding errors, not an internal one", async t => {
  const { n } = await open(t)
  await rejects(t, n.create(overlay('x', { IPAM: { Config: [7] } })), 'invalid_argument', 'invalid JSON: json: cannot unmarshal number into Go struct field IPAM.IPAM.Config of type network.IPAMConfig')
  await rejects(t, n.create(overlay('x', { IPAM: { Config: [{ Subnet: 10 }] } })), 'invalid_argument', 'invalid JSON: json: cannot unmarshal number into Go struct field IPAM.IPAM.Config.Subnet of type string')
  await rejects(t, n.create(overlay('x', { IPAM: { Config: [{ Gateway: [] }] } })), 'invalid_argument', 'invalid JSON: json: cannot unmarshal array into Go struct field IPAM.IPAM.Config.Gateway of type string')
  await rejects(t, n.create(overlay('x', { IPAM: { Config: [{ AuxiliaryAddresses: { a: 1 } }] } })), 'invalid_argument', 'invalid JSON: json: cannot unmarshal number into Go struct field IPAM.IPAM.Config.AuxiliaryAddresses of type string')
  t.match(await n.create(overlay('y', { IPAM: { Config: [null] } })), { Id: String }, 'a null config is none, as Go decodes it')
})
