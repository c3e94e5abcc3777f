import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:net'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { Membership } from '../gossip/membership.js'
import type { Routing } from '../types/session.js'
import type { PortConfig } from '../types/service.js'
import type { SealKeyring } from '../mesh/seal.js'
import { NodeMesh } from './node-mesh.js'

const log = pino({ level: 'silent' })
const HOST = '127.0.0.230'
const INGRESS = '127.0.0.231'
const VIP = '127.0.0.232'

/** A real membership and a NodeMesh on it; `base` keeps each test on its own ports (29300-29399). */
async function setup(t: Test, base: number, o: Pick<ConstructorParameters<typeof NodeMesh>[0], 'idleTimeoutMs' | 'strategy'> = {}) {
  const membership = await Membership.create({ name: `mesh-${base}`, bind: { ip: HOST, port: base }, logger: log })
  const nm = new NodeMesh({ membership: () => membership, host: HOST, ingressHost: INGRESS, log, ...o })
  t.teardown(async () => {
    await nm.close()
    await membership.shutdown()
  })
  return { membership, nm, dataPathPort: base + 1 }
}

const key = (tag: number) => ({ tag, key: randomBytes(32).toString('base64') })
const keyrings = (nm: NodeMesh) => (nm as unknown as { keyrings: Map<string, SealKeyring> }).keyrings
const listeners = (nm: NodeMesh) => (nm as unknown as { listeners: Map<string, string> }).listeners

function routing(dataPathPort: number, services: Routing['services'], keys?: { tag: number; key: string }[]): Routing {
  return {
    dataPathPort,
    networks: [
      { id: 'ing', vni: 4096, ingress: true },
      { id: 'back', vni: 4097, ingress: false, ...(keys ? { keys } : {}) },
    ],
    services,
  }
}

t.test('without a membership the mesh waits', async t => {
  const nm = new NodeMesh({ membership: () => undefined, host: HOST, ingressHost: INGRESS, log })
  await nm.sync(routing(29399, []))
  t.equal(nm.instance, undefined)
  nm.taskRunning({ id: 't1', serviceId: 's1', serviceName: 'web', ports: [{ TargetPort: 1 }], networks: ['ing'], status: [] })
  await nm.taskStopping('t1', true)
  await nm.close()
  t.pass('nothing to do, nothing thrown')
})

t.test('sync publishes ingress ports on ingressHost and VIPs on loopback; removed services unpublish', async t => {
  const { nm, dataPathPort } = await setup(t, 29300)
  const ports: PortConfig[] = [
    { TargetPort: 29320, PublishedPort: 29310, Protocol: 'tcp', PublishMode: 'ingress' },
    { TargetPort: 29321, PublishedPort: 29311, Protocol: 'udp', PublishMode: 'ingress' },
    { TargetPort: 29322, PublishedPort: 29312, Protocol: 'tcp', PublishMode: 'host' },
    { TargetPort: 29323, PublishedPort: 29313, Protocol: 'sctp', PublishMode: 'ingress' },
  ]
  const web = { id: 's1', name: 'web', labels: {}, ports, vips: [{ network: 'back', loopback: VIP }] }
  await nm.sync(routing(dataPathPort, [web]))
  const mesh = nm.instance!
  t.ok(mesh, 'the mesh exists once there is a membership')
  t.same(mesh.address, { host: HOST, port: dataPathPort })
  t.same(mesh.published().sort(), [`${INGRESS}:29310/tcp`, `${INGRESS}:29311/udp`, `${VIP}:29320/tcp`, `${VIP}:29321/udp`, `${VIP}:29322/tcp`].sort())
  t.same([...nm.conflicts], [])

  // The same routing again changes nothing; the mesh is the same one.
  await nm.sync(routing(dataPathPort, [web]))
  t.equal(nm.instance, mesh)
  t.equal(mesh.published().length, 5)

  // A PROXY-protocol label changes what a published port forwards to: it is re-published.
  await nm.sync(routing(dataPathPort, [{ ...web, labels: { 'com.swarmd.proxy-protocol.29310': 'v2', 'com.swarmd.proxy-protocol': 'bogus' } }]))
  t.match(JSON.parse(listeners(nm).get(`${INGRESS}:29310/tcp`)!), { proxyProtocol: 'v2', service: 's1', network: 'ing', targetPort: 29320 })
  t.notMatch(JSON.parse(listeners(nm).get(`${INGRESS}:29311/udp`)!), { proxyProtocol: String }, 'an invalid label value is ignored')
  t.equal(mesh.published().length, 5)

  // The service is removed: every listener goes.
  await nm.sync(routing(dataPathPort, []))
  t.same(mesh.published(), [])
})

