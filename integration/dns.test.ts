/**
 * The node's DNS on three daemons on loopback (127.0.0.191-193, the manager
 * on .193, each DNS on its own address, port 53): a task reaches another
 * service by name (`http://api/`, the name resolving to the VIP's loopback
 * twin the mesh serves), `tasks.api` gives the nodes its two tasks run on,
 * a network alias resolves, a dnsrr service answers its tasks in rotation,
 * and other names go to the host's resolvers (a stub on .194, as root). As root, an
 * unmodified program (getent) resolves through a resolv.conf pointing at a
 * node's DNS, bind-mounted in a mount namespace as a task's netns would get it.
 */
import { createSocket } from 'node:dgram'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode, encode } from 'dns-packet'
import t, { type Test } from 'tap'
import { ApiClient } from '../lib/api/client.js'
import { loopbackSwarm } from './helpers/daemon.js'
import { httpGet } from './helpers/net.js'
import { testNeeding } from './helpers/prerequisites.js'
import { run, waitUntil } from './helpers/procs.js'

const ip = (i: number): string => `127.0.0.19${i}`
const DNS_PORT = process.getuid?.() === 0 ? 53 : 10053
const STUB = '127.0.0.194'

const HTTP = 'require("http").createServer((q,s)=>s.end(process.env.SWARMD_NODE_HOSTNAME+" "+process.env.SWARMD_TASK_ID+"\\n")).listen(process.env.PORT)'
/**
 * Resolves through the node's DNS (SWARMD_DNS, set on dns.Resolver: tasks
 * share the host's resolv.conf): /resolve?name=N gives N's A records,
 * /get?name=N fetches http://N/ with that resolver as the lookup.
 */
const CLIENT = [
  'const http=require("http"),dns=require("dns");const r=new dns.Resolver();r.setServers([process.env.SWARMD_DNS]);',
  'const lookup=(h,o,cb)=>r.resolve4(h,(e,a)=>e?cb(e):o.all?cb(null,a.map(x=>({address:x,family:4}))):cb(null,a[0],4));',
  'http.createServer((q,s)=>{const u=new URL(q.url,"http://x"),n=u.searchParams.get("name");',
  'if(u.pathname==="/resolve")r.resolve4(n,(e,a)=>s.end(e?"error "+e.code:a.join(",")));',
  'else http.get({host:n,port:80,agent:false,lookup},res=>{let b="";res.on("data",d=>b+=d);res.on("end",()=>s.end("via dns: "+b))}).on("error",e=>s.end("error "+e.code))',
  '}).listen(process.env.PORT)',
].join('')

/** A stub upstream resolver on 127.0.0.194:53: every A query is 192.0.2.7. Port 53 needs root; without it, undefined. */
async function stubResolver(t: Test): Promise<boolean> {
  if (process.getuid?.() !== 0) return false
  const s = createSocket('udp4')
  await new Promise<void>(r => s.bind(53, STUB, () => r()))
  s.on('message', (m, r) => {
    const q = decode(m)
    s.send(encode({ type: 'response', id: q.id!, flags: 1 << 7, questions: q.questions!, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 30, data: '192.0.2.7' }] }), r.port, r.address)
  })
  t.teardown(() => s.close())
  return true
}

