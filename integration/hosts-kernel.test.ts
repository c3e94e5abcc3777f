/**
 * The kernel data plane on three hosts (network namespaces on a bridge, the
 * manager on docker-swarm-3, every daemon as root with --data-plane kernel):
 * tasks in namespaces of their own, on VXLAN overlays between the hosts,
 * VIPs and published ports in nftables. Two replicas on one host both
 * listen on port 80; a task reaches another service by its VIP across
 * hosts; `ip -d link` and `nft list table` show what was programmed; a
 * published port answers on every host, spread over the tasks; a daemon
 * killed and restarted adopts its tasks, which kept answering; an
 * encrypted network's traffic between hosts holds no plaintext (the sealed
 * tunnel: this kernel has no IPsec); a task's resolv.conf names its
 * gateway, where the node's DNS answers `api` with the VIP, `tasks.api`
 * with the tasks' addresses and a dnsrr service with its tasks'; a dead host's tasks leave the rotation
 * on the membership's word; and nothing is left behind: no namespace, link,
 * nft table or xfrm state.
 */
import t from 'tap'
import { ApiClient } from '../lib/api/client.js'
import { Hosts, hostsMissing, pcapPayloads, secondsSince, taskNamespaces, type Host } from './helpers/hosts.js'
import { httpGet } from './helpers/net.js'
import { captureMissing, dockerCliMissing, testNeeding, DOCKER } from './helpers/prerequisites.js'
import { run, waitUntil } from './helpers/procs.js'

/** Answers with where it runs: host, task, its addresses, $PORT; on port 80 itself, not $PORT. */
const HTTP80 =
  'const a=Object.values(require("os").networkInterfaces()).flat().filter(i=>i.family==="IPv4"&&!i.internal).map(i=>i.address).join(",");' +
  'require("http").createServer((q,s)=>s.end((process.env.MARK||"")+process.env.SWARMD_NODE_HOSTNAME+" "+process.env.SWARMD_TASK_ID+" "+a+" port="+process.env.PORT+"\\n")).listen(80)'
/** Asks the service named by $TARGET at its VIP ($SWARMD_VIP_<TARGET>), port 80, and answers with what it got. */
const CLIENT =
  'require("http").createServer((q,s)=>require("http").get({host:process.env["SWARMD_VIP_"+process.env.TARGET],port:80,path:q.url,agent:false},r=>{let b="";r.on("data",d=>b+=d);r.on("end",()=>s.end("via vip: "+b))}).on("error",e=>s.end("error "+e.code+"\\n"))).listen(8000)'

interface TaskObject {
  ID: string
  NodeID: string
  DesiredState: string
  Status: { State: string }
  NetworksAttachments?: { Network: { ID: string; Spec: { Name: string } }; Addresses: string[] }[]
}

