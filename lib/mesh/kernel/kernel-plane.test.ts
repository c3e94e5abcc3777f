import { pino } from 'pino'
import t from 'tap'
import type { Endpoint } from '../types.js'
import { KernelPlane, type PlaneSpec } from './kernel-plane.js'
import { runOk, spawnRunner, type Runner } from './runner.js'

/**
 * The reconciler against a real kernel: a network namespace of the test's
 * own (named for its pid), every command run inside it, and everything
 * gone with it at the end.
 */

const NS = `swkt-${process.pid}`
const log = pino({ level: 'silent' })

const SPEC: PlaneSpec = {
  networks: [
    { id: 'ing', name: 'ingress', vni: 4096, subnet: '10.0.0.0/24', gateway: '10.0.0.1', nodeAddr: '10.0.0.254/24', encrypted: false },
    { id: 'sec', name: 'secure', vni: 4097, subnet: '10.0.1.0/24', gateway: '10.0.1.1', nodeAddr: '10.0.1.254/24', encrypted: true },
  ],
  ingress: 'ing',
  services: [
    { id: 'web', name: 'web', vips: [{ network: 'ing', addr: '10.0.0.2' }], ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }], dnsrr: false },
    { id: 'vault', name: 'vault', vips: [{ network: 'sec', addr: '10.0.1.2' }], ports: [], dnsrr: false },
  ],
  hostPorts: [],
}

const ep = (node: string, task: string, host: string, targetPort = 80): Endpoint => ({ network: 'ing', service: 'web', serviceName: 'web', task, node, protocol: 'tcp', targetPort, host, port: targetPort })

