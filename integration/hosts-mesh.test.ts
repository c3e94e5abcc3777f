/**
 * The routing mesh on three hosts (network namespaces on a bridge, the
 * manager on docker-swarm-3; published ports on 0.0.0.0 in each namespace):
 * a published port answers on every host's address and balances over tasks
 * on all three (clients in the root namespace); a service reaches another by
 * its VIP (SWARMD_VIP_API) and a process inside a host reaches it at the
 * VIP's loopback twin; an encrypted overlay shows no plaintext on 4789 in a
 * capture on a host's eth0 while requests cross hosts, where a plain overlay
 * does; and a host with no task on an encrypted network (never, or no longer)
 * does not serve its VIP.
 */
import t from 'tap'
import { loopbackAddr } from '../lib/manager/network-allocator.js'
import { Hosts, hostsMissing, pcapPayloads, secondsSince, type Host } from './helpers/hosts.js'
import { captureMissing, testNeeding } from './helpers/prerequisites.js'
import { httpGet } from './helpers/net.js'
import { waitUntil } from './helpers/procs.js'

const HTTP = 'require("http").createServer((q,s)=>s.end((process.env.MARK||"")+process.env.SWARMD_NODE_HOSTNAME+" "+process.env.SWARMD_TASK_ID+"\\n")).listen(process.env.PORT)'
/** Calls the api service through its VIP, from inside a task. */
const CLIENT = 'require("http").createServer((q,s)=>require("http").get({host:process.env.SWARMD_VIP_API,port:80,agent:false},r=>{let b="";r.on("data",d=>b+=d);r.on("end",()=>s.end("via vip: "+b))}).on("error",e=>s.end("error "+e.code+"\\n"))).listen(process.env.PORT)'