testNeeding(t, 'the kernel data plane across three hosts', hostsMissing, async t => {
  const tFile = performance.now()
  const c = await Hosts.create(t, 3, { dataPlane: 'kernel' })
  const [h1, h2, mgr] = c.hosts as [Host, Host, Host]
  const ctl = (...args: string[]): Promise<string> => c.ctlOk(mgr, ...args)
  await c.formSwarm(mgr)
  const inHost = async (h: Host, cmd: string, ...args: string[]): Promise<string> => (await c.execOk(h, cmd, args)).stdout
  const tasksOf = async (service: string): Promise<TaskObject[]> =>
    (await c.api<TaskObject[]>(mgr, `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: [service] }))}`)).filter(x => x.DesiredState === 'running' && x.Status.State === 'running')
  const vipOf = async (service: string, network: string): Promise<string> => {
    const svc = JSON.parse(await ctl('service', 'inspect', service))[0]
    const net = JSON.parse(await ctl('network', 'inspect', network))[0]
    return svc.Endpoint.VirtualIPs.find((v: { NetworkID: string }) => v.NetworkID === net.Id).Addr.split('/')[0]
  }
  const vniOf = async (network: string): Promise<number> => Number(JSON.parse(await ctl('network', 'inspect', network))[0].Options['com.docker.network.driver.overlay.vxlanid_list'])

  await t.test('docker info says which data plane runs', async t => {
    for (const h of c.hosts) {
      const info = await c.api<{ DataPlane?: { kind: string }; Plugins: { Network: string[] } }>(h, '/info')
      t.equal(info.DataPlane?.kind, 'kernel', `${h.name} runs the kernel data plane`)
      t.ok(info.Plugins.Network.includes('(data plane: kernel, VXLAN + nftables)'))
    }
    await testNeeding(t, 'in the docker CLI', dockerCliMissing, async t => {
      const r = await run(DOCKER!, ['-H', `unix://${h1.sock}`, 'info'])
      t.match(r.stdout, /Network: overlay \(data plane: kernel, VXLAN \+ nftables\)/, 'on the Plugins section\'s Network line')
    })
  })

  await t.test('two replicas on one host both listen on port 80, each with its own address on the network', async t => {
    await ctl('network', 'create', '-d', 'overlay', 'backend')
    await ctl('service', 'create', '--name', 'api', '--replicas', '2', '--network', 'backend', '--constraint', `node.hostname==${h1.name}`, 'node', 'node', '-e', HTTP80)
    const tasks = await tasksOf('api')
    t.equal(tasks.length, 2)
    t.equal(new Set(tasks.map(x => x.NodeID)).size, 1, 'both on one host')
    const addrs = tasks.map(x => x.NetworksAttachments?.find(a => a.Network.Spec.Name === 'backend')?.Addresses[0] ?? '')
    t.ok(
      addrs.every(a => /^10\.\d+\.\d+\.\d+\/24$/.test(a)),
      `NetworksAttachments[].Addresses as Docker shows them: ${addrs.join(', ')}`,
    )
    t.equal(new Set(addrs).size, 2, 'two addresses')
    const vip = await vipOf('api', 'backend')
    const bodies = await c.httpGetIn(h1, Array.from({ length: 20 }, () => `http://${vip}/`))
    t.ok(bodies.every(b => b.startsWith(`${h1.name} `)), `a process on ${h1.name} reaches the VIP ${vip}: ${bodies[0]?.trim()}`)
    t.same(new Set(bodies.map(b => b.split(' ')[1])), new Set(tasks.map(x => x.ID)), 'balanced over both tasks')
    for (const a of addrs) t.ok(bodies.some(b => b.split(' ')[2]!.split(',').includes(a.split('/')[0]!)), `the task at ${a} answered from it`)
  })

  await t.test('a task reaches another service by its VIP, across hosts, on the overlay', async t => {
    await ctl('service', 'create', '--name', 'client', '--network', 'backend', '--constraint', `node.hostname==${h2.name}`, '--env', 'TARGET=API', '--publish', '28602:8000', 'node', 'node', '-e', CLIENT)
    await waitUntil(async () => (await httpGet(h2.ip, 28602)).startsWith('via vip: '), { timeoutMs: 20_000, what: 'the client answering' })
    const answers = await Promise.all(Array.from({ length: 10 }, () => httpGet(h2.ip, 28602)))
    t.ok(answers.every(a => a.startsWith(`via vip: ${h1.name} `)), `from ${h2.name} to the api tasks on ${h1.name}: ${answers[0]?.trim()}`)
  })

  await t.test("names by the node's DNS, at the task's gateway: http://api/, tasks.api, a dnsrr service", async t => {
    const net = JSON.parse(await ctl('network', 'inspect', 'backend'))[0]
    // swarmctl has no --endpoint-mode yet: the API, as the docker CLI sends it.
    await new ApiClient(mgr.sock).call('POST', '/services/create', {
      Name: 'db',
      Mode: { Replicated: { Replicas: 2 } },
      EndpointSpec: { Mode: 'dnsrr' },
      TaskTemplate: { ContainerSpec: { Image: 'node', Command: ['node', '-e', HTTP80] }, Networks: [{ Target: net.Id }], Placement: { Constraints: [`node.hostname==${mgr.name}`] } },
    })
    const client = (await tasksOf('client'))[0]!
    const ns = `swarmd-${h2.id}-${client.ID}`
    // `ip netns exec` puts the task's resolv.conf over /etc/resolv.conf, as for the task itself.
    const inTask = async (...cmd: string[]): Promise<string> => (await run('ip', ['netns', 'exec', ns, ...cmd], { timeoutMs: 10_000 })).stdout
    const gw: string = net.IPAM.Config[0].Gateway
    t.match(await inTask('cat', '/etc/resolv.conf'), new RegExp(`^nameserver ${gw.replace(/\./g, '\\.')}$`, 'm'), `the task's resolv.conf names backend's gateway ${gw} (not ingress's: it has no names)`)
    const addrsOf = (out: string): string[] => [...new Set(out.split('\n').filter(Boolean).map(l => l.split(/\s+/)[0]!))].sort()
    const vip = await vipOf('api', 'backend')
    await waitUntil(async () => addrsOf(await inTask('getent', 'ahostsv4', 'api')).join() === vip, { timeoutMs: 20_000, what: `api resolving to ${vip} in the client task` })
    t.pass(`getent ahostsv4 api: ${vip}, the VIP`)
    const apiAddrs = (await tasksOf('api')).map(x => x.NetworksAttachments!.find(a => a.Network.Spec.Name === 'backend')!.Addresses[0]!.split('/')[0]!).sort()
    t.same(addrsOf(await inTask('getent', 'ahostsv4', 'tasks.api')), apiAddrs, `tasks.api: both tasks' addresses (${apiAddrs.join(', ')})`)
    const get = 'require("http").get("http://api/",r=>{let b="";r.on("data",d=>b+=d);r.on("end",()=>process.stdout.write(b))}).on("error",e=>process.stdout.write("error "+e.code))'
    const byName = await inTask(process.execPath, '-e', get)
    t.ok(byName.startsWith(`${h1.name} `), `http://api/ by name from a task on ${h2.name}: ${byName.trim()}`)
    await waitUntil(async () => (await tasksOf('db')).length === 2, { timeoutMs: 30_000, what: 'db running' })
    const dbAddrs = (await tasksOf('db')).map(x => x.NetworksAttachments!.find(a => a.Network.Spec.Name === 'backend')!.Addresses[0]!.split('/')[0]!).sort()
    await waitUntil(async () => addrsOf(await inTask('getent', 'ahostsv4', 'db')).join() === dbAddrs.join(), { timeoutMs: 20_000, what: 'db resolving to its tasks' })
    t.pass(`db (dnsrr): its tasks' addresses ${dbAddrs.join(', ')}, no VIP`)
  })

  await t.test("ip -d link shows the network's VXLAN device, nft list table swarmd's table", async t => {
    const vni = await vniOf('backend')
    for (const h of [h1, h2]) {
      const link = await inHost(h, 'ip', '-d', 'link', 'show', `swvx${vni}`)
      t.match(link, new RegExp(`vxlan id ${vni} local ${h.ip.replace(/\./g, '\\.')} .*dstport 4789 .*nolearning`, 's'), `${h.name}: VNI ${vni}, dstport 4789, no learning`)
      t.match(link, /mtu 1450/)
    }
    const table = await inHost(h2, 'nft', 'list', 'table', 'ip', 'swarmd')
    const vip = await vipOf('api', 'backend')
    t.match(table, new RegExp(`${vip.replace(/\./g, '\\.')} : goto vip-${vni}-`), 'the VIP in the vips map')
    t.match(table, /numgen random mod 2 vmap/, 'balanced over the two api tasks')
    t.match(table, /tcp \. 28602 : goto pub-tcp-28602/, 'the published port')
  })

  await t.test('a published port answers on every host; 1,000 requests spread within 1.5 max/min over the tasks', async t => {
    await ctl('service', 'create', '--name', 'web', '--replicas', '3', '--publish', '28601:80', 'node', 'node', '-e', HTTP80)
    t.same(Object.values(c.taskCounts('web').perHost), [1, 1, 1], 'one task per host')
    await waitUntil(async () => (await Promise.all(c.hosts.map(h => httpGet(h.ip, 28601)))).every(b => b.startsWith('docker-swarm-')), { timeoutMs: 20_000, what: 'the published port on every host' })
    const byTask = new Map<string, number>()
    const failed: string[] = []
    const entries = new Map<string, Set<string>>()
    for (let i = 0; i < 1000; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, (_, k) => c.hosts[(i + k) % 3]!).map(async h => ({ h, body: await httpGet(h.ip, 28601) })))
      for (const { h, body } of batch) {
        const [node, task] = body.trim().split(' ')
        if (!node?.startsWith('docker-swarm-') || !task) failed.push(`${h.name}: ${body}`)
        byTask.set(task ?? '?', (byTask.get(task ?? '?') ?? 0) + 1)
        entries.set(h.name, (entries.get(h.name) ?? new Set()).add(node ?? '?'))
      }
    }
    t.same(failed, [], 'all 1,000 answered')
    t.ok(
      [...entries.keys()].length === 3 && (await httpGet(h1.ip, 28601)).trim().endsWith('port=80'),
      '$PORT is the target port',
    )
    const n = [...byTask.values()]
    t.equal(byTask.size, 3, `answers from the three tasks ${JSON.stringify(Object.fromEntries(byTask))}`)
    t.ok(Math.max(...n) / Math.min(...n) <= 1.5, `spread: max/min = ${(Math.max(...n) / Math.min(...n)).toFixed(2)}`)
    for (const [entry, nodes] of entries) t.equal(nodes.size, 3, `through ${entry}, answers from tasks on all three hosts`)
  })

  await t.test('a daemon killed: its tasks keep answering; restarted, it leaves no namespace but its running tasks\'', async t => {
    const before = taskNamespaces(h1).sort()
    t.ok(before.length >= 2, `${before.length} task namespaces on ${h1.name}`)
    await c.kill9(h1)
    const during = await c.httpGetIn(h1, [`http://${await vipOf('api', 'backend')}/`])
    t.ok(during[0]!.startsWith(`${h1.name} `), 'the kernel keeps serving while the daemon is down')
    await c.start(h1)
    // The manager may have replaced them meanwhile (the node was Down): two api tasks run on h1 again, adopted or new.
    await waitUntil(async () => (await tasksOf('api')).length === 2, { timeoutMs: 60_000, what: 'two api tasks running again' })
    let last: string[] = []
    await waitUntil(async () => (last = await Promise.all([1, 2, 3].map(() => httpGet(h2.ip, 28602)))).every(a => a.startsWith(`via vip: ${h1.name} `)), { timeoutMs: 30_000, what: 'the api tasks reachable again' }).catch(async e => {
      t.comment(`last answers: ${JSON.stringify(last)}`)
      for (const h of [h1, h2]) t.comment(`${h.name}:\n${await inHost(h, 'nft', 'list', 'table', 'ip', 'swarmd')}\n${await inHost(h, 'bridge', 'fdb', 'show')}\n${await inHost(h, 'ip', 'neigh')}\n${await inHost(h, 'ip', '-br', 'addr')}`)
      t.comment(JSON.stringify(await tasksOf('api')))
      throw e
    })
    const onH1 = async (): Promise<string[]> => {
      const ids: string[] = []
      for (const svc of ['api', 'web']) for (const [id, host] of await c.runningTasks(mgr, svc)) if (host === h1.name) ids.push(id)
      return ids.map(id => `swarmd-${h1.id}-${id}`).sort()
    }
    await waitUntil(async () => {
      const want = await onH1()
      return want.length >= 2 && JSON.stringify(taskNamespaces(h1).sort()) === JSON.stringify(want)
    }, { timeoutMs: 30_000, what: `only the namespaces of the tasks running on ${h1.name}` })
    const after = taskNamespaces(h1).sort()
    t.pass(`${after.filter(n => before.includes(n)).length} of ${before.length} namespaces adopted, ${after.filter(n => !before.includes(n)).length} new (tasks the manager replaced while ${h1.name} was gone)`)
    t.equal((await tasksOf('api')).length, 2)
  })

  await testNeeding(t, "an encrypted overlay: no plaintext between hosts (this kernel has no IPsec: the sealed tunnel carries it)", captureMissing, async t => {
    const MARK = 'PLAINTEXT-MARKER-5e7a '
    await ctl('network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'secure')
    await ctl('service', 'create', '--name', 'sec', '--replicas', '2', '--network', 'secure', '--constraint', `node.hostname!=${h1.name}`, '--publish', 'target=80', '--env', `MARK=${MARK}`, 'node', 'node', '-e', HTTP80)
    await ctl('service', 'create', '--name', 'seccli', '--network', 'secure', '--constraint', `node.hostname==${h1.name}`, '--env', 'TARGET=SEC', '--publish', '28604:8000', 'node', 'node', '-e', CLIENT)
    // From inside h1 to its own address: the request stays on h1; only the client task's calls to sec cross to h2 and mgr.
    const url = `http://${h1.ip}:28604/${MARK.trim()}-request`
    await waitUntil(async () => (await c.httpGetIn(h1, [url]))[0]!.startsWith(`via vip: ${MARK}`), { timeoutMs: 30_000, what: 'the encrypted service through the client' })
    const cap = await c.capture(h1, [])
    const bodies = await c.httpGetIn(h1, Array.from({ length: 30 }, () => url))
    const pcap = await cap.stop()
    t.ok(bodies.every(b => b.startsWith(`via vip: ${MARK}`)), 'every request answered')
    const answering = new Set(bodies.map(b => b.slice(`via vip: ${MARK}`.length).split(' ')[0]))
    t.same([...answering].sort(), [h2.name, mgr.name], `from tasks on the other hosts: ${[...answering].join(', ')}`)
    const tunnel = pcapPayloads(pcap, 4789, 'tcp')
    const all = pcapPayloads(pcap)
    t.ok(tunnel.length > 2_000, `${tunnel.length} bytes on the tunnel (4789/tcp), ${all.length} on eth0 in all`)
    t.equal(all.indexOf(MARK.trim()), -1, 'no marker in plaintext anywhere on eth0')
    t.equal(all.indexOf('HTTP/1.1'), -1, 'not even the HTTP framing')
    const vni = await vniOf('secure')
    for (const h of c.hosts) t.notMatch(await inHost(h, 'ip', '-d', 'link', 'show', 'type', 'vxlan'), new RegExp(`vxlan id ${vni} `), `${h.name}: no VXLAN device for the encrypted network`)
  })

  await t.test("a dead host's tasks leave the rotation on the membership's word", async t => {
    const web = [...(await c.runningTasks(mgr, 'web')).entries()]
    const onH2 = (await tasksOf('web')).filter(x => web.some(([id, host]) => id === x.ID && host === h2.name))
    const h2addr = onH2[0]?.NetworksAttachments?.[0]?.Addresses[0]?.split('/')[0]
    t.ok(h2addr, `${h2.name}'s web task is at ${h2addr}`)
    const t0 = performance.now()
    await c.linkDown(h2)
    await c.kill9(h2)
    const gone = async (h: Host): Promise<boolean> => !(await inHost(h, 'nft', 'list', 'table', 'ip', 'swarmd')).includes(h2addr!)
    const outAt = await Promise.all(
      [h1, mgr].map(async h => {
        await waitUntil(() => gone(h), { timeoutMs: 30_000, intervalMs: 100, what: `${h2.name}'s task out of ${h.name}'s table` })
        return secondsSince(t0)
      }),
    )
    const down = await c.waitNodeState(mgr, h2, 'down', t0)
    t.comment(`${h2.name}'s task out of the rotation ${outAt.join(' s and ')} s after the cut (on ${h1.name} and ${mgr.name}); the manager had it Down at ${down} s`)
    for (const h of [h1, mgr]) t.notMatch(await inHost(h, 'bridge', 'fdb', 'show'), new RegExp(h2.ip.replace(/\./g, '\\.')), `${h.name}: no FDB entry points at ${h2.name} any more`)
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => httpGet([h1, mgr][i % 2]!.ip, 28601)))
    t.same(
      answers.filter(a => !a.startsWith(h1.name) && !a.startsWith(mgr.name)),
      [],
      'every request answered, by the live hosts',
    )
    await c.linkUp(h2)
    await c.start(h2)
  })

  await t.test('nothing is left behind: service rm, swarm leave', async t => {
    await ctl('service', 'rm', 'web', 'api', 'client', 'db', 'sec', 'seccli')
    await waitUntil(async () => c.hosts.every(h => taskNamespaces(h).length === 0), { timeoutMs: 30_000, what: 'every task namespace gone' })
    for (const h of [h1, h2]) await c.ctlOk(h, 'swarm', 'leave')
    await c.ctlOk(mgr, 'swarm', 'leave', '--force')
    for (const h of c.hosts) {
      t.notMatch(await inHost(h, 'ip', 'link', 'show'), /swbr|swvx|swtp/, `${h.name}: no link`)
      t.notMatch(await inHost(h, 'nft', 'list', 'tables'), /swarmd/, `${h.name}: no nft table`)
      t.equal((await inHost(h, 'ip', 'xfrm', 'state')).trim(), '', `${h.name}: no xfrm state`)
      t.same(taskNamespaces(h), [], `${h.name}: no task namespace`)
    }
  })
  t.comment(`file total ${secondsSince(tFile)} s`)
})