t.test('the kernel data plane in a namespace: programmed, changed, adopted, removed', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async t => {
  await runOk(spawnRunner, 'ip', ['netns', 'add', NS])
  t.teardown(() => spawnRunner('ip', ['netns', 'delete', NS]))
  await runOk(spawnRunner, 'ip', ['-n', NS, 'link', 'set', 'lo', 'up'])
  await runOk(spawnRunner, 'ip', ['-n', NS, 'addr', 'add', '192.0.2.1/24', 'dev', 'lo'])
  const issued: string[] = []
  const run: Runner = (program, args, input) => {
    if (args.includes('-batch') || (program === 'nft' && args[0] === '-f')) issued.push(`${program}: ${input?.trim().split('\n')[0]}`)
    if (program === 'conntrack') issued.push(`conntrack ${args.join(' ')}`)
    return spawnRunner('ip', ['netns', 'exec', NS, program, ...args], input)
  }
  const inNs = (program: string, ...args: string[]) => runOk(spawnRunner, 'ip', ['netns', 'exec', NS, program, ...args])

  let endpoints = [ep('a', 't1', '10.0.0.250'), ep('b', 't2', '10.0.0.249'), ep('b', 't2', '10.0.0.249', 0), ep('c', 't3', '127.0.0.1')]
  let peers = new Map([
    ['b', '192.0.2.2'],
    ['c', '192.0.2.3'],
  ])
  const plane = (): KernelPlane =>
    new KernelPlane({ self: 'a', underlay: '192.0.2.1', vxlanPort: 4789, mtu: 1450, endpoints: net => endpoints.filter(e => e.network === net), peers: () => peers, conntrack: true, run, debounceMs: 10, log })

  const p = plane()
  await p.set(SPEC)
  t.same(p.counters, { reconciles: 1, failures: 0, nftLoads: 1, lastReconcileMs: p.counters.lastReconcileMs })
  t.match(await inNs('ip', '-d', 'link', 'show', 'swvx4096'), /vxlan id 4096 local 192\.0\.2\.1 .*dstport 4789 .*nolearning .*proxy/s, 'a VXLAN device with the VNI and dstport 4789')
  t.match(await inNs('ip', 'link', 'show', 'swvx4096'), /master swbr4096 .*mtu 1450|mtu 1450 .*master swbr4096/)
  const addrs = await inNs('ip', '-4', 'addr', 'show', 'swbr4096')
  t.match(addrs, /inet 10\.0\.0\.254\/24 scope global swbr4096/, "the node's address, the primary")
  t.match(addrs, /inet 10\.0\.0\.1\/24 scope global secondary swbr4096/, 'the gateway')
  t.match(addrs, /inet 10\.0\.0\.2\/32 /, 'the VIP')
  t.rejects(inNs('ip', 'link', 'show', 'swvx4097'), 'no VXLAN device for the encrypted network')
  t.match(await inNs('ip', '-4', 'addr', 'show', 'swbr4097'), /inet 10\.0\.1\.2\/32 /, 'but its bridge, with the VIP the userspace mesh listens on')
  t.match(await inNs('bridge', 'fdb', 'show', 'dev', 'swvx4096'), /02:42:0a:00:00:f9 dst 192\.0\.2\.2 self permanent/, "the remote task's MAC at its node")
  t.match(await inNs('ip', 'neigh', 'show', 'dev', 'swvx4096'), /10\.0\.0\.249 lladdr 02:42:0a:00:00:f9 PERMANENT/)
  t.notMatch(await inNs('bridge', 'fdb', 'show', 'dev', 'swvx4096'), /00:00:00:00:00:00/, 'no flood entry')
  let table = await inNs('nft', 'list', 'table', 'ip', 'swarmd')
  t.match(table, /numgen random mod 2 vmap \{ 0 : goto ep-10\.0\.0\.250, 1 : goto ep-10\.0\.0\.249 \}/, 'the VIP over the local and the remote task')
  t.match(table, /tcp \. 8080 : goto pub-tcp-8080/)
  t.notMatch(table, /127\.0\.0\.1/, "a userspace node's endpoint is not a backend")
  t.notMatch(table, /10\.0\.1\.2[^0-9]/, 'the encrypted VIP is not in the kernel')
  t.match(table, /elements = \{ 192\.0\.2\.2, 192\.0\.2\.3 \}/, 'VXLAN only from the peers')
  t.same(
    p.resolverView().map(n => [n.name, n.resolver, n.services.map(s => [s.name, s.vip, s.tasks])]),
    [
      ['ingress', '10.0.0.1', [['web', '10.0.0.2', ['10.0.0.249', '10.0.0.250']]]],
      ['secure', '10.0.1.1', [['vault', '10.0.1.2', []]]],
    ],
    'what the DNS answers, per network',
  )

  // Node b dies: its endpoints leave the table and it leaves the membership, in one event.
  endpoints = endpoints.filter(e => e.node !== 'b')
  peers = new Map([['c', '192.0.2.3']])
  issued.length = 0
  p.changed()
  p.changed()
  await new Promise(r => setTimeout(r, 50))
  await p.settled()
  t.equal(p.counters.reconciles, 2, 'a burst is one reconcile')
  t.same(
    issued,
    ['bridge: fdb del 02:42:0a:00:00:f9 dev swvx4096 dst 192.0.2.2 self', 'ip: neigh del 10.0.0.249 dev swvx4096', 'nft: table ip swarmd {}', 'conntrack -D --reply-src 10.0.0.249'],
    "one batch each, one nft transaction, then the dead node's flows out of conntrack",
  )
  table = await inNs('nft', 'list', 'table', 'ip', 'swarmd')
  t.notMatch(table, /10\.0\.0\.249/, "b's task is out of the rotation")
  t.match(table, /goto ep-10\.0\.0\.250/)
  t.equal((await inNs('bridge', 'fdb', 'show', 'dev', 'swvx4096')).includes('192.0.2.2'), false)

  // A new daemon adopts: nothing to change but the table, loaded whole.
  await p.close({ purge: false })
  issued.length = 0
  const q = plane()
  await q.set(SPEC)
  t.same(issued, ['nft: table ip swarmd {}'], 'links, FDB and neighbours adopted as they are')

  await q.close({ purge: true })
  t.notMatch(await inNs('ip', 'link', 'show'), /swbr|swvx/, 'no link left')
  t.notMatch(await inNs('nft', 'list', 'tables'), /swarmd/, 'no table left')
})
