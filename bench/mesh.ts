/**
 * The routing mesh against HAProxy, in one run, on one nginx backend and one
 * iperf3 server (all on 127.0.0.180):
 *
 *   - HTTP (wrk, 2 threads, 64 connections, 1 s warm-up then 5 s): keep-alive
 *     and `Connection: close` requests/s and p99 latency, for nginx direct,
 *     HAProxy `mode tcp` (the like-for-like L4 comparison) and `mode http`
 *     with `nbthread 1` (one core, as the single-threaded Node mesh), HAProxy
 *     `mode tcp` with its default threads, the mesh with a local task, the
 *     mesh through the 4789 tunnel to another node, and the same on an
 *     encrypted (AES-256-GCM sealed) network;
 *   - bulk (iperf3, 1 and 4 streams, 1 s omitted then 5 s): the same paths.
 *
 * The mesh is three child processes (bench/mesh-node.ts), each a Membership
 * on its own address (127.0.0.181-183) joined together and a Mesh on it:
 * node A publishes the ports; the endpoints behind the tunnel cases are
 * registered by node B; node C runs forwarder workers (Mesh `workers`,
 * MESH_BENCH_WORKERS, default 1) and publishes its own local task, the
 * mesh_local_workers case (its workers' CPU counts as its own). HAProxy's splice is left off (its default), as Node
 * has none. After them, Node's AES-256-GCM ceiling on one core
 * (bench/aes-gcm-ceiling.ts), what the encrypted network's bulk is held
 * against; then, as root on a kernel with what the kernel data plane needs,
 * its rows (bench/kernel-rows.ts: a published port to a local task and
 * across VXLAN, each against a direct connection and HAProxy measured in
 * its namespaces), else the reason they were skipped. Prints one JSON
 * object per case, then the ratios (each row against direct and HAProxy),
 * and writes docs/mesh-bench.json. Needs haproxy, nginx-light, wrk, iperf3
 * (scripts/setup-bench.sh).
 *
 * Environment: MESH_BENCH_PIN=1 pins wrk, nginx and iperf3 to CPU 0 and the
 * proxies (HAProxy, both mesh nodes) to CPU 1; MESH_BENCH_CASES=a,b runs
 * only the named cases (kernel_* ones with their peers); MESH_BENCH_PROF=dir runs the mesh nodes with
 * --cpu-prof into dir; MESH_BENCH_TESTS=http_keepalive,http_close,bulk_p1,bulk_p4
 * runs only those tests; MESH_BENCH_SECONDS overrides the 5 s; MESH_BENCH_OUT
 * overrides the JSON file (MESH_BENCH_OUT=- writes none).
 */
import { execFile, execFileSync, fork, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PublishTarget } from '../lib/mesh/mesh.js'
import type { Endpoint } from '../lib/mesh/types.js'
import { aesGcmCeiling } from './aes-gcm-ceiling.js'
import { kernelRows, WRK as KERNEL_WRK, type KernelTest } from './kernel-rows.js'
import { PLAIN_NETWORK, SEALED_NETWORK, type NodeConfig, type NodeReply, type NodeRequest } from './mesh-node.js'

const here = dirname(fileURLToPath(import.meta.url))
const BACKEND = '127.0.0.180'
const NODE_A = '127.0.0.181'
const NODE_B = '127.0.0.182'
/** A third mesh node, with forwarder workers (MESH_BENCH_WORKERS, default 1), for the same local task. */
const NODE_C = '127.0.0.183'
const WORKERS = Number(process.env.MESH_BENCH_WORKERS ?? 1)
const NGINX_PORT = 28180
const IPERF_PORT = 28181
const GOSSIP_PORT = 7946
const TUNNEL_PORT = 4789
const SECONDS = Number(process.env.MESH_BENCH_SECONDS ?? 5)
const PIN = process.env.MESH_BENCH_PIN === '1'
const ONLY = process.env.MESH_BENCH_CASES?.split(',').filter(Boolean)
const TESTS = process.env.MESH_BENCH_TESTS?.split(',').filter(Boolean)
const wanted = (test: string): boolean => !TESTS || TESTS.includes(test)
const PROF = process.env.MESH_BENCH_PROF
const OUT = process.env.MESH_BENCH_OUT ?? join(here, '..', '..', 'docs', 'mesh-bench.json')