t.test('service names by DNS on three nodes', async t => {
  const tmp = mkdtempSync(join(tmpdir(), 'swarmd-dns-conf-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  // The daemons' "host resolvers": the stub, never the machine's own.
  const upstreamConf = join(tmp, 'upstream.conf')
  writeFileSync(upstreamConf, `nameserver ${STUB}\n`)
  const stub = await stubResolver(t)
  const { hosts, ctl } = await loopbackSwarm(t, {
    prefix: 'dns',
    name: i => `dns-${i}`,
    ip,
    args: h => ['--ingress-addr', h.ip, '--dns-addr', `${h.ip}:${DNS_PORT}`, '--resolv-conf', upstreamConf],
  })
  const [w1, , mgr] = hosts
  const api = new ApiClient(mgr.sock)
  await ctl('network', 'create', '-d', 'overlay', 'backend')
  await ctl('service', 'create', '--name', 'api', '--replicas', '2', '--replicas-max-per-node', '1', '--network', 'backend', '--publish', 'target=80', 'node', 'node', '-e', HTTP)
  // What swarmctl has no flags for yet: a network alias, and endpoint mode dnsrr (the docker CLI's --network name=,alias= and --endpoint-mode).
  const net = JSON.parse(await ctl('network', 'inspect', 'backend'))[0]
  const spec = (name: string, extra: object) => ({ Name: name, TaskTemplate: { ContainerSpec: { Image: 'node', Command: ['node', '-e', HTTP] }, Networks: [{ Target: net.Id }] }, ...extra })
  await api.call('POST', '/services/create', {
    ...spec('db', { Mode: { Replicated: { Replicas: 3 } }, EndpointSpec: { Mode: 'dnsrr' } }),
  })
  await api.call('POST', '/services/create', {
    ...spec('cache', { Mode: { Replicated: { Replicas: 1 } } }),
    TaskTemplate: { ContainerSpec: { Image: 'node', Command: ['node', '-e', HTTP] }, Networks: [{ Target: net.Id, Aliases: ['memo'] }] },
  })
  await ctl('service', 'create', '--name', 'client', '--network', 'backend', '--constraint', `node.hostname==${w1.name}`, '--publish', '28491:8000', 'node', 'node', '-e', CLIENT)
  const resolve = (name: string): Promise<string> => httpGet(w1.ip, 28491, `/resolve?name=${name}`)

  const apiSvc = JSON.parse(await ctl('service', 'inspect', 'api'))[0]
  const vip = apiSvc.Endpoint.VirtualIPs.find((v: { NetworkID: string }) => v.NetworkID === net.Id)
  const twin = `127.${net.Options['com.swarmd.network.loopback_subnet'].split('.').slice(1, 3).join('.')}.${vip.Addr.split('/')[0].split('.')[3]}`
  await waitUntil(async () => (await resolve('api')) === twin, { timeoutMs: 30_000, what: `api resolving to ${twin}` })
  t.equal(await resolve('api'), twin, `api resolves to its VIP's loopback twin ${twin} (VIP ${vip.Addr})`)
  await waitUntil(async () => (await httpGet(w1.ip, 28491, '/get?name=api')).startsWith('via dns: dns-'), { timeoutMs: 20_000, what: 'http://api/ from the client task' })
  const bodies = await Promise.all(Array.from({ length: 10 }, () => httpGet(w1.ip, 28491, '/get?name=api')))
  t.ok(bodies.every(b => /^via dns: dns-\d [0-9a-z]{25}\n$/.test(b)), `a task reaches http://api/ by name: ${bodies[0]?.trim()}`)
  t.equal(new Set(bodies.map(b => b.split(' ')[3])).size, 2, 'through the VIP, to both api tasks')

  const apiNodes = new Set((await ctl('service', 'ps', 'api')).split('\n').slice(1).filter(Boolean).map(l => /dns-(\d)/.exec(l)![1]!))
  const want = [...apiNodes].map(i => ip(Number(i))).sort()
  await waitUntil(async () => (await resolve('tasks.api')).split(',').sort().join() === want.join(), { timeoutMs: 20_000, what: 'tasks.api' })
  t.same((await resolve('tasks.api')).split(',').sort(), want, `tasks.api: the addresses of the nodes its two tasks run on (${want.join(', ')})`)

  await waitUntil(async () => (await resolve('memo')).startsWith('127.'), { timeoutMs: 20_000, what: 'the alias memo' })
  const cache = JSON.parse(await ctl('service', 'inspect', 'cache'))[0]
  const cacheVip = cache.Endpoint.VirtualIPs[0].Addr.split('/')[0].split('.')[3]
  t.equal(await resolve('memo'), await resolve('cache'), 'the alias memo answers as cache')
  t.match(await resolve('cache'), new RegExp(`\\.${cacheVip}$`), "cache's VIP twin")

  const dbNodes = [ip(1), ip(2), ip(3)]
  await waitUntil(async () => (await resolve('db')).split(',').length === 3, { timeoutMs: 20_000, what: 'db with three tasks' })
  const rotations = await Promise.all([1, 2, 3].map(() => resolve('db')))
  t.same(rotations.map(r => r.split(',').sort()), [dbNodes, dbNodes, dbNodes], 'db (dnsrr, no VIP): its three tasks, on the three nodes')
  t.equal(new Set(rotations.map(r => r.split(',')[0])).size, 3, `in rotation: each answer starts with another (${rotations.join(' | ')})`)
  t.same((await resolve('tasks.db')).split(',').sort(), dbNodes, 'tasks.db too')

  if (stub) t.equal(await resolve('example.org'), '192.0.2.7', "another name: forwarded to the host's resolver (the stub)")
  else t.equal(await resolve('example.org'), 'error ESERVFAIL', 'another name: SERVFAIL, with no upstream that answers (the stub needs root)')

  // Straight to a node's DNS, without the client task: the names of the overlay networks, with docker's semantics.
  const ask = (name: string, type: 'A' | 'AAAA' = 'A', at = mgr.ip): Promise<{ rcode: string; answers: { data: string; ttl: number }[] }> =>
    new Promise(resolve => {
      const s = createSocket('udp4')
      s.on('message', m => {
        s.close()
        resolve(decode(m) as unknown as { rcode: string; answers: { data: string; ttl: number }[] })
      })
      s.send(encode({ type: 'query', id: 7, flags: 1 << 8, questions: [{ type, name }] }), DNS_PORT, at)
    })
  const a = await ask('api')
  t.same(a.answers.map(x => [x.data, x.ttl]), [[twin, 5]], `the manager's DNS (${mgr.ip}) answers api too, TTL 5`)
  t.same((await ask('api', 'AAAA')).answers, [], 'AAAA of a service name: no records, not forwarded')
  t.ok((await ask('tasks.db')).answers.every(x => x.ttl === 0), 'task answers have TTL 0')

  await testNeeding(t, 'an unmodified program resolving through resolv.conf (getent, in a mount namespace)', process.getuid?.() !== 0 ? 'bind-mounting resolv.conf and port 53 need root' : undefined, async t => {
    const resolvConf = join(tmp, 'resolv.conf')
    writeFileSync(resolvConf, `nameserver ${w1.ip}\noptions ndots:0\n`)
    const r = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount --bind ${resolvConf} /etc/resolv.conf && getent ahostsv4 api | head -1`], { timeoutMs: 15_000 })
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, new RegExp(`^${twin.replace(/\./g, '\\.')} `), `getent ahostsv4 api: ${r.stdout.trim()}`)
  })
})
