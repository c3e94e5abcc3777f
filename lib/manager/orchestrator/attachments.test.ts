import t from 'tap'
import type { NetworkRecord, NodeAttachmentRecord, VipRecord } from '../../types/network.js'
import type { Task } from '../../types/task.js'
import { pickAddress } from '../network-allocator.js'
import { allocateAttachments } from './attachments.js'
import { node, pass, service, task, T0 } from './fixtures.test-helper.js'

function network(id: string, subnet: string, extra: Partial<NetworkRecord> = {}): NetworkRecord {
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.')
  return { ID: id, Name: id, Created: '', Labels: {}, Options: {}, Internal: false, Attachable: false, Ingress: false, IPAMOptions: null, Subnet: subnet, Gateway: `${base}.1`, Vni: 4097, Loopback: '127.1.0.0/24', ...extra }
}

const INGRESS = network('ing', '10.0.0.0/24', { Ingress: true, Vni: 4096 })
const BACKEND = network('be', '10.0.1.0/24')

const written = (p: ReturnType<typeof pass>): Task[] => p.written()
const nodeRows = (p: ReturnType<typeof pass>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const m of p.muts.values()) if (m.table === 'attachments') out[m.id] = m.op === 'put' ? (m.value as NodeAttachmentRecord).Addr : 'deleted'
  return out
}

t.test('pickAddress takes the highest free address, around the gateway, aux addresses, the range and what is used', async t => {
  t.equal(pickAddress(BACKEND, new Set()), '10.0.1.254/24')
  t.equal(pickAddress(BACKEND, new Set(['10.0.1.254', '10.0.1.253'])), '10.0.1.252/24')
  t.equal(pickAddress({ ...BACKEND, Gateway: '10.0.1.254', AuxAddresses: { a: '10.0.1.253' } }, new Set()), '10.0.1.252/24')
  t.equal(pickAddress({ ...BACKEND, IPRange: '10.0.1.0/25' }, new Set()), '10.0.1.127/24')
  const tiny = network('tiny', '10.9.0.0/30')
  t.equal(pickAddress(tiny, new Set()), '10.9.0.2/30')
  t.throws(() => pickAddress(tiny, new Set(['10.9.0.2'])), { code: 'E_ADDRESS_EXHAUSTED' })
})

t.test("an assigned task gets an address on each of its networks, ingress first when it publishes, in Docker's shape", async t => {
  const svc = service('web', { TaskTemplate: { ContainerSpec: { Image: 'x' }, Networks: [{ Target: 'be' }] }, EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }] } })
  const a = task(svc, { node: 'n1', state: 'assigned' })
  const p = pass(T0, [node('n1')], [svc], [a])
  allocateAttachments(p, { networks: [INGRESS, BACKEND], vips: [{ ServiceID: 'web', NetworkID: 'be', Addr: '10.0.1.2/24', Loopback: '' } satisfies VipRecord], nodes: [] })
  const [got] = written(p)
  t.same(
    got?.NetworksAttachments?.map(x => [x.Network.ID, x.Network.Spec.Ingress ?? false, x.Addresses]),
    [
      ['ing', true, ['10.0.0.254/24']],
      ['be', false, ['10.0.1.254/24']],
    ],
  )
  t.same(got?.NetworksAttachments?.[1]?.Network.DriverState.Options, { 'com.docker.network.driver.overlay.vxlanid_list': '4097' })
  t.same(got?.NetworksAttachments?.[1]?.Network.IPAMOptions.Configs, [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }])
  t.same(nodeRows(p), { 'n1/ing': '10.0.0.253/24', 'n1/be': '10.0.1.253/24' }, 'its node gets one on both, after the task')
})

t.test('a task held at ready (a restart delay) and a job\'s get addresses before they run; one desired shutdown does not', async t => {
  const svc = service('web', { TaskTemplate: { ContainerSpec: { Image: 'x' }, Networks: [{ Target: 'be' }] } })
  const held = task(svc, { node: 'n1', state: 'assigned', desired: 'ready' })
  const job = task(svc, { node: 'n1', state: 'assigned', desired: 'complete' })
  const going = task(svc, { node: 'n1', state: 'assigned', desired: 'shutdown' })
  const p = pass(T0, [node('n1')], [svc], [held, job, going])
  allocateAttachments(p, { networks: [BACKEND], vips: [], nodes: [] })
  t.same(
    written(p).map(x => [x.ID, x.NetworksAttachments?.[0]?.Addresses[0]]),
    [
      [held.ID, '10.0.1.254/24'],
      [job.ID, '10.0.1.253/24'],
    ],
  )
})