/** A path from the load generator to a backend: where to connect for HTTP and for iperf3. */
interface Path {
  name: string
  what: string
  http?: { host: string; port: number }
  bulk?: { host: string; port: number }
  /** The processes doing the proxying, whose CPU time is measured. */
  proxy: ProxyName[]
}

type ProxyName = 'haproxy1' | 'haproxy2' | 'meshA' | 'meshB' | 'meshC'
const proxyPids = new Map<ProxyName, number>()

const HA1 = { http: 28280, bulk: 28281, l7: 28282 }
const HA2 = { http: 28290, bulk: 28291 }
const MESH = { local: 28380, tunnel: 28381, sealed: 28382, bulkLocal: 28383, bulkTunnel: 28384, bulkSealed: 28385, workers: 28386, bulkWorkers: 28387 }

const PATHS: Path[] = [
  { name: 'direct', what: 'no proxy (the backend itself)', http: { host: BACKEND, port: NGINX_PORT }, bulk: { host: BACKEND, port: IPERF_PORT }, proxy: [] },
  { name: 'haproxy_tcp_nbthread1', what: 'HAProxy mode tcp, nbthread 1', http: { host: BACKEND, port: HA1.http }, bulk: { host: BACKEND, port: HA1.bulk }, proxy: ['haproxy1'] },
  { name: 'haproxy_http_nbthread1', what: 'HAProxy mode http (keep-alive, http-reuse always), nbthread 1', http: { host: BACKEND, port: HA1.l7 }, proxy: ['haproxy1'] },
  { name: 'haproxy_tcp_default_threads', what: `HAProxy mode tcp, default threads (${cpus().length})`, http: { host: BACKEND, port: HA2.http }, bulk: { host: BACKEND, port: HA2.bulk }, proxy: ['haproxy2'] },
  { name: 'mesh_local', what: 'mesh node A, task on A: direct dial', http: { host: NODE_A, port: MESH.local }, bulk: { host: NODE_A, port: MESH.bulkLocal }, proxy: ['meshA'] },
  { name: 'mesh_local_workers', what: `mesh node C with ${WORKERS} forwarder worker(s) beside it, task on C: direct dial`, http: { host: NODE_C, port: MESH.workers }, bulk: { host: NODE_C, port: MESH.bulkWorkers }, proxy: ['meshC'] },
  { name: 'mesh_tunnel', what: 'mesh node A, task on node B: through the 4789 tunnel', http: { host: NODE_A, port: MESH.tunnel }, bulk: { host: NODE_A, port: MESH.bulkTunnel }, proxy: ['meshA', 'meshB'] },
  { name: 'mesh_tunnel_sealed', what: 'mesh node A, task on node B, encrypted network (AES-256-GCM)', http: { host: NODE_A, port: MESH.sealed }, bulk: { host: NODE_A, port: MESH.bulkSealed }, proxy: ['meshA', 'meshB'] },
]

// ------------------------------------------------------------- processes

const started = new Set<ChildProcess>()
const dirs: string[] = []

/** Runs `cmd` on `cpu` when pinning. */
function pinned(cpu: 0 | 1, cmd: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args]
}

/** A long-running tool in its own process group, so the whole group can be killed. */
function daemon(name: string, cpu: 0 | 1, cmd: string, args: string[]): ChildProcess {
  const [c, a] = pinned(cpu, cmd, args)
  const p = spawn(c, a, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  p.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)))
  p.once('exit', code => {
    started.delete(p)
    if (!stopping) process.stderr.write(`mesh bench: ${name} exited (${code}): ${err}\n`)
  })
  started.add(p)
  return p
}

let stopping = false