t.test('without an ingress network, published ports are not served', async t => {
  const { nm, dataPathPort } = await setup(t, 29330, { idleTimeoutMs: 60_000, strategy: 'least-connections' })
  await nm.sync({
    dataPathPort,
    networks: [{ id: 'back', vni: 4097, ingress: false }],
    services: [{ id: 's1', name: 'web', labels: {}, ports: [{ TargetPort: 29331, PublishedPort: 29332 }], vips: [{ network: 'back', loopback: VIP }] }],
  })
  t.same(nm.instance!.published(), [`${VIP}:29331/tcp`])
})

t.test('encrypted networks: keys installed, the middle one primary, rotated in place', async t => {
  const { nm, dataPathPort } = await setup(t, 29340)
  await nm.sync(routing(dataPathPort, [], [key(1), key(2), key(3)]))
  const ring = keyrings(nm).get('back')!
  t.same(ring.ids().sort(), [1, 2, 3])
  t.equal(ring.primaryId, 2)
  t.notOk(keyrings(nm).has('ing'), 'no keys, no keyring')

  await nm.sync(routing(dataPathPort, [], [key(2), key(3), key(4)]))
  t.equal(keyrings(nm).get('back'), ring, 'the same keyring, rotated in place')
  t.same(ring.ids().sort(), [2, 3, 4])
  t.equal(ring.primaryId, 3)

  // Tags wrap into one-byte key IDs.
  await nm.sync(routing(dataPathPort, [], [key(254), key(255), key(256)]))
  t.same(ring.ids().sort((a, b) => a - b), [1, 254, 255])
  t.equal(ring.primaryId, 255)

  // A single key is the primary.
  await nm.sync(routing(dataPathPort, [], [key(300)]))
  t.same(ring.ids(), [(300 - 1) % 255 + 1])

  // A bad key fails the sync (logged), and the next sync still runs.
  await nm.sync(routing(dataPathPort, [], [{ tag: 400, key: Buffer.alloc(5).toString('base64') }]))
  await nm.sync(routing(dataPathPort, [], [key(401)]))
  t.same(ring.ids(), [(401 - 1) % 255 + 1])
})

t.test('an encrypted network without keys here fails closed: not carried, its VIPs not served; keys withdrawn, it is dropped', async t => {
  const { nm, dataPathPort } = await setup(t, 29370)
  const carried = () => (nm.instance as unknown as { networks: Map<string, unknown> }).networks
  const ports: PortConfig[] = [{ TargetPort: 29371, PublishedPort: 29372, Protocol: 'tcp', PublishMode: 'ingress' }]
  const web = { id: 's1', name: 'web', labels: {}, ports, vips: [{ network: 'back', loopback: VIP }] }
  const sealed = (keys?: { tag: number; key: string }[]): Routing => ({
    dataPathPort,
    networks: [
      { id: 'ing', vni: 4096, ingress: true },
      { id: 'back', vni: 4097, ingress: false, encrypted: true, ...(keys ? { keys } : {}) },
    ],
    services: [web],
  })
  await nm.sync(sealed())
  t.notOk(keyrings(nm).has('back'))
  t.notOk(carried().has('back'), 'the mesh does not carry it: nothing is sent for it, its frames are dropped')
  t.same(nm.instance!.published(), [`${INGRESS}:29372/tcp`], 'its VIP is not served; the plain ingress port is')

  await nm.sync(sealed([key(1), key(2), key(3)]))
  t.ok(carried().has('back'), 'given keys, it is carried')
  t.same(nm.instance!.published().sort(), [`${INGRESS}:29372/tcp`, `${VIP}:29371/tcp`].sort(), 'and its VIP served')

  await nm.sync(sealed())
  t.notOk(keyrings(nm).has('back'), 'keys withdrawn: the keyring is forgotten')
  t.notOk(carried().has('back'), 'and the network dropped')
  t.same(nm.instance!.published(), [`${INGRESS}:29372/tcp`])

  // An encrypted ingress network without keys: published ports are not served either.
  await nm.sync({ ...sealed(), networks: [{ id: 'ing', vni: 4096, ingress: true, encrypted: true }] })
  t.same(nm.instance!.published(), [])
  t.notOk(carried().has('ing'))
})

