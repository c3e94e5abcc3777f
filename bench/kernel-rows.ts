/**
 * The kernel data plane's rows of `npm run bench:mesh` (and the whole of
 * `npm run bench:mesh:kernel`): a published port against a direct
 * connection to the same server and HAProxy, in one run, as root, in
 * network namespaces of its own (names carry this process's pid): a client,
 * a node holding a network's bridge, made by the same link commands and nft
 * ruleset the node's KernelPlane programs (links.ts, ruleset.ts), and a
 * task on that bridge running nginx (worker_processes 1) on port 80 and an
 * iperf3 server; and a second node with a task of its own, joined to the
 * first by an underlay veth, its VXLAN device, FDB and neighbour entries
 * programmed as the plane does. wrk (1 thread, 32 connections, 1 s warm-up
 * then `seconds`) and iperf3 (one stream, 1 s omitted) run in the client
 * against: each task directly (routed through the node, no translation),
 * the published port (nft DNAT + SNAT to the node's address on the
 * network) and HAProxy `mode tcp`, nbthread 1, in the node. Everything is
 * removed at the end, also on failure.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { detectKernelSupport } from '../lib/mesh/kernel/detect.js'
import { fdbCommands, peerEntries } from '../lib/mesh/kernel/fdb.js'
import { linkCommands } from '../lib/mesh/kernel/links.js'
import { macOf } from '../lib/mesh/kernel/names.js'
import { renderRuleset } from '../lib/mesh/kernel/ruleset.js'

const tag = `swkb${process.pid % 100000}`
const NS = { client: `${tag}c`, node: `${tag}n`, task: `${tag}t`, node2: `${tag}m`, task2: `${tag}u` }
const CLIENT_IP = '10.243.0.1'
const NODE_IP = '10.243.0.2'
const TASK_IP = '10.244.0.10'
/** The task on the second node, reached across VXLAN. */
const TASK2_IP = '10.244.0.20'
const UNDERLAY = ['10.245.0.1', '10.245.0.2'] as const
/**
 * HAProxy's own source address on the network: dialling from the node's
 * address (which the published port's SNAT uses too) it would leave the
 * tasks TIME_WAIT sockets on the very tuples the next case's translated
 * connections get, whose SYNs, with another client's timestamps, PAWS drops.
 */
const HAPROXY_SRC = '10.244.0.252'
const IPERF = 5201
const PORT = { published: 28480, haproxy: 28481, publishedVxlan: 28482, publishedBulk: 28483, publishedBulkVxlan: 28484, haproxyBulk: 28485, haproxyVxlan: 28486, haproxyBulkVxlan: 28487 }

export const WRK = '1 thread, 32 connections'
export type KernelTest = 'http_keepalive' | 'http_close' | 'bulk_p1'

interface Case {
  name: string
  what: string
  http: string
  bulk: { host: string; port: number }
}

const CASES: Case[] = [
  { name: 'kernel_direct', what: 'the task on the node, directly (routed through the node)', http: `http://${TASK_IP}/`, bulk: { host: TASK_IP, port: IPERF } },
  { name: 'kernel_haproxy_tcp_nbthread1', what: 'HAProxy mode tcp, nbthread 1, in the node, to the task', http: `http://${NODE_IP}:${PORT.haproxy}/`, bulk: { host: NODE_IP, port: PORT.haproxyBulk } },
  { name: 'kernel_published', what: 'the published port (nftables DNAT + SNAT) to the task on the node', http: `http://${NODE_IP}:${PORT.published}/`, bulk: { host: NODE_IP, port: PORT.publishedBulk } },
  { name: 'kernel_direct_other_node', what: 'the task on the second node, directly (routed through both nodes, across VXLAN)', http: `http://${TASK2_IP}/`, bulk: { host: TASK2_IP, port: IPERF } },
  { name: 'kernel_haproxy_vxlan', what: 'HAProxy mode tcp, nbthread 1, in the node, to the task on the second node across VXLAN', http: `http://${NODE_IP}:${PORT.haproxyVxlan}/`, bulk: { host: NODE_IP, port: PORT.haproxyBulkVxlan } },
  { name: 'kernel_published_vxlan', what: 'the published port (nftables DNAT + SNAT) to the task on the second node, across VXLAN', http: `http://${NODE_IP}:${PORT.publishedVxlan}/`, bulk: { host: NODE_IP, port: PORT.publishedBulkVxlan } },
]