function killGroup(p: ChildProcess, signal: NodeJS.Signals): void {
  if (p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return
  try {
    process.kill(-p.pid, signal)
  } catch {
    try {
      p.kill(signal)
    } catch {
      // already gone
    }
  }
}

/** Ends everything this bench started and removes its temp dirs; safe to call twice. */
async function cleanup(): Promise<void> {
  stopping = true
  const all = [...started]
  for (const p of all) killGroup(p, 'SIGTERM')
  await Promise.race([Promise.all(all.map(p => (p.exitCode !== null || p.signalCode !== null ? undefined : once(p, 'exit')))), sleep(3000)])
  for (const p of started) killGroup(p, 'SIGKILL')
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
}

// Last resort on a crash: synchronous kills only.
process.on('exit', () => {
  for (const p of started) killGroup(p, 'SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`mesh bench: ${sig}, cleaning up\n`)
    void cleanup().finally(() => process.exit(130))
  })
}

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const listening = (host: string, port: number): Promise<boolean> =>
  new Promise(resolve => {
    const s = connect({ host, port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })

/** Runs a command to completion with a hard deadline. */
function run(cpu: 0 | 1, cmd: string, args: string[], timeoutMs: number): Promise<string> {
  const [c, a] = pinned(cpu, cmd, args)
  return new Promise((resolve, reject) => {
    execFile(c, a, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}${stdout.slice(0, 2000)}`))
      else resolve(stdout)
    })
  })
}

/** User + system CPU seconds the processes have used so far (/proc), so results can be normalised per proxy core. */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
function cpuSeconds(names: ProxyName[]): { user: number; sys: number } {
  let user = 0
  let sys = 0
  for (const n of names) {
    const pid = proxyPids.get(n)
    if (pid === undefined) continue
    // A mesh node's forwarder workers are its children: their CPU is the node's too.
    for (const p of [pid, ...children(pid)]) {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      user += Number(f[11]) // utime (field 14)
      sys += Number(f[12]) // stime (field 15)
    }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK }
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** Times `fn` and the proxies' CPU over it: how many cores the proxy path used. */
async function measured<T extends object>(proxy: ProxyName[], fn: () => Promise<T>): Promise<T & { proxy_cores?: number; proxy_sys_share?: number }> {
  const c0 = cpuSeconds(proxy)
  const t0 = process.hrtime.bigint()
  const r: T = await fn()
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  if (!proxy.length) return r
  const c1 = cpuSeconds(proxy)
  const user = c1.user - c0.user
  const sys = c1.sys - c0.sys
  // The kernel's share (syscalls, loopback TCP) of the proxy's CPU; the rest is user space (JS, V8, libuv; HAProxy itself).
  return { ...r, proxy_cores: round2((user + sys) / wall), proxy_sys_share: user + sys > 0 ? round2(sys / (user + sys)) : 0 }
}

// ------------------------------------------------------------- mesh nodes

class MeshNode {
  private nextId = 1
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()

  private constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: NodeReply) => {
      const w = this.waiting.get(m.id)
      if (!w) return
      this.waiting.delete(m.id)
      if (m.ok) w.resolve(m.result)
      else w.reject(new Error(m.error))
    })
    proc.once('exit', () => {
      for (const w of this.waiting.values()) w.reject(new Error('mesh node exited'))
      this.waiting.clear()
    })
  }

  static async start(cfg: NodeConfig): Promise<MeshNode> {
    const execArgv = PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}`, `--cpu-prof-name=mesh-${cfg.name}.cpuprofile`] : []
    const proc = fork(join(here, 'mesh-node.js'), [JSON.stringify(cfg)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    started.add(proc)
    proc.once('exit', () => started.delete(proc))
    const [first] = (await Promise.race([once(proc, 'message'), once(proc, 'exit').then(() => [undefined])])) as [NodeReply | undefined]
    if (first?.result !== 'ready') throw new Error(`mesh node ${cfg.name} did not start`)
    if (PIN && proc.pid !== undefined) execFileSync('taskset', ['-a', '-p', '-c', '1', String(proc.pid)], { stdio: 'ignore' })
    return new MeshNode(proc)
  }

  call(r: NodeRequest): Promise<unknown> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      this.proc.send({ ...r, id })
    })
  }

  /** Closes the mesh (so --cpu-prof gets written) and waits for the process to end. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return
    const exited = once(this.proc, 'exit')
    await Promise.race([this.call({ op: 'close' }).catch(() => undefined), sleep(3000)])
    this.proc.disconnect()
    await Promise.race([exited, sleep(5000)])
  }
}

// ------------------------------------------------------------- measuring

interface HttpResult {
  requests_per_s: number
  p50_ms: number
  p99_ms: number
  requests: number
  errors: { connect: number; read: number; write: number; timeout: number; non2xx: number }
}

const toMs = (v: string, unit: string): number => Number(v) * (unit === 'us' ? 1e-3 : unit === 's' ? 1e3 : unit === 'm' ? 60e3 : 1)

function parseWrk(out: string): HttpResult {
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 0)
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out)
    return m ? Math.round(toMs(m[1]!, m[2]!) * 1000) / 1000 : NaN
  }
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    requests_per_s: Math.round(num(/Requests\/sec:\s+([\d.]+)/)),
    p50_ms: pct('50'),
    p99_ms: pct('99'),
    requests: num(/(\d+) requests in/),
    errors: {
      connect: Number(sock?.[1] ?? 0),
      read: Number(sock?.[2] ?? 0),
      write: Number(sock?.[3] ?? 0),
      timeout: Number(sock?.[4] ?? 0),
      non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/),
    },
  }
}

async function wrk(target: { host: string; port: number }, close: boolean, proxy: ProxyName[]): Promise<HttpResult & { requests_per_proxy_core_s?: number }> {
  const url = `http://${target.host}:${target.port}/`
  const args = (secs: number): string[] => ['-t2', '-c64', `-d${secs}s`, '--latency', ...(close ? ['-H', 'Connection: close'] : []), url]
  await run(0, 'wrk', args(1), 15_000)
  const r = await measured(proxy, async () => parseWrk(await run(0, 'wrk', args(SECONDS), (SECONDS + 15) * 1000)))
  return r.proxy_cores ? { ...r, requests_per_proxy_core_s: Math.round(r.requests_per_s / r.proxy_cores) } : r
}

interface BulkResult {
  gbit_s: number
  retransmits: number
}

async function iperf(target: { host: string; port: number }, streams: number, proxy: ProxyName[]): Promise<BulkResult & { proxy_cores?: number; proxy_sys_share?: number | undefined; gbit_s_per_proxy_core?: number }> {
  const args = ['-c', target.host, '-p', String(target.port), '-t', String(SECONDS), '-O', '1', '-P', String(streams), '-J']
  const { text, proxy_cores, proxy_sys_share } = await measured(proxy, async () => ({ text: await run(0, 'iperf3', args, (SECONDS + 20) * 1000) }))
  const out = JSON.parse(text) as { end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } }; error?: string }
  if (out.error || !out.end?.sum_received) throw new Error(`iperf3 through ${target.host}:${target.port}: ${out.error ?? 'no result'}`)
  await sleep(300) // the server needs a moment between tests
  const gbit_s = round2(out.end.sum_received.bits_per_second / 1e9)
  const r = { gbit_s, retransmits: out.end.sum_sent?.retransmits ?? 0 }
  return proxy_cores ? { ...r, proxy_cores, proxy_sys_share, gbit_s_per_proxy_core: round2(gbit_s / proxy_cores) } : r
}

// ------------------------------------------------------------- setup

function nginxConfig(dir: string): string {
  const www = join(dir, 'www')
  mkdirSync(www)
  writeFileSync(join(www, 'index.html'), 'hello from the mesh bench backend\n')
  // nginx's worker runs unprivileged: mkdtemp's 0700 would make every answer a 403.
  chmodSync(dir, 0o755)
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  sendfile on;
  tcp_nodelay on;
  server {
    listen ${BACKEND}:${NGINX_PORT} backlog=4096;
    root ${www};
    location / { }
  }
}
`
}

function haproxyConfig(threads: number | undefined, ports: { http: number; bulk: number; l7?: number }): string {
  const tcp = (name: string, port: number, backend: number): string => `
frontend ft_${name}
  mode tcp
  bind ${BACKEND}:${port}
  default_backend bk_${name}
backend bk_${name}
  mode tcp
  server s1 ${BACKEND}:${backend}
`
  const l7 =
    ports.l7 === undefined
      ? ''
      : `
frontend ft_l7
  mode http
  bind ${BACKEND}:${ports.l7}
  option http-keep-alive
  default_backend bk_l7
backend bk_l7
  mode http
  http-reuse always
  server s1 ${BACKEND}:${NGINX_PORT}
`
  return `global
  ${threads === undefined ? '' : `nbthread ${threads}`}
  maxconn 8000
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${tcp('http', ports.http, NGINX_PORT)}${tcp('bulk', ports.bulk, IPERF_PORT)}${l7}`
}

const endpoint = (network: string, service: string, port: number): Omit<Endpoint, 'node'> => ({
  network,
  service,
  serviceName: service,
  task: `${service}-task`,
  protocol: 'tcp',
  targetPort: 80,
  host: BACKEND,
  port,
})

const target = (network: string, service: string): PublishTarget => ({ network, service, targetPort: 80 })

async function startMesh(): Promise<MeshNode[]> {
  const a = await MeshNode.start({ name: 'bench-a', host: NODE_A, gossipPort: GOSSIP_PORT, tunnelPort: TUNNEL_PORT })
  const b = await MeshNode.start({ name: 'bench-b', host: NODE_B, gossipPort: GOSSIP_PORT, tunnelPort: TUNNEL_PORT })
  const c = await MeshNode.start({ name: 'bench-c', host: NODE_C, gossipPort: GOSSIP_PORT, tunnelPort: TUNNEL_PORT, workers: WORKERS })
  await b.call({ op: 'join', addr: `${NODE_A}:${GOSSIP_PORT}` })
  await c.call({ op: 'join', addr: `${NODE_A}:${GOSSIP_PORT}` })
  const three = async (n: MeshNode): Promise<boolean> => ((await n.call({ op: 'members' })) as string[]).length === 3
  await waitFor('the three mesh nodes to see each other', async () => (await three(a)) && (await three(b)) && (await three(c)))
  const services: [MeshNode, string, string, number, number][] = [
    [a, PLAIN_NETWORK, 'web-local', NGINX_PORT, MESH.local],
    [b, PLAIN_NETWORK, 'web-remote', NGINX_PORT, MESH.tunnel],
    [b, SEALED_NETWORK, 'web-sealed', NGINX_PORT, MESH.sealed],
    [a, PLAIN_NETWORK, 'bulk-local', IPERF_PORT, MESH.bulkLocal],
    [b, PLAIN_NETWORK, 'bulk-remote', IPERF_PORT, MESH.bulkTunnel],
    [b, SEALED_NETWORK, 'bulk-sealed', IPERF_PORT, MESH.bulkSealed],
  ]
  for (const [owner, network, service, port] of services) await owner.call({ op: 'register', endpoint: endpoint(network, service, port) })
  for (const [, network, service, , published] of services) {
    await waitFor(`node A to see ${service}`, async () => ((await a.call({ op: 'endpoints', network, service })) as number) > 0)
    await a.call({ op: 'publish', port: published, target: target(network, service), host: NODE_A })
  }
  for (const [service, port, published] of [['web-workers', NGINX_PORT, MESH.workers], ['bulk-workers', IPERF_PORT, MESH.bulkWorkers]] as const) {
    await c.call({ op: 'register', endpoint: endpoint(PLAIN_NETWORK, service, port) })
    await c.call({ op: 'publish', port: published, target: target(PLAIN_NETWORK, service), host: NODE_C })
  }
  proxyPids.set('meshA', a.proc.pid!)
  proxyPids.set('meshB', b.proc.pid!)
  proxyPids.set('meshC', c.proc.pid!)
  return [a, b, c]
}

// ------------------------------------------------------------- main

const round2 = (x: number): number => Math.round(x * 100) / 100

async function main(): Promise<void> {
  for (const tool of ['haproxy', 'nginx', 'wrk', 'iperf3', ...(PIN ? ['taskset'] : [])]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      throw new Error(`${tool} is not installed: run scripts/setup-bench.sh (as root)`)
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-mesh-bench-'))
  dirs.push(dir)
  const load = loadavg().map(round2)

  writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir))
  daemon('nginx', 0, 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')])
  daemon('iperf3', 0, 'iperf3', ['-s', '-B', BACKEND, '-p', String(IPERF_PORT)])
  writeFileSync(join(dir, 'haproxy-1.cfg'), haproxyConfig(1, HA1))
  writeFileSync(join(dir, 'haproxy-default.cfg'), haproxyConfig(undefined, HA2))
  // Without taskset in front (pinning) the spawned pid is HAProxy's own; with it, taskset execs HAProxy in the same pid.
  proxyPids.set('haproxy1', daemon('haproxy nbthread 1', 1, 'haproxy', ['-db', '-f', join(dir, 'haproxy-1.cfg')]).pid!)
  proxyPids.set('haproxy2', daemon('haproxy default threads', 1, 'haproxy', ['-db', '-f', join(dir, 'haproxy-default.cfg')]).pid!)
  for (const [h, p] of [[BACKEND, NGINX_PORT], [BACKEND, IPERF_PORT], [BACKEND, HA1.http], [BACKEND, HA2.http]] as const) await waitFor(`${h}:${p} listening`, () => listening(h, p))
  const nodes = await startMesh()

  const selected = PATHS.filter(p => !ONLY || ONLY.includes(p.name))
  const results: Record<string, Record<string, unknown>> = {}
  const emit = (o: Record<string, unknown>): void => {
    console.log(JSON.stringify(o))
    results[`${o.case as string}/${o.test as string}`] = o
  }
  for (const p of selected) {
    if (!p.http) continue
    if (wanted('http_keepalive')) emit({ bench: 'mesh', case: p.name, test: 'http_keepalive', what: p.what, ...(await wrk(p.http, false, p.proxy)) })
    if (wanted('http_close')) emit({ bench: 'mesh', case: p.name, test: 'http_close', what: p.what, ...(await wrk(p.http, true, p.proxy)) })
  }
  for (const p of selected) {
    if (!p.bulk) continue
    for (const streams of [1, 4]) if (wanted(`bulk_p${streams}`)) emit({ bench: 'mesh', case: p.name, test: `bulk_p${streams}`, what: p.what, streams, ...(await iperf(p.bulk, streams, p.proxy)) })
  }

  const aes = wanted('bulk_p1') ? aesGcmCeiling() : undefined
  if (aes) console.log(JSON.stringify({ bench: 'mesh', case: 'aes_gcm_ceiling', ...aes }))

  const stats = { a: await nodes[0]!.call({ op: 'stats' }), b: await nodes[1]!.call({ op: 'stats' }), c: await nodes[2]!.call({ op: 'stats' }) }
  for (const n of nodes) await n.stop()

  // The kernel data plane's rows, in namespaces of their own, against their own direct path and HAProxy.
  const kernelCases = ONLY?.filter(c => c.startsWith('kernel_'))
  const kernel =
    ONLY && !kernelCases?.length
      ? { skipped: 'no kernel case in MESH_BENCH_CASES' }
      : await kernelRows({ seconds: SECONDS, tests: (t: KernelTest) => wanted(t), ...(kernelCases ? { cases: kernelCases } : {}), emit: r => emit({ ...r }) })

  const get = (c: string, t: string, k: string): number | undefined => results[`${c}/${t}`]?.[k] as number | undefined
  const ratio = (mesh: string, t: string, k: string, goal: number): Record<string, unknown> | undefined => {
    const m = get(mesh, t, k)
    const h = get('haproxy_tcp_nbthread1', t, k)
    if (m === undefined || h === undefined || h === 0) return undefined
    const r = round2(m / h)
    const d = get('direct', t, k)
    return { mesh: m, haproxy: h, ratio: r, ...(d ? { direct: d, vs_direct: round2(m / d) } : {}), goal, met: r >= goal }
  }
  const sealed = get('mesh_tunnel_sealed', 'bulk_p1', 'gbit_s')
  const ratios = {
    bench: 'mesh_ratios',
    versus: 'haproxy_tcp_nbthread1',
    keepalive_local: ratio('mesh_local', 'http_keepalive', 'requests_per_s', 1.0),
    close_local: ratio('mesh_local', 'http_close', 'requests_per_s', 0.8),
    keepalive_local_workers: ratio('mesh_local_workers', 'http_keepalive', 'requests_per_s', 1.0),
    close_local_workers: ratio('mesh_local_workers', 'http_close', 'requests_per_s', 0.8),
    bulk_local_workers: ratio('mesh_local_workers', 'bulk_p1', 'gbit_s', 1.0),
    keepalive_tunnel: ratio('mesh_tunnel', 'http_keepalive', 'requests_per_s', 0.6),
    bulk_local: ratio('mesh_local', 'bulk_p1', 'gbit_s', 1.0),
    close_tunnel: ratio('mesh_tunnel', 'http_close', 'requests_per_s', 0),
    keepalive_sealed: ratio('mesh_tunnel_sealed', 'http_keepalive', 'requests_per_s', 0),
    bulk_tunnel: ratio('mesh_tunnel', 'bulk_p1', 'gbit_s', 0),
    bulk_sealed: ratio('mesh_tunnel_sealed', 'bulk_p1', 'gbit_s', 0),
    bulk_local_p4: ratio('mesh_local', 'bulk_p4', 'gbit_s', 0),
    // Against the cipher alone, at the tunnel's frame size and at a packet's, and against the same tunnel in plaintext: what sealing costs the path.
    bulk_sealed_vs_aes_gcm:
      aes && sealed !== undefined
        ? {
            mesh: sealed,
            ceiling_64k: aes.frame_64k_gbit_s,
            ceiling_1400: aes.packet_1400_gbit_s,
            vs_ceiling_64k: round2(sealed / aes.frame_64k_gbit_s),
            vs_ceiling_1400: round2(sealed / aes.packet_1400_gbit_s),
            ...(get('mesh_tunnel', 'bulk_p1', 'gbit_s') ? { vs_tunnel_plain: round2(sealed / get('mesh_tunnel', 'bulk_p1', 'gbit_s')!) } : {}),
          }
        : undefined,
    per_proxy_core: {
      keepalive_local: ratio('mesh_local', 'http_keepalive', 'requests_per_proxy_core_s', 0),
      close_local: ratio('mesh_local', 'http_close', 'requests_per_proxy_core_s', 0),
      keepalive_local_workers: ratio('mesh_local_workers', 'http_keepalive', 'requests_per_proxy_core_s', 0),
      close_local_workers: ratio('mesh_local_workers', 'http_close', 'requests_per_proxy_core_s', 0),
      keepalive_tunnel: ratio('mesh_tunnel', 'http_keepalive', 'requests_per_proxy_core_s', 0),
      close_tunnel: ratio('mesh_tunnel', 'http_close', 'requests_per_proxy_core_s', 0),
      keepalive_sealed: ratio('mesh_tunnel_sealed', 'http_keepalive', 'requests_per_proxy_core_s', 0),
      bulk_local: ratio('mesh_local', 'bulk_p1', 'gbit_s_per_proxy_core', 0),
      bulk_tunnel: ratio('mesh_tunnel', 'bulk_p1', 'gbit_s_per_proxy_core', 0),
      bulk_sealed: ratio('mesh_tunnel_sealed', 'bulk_p1', 'gbit_s_per_proxy_core', 0),
    },
    kernel: 'skipped' in kernel ? { skipped: kernel.skipped } : kernel.ratios,
  }
  console.log(JSON.stringify(ratios))
  const meta = {
    bench: 'mesh_meta',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    loadavg_at_start: load,
    loadavg_at_end: loadavg().map(round2),
    ...(Math.max(load[0]!, loadavg()[0]!) > cpus().length
      ? { warning: `load average above ${cpus().length} during the run: other processes shared the cores, so absolute rates and latencies are depressed and noisy; requests_per_proxy_core_s and gbit_s_per_proxy_core hold up better` }
      : {}),
    proxy_cores: 'CPU seconds (proxy_sys_share of them in the kernel) of the proxy processes (both mesh nodes for tunnel cases) per wall second of the measured run, from /proc; requests_per_proxy_core_s and gbit_s_per_proxy_core normalise by it, so they hold up when other load shares the machine',
    seconds_per_case: SECONDS,
    warmup_seconds: 1,
    wrk: '2 threads, 64 connections, --latency',
    iperf3: '1 s omitted (-O 1), 1 and 4 streams',
    haproxy: `${execFileSync('haproxy', ['-v']).toString().split('\n')[0]}; nbthread 1 vs default threads; splice off (default)`,
    nginx: 'nginx-light, worker_processes 1, keep-alive, a 34-byte static file',
    pinning: PIN ? 'wrk, nginx, iperf3 on CPU 0; HAProxy and both mesh nodes on CPU 1 (taskset)' : 'none: load generator, proxy and backend share both cores',
    mesh: `three processes (127.0.0.181 publishes, .182 owns the tunnel cases, .183 publishes its own task with ${WORKERS} forwarder worker(s)), gossip profile local, tunnel on 4789`,
    kernel: `namespaces: a client, two nodes joined by an underlay veth (VXLAN, the plane's links and ruleset), a task on each (nginx, iperf3); wrk ${KERNEL_WRK}, iperf3 one stream; direct and HAProxy (mode tcp, nbthread 1, in the node) measured there`,
    mesh_stats: stats,
  }
  console.log(JSON.stringify(meta))
  if (OUT !== '-') writeFileSync(OUT, JSON.stringify({ meta, cases: Object.values(results), ratios }, null, 2) + '\n')
}

try {
  await main()
} catch (e) {
  process.exitCode = 1
  process.stderr.write(`mesh bench failed: ${e instanceof Error ? e.message : String(e)}\n`)
} finally {
  await cleanup()
}
