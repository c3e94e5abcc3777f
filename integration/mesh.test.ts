/**
 * The routing mesh on three daemons on loopback (127.0.0.61-63, the manager
 * on .63; published ports listen on each node's own address): a published
 * port answering on every node with even balance over tasks on all three,
 * UDP through the mesh, a service reaching another by its VIP, PROXY
 * protocol carrying the client's address, an encrypted overlay with no
 * plaintext on 4789 (tcpdump), and failover when a node dies.
 */
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { loopbackAddr } from '../lib/manager/network-allocator.js'
import { killTasks, loopbackSwarm, secs } from './helpers/daemon.js'
import { pcapPayloads } from './helpers/hosts.js'
import { httpGet } from './helpers/net.js'
import { captureMissing, TCPDUMP, testNeeding } from './helpers/prerequisites.js'
import { sleep, spawnManaged, waitUntil } from './helpers/procs.js'




/** One datagram and its answer. */
function udpAsk(host: string, port: number, msg: string): Promise<string> {
  return new Promise(resolve => {
    const s = createSocket('udp4')
    const timer = setTimeout(() => {
      s.close()
      resolve('timeout')
    }, 3_000)
    s.on('message', m => {
      clearTimeout(timer)
      s.close()
      resolve(m.toString())
    })
    s.send(msg, port, host)
  })
}

/** A raw TCP exchange: what the server says back to `line`. */
function tcpAsk(host: string, port: number, line: string, localAddress?: string): Promise<string> {
  return new Promise(resolve => {
    const s = connect({ host, port, ...(localAddress ? { localAddress } : {}) })
    let got = ''
    s.setEncoding('utf8')
    s.on('data', d => {
      got += d
      if (got.endsWith('\n')) s.end()
    })
    s.on('close', () => resolve(got))
    s.on('error', e => resolve(`error:${(e as NodeJS.ErrnoException).code}`))
    s.write(line + '\n')
  })
}

const HTTP = 'require("http").createServer((q,s)=>s.end(process.env.SWARMD_NODE_HOSTNAME+" "+process.env.SWARMD_TASK_ID+" "+(process.env.SWARMD_VIP_API||"")+"\\n")).listen(process.env.PORT)'
const UDP = 'const s=require("dgram").createSocket("udp4");s.on("message",(m,r)=>s.send("echo "+m+" from "+process.env.SWARMD_NODE_HOSTNAME,r.port,r.address));s.bind(process.env.PORT)'
/** Reads the PROXY v1 line and answers with the client address it carried. */
const PROXY = 'require("net").createServer(c=>{let b="";c.on("data",d=>{b+=d;const i=b.indexOf("\\r\\n");if(i>=0&&b.includes("\\n",i+2)){c.end("client "+b.slice(0,i).split(" ")[2]+"\\n")}})}).listen(process.env.PORT)'
/** Calls the api service through its VIP, from inside a task. */
const CLIENT = 'require("http").createServer((q,s)=>require("http").get({host:process.env.SWARMD_VIP_API,port:80,agent:false},r=>{let b="";r.on("data",d=>b+=d);r.on("end",()=>s.end("via vip: "+b))}).on("error",e=>s.end("error "+e.code+"\\n"))).listen(process.env.PORT)'