/** Each kernel row against its peers in the same run, and the goal for it. */
const RATIOS: { row: string; test: KernelTest; direct: string; haproxy: string; goal: { vs_direct?: number; vs_haproxy?: number }; sameNode?: string }[] = [
  { row: 'keepalive_published', test: 'http_keepalive', direct: 'kernel_direct', haproxy: 'kernel_haproxy_tcp_nbthread1', goal: { vs_direct: 0.9, vs_haproxy: 1.5 } },
  { row: 'close_published', test: 'http_close', direct: 'kernel_direct', haproxy: 'kernel_haproxy_tcp_nbthread1', goal: { vs_direct: 0.9, vs_haproxy: 1.5 } },
  { row: 'bulk_published', test: 'bulk_p1', direct: 'kernel_direct', haproxy: 'kernel_haproxy_tcp_nbthread1', goal: { vs_direct: 0.8 } },
  { row: 'keepalive_vxlan', test: 'http_keepalive', direct: 'kernel_direct_other_node', haproxy: 'kernel_haproxy_vxlan', goal: { vs_direct: 0.7 }, sameNode: 'kernel_direct' },
  { row: 'close_vxlan', test: 'http_close', direct: 'kernel_direct_other_node', haproxy: 'kernel_haproxy_vxlan', goal: { vs_direct: 0.7 }, sameNode: 'kernel_direct' },
  { row: 'bulk_vxlan', test: 'bulk_p1', direct: 'kernel_direct_other_node', haproxy: 'kernel_haproxy_vxlan', goal: { vs_direct: 0.8 }, sameNode: 'kernel_direct' },
]

export interface KernelRow {
  bench: 'mesh'
  plane: 'kernel'
  case: string
  test: KernelTest
  what: string
  requests_per_s?: number
  gbit_s?: number
  retransmits?: number
  /** wrk's socket errors and non-2xx answers, when there were any. */
  errors?: string
}

export type KernelRows = { skipped: string } | { rows: KernelRow[]; ratios: Record<string, unknown> }

/** Why this machine cannot run the kernel rows, or undefined when it can. */
export async function kernelSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root: the kernel rows need network namespaces and nftables'
  const support = await detectKernelSupport()
  if (!support.usable) return `the kernel lacks what the data plane needs: ${support.missing.join(', ')}`
  for (const tool of ['wrk', 'iperf3', 'nginx', 'haproxy', 'conntrack']) if ((await run('sh', ['-c', `command -v ${tool}`], 5000).catch(() => '')) === '') return `${tool} is not installed: run scripts/setup-bench.sh (as root)`
  return undefined
}

const started: ChildProcess[] = []
let dir = ''

function run(cmd: string, args: string[], timeoutMs: number, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)))
    if (input !== undefined) p.stdin!.end(input)
  })
}

const sh = (cmd: string, args: string[], input?: string): Promise<string> => run(cmd, args, 30_000, input)
const inNs = (ns: string, cmd: string, args: string[], timeoutMs = 30_000): Promise<string> => run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs)

