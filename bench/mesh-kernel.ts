/**
 * The kernel data plane's published port against a direct connection and
 * HAProxy, in one run, as root, in network namespaces of its own: a client
 * (swkb-c), a node (swkb-n) holding a network's bridge, made by the same
 * link commands and nft ruleset the node's KernelPlane programs
 * (links.ts, ruleset.ts), and a task (swkb-t) on that bridge running nginx
 * (worker_processes 1) on port 80. wrk (1 thread, 32 connections, 1 s
 * warm-up then MESH_BENCH_SECONDS, default 5) runs in the client, keep-alive
 * and `Connection: close`, against: the task directly (routed through the
 * node, no translation), the published port (nft DNAT + SNAT to the
 * node's address on the network), and HAProxy `mode tcp`, nbthread 1, in
 * the node; and across VXLAN to a task on a second node (swkb-m, swkb-u,
 * joined to the first by an underlay veth, its VXLAN device, FDB and
 * neighbour entries programmed as the plane does): the task directly and
 * through the published port. Prints one JSON object per case, then the
 * ratios. Everything is removed at the end, also on failure.
 *
 * Run with `npm run bench:mesh:kernel` (root). Measured 2026-12-02 (four
 * runs, load 2-5 from other tenants, so ±30 %): published port to a local
 * task 0.95-1.07 x direct keep-alive (one outlier 0.64) and 0.92-1.03 x
 * with connection close, 1.10-1.71 x HAProxy keep-alive; through VXLAN to
 * the other node (two runs) 0.77-0.81 x direct keep-alive (0.80-0.85 x
 * the direct cross-node path), 0.59-0.69 x with close.
 * HAProxy's connection-close rate in these namespaces collapses (SYN
 * timeouts, ~1.6k/s, against 20k/s on loopback in bench/mesh.ts), so the
 * close ratio against it says nothing yet.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fdbCommands, peerEntries } from '../lib/mesh/kernel/fdb.js'
import { linkCommands } from '../lib/mesh/kernel/links.js'
import { macOf } from '../lib/mesh/kernel/names.js'
import { renderRuleset } from '../lib/mesh/kernel/ruleset.js'

const SECONDS = Number(process.env.MESH_BENCH_SECONDS ?? 5)
const NS = { client: 'swkb-c', node: 'swkb-n', task: 'swkb-t', node2: 'swkb-m', task2: 'swkb-u' }
const CLIENT_IP = '10.243.0.1'
const NODE_IP = '10.243.0.2'
const TASK_IP = '10.244.0.10'
/** The task on the second node, reached across VXLAN. */
const TASK2_IP = '10.244.0.20'
const UNDERLAY = ['10.245.0.1', '10.245.0.2'] as const
const PUBLISHED = 28480
const HAPROXY = 28481
const PUBLISHED_REMOTE = 28482

const started: ChildProcess[] = []
let dir = ''

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, args, { timeout: (SECONDS + 20) * 1000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)))
    if (input !== undefined) p.stdin!.end(input)
  })
}

const inNs = (ns: string, cmd: string, args: string[], input?: string): Promise<string> => run('ip', ['netns', 'exec', ns, cmd, ...args], input)

function daemon(ns: string, cmd: string, args: string[]): void {
  const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
  started.push(p)
}