testNeeding(t, 'the routing mesh across three hosts', hostsMissing, async t => {
  const tFile = performance.now()
  const c = await Hosts.create(t, 3)
  const [h1, , mgr] = c.hosts as [Host, Host, Host]
  const ctl = (...args: string[]): Promise<string> => c.ctlOk(mgr, ...args)
  await c.formSwarm(mgr)
  t.comment(`swarm ready in ${secondsSince(tFile)} s`)

  /** The address a process on a host uses for a service's VIP on a network. */
  const vipTwin = async (service: string, network: string): Promise<string> => {
    const svc = JSON.parse(await ctl('service', 'inspect', service))[0]
    const net = JSON.parse(await ctl('network', 'inspect', network))[0]
    const vip = svc.Endpoint.VirtualIPs.find((v: { NetworkID: string }) => v.NetworkID === net.Id)
    return loopbackAddr(vip.Addr, net.IPAM.Config[0].Subnet, net.Options['com.swarmd.network.loopback_subnet'])
  }

  await t.test('a published port on every host, balanced over tasks on all three', async t => {
    await ctl('service', 'create', '--name', 'web', '--replicas', '3', '--publish', '28501:80', 'node', 'node', '-e', HTTP)
    t.same(Object.values(c.taskCounts('web').perHost), [1, 1, 1], 'one task per host')
    await waitUntil(async () => (await Promise.all(c.hosts.map(h => httpGet(h.ip, 28501)))).every(b => b.startsWith('docker-swarm-')), { timeoutMs: 20_000, what: 'the published port answering on every host' })
    const byTask = new Map<string, number>()
    const byEntry = new Map<string, Set<string>>()
    const failed: string[] = []
    for (let i = 0; i < 300; i++) {
      const h = c.hosts[i % 3]!
      const body = await httpGet(h.ip, 28501)
      const [node, task] = body.trim().split(' ')
      if (!node?.startsWith('docker-swarm-') || !task) failed.push(`${h.name}: ${body}`)
      byTask.set(task ?? '?', (byTask.get(task ?? '?') ?? 0) + 1)
      byEntry.set(h.name, (byEntry.get(h.name) ?? new Set()).add(node ?? '?'))
    }
    t.same(failed, [], 'all 300 requests answered')
    const n = [...byTask.values()]
    t.equal(byTask.size, 3, `answers from the three tasks ${JSON.stringify(Object.fromEntries(byTask))}`)
    t.ok(Math.max(...n) / Math.min(...n) <= 1.5, `balanced: max/min = ${(Math.max(...n) / Math.min(...n)).toFixed(2)}`)
    for (const [entry, nodes] of byEntry) t.equal(nodes.size, 3, `through ${entry}, answers from tasks on all three hosts`)
  })

  await t.test('service to service by VIP, and a process on a host to the VIP', async t => {
    await ctl('network', 'create', '-d', 'overlay', 'backend')
    await ctl('service', 'create', '--name', 'api', '--replicas', '2', '--network', 'backend', '--publish', 'target=80', 'node', 'node', '-e', HTTP)
    await ctl('service', 'create', '--name', 'client', '--network', 'backend', '--publish', '28504:8000', 'node', 'node', '-e', CLIENT)
    await waitUntil(async () => (await httpGet(h1.ip, 28504)).startsWith('via vip: docker-swarm-'), { timeoutMs: 20_000, what: 'the client service answering' })
    const answers = new Set<string>()
    for (let i = 0; i < 20; i++) answers.add((await httpGet(c.hosts[i % 3]!.ip, 28504)).split(' ')[2] ?? '')
    t.ok([...answers].every(a => a.startsWith('docker-swarm-')), `a task reaches api by SWARMD_VIP_API: ${[...answers].join(', ')}`)
    const twin = await vipTwin('api', 'backend')
    const bodies = await c.httpGetIn(h1, Array.from({ length: 10 }, () => `http://${twin}:80/`))
    t.ok(bodies.every(b => b.startsWith('docker-swarm-')), `a process inside ${h1.name} reaches api at ${twin}:80`)
    t.equal(new Set(bodies.map(b => b.split(' ')[1])).size, 2, 'balanced over both api tasks')
  })

  await testNeeding(t, 'an encrypted overlay: no plaintext between hosts', captureMissing, async t => {
    const MARK = 'PLAINTEXT-MARKER-93c1 '
    // The control: a plain overlay's requests show in the clear in the same capture (everything on eth0).
    const plain = await vipTwin('api', 'backend')
    let cap = await c.capture(h1, [])
    const plainBodies = await c.httpGetIn(h1, Array.from({ length: 10 }, () => `http://${plain}:80/`))
    let pcap = await cap.stop()
    t.ok(plainBodies.some(b => b.startsWith('docker-swarm-') && b.split(' ')[0] !== h1.name), `requests crossed hosts: ${plainBodies.map(b => b.split(' ')[0]).join(', ')}`)
    t.ok(pcapPayloads(pcap).includes('HTTP/1.1'), `a plain overlay carries HTTP in the clear between hosts (${pcapPayloads(pcap, 4789).length} bytes on 4789, ${pcapPayloads(pcap).length} in all, pcap ${pcap.length} bytes)`)

    await ctl('network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'secure')
    await ctl('service', 'create', '--name', 'sec', '--replicas', '3', '--network', 'secure', '--publish', 'target=80', '--env', `MARK=${MARK}`, 'node', 'node', '-e', HTTP)
    const twin = await vipTwin('sec', 'secure')
    await waitUntil(async () => (await c.httpGetIn(h1, [`http://${twin}:80/`]))[0]!.startsWith(MARK), { timeoutMs: 20_000, what: 'the encrypted service' })
    cap = await c.capture(h1, [])
    const bodies = await c.httpGetIn(h1, Array.from({ length: 30 }, () => `http://${twin}:80/${MARK.trim()}-request`))
    pcap = await cap.stop()
    t.ok(bodies.every(b => b.startsWith(MARK)), 'the encrypted service answered every request')
    const hostsAnswering = new Set(bodies.map(b => b.slice(MARK.length).split(' ')[0]))
    t.equal(hostsAnswering.size, 3, `from tasks on all three hosts, so between hosts: ${[...hostsAnswering].join(', ')}`)
    const tunnel = pcapPayloads(pcap, 4789)
    const all = pcapPayloads(pcap)
    t.ok(tunnel.length > 2_000, `${tunnel.length} bytes of payload on 4789 in the capture (${all.length} on eth0 in all)`)
    t.equal(all.indexOf(MARK.trim()), -1, 'no marker in plaintext anywhere on eth0')
    t.equal(all.indexOf('HTTP/1.1'), -1, 'not even the HTTP framing')
  })

  await t.test("an encrypted network's keys only where its tasks are: a host without one does not serve its VIP", async t => {
    const h2 = c.hosts[1]!
    await ctl('network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'private')
    await ctl('service', 'create', '--name', 'priv', '--replicas', '2', '--network', 'private', '--constraint', `node.hostname!=${h1.name}`, '--publish', 'target=80', 'node', 'node', '-e', HTTP)
    const twin = await vipTwin('priv', 'private')
    const get = async (h: Host): Promise<string> => (await c.httpGetIn(h, [`http://${twin}:80/`]))[0]!
    await waitUntil(async () => (await get(h2)).startsWith('docker-swarm-'), { timeoutMs: 20_000, what: `priv at its VIP from ${h2.name}` })
    t.equal(await get(h1), 'error:ECONNREFUSED', `${h1.name} has no task on the network, so no keys: it does not serve the VIP`)

    await ctl('service', 'update', '--constraint-rm', `node.hostname!=${h1.name}`, '--constraint-add', `node.hostname==${mgr.name}`, 'priv')
    await waitUntil(async () => !c.taskCounts('priv').perHost[h2.name] && (await get(h2)) === 'error:ECONNREFUSED', { timeoutMs: 60_000, what: `${h2.name}'s priv task gone and its VIP there closed` })
    t.pass(`${h2.name}'s last task there stopped: its keys withdrawn, it no longer serves the VIP`)
    t.match(await get(mgr), /^docker-swarm-3 /, `${mgr.name}, with the tasks, still does`)
  })

  await ctl('service', 'rm', 'web', 'api', 'client', 'sec', 'priv')
  t.comment(`file total ${secondsSince(tFile)} s`)
})