t.test('the routing mesh on three nodes', async t => {
  const { dir, hosts, ctl } = await loopbackSwarm(t, { prefix: 'mesh', name: i => `mesh-${i}`, ip: i => `127.0.0.6${i}`, args: h => ['--ingress-addr', h.ip] })
  const [w1, w2, mgr] = hosts

  // A published port on every node, balanced over three tasks on three nodes.
  await ctl('service', 'create', '--name', 'web', '--replicas', '3', '--publish', '28401:80', 'node', 'node', '-e', HTTP)
  const tasksByNode = new Set((await ctl('service', 'ps', 'web')).split('\n').slice(1).filter(Boolean).map(l => /mesh-\d/.exec(l)?.[0]))
  t.equal(tasksByNode.size, 3, 'the three tasks run on three nodes')
  await waitUntil(async () => (await Promise.all(hosts.map(h => httpGet(h.ip, 28401)))).every(b => b.startsWith('mesh-')), { timeoutMs: 20_000, what: 'the published port answering on every node' })
  for (const h of hosts) t.match(await httpGet(h.ip, 28401), /^mesh-[123] [0-9a-z]{25} \n$/, `28401 answers on ${h.name} from a task`)
  const counts = new Map<string, number>()
  for (let i = 0; i < 1_000; i++) {
    const body = await httpGet(hosts[i % 3]!.ip, 28401)
    const task = body.split(' ')[1] ?? body
    counts.set(task, (counts.get(task) ?? 0) + 1)
  }
  const n = [...counts.values()]
  t.equal(counts.size, 3, `answers from three tasks: ${JSON.stringify(Object.fromEntries(counts))}`)
  t.ok(Math.max(...n) / Math.min(...n) <= 1.2, `even balance: max/min = ${(Math.max(...n) / Math.min(...n)).toFixed(3)}`)

  // UDP through the mesh.
  await ctl('service', 'create', '--name', 'udp', '--replicas', '2', '--publish', 'published=28402,target=53,protocol=udp', 'node', 'node', '-e', UDP)
  await waitUntil(async () => (await udpAsk(w1.ip, 28402, 'ping')).startsWith('echo ping from mesh-'), { timeoutMs: 20_000, what: 'a UDP answer' })
  for (const h of hosts) t.match(await udpAsk(h.ip, 28402, `hi-${h.name}`), new RegExp(`^echo hi-${h.name} from mesh-\\d$`), `UDP through ${h.name}`)

  // PROXY protocol: the task learns the client's address.
  await ctl('service', 'create', '--name', 'pp', '--label', 'com.swarmd.proxy-protocol=v1', '--publish', '28403:7000', 'node', 'node', '-e', PROXY)
  await waitUntil(async () => (await tcpAsk(w2.ip, 28403, 'hello', '127.0.0.99')).startsWith('client'), { timeoutMs: 20_000, what: 'the PROXY service' })
  t.equal(await tcpAsk(w2.ip, 28403, 'hello', '127.0.0.99'), 'client 127.0.0.99\n', 'PROXY protocol carried the client address')

  // A published port another program holds on one node: the conflict shows in service ps.
  const squatter = createServer().listen(28405, w1.ip)
  await once(squatter, 'listening')
  t.teardown(() => squatter.close())
  await ctl('service', 'create', '--name', 'taken', '-d', '--constraint', `node.hostname==${w1.name}`, '--publish', '28405:80', 'node', 'node', '-e', HTTP)
  const conflict = `cannot listen on ${w1.ip}:28405/tcp: port is already allocated`
  await waitUntil(async () => (await ctl('service', 'ps', '--no-trunc', 'taken')).includes(conflict), { timeoutMs: 20_000, what: 'the port conflict in service ps' })
  const takenRows = (await ctl('service', 'ps', '--no-trunc', 'taken')).trimEnd().split('\n').slice(1)
  t.match(takenRows[0], new RegExp(`^[0-9a-z]{25} +taken\\.1 +node +${w1.name} +Running +Running [^"]+ "${conflict}"$`), `service ps: the task on ${w1.name} has the port conflict as its error`)
  t.match(await httpGet(w2.ip, 28405), /^mesh-1 /, 'while the other nodes still route to the task')
  await ctl('service', 'rm', 'taken')

  // Service to service by VIP, on an overlay network.
  await ctl('network', 'create', '-d', 'overlay', 'backend')
  await ctl('service', 'create', '--name', 'api', '--replicas', '2', '--network', 'backend', '--publish', 'target=80', 'node', 'node', '-e', HTTP)
  const api = JSON.parse(await ctl('service', 'inspect', 'api'))[0]
  const net = JSON.parse(await ctl('network', 'inspect', 'backend'))[0]
  const vip = api.Endpoint.VirtualIPs.find((v: { NetworkID: string }) => v.NetworkID === net.Id)
  t.ok(vip, `api has a VIP on backend: ${vip?.Addr}`)
  const lo = loopbackAddr(vip.Addr, net.IPAM.Config[0].Subnet, net.Options['com.swarmd.network.loopback_subnet'])
  await waitUntil(async () => (await httpGet(lo, 80)).startsWith('mesh-'), { timeoutMs: 20_000, what: `the VIP ${lo}:80` })
  const viaVip = await Promise.all(Array.from({ length: 10 }, () => httpGet(lo, 80)))
  t.ok(viaVip.every(b => /^mesh-[123] [0-9a-z]{25} /.test(b)), `a client on the host reaches api at its VIP ${lo}:80: ${viaVip[0]}`)
  t.equal(new Set(viaVip.map(b => b.split(' ')[1])).size, 2, 'balanced over both api tasks')
  await ctl('service', 'create', '--name', 'client', '--network', 'backend', '--publish', '28404:8000', 'node', 'node', '-e', CLIENT)
  await waitUntil(async () => (await httpGet(mgr.ip, 28404)).startsWith('via vip: mesh-'), { timeoutMs: 20_000, what: 'the client service' })
  t.match(await httpGet(mgr.ip, 28404), /^via vip: mesh-\d [0-9a-z]{25} /, 'a task reaches another service by SWARMD_VIP_API')

  // An encrypted overlay: nothing on 4789 in plaintext (the tunnel runs over the node addresses).
  await testNeeding(t, 'an encrypted overlay: no plaintext on 4789', captureMissing, async t => {
    await ctl('network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'secure')
    const MARK = 'PLAINTEXT-MARKER-5b1e'
    await ctl('service', 'create', '--name', 'sec', '--replicas', '3', '--network', 'secure', '--publish', 'target=80', '--env', `MARK=${MARK}`, 'node', 'node', '-e', HTTP.replace('process.env.SWARMD_NODE_HOSTNAME', 'process.env.MARK+" "+process.env.SWARMD_NODE_HOSTNAME'))
    const sec = JSON.parse(await ctl('service', 'inspect', 'sec'))[0]
    const snet = JSON.parse(await ctl('network', 'inspect', 'secure'))[0]
    const svip = sec.Endpoint.VirtualIPs.find((v: { NetworkID: string }) => v.NetworkID === snet.Id)
    const slo = loopbackAddr(svip.Addr, snet.IPAM.Config[0].Subnet, snet.Options['com.swarmd.network.loopback_subnet'])
    await waitUntil(async () => (await httpGet(slo, 80)).startsWith(MARK), { timeoutMs: 20_000, what: 'the encrypted service' })
    const pcap = join(dir, 'lo.pcap')
    const cap = spawnManaged(TCPDUMP!, ['-i', 'lo', '-U', '-n', '-s', '0', '-w', pcap], { label: 'tcpdump', mergeStderr: true })
    await cap.waitForLine(l => l.includes('listening on'), 15_000, 'tcpdump')
    const bodies: string[] = []
    for (let i = 0; i < 30; i++) bodies.push(await httpGet(slo, 80, `/${MARK}-request`))
    await sleep(500)
    await cap.stop({ signal: 'SIGINT' })
    t.ok(bodies.every(b => b.startsWith(MARK)), 'the encrypted service answered every request')
    t.ok(new Set(bodies.map(b => b.split(' ')[1])).size >= 2, 'from tasks on several nodes (so through tunnels)')
    const tunnel = pcapPayloads(readFileSync(pcap), 4789, 'tcp')
    t.ok(tunnel.length > 2_000, `${tunnel.length} bytes of TCP payload on 4789 in the capture`)
    t.equal(tunnel.indexOf(MARK), -1, 'no plaintext on 4789 for the encrypted network')
    t.equal(tunnel.indexOf('HTTP/1.1'), -1, 'not even the HTTP framing')
    t.ok(pcapPayloads(readFileSync(pcap), 80, 'tcp').includes(MARK), 'while the same capture shows it in the clear between client and VIP')
  })

  // A node dies: new connections stop going to it; how long until every request succeeds again.
  const victim = w2
  w2.proc!.kill('SIGKILL')
  await w2.proc!.exited
  killTasks([victim.id!])
  const t0 = performance.now()
  let failed = 0
  let okStreak = 0
  while (okStreak < 50 && performance.now() - t0 < 60_000) {
    const body = await httpGet(mgr.ip, 28401)
    if (body.startsWith('mesh-') && !body.startsWith(victim.name)) okStreak++
    else {
      failed++
      okStreak = 0
    }
  }
  t.equal(okStreak, 50, 'requests succeed again')
  t.comment(`a node killed: ${failed} failed requests, all requests served by live tasks within ${secs(performance.now() - t0)}`)
})