async function setup(): Promise<void> {
  for (const ns of Object.values(NS)) await run('ip', ['netns', 'add', ns])
  await run('ip', ['link', 'add', 'swkb0', 'netns', NS.client, 'type', 'veth', 'peer', 'name', 'swkb1', 'netns', NS.node])
  await run('ip', ['-n', NS.client, '-batch', '-'], `link set lo up\nlink set swkb0 up\naddr add ${CLIENT_IP}/24 dev swkb0\nroute add 10.244.0.0/24 via ${NODE_IP}\n`)
  await run('ip', ['-n', NS.node, '-batch', '-'], `link set lo up\nlink set swkb1 up\naddr add ${NODE_IP}/24 dev swkb1\n`)
  // The two nodes' underlay, and on each the network's bridge and VXLAN device, FDB and neighbour entries, as the node's plane makes them.
  await run('ip', ['link', 'add', 'swkb2', 'netns', NS.node, 'type', 'veth', 'peer', 'name', 'swkb3', 'netns', NS.node2])
  await run('ip', ['-n', NS.node, '-batch', '-'], `link set swkb2 up\naddr add ${UNDERLAY[0]}/24 dev swkb2\n`)
  await run('ip', ['-n', NS.node2, '-batch', '-'], `link set lo up\nlink set swkb3 up\naddr add ${UNDERLAY[1]}/24 dev swkb3\nroute add 10.243.0.0/24 via ${UNDERLAY[0]}\n`)
  const nodes = [
    { ns: NS.node, task: NS.task, addr: '10.244.0.254', ip: TASK_IP, local: UNDERLAY[0], peer: { vtep: UNDERLAY[1], ips: ['10.244.0.253', TASK2_IP] } },
    { ns: NS.node2, task: NS.task2, addr: '10.244.0.253', ip: TASK2_IP, local: UNDERLAY[1], peer: { vtep: UNDERLAY[0], ips: ['10.244.0.254', TASK_IP] } },
  ]
  for (const n of nodes) {
    const links = linkCommands([], [{ vni: 4096, subnet: '10.244.0.0/24', nodeAddr: `${n.addr}/24`, gateway: '10.244.0.1', vips: [], mtu: 1450, vxlan: { port: 4789, local: n.local } }])
    await run('ip', ['-n', n.ns, '-batch', '-'], links.join('\n') + '\n')
    const fdb = fdbCommands([], [], peerEntries('swvx4096', n.peer.ips.map(ip => ({ ip, vtep: n.peer.vtep }))))
    await run('bridge', ['-n', n.ns, '-batch', '-'], fdb.bridge.join('\n') + '\n')
    await run('ip', ['-n', n.ns, '-batch', '-'], fdb.ip.join('\n') + '\n')
    await run('ip', ['-n', n.ns, 'link', 'add', 'swtpbench', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.task])
    await run('ip', ['-n', n.ns, '-batch', '-'], 'link set swtpbench master swbr4096 up\n')
    await run('ip', ['-n', n.task, '-batch', '-'], `link set lo up\nlink set eth0 address ${macOf(n.ip)} mtu 1450 up\naddr add ${n.ip}/24 dev eth0\nroute add default via 10.244.0.1\n`)
    await inNs(n.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
  }
  // A new namespace reuses TIME_WAIT ports for loopback only (tcp_tw_reuse=2): with connection close, HAProxy's dials to the task would run out of them.
  for (const ns of Object.values(NS)) await inNs(ns, 'sysctl', ['-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000'])
  const ruleset = renderRuleset({
    vxlanPort: 4789,
    vteps: [UNDERLAY[1]],
    vips: [],
    published: [
      { protocol: 'tcp', port: PUBLISHED, service: { id: 'bench', comment: 'bench 80/tcp', backends: [{ addr: TASK_IP, port: 80 }] } },
      { protocol: 'tcp', port: PUBLISHED_REMOTE, service: { id: 'remote', comment: 'remote 80/tcp', backends: [{ addr: TASK2_IP, port: 80 }] } },
    ],
    hostPorts: [],
    snat: [{ bridge: 'swbr4096', addr: '10.244.0.254' }],
    overlays: ['10.244.0.0/24'],
  })
  await inNs(NS.node, 'nft', ['-f', '-'], ruleset)
  dir = mkdtempSync(join(tmpdir(), 'swarmd-kbench-'))
  chmodSync(dir, 0o755)
  mkdirSync(join(dir, 'www'))
  writeFileSync(join(dir, 'www', 'index.html'), 'hello from the kernel bench backend\n')
  // Two servers, one per task, each with its own pid file.
  for (const n of [1, 2]) {
    writeFileSync(
      join(dir, `nginx${n}.conf`),
      `worker_processes 1;\ndaemon off;\npid ${dir}/nginx${n}.pid;\nerror_log ${dir}/nginx${n}-error.log warn;\nevents { worker_connections 8192; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fastcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;\n  keepalive_requests 1000000;\n  server { listen 80 backlog=4096; root ${dir}/www; location / { } }\n}\n`,
    )
  }
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    `global\n  nbthread 1\n  maxconn 8000\ndefaults\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nfrontend ft\n  mode tcp\n  bind ${NODE_IP}:${HAPROXY}\n  default_backend bk\nbackend bk\n  mode tcp\n  server s1 ${TASK_IP}:80\n`,
  )
  daemon(NS.task, 'nginx', ['-p', dir, '-c', join(dir, 'nginx1.conf')])
  daemon(NS.task2, 'nginx', ['-p', dir, '-c', join(dir, 'nginx2.conf')])
  daemon(NS.node, 'haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')])
  await new Promise(r => setTimeout(r, 1000))
}