function daemon(ns: string, cmd: string, args: string[]): void {
  started.push(spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'], detached: true }))
}

function haproxyConfig(): string {
  const tcp = (name: string, port: number, to: string): string => `frontend ft_${name}\n  mode tcp\n  bind ${NODE_IP}:${port}\n  default_backend bk_${name}\nbackend bk_${name}\n  mode tcp\n  source ${HAPROXY_SRC}\n  server s1 ${to}\n`
  return (
    `global\n  nbthread 1\n  maxconn 8000\ndefaults\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n` +
    tcp('http', PORT.haproxy, `${TASK_IP}:80`) +
    tcp('bulk', PORT.haproxyBulk, `${TASK_IP}:${IPERF}`) +
    tcp('vxlan', PORT.haproxyVxlan, `${TASK2_IP}:80`) +
    tcp('bulk_vxlan', PORT.haproxyBulkVxlan, `${TASK2_IP}:${IPERF}`)
  )
}

const nginxConfig = (n: number): string =>
  `worker_processes 1;\ndaemon off;\npid ${dir}/nginx${n}.pid;\nerror_log ${dir}/nginx${n}-error.log warn;\nevents { worker_connections 8192; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fastcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;\n  keepalive_requests 1000000;\n  server { listen 80 backlog=4096; root ${dir}/www; location / { } }\n}\n`

async function setup(): Promise<void> {
  for (const ns of Object.values(NS)) await sh('ip', ['netns', 'add', ns])
  await sh('ip', ['link', 'add', `${tag}a`, 'netns', NS.client, 'type', 'veth', 'peer', 'name', `${tag}b`, 'netns', NS.node])
  await sh('ip', ['-n', NS.client, '-batch', '-'], `link set lo up\nlink set ${tag}a up\naddr add ${CLIENT_IP}/24 dev ${tag}a\nroute add 10.244.0.0/24 via ${NODE_IP}\n`)
  await sh('ip', ['-n', NS.node, '-batch', '-'], `link set lo up\nlink set ${tag}b up\naddr add ${NODE_IP}/24 dev ${tag}b\n`)
  // The two nodes' underlay, and on each the network's bridge and VXLAN device, FDB and neighbour entries, as the node's plane makes them.
  await sh('ip', ['link', 'add', `${tag}x`, 'netns', NS.node, 'type', 'veth', 'peer', 'name', `${tag}y`, 'netns', NS.node2])
  await sh('ip', ['-n', NS.node, '-batch', '-'], `link set ${tag}x up\naddr add ${UNDERLAY[0]}/24 dev ${tag}x\n`)
  await sh('ip', ['-n', NS.node2, '-batch', '-'], `link set lo up\nlink set ${tag}y up\naddr add ${UNDERLAY[1]}/24 dev ${tag}y\nroute add 10.243.0.0/24 via ${UNDERLAY[0]}\n`)
  const nodes = [
    { ns: NS.node, task: NS.task, addr: '10.244.0.254', ip: TASK_IP, local: UNDERLAY[0], peer: { vtep: UNDERLAY[1], ips: ['10.244.0.253', TASK2_IP] } },
    { ns: NS.node2, task: NS.task2, addr: '10.244.0.253', ip: TASK2_IP, local: UNDERLAY[1], peer: { vtep: UNDERLAY[0], ips: ['10.244.0.254', TASK_IP] } },
  ]
  for (const n of nodes) {
    const links = linkCommands([], [{ vni: 4096, subnet: '10.244.0.0/24', nodeAddr: `${n.addr}/24`, gateway: '10.244.0.1', vips: [], mtu: 1450, vxlan: { port: 4789, local: n.local } }])
    await sh('ip', ['-n', n.ns, '-batch', '-'], links.join('\n') + '\n')
    const fdb = fdbCommands([], [], peerEntries('swvx4096', n.peer.ips.map(ip => ({ ip, vtep: n.peer.vtep }))))
    await sh('bridge', ['-n', n.ns, '-batch', '-'], fdb.bridge.join('\n') + '\n')
    await sh('ip', ['-n', n.ns, '-batch', '-'], fdb.ip.join('\n') + '\n')
    await sh('ip', ['-n', n.ns, 'link', 'add', 'swtpbench', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.task])
    await sh('ip', ['-n', n.ns, '-batch', '-'], 'link set swtpbench master swbr4096 up\n')
    await sh('ip', ['-n', n.task, '-batch', '-'], `link set lo up\nlink set eth0 address ${macOf(n.ip)} mtu 1450 up\naddr add ${n.ip}/24 dev eth0\nroute add default via 10.244.0.1\n`)
    await inNs(n.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
  }
  // The second node reaches that address at the first node's bridge, whose MAC is its own address's.
  await sh('ip', ['-n', NS.node, 'addr', 'add', `${HAPROXY_SRC}/24`, 'dev', 'swbr4096'])
  await sh('ip', ['-n', NS.node2, 'neigh', 'replace', HAPROXY_SRC, 'lladdr', macOf('10.244.0.254'), 'dev', 'swvx4096', 'nud', 'permanent'])
  // A new namespace reuses TIME_WAIT ports for loopback only (tcp_tw_reuse=2): with connection close, HAProxy's dials to the task would run out of them.
  for (const ns of Object.values(NS)) await inNs(ns, 'sysctl', ['-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000'])
  const one = (id: string, port: number, addr: string, to: number) => ({ protocol: 'tcp' as const, port, service: { id, comment: `${id} ${to}/tcp`, backends: [{ addr, port: to }] } })
  const ruleset = renderRuleset({
    vxlanPort: 4789,
    vteps: [UNDERLAY[1]],
    vips: [],
    published: [
      one('local', PORT.published, TASK_IP, 80),
      one('remote', PORT.publishedVxlan, TASK2_IP, 80),
      one('local-bulk', PORT.publishedBulk, TASK_IP, IPERF),
      one('remote-bulk', PORT.publishedBulkVxlan, TASK2_IP, IPERF),
    ],
    hostPorts: [],
    snat: [{ bridge: 'swbr4096', addr: '10.244.0.254' }],
    overlays: ['10.244.0.0/24'],
  })
  await run('ip', ['netns', 'exec', NS.node, 'nft', '-f', '-'], 30_000, ruleset)
  dir = mkdtempSync(join(tmpdir(), 'swarmd-kbench-'))
  chmodSync(dir, 0o755)
  mkdirSync(join(dir, 'www'))
  writeFileSync(join(dir, 'www', 'index.html'), 'hello from the kernel bench backend\n')
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig())
  for (const [n, ns] of [[1, NS.task], [2, NS.task2]] as const) {
    writeFileSync(join(dir, `nginx${n}.conf`), nginxConfig(n))
    daemon(ns, 'nginx', ['-p', dir, '-c', join(dir, `nginx${n}.conf`)])
    daemon(ns, 'iperf3', ['-s', '-p', String(IPERF)])
  }
  daemon(NS.node, 'haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')])
  await new Promise(r => setTimeout(r, 1000))
}