t.test('addresses held by live tasks, VIPs and nodes are not given again; a task over frees its own', async t => {
  const svc = service('web', { TaskTemplate: { ContainerSpec: { Image: 'x' }, Networks: [{ Target: 'be' }] } })
  const holding = (state: Task['Status']['State'], addr: string): Task => ({
    ...task(svc, { node: 'n1', state }),
    NetworksAttachments: [{ Network: { ID: 'be', Spec: { Name: 'be', Labels: {}, DriverConfiguration: { Name: 'overlay' }, Scope: 'swarm' }, DriverState: { Name: 'overlay', Options: {} }, IPAMOptions: { Driver: { Name: 'default' }, Configs: [] } }, Addresses: [addr] }],
  })
  const live = holding('running', '10.0.1.254/24')
  const dead = holding('failed', '10.0.1.252/24')
  const fresh = task(svc, { node: 'n1', state: 'assigned' })
  const p = pass(T0, [node('n1')], [svc], [live, dead, fresh])
  allocateAttachments(p, { networks: [BACKEND], vips: [], nodes: [{ NodeID: 'n1', NetworkID: 'be', Addr: '10.0.1.253/24' }] })
  t.same(
    written(p).map(x => [x.ID, x.NetworksAttachments?.[0]?.Addresses[0]]),
    [[fresh.ID, '10.0.1.252/24']],
    'the failed task held .252 no longer',
  )
  t.same(nodeRows(p), {}, "the node's address stays")
})

t.test('node addresses: ingress on every node, a network while a live task holds it there, gone with the node or the network', async t => {
  const svc = service('web', { TaskTemplate: { ContainerSpec: { Image: 'x' }, Networks: [{ Target: 'be' }] } })
  const p = pass(T0, [node('n1'), node('n2')], [svc], [])
  allocateAttachments(p, {
    networks: [INGRESS, BACKEND],
    vips: [],
    nodes: [
      { NodeID: 'n1', NetworkID: 'be', Addr: '10.0.1.254/24' },
      { NodeID: 'gone', NetworkID: 'ing', Addr: '10.0.0.254/24' },
      { NodeID: 'n1', NetworkID: 'removed', Addr: '10.7.0.254/24' },
    ],
  })
  t.same(nodeRows(p), {
    'n1/be': 'deleted',
    'gone/ing': 'deleted',
    'n1/removed': 'deleted',
    'n1/ing': '10.0.0.253/24',
    'n2/ing': '10.0.0.252/24',
  })
})

t.test('a network with no address left rejects the task with the reason', async t => {
  const tiny = network('tiny', '10.9.0.0/30')
  const svc = service('web', { TaskTemplate: { ContainerSpec: { Image: 'x' }, Networks: [{ Target: 'tiny' }] } })
  const a = task(svc, { node: 'n1', state: 'assigned' })
  const b = task(svc, { node: 'n1', state: 'assigned', slot: 2 })
  const p = pass(T0, [node('n1')], [svc], [a, b])
  allocateAttachments(p, { networks: [tiny], vips: [], nodes: [] })
  const byId = new Map(written(p).map(x => [x.ID, x]))
  t.same(byId.get(a.ID)?.NetworksAttachments?.[0]?.Addresses, ['10.9.0.2/30'])
  t.equal(byId.get(b.ID)?.Status.State, 'rejected')
  t.match(byId.get(b.ID)?.Status.Err, /could not find an available IP on network tiny/)
  t.same(nodeRows(p), {}, 'nor is there one left for the node')
})

t.test('tasks not yet placed, not wanted, or without a service get nothing', async t => {
  const svc = service('web', { TaskTemplate: { ContainerSpec: { Image: 'x' }, Networks: [{ Target: 'be' }] } })
  const pending = task(svc, { state: 'pending' })
  const stopping = task(svc, { node: 'n1', state: 'assigned', desired: 'shutdown' })
  const orphan = task(service('gone'), { node: 'n1', state: 'assigned' })
  const p = pass(T0, [node('n1')], [svc], [pending, stopping, orphan])
  allocateAttachments(p, { networks: [BACKEND], vips: [], nodes: [] })
  t.same(written(p), [])
})