async function cleanup(): Promise<void> {
  for (const p of started) {
    try {
      process.kill(-p.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  // Deleting the namespaces takes their veths, bridge and nft table with them.
  for (const ns of Object.values(NS)) await run('ip', ['netns', 'delete', ns]).catch(() => undefined)
  if (dir) rmSync(dir, { recursive: true, force: true })
}

async function wrk(url: string, close: boolean): Promise<number> {
  const args = (secs: number): string[] => ['-t1', '-c32', `-d${secs}s`, ...(close ? ['-H', 'Connection: close'] : []), url]
  await inNs(NS.client, 'wrk', args(1))
  const out = await inNs(NS.client, 'wrk', args(SECONDS))
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out)
  if (!m) throw new Error(`wrk ${url}: no rate in ${out}`)
  if (/Non-2xx|Socket errors/.test(out)) process.stderr.write(`kernel bench: ${url}: ${out.split('\n').filter(l => /Non-2xx|Socket errors/.test(l)).join('; ')}\n`)
  return Math.round(Number(m[1]))
}

const round2 = (x: number): number => Math.round(x * 100) / 100

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the kernel bench needs root (network namespaces, nftables)')
  await setup()
  const cases = {
    direct: `http://${TASK_IP}/`,
    kernel_published: `http://${NODE_IP}:${PUBLISHED}/`,
    haproxy_tcp_nbthread1: `http://${NODE_IP}:${HAPROXY}/`,
    direct_other_node: `http://${TASK2_IP}/`,
    kernel_published_vxlan: `http://${NODE_IP}:${PUBLISHED_REMOTE}/`,
  }
  const rates: Record<string, { keepalive: number; close: number }> = {}
  for (const [name, url] of Object.entries(cases)) {
    rates[name] = { keepalive: await wrk(url, false), close: await wrk(url, true) }
    process.stdout.write(JSON.stringify({ case: name, url, requests_per_s: rates[name] }) + '\n')
  }
  const k = rates.kernel_published!
  const ratios = {
    keepalive_vs_direct: round2(k.keepalive / rates.direct!.keepalive),
    close_vs_direct: round2(k.close / rates.direct!.close),
    keepalive_vs_haproxy: round2(k.keepalive / rates.haproxy_tcp_nbthread1!.keepalive),
    close_vs_haproxy: round2(k.close / rates.haproxy_tcp_nbthread1!.close),
    vxlan_keepalive_vs_direct: round2(rates.kernel_published_vxlan!.keepalive / rates.direct!.keepalive),
    vxlan_close_vs_direct: round2(rates.kernel_published_vxlan!.close / rates.direct!.close),
    vxlan_keepalive_vs_direct_other_node: round2(rates.kernel_published_vxlan!.keepalive / rates.direct_other_node!.keepalive),
  }
  process.stdout.write(JSON.stringify({ ratios, goals: { vs_direct: 0.9, vs_haproxy: 1.5, vxlan_vs_direct: 0.7 }, seconds: SECONDS }) + '\n')
}

try {
  await main()
} finally {
  await cleanup()
}