t.test('taskRunning registers endpoints; taskStopping withdraws them', async t => {
  const { nm, dataPathPort } = await setup(t, 29350)
  await nm.sync(routing(dataPathPort, []))
  const mesh = nm.instance!
  const ports: PortConfig[] = [
    { TargetPort: 29351, PublishedPort: 29352, Protocol: 'tcp' },
    { TargetPort: 29353, Protocol: 'udp' },
    { TargetPort: 29354, Protocol: 'sctp' },
  ]
  nm.taskRunning({
    id: 't1',
    serviceId: 's1',
    serviceName: 'web',
    ports,
    networks: ['ing', 'back'],
    status: [{ Protocol: 'tcp', TargetPort: 29351, PublishedPort: 40001, PublishMode: 'host' }],
    // The manager allocates overlay addresses in either data plane; in the userspace mesh the task is on the host's loopback.
    addresses: { ing: '10.0.0.5', back: '10.0.1.5' },
  })
  const eps = mesh.endpoints('back', 's1')
  t.same(
    eps.map(e => [e.task, e.protocol, e.targetPort, e.host, e.port, e.node]).sort(),
    [
      ['t1', 'tcp', 29351, '127.0.0.1', 40001, 'mesh-29350'],
      ['t1', 'udp', 29353, '127.0.0.1', 29353, 'mesh-29350'],
    ],
  )
  t.equal(mesh.endpoints('ing', 'web').length, 2, 'by service name too')
  t.equal(eps[0]!.serviceName, 'web')

  // Announced once: a second call changes nothing.
  nm.taskRunning({ id: 't1', serviceId: 's1', serviceName: 'web', ports: [ports[0]!], networks: ['other'], status: [] })
  t.same(mesh.endpoints('other'), [])

  nm.taskRunning({ id: 't2', serviceId: 's1', serviceName: 'web', ports: [ports[0]!], networks: ['ing'], status: [] })
  t.equal(mesh.endpoints('ing', 's1').length, 3)

  await nm.taskStopping('t1', false)
  t.same(
    mesh.endpoints('ing', 's1').map(e => e.task),
    ['t2'],
  )
  t.same(mesh.endpoints('back', 's1'), [])
  await nm.taskStopping('t1', false)
  t.pass('withdrawing twice is harmless')

  // With drain, the withdrawal waits the mesh's drain delay (2 s) after the endpoint is gone.
  const started = Date.now()
  const stopping = nm.taskStopping('t2', true)
  t.same(mesh.endpoints('ing', 's1'), [], 'gone at once')
  await stopping
  t.ok(Date.now() - started >= 1_900, 'then drained')
})

t.test('a task found running before the mesh exists (adopted after a restart) is announced once it does', async t => {
  const { nm, dataPathPort } = await setup(t, 29340)
  nm.taskRunning({ id: 'adopted', serviceId: 's1', serviceName: 'web', ports: [{ TargetPort: 29341, Protocol: 'tcp' }], networks: ['ing'], status: [] })
  t.equal(nm.instance, undefined, 'no mesh before the first routing')
  await nm.sync(routing(dataPathPort, []))
  t.same(
    nm.instance!.endpoints('ing', 's1').map(e => [e.task, e.targetPort]),
    [['adopted', 29341]],
  )
  await nm.taskStopping('adopted', false)
  t.same(nm.instance!.endpoints('ing', 's1'), [], 'and withdrawn as any other')
})

t.test('a published port another program holds shows in conflicts; a held VIP does not', async t => {
  const { nm, dataPathPort } = await setup(t, 29360)
  const hold = (host: string, port: number) =>
    new Promise<Server>((resolve, reject) => {
      const s = createServer()
      s.once('error', reject)
      s.listen(port, host, () => resolve(s))
    })
  const held = await hold(INGRESS, 29361)
  const heldVip = await hold(VIP, 29363)
  const closeAll = async (...ss: Server[]) => {
    for (const s of ss) if (s.listening) await new Promise(r => s.close(r))
  }
  t.teardown(() => closeAll(held, heldVip))
  const services: Routing['services'] = [
    { id: 's1', name: 'web', labels: {}, ports: [{ TargetPort: 29362, PublishedPort: 29361 }], vips: [] },
    { id: 's2', name: 'api', labels: {}, ports: [{ TargetPort: 29363, PublishedPort: 29364 }], vips: [{ network: 'back', loopback: VIP }] },
  ]
  await nm.sync(routing(dataPathPort, services))
  t.same([...nm.conflicts], [['s1', `cannot listen on ${INGRESS}:29361/tcp: port is already allocated`]])
  t.same(nm.instance!.published().sort(), [`${INGRESS}:29364/tcp`])

  await closeAll(held, heldVip)
  await nm.sync(routing(dataPathPort, services))
  t.same([...nm.conflicts], [], 'freed: the conflict is gone')
  t.same(nm.instance!.published().sort(), [`${INGRESS}:29361/tcp`, `${INGRESS}:29364/tcp`, `${VIP}:29363/tcp`].sort())
})