async function cleanup(): Promise<void> {
  for (const p of started.splice(0)) {
    try {
      process.kill(-p.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  // Deleting the namespaces takes their veths, bridge and nft table with them.
  for (const ns of Object.values(NS)) await sh('ip', ['netns', 'delete', ns]).catch(() => undefined)
  if (dir) rmSync(dir, { recursive: true, force: true })
  dir = ''
}

/**
 * Empties the nodes' connection tracking: every connection closed keeps
 * its entry 120 s (TIME_WAIT), so a few cases with connection close fill
 * a namespace's table (nf_conntrack_max, 262144 here) and the next case's
 * SYNs are dropped. Each case starts from an empty table instead.
 */
async function forgetConnections(): Promise<void> {
  for (const ns of [NS.node, NS.node2]) await inNs(ns, 'conntrack', ['-F']).catch(() => undefined)
}

async function wrk(url: string, close: boolean, seconds: number): Promise<{ requests_per_s: number; errors?: string }> {
  await forgetConnections()
  const args = (secs: number): string[] => ['-t1', '-c32', `-d${secs}s`, ...(close ? ['-H', 'Connection: close'] : []), url]
  await inNs(NS.client, 'wrk', args(1))
  const out = await inNs(NS.client, 'wrk', args(seconds), (seconds + 20) * 1000)
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out)
  if (!m) throw new Error(`wrk ${url}: no rate in ${out}`)
  const errors = out
    .split('\n')
    .filter(l => /Non-2xx|Socket errors/.test(l))
    .map(l => l.trim())
    .join('; ')
  return { requests_per_s: Math.round(Number(m[1])), ...(errors ? { errors } : {}) }
}

async function iperf(target: { host: string; port: number }, seconds: number): Promise<{ gbit_s: number; retransmits: number }> {
  await forgetConnections()
  const text = await inNs(NS.client, 'iperf3', ['-c', target.host, '-p', String(target.port), '-t', String(seconds), '-O', '1', '-P', '1', '-J'], (seconds + 20) * 1000)
  const out = JSON.parse(text) as { end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } }; error?: string }
  if (out.error || !out.end?.sum_received) throw new Error(`iperf3 to ${target.host}:${target.port}: ${out.error ?? 'no result'}`)
  await new Promise(r => setTimeout(r, 300)) // the server needs a moment between tests
  return { gbit_s: round2(out.end.sum_received.bits_per_second / 1e9), retransmits: out.end.sum_sent?.retransmits ?? 0 }
}

