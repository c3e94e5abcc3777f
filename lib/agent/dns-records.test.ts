import t from 'tap'
import type { Endpoint } from '../mesh/types.js'
import type { Routing } from '../types/session.js'
import { routingView } from './dns-records.js'

const routing: Routing = {
  dataPathPort: 4789,
  networks: [
    { id: 'ing', vni: 4096, ingress: true },
    { id: 'back', vni: 4097, ingress: false },
    { id: 'front', vni: 4098, ingress: false },
  ],
  services: [
    {
      id: 'S1',
      name: 'api',
      labels: {},
      ports: [],
      vips: [
        { network: 'ing', loopback: '127.1.0.2', addr: '10.0.0.2' },
        { network: 'back', loopback: '127.1.1.2', addr: '10.0.1.2' },
        { network: 'front', loopback: '127.1.2.3', addr: '10.0.2.3' },
      ],
      networks: ['back', 'front'],
      aliases: { back: ['API-v1', 'web'] },
    },
    { id: 'S2', name: 'db', labels: {}, ports: [], vips: [], mode: 'dnsrr', networks: ['back'] },
    { id: 'S3', name: 'web', labels: {}, ports: [], vips: [{ network: 'back', loopback: '127.1.1.4', addr: '10.0.1.4' }] },
  ],
}

const ep = (network: string, service: string, task: string, node: string, targetPort = 80): Endpoint => ({ network, service, serviceName: '', task, node, protocol: 'tcp', targetPort, host: '127.0.0.1', port: 30000 })
const table: Endpoint[] = [
  ep('back', 'S1', 't1', 'n1'),
  ep('back', 'S1', 't1', 'n1', 81),
  ep('back', 'S1', 't2', 'n2'),
  ep('back', 'S2', 'd1', 'n1', 0),
  ep('back', 'S2', 'd2', 'n2', 0),
  ep('back', 'S2', 'd3', 'n3', 0),
  ep('front', 'S1', 't1', 'n1'),
]
const nodes: Record<string, string> = { n1: '192.0.2.1', n2: '192.0.2.2', n3: '192.0.2.3' }

const userspace = () =>
  routingView(routing, {
    vipAddress: v => v.loopback,
    taskAddress: e => nodes[e.node],
    endpoints: network => table.filter(e => e.network === network),
  })

t.test('a service name is its VIP on the asking network, with a short TTL', async t => {
  const v = userspace()
  t.same(v.lookup('back', 'api'), { addrs: ['127.1.1.2'], ttl: 5 })
  t.same(v.lookup('front', 'api'), { addrs: ['127.1.2.3'], ttl: 5 }, 'each network its own VIP')
  const kernel = routingView(routing, { vipAddress: v => v.addr, taskAddress: () => undefined, endpoints: () => [], vipTtl: 2 })
  t.same(kernel.lookup('back', 'api'), { addrs: ['10.0.1.2'], ttl: 2 }, 'the kernel data plane answers the overlay VIP')
})

t.test('aliases are names on their network only; a service\'s own name beats another\'s alias', async t => {
  const v = userspace()
  t.same(v.lookup('back', 'api-v1'), { addrs: ['127.1.1.2'], ttl: 5 })
  t.equal(v.lookup('front', 'api-v1'), undefined)
  t.same(v.lookup('back', 'web'), { addrs: ['127.1.1.4'], ttl: 5 }, 'web is the service, not api\'s alias')
})

t.test('tasks.<name>: the running tasks, one address each, TTL 0; aliases work there too', async t => {
  const v = userspace()
  const a = v.lookup('back', 'tasks.api')!
  t.equal(a.ttl, 0)
  t.same([...a.addrs].sort(), ['192.0.2.1', '192.0.2.2'], 't1 once, though it has two ports')
  t.same([...v.lookup('back', 'tasks.api-v1')!.addrs].sort(), ['192.0.2.1', '192.0.2.2'])
  t.same(v.lookup('front', 'tasks.api'), { addrs: ['192.0.2.1'], ttl: 0 }, 'only the tasks on that network')
  t.same(v.lookup('back', 'tasks.web'), { addrs: [], ttl: 0 }, 'a service with no task running: known, no address')
})

t.test('a dnsrr service: its tasks in rotation, one step per answer', async t => {
  const v = userspace()
  const answers = [1, 2, 3, 4].map(() => v.lookup('back', 'db')!)
  t.ok(answers.every(a => a.ttl === 0))
  t.same(
    answers.map(a => a.addrs),
    [
      ['192.0.2.1', '192.0.2.2', '192.0.2.3'],
      ['192.0.2.2', '192.0.2.3', '192.0.2.1'],
      ['192.0.2.3', '192.0.2.1', '192.0.2.2'],
      ['192.0.2.1', '192.0.2.2', '192.0.2.3'],
    ],
  )
})

t.test('the ingress network has no names, and unknown names are not ours', async t => {
  const v = userspace()
  t.equal(v.lookup('ing', 'api'), undefined)
  t.equal(v.lookup('back', 'nope'), undefined)
  t.equal(v.lookup('back', 'tasks.nope'), undefined)
  t.equal(v.lookup('other', 'api'), undefined)
})