const round2 = (x: number): number => Math.round(x * 100) / 100

/**
 * Measures the cases (those named in `cases`, all when absent; their
 * peers are always measured), passing each row to `emit` as it comes, and
 * returns the rows and their ratios; or why it cannot run here.
 */
export async function kernelRows(o: { seconds: number; tests: (t: KernelTest) => boolean; cases?: string[]; emit: (r: KernelRow) => void }): Promise<KernelRows> {
  const skipped = await kernelSkipReason()
  if (skipped) return { skipped }
  const peers = (name: string): string[] => RATIOS.filter(r => caseOf(r.row) === name).flatMap(r => [r.direct, r.haproxy])
  const names = new Set(o.cases ? o.cases.flatMap(n => [n, ...peers(n)]) : CASES.map(c => c.name))
  const selected = CASES.filter(c => names.has(c.name))
  if (!selected.length) return { skipped: 'no kernel case selected' }
  const rows: KernelRow[] = []
  const add = (r: KernelRow): void => {
    rows.push(r)
    o.emit(r)
  }
  try {
    await setup()
    for (const c of selected) {
      const base = { bench: 'mesh' as const, plane: 'kernel' as const, case: c.name, what: c.what }
      if (o.tests('http_keepalive')) add({ ...base, test: 'http_keepalive', ...(await wrk(c.http, false, o.seconds)) })
      if (o.tests('http_close')) add({ ...base, test: 'http_close', ...(await wrk(c.http, true, o.seconds)) })
    }
    if (o.tests('bulk_p1')) for (const c of selected) add({ bench: 'mesh', plane: 'kernel', case: c.name, what: c.what, test: 'bulk_p1', ...(await iperf(c.bulk, o.seconds)) })
  } finally {
    await cleanup()
  }
  return { rows, ratios: kernelRatios(rows) }
}

/** The case a ratio row measures. */
const caseOf = (row: string): string => (row.endsWith('_vxlan') ? 'kernel_published_vxlan' : 'kernel_published')

function kernelRatios(rows: KernelRow[]): Record<string, unknown> {
  const value = (c: string, t: KernelTest): number | undefined => {
    const r = rows.find(x => x.case === c && x.test === t)
    return r?.requests_per_s ?? r?.gbit_s
  }
  const out: Record<string, unknown> = {}
  for (const r of RATIOS) {
    const v = value(caseOf(r.row), r.test)
    const d = value(r.direct, r.test)
    const h = value(r.haproxy, r.test)
    if (v === undefined || d === undefined || h === undefined) continue
    const vsDirect = round2(v / d)
    const vsHaproxy = round2(v / h)
    const met = (r.goal.vs_direct === undefined || vsDirect >= r.goal.vs_direct) && (r.goal.vs_haproxy === undefined || vsHaproxy >= r.goal.vs_haproxy)
    // Across VXLAN, also against the task on this node: what the overlay itself costs is in that one.
    const same = r.sameNode ? value(r.sameNode, r.test) : undefined
    out[r.row] = { kernel: v, direct: d, haproxy: h, vs_direct: vsDirect, vs_haproxy: vsHaproxy, ...(same ? { vs_direct_same_node: round2(v / same) } : {}), goal: r.goal, met }
  }
  return out
}
