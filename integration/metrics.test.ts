/**
 * `swarmd --metrics-addr` on three daemons on loopback (127.0.16.1-3, the
 * manager on .3): every node's /metrics passes `promtool check metrics`,
 * and its families tell what the swarm did (gossip, the control plane, the
 * manager's scheduling and commits, the routing mesh and its tunnel, the
 * executor's starts, exits and restarts); the cluster page's data is the
 * managers' only; a promoted manager on etcd counts the leader it sees and
 * times its etcd commits. A bad address is refused before the daemon
 * starts.
 */
import { get } from 'node:http'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { loopbackSwarm, type LoopbackHost } from './helpers/daemon.js'
import { etcdMissing, PROMTOOL, promtoolMissing, testNeeding } from './helpers/prerequisites.js'
import { run, waitUntil } from './helpers/procs.js'
import { promtoolCheck, scrape, total, type Sample } from './helpers/prometheus.js'
import { NOT_MANAGER } from '../lib/types/errors.js'

const SWARMD = fileURLToPath(new URL('../bin/swarmd.js', import.meta.url))
const PORT = 9323
const metricsAddr = (h: LoopbackHost): string => `${h.ip}:${PORT}`
const HELLO = 'require("http").createServer((q, s) => s.end("hi from " + process.env.SWARMD_NODE_HOSTNAME + "\\n")).listen(process.env.PORT)'

/** A GET on a connection of its own (fetch would keep one per address): each is a connection the mesh forwards. */
function getOnce(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, res => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

/** Scrapes `h` and has promtool check what it served. */
async function checked(t: Test, h: LoopbackHost, dir: string): Promise<Sample[]> {
  const m = await scrape(metricsAddr(h))
  t.match(m.contentType, /^text\/plain; version=0\.0\.4/, `${h.name}: the text format`)
  const v = await promtoolCheck(PROMTOOL!, m.text, dir, h.name)
  t.equal(v.code, 0, `${h.name}: promtool check metrics passes${v.output ? `: ${v.output}` : ''}`)
  return m.samples
}

testNeeding(t, 'metrics of a three-node swarm', promtoolMissing, async t => {
  const s = await loopbackSwarm(t, { prefix: 'metrics', name: i => `metrics-${i}`, ip: i => `127.0.16.${i}`, args: h => ['--metrics-addr', metricsAddr(h), '--ingress-addr', h.ip] })
  const [w1, w2, mgr] = s.hosts
  await s.ctl('service', 'create', '--name', 'web', '--replicas', '3', '--publish', '18180:80', 'node', 'node', '-e', HELLO)
  // Through every node's published port: some answers come from a task on another node, over the tunnel.
  const answers: string[] = []
  for (let i = 0; i < 9; i++) answers.push(await getOnce(`http://${s.hosts[i % 3]!.ip}:18180/`))
  t.equal(answers.filter(a => a.startsWith('hi from ')).length, 9, 'the mesh answered')
  // A task that exits with 3 after a moment, restarted in its slot (on one node: a restart elsewhere is that node's start).
  await s.ctl('service', 'create', '--detach', '--name', 'crash', '--restart-delay', '200ms', '--constraint', `node.hostname==${w1.name}`, 'node', 'node', '-e', 'setTimeout(() => process.exit(3), 300)')
  const everywhere = async (): Promise<Sample[][]> => Promise.all(s.hosts.map(h => scrape(metricsAddr(h)).then(m => m.samples)))
  await waitUntil(async () => (await everywhere()).reduce((n, x) => n + total(x, 'swarmd_executor_task_restarts_total'), 0) >= 2, { timeoutMs: 30_000, what: 'two restarts of crash' })

  const [m1, m2, m3] = [await checked(t, w1, s.dir), await checked(t, w2, s.dir), await checked(t, mgr, s.dir)] as [Sample[], Sample[], Sample[]]
  const all = [m1, m2, m3]
  const sum = (name: string, labels?: Record<string, string>): number => all.reduce((n, x) => n + total(x, name, labels), 0)

  t.test('gossip', async t => {
    for (const m of all) t.equal(total(m, 'swarmd_gossip_members', { state: 'alive' }), 3, 'every node holds three alive')
    t.ok(sum('swarmd_gossip_probes_total', { outcome: 'ack' }) > 0, 'probes acked')
    t.ok(total(m1, 'swarmd_gossip_messages_total', { direction: 'sent', type: 'ping' }) > 0 && total(m1, 'swarmd_gossip_messages_total', { direction: 'received', type: 'ack' }) > 0, 'pings out, acks in')
    t.ok(total(m1, 'swarmd_gossip_message_bytes_total', { direction: 'sent', type: 'ping' }) > total(m1, 'swarmd_gossip_messages_total', { direction: 'sent', type: 'ping' }), 'with their bytes')
    t.ok(total(m1, 'swarmd_gossip_packet_bytes_total', { direction: 'received' }) > 0)
  })

  t.test('control plane', async t => {
    t.ok(total(m3, 'swarmd_control_rpcs_total', { method: 'heartbeat', outcome: 'ok' }) >= 2, "the workers' check-ins, served by the manager")
    t.equal(total(m3, 'swarmd_control_rpc_duration_seconds_count', { method: 'heartbeat' }), total(m3, 'swarmd_control_rpcs_total', { method: 'heartbeat' }), 'each one timed')
    t.equal(total(m1, 'swarmd_control_rpcs_total'), 0, 'a worker serves none')
    t.equal(total(m3, 'swarmd_control_sessions'), 3, "three nodes' sessions on the leader (its own among them)")
    const days = (x: Sample[]): number => (total(x, 'swarmd_control_certificate_expiry_timestamp_seconds') * 1000 - Date.now()) / 86_400_000
    for (const x of all) t.ok(days(x) > 89 && days(x) <= 90, `a certificate of 90 days (${days(x).toFixed(2)} left)`)
  })

  t.test('manager', async t => {
    t.equal(total(m3, 'swarmd_manager_is_leader'), 1)
    t.equal(total(m1, 'swarmd_manager_is_leader'), 0)
    t.equal(total(m3, 'swarmd_manager_nodes', { state: 'ready' }), 3)
    t.equal(total(m3, 'swarmd_manager_services', { mode: 'replicated' }), 2)
    t.ok(total(m3, 'swarmd_manager_tasks', { state: 'running' }) >= 3, 'the three web tasks run')
    t.ok(total(m3, 'swarmd_manager_tasks', { state: 'failed' }) >= 2, "crash's ended tasks are in the history")
    t.ok(total(m3, 'swarmd_manager_scheduling_decisions_total', { outcome: 'assigned' }) >= 6, 'web.1-3 and three of crash placed')
    // A crash task that exits before its status is sent goes from starting to failed in one report, never timed as running.
    t.ok(total(m3, 'swarmd_manager_task_create_to_running_seconds_count') >= 4, `tasks timed from creation to running: web.1-3 and crash (${total(m3, 'swarmd_manager_task_create_to_running_seconds_count')})`)
    t.ok(total(m3, 'swarmd_manager_store_commit_duration_seconds_count', { store: 'local', outcome: 'ok' }) > 10, "the leader's commits timed")
    t.equal(total(m1, 'swarmd_manager_scheduling_decisions_total'), 0, 'a worker schedules nothing')
  })

  t.test('mesh and tunnel', async t => {
    t.same(all.map(m => total(m, 'swarmd_mesh_connections_total') >= 3), [true, true, true], "three connections forwarded by each node's own published port")
    t.ok(sum('swarmd_mesh_bytes_total', { direction: 'from_task' }) >= answers.join('').length, 'at least the answers, back from the tasks')
    t.ok(sum('swarmd_tunnel_connections_total', { event: 'opened' }) >= 1 && sum('swarmd_tunnel_frames_total', { direction: 'received' }) > 0, 'some crossed the tunnel')
    t.equal(sum('swarmd_tunnel_dropped_total'), 0, 'nothing dropped')
    t.equal(sum('swarmd_mesh_open_connections'), 0, 'none left open')
  })

  t.test('executor', async t => {
    t.ok(sum('swarmd_executor_task_starts_total') >= 6, 'web.1-3 and crash, started')
    t.ok(sum('swarmd_executor_task_exits_total', { code: '3' }) >= 2, 'crash exited with 3')
    t.ok(sum('swarmd_executor_task_restarts_total') >= 2, 'and was restarted in its slot')
  })

  t.test("the page's data: a manager's, not a worker's; nothing but GET", async t => {
    const state = await fetch(`http://${metricsAddr(mgr)}/ui/state`)
    t.equal(state.status, 200)
    const v = (await state.json()) as { nodes: { hostname: string; state: string }[]; tasks: { name: string }[] }
    t.same(v.nodes.map(n => `${n.hostname} ${n.state}`).sort(), ['metrics-1 ready', 'metrics-2 ready', 'metrics-3 ready'])
    t.ok(['web.1', 'web.2', 'web.3'].every(n => v.tasks.some(x => x.name === n)), 'web.1-3 are on it')
    const worker = await fetch(`http://${metricsAddr(w1)}/ui/state`)
    t.equal(worker.status, 503)
    t.same(await worker.json(), { error: NOT_MANAGER }, "docker's answer on a worker")
    t.equal((await fetch(`http://${metricsAddr(mgr)}/metrics`, { method: 'POST' })).status, 405)
    t.equal((await fetch(`http://${metricsAddr(mgr)}/nope`)).status, 404)
  })

  await testNeeding(t, 'promoted: the new manager sees the leader and times its etcd commits', etcdMissing, async t => {
    await s.ctl('node', 'promote', w1.name)
    const leaderSeen = await waitUntil(
      async () => {
        const x = (await scrape(metricsAddr(w1))).samples
        return total(x, 'swarmd_manager_leader_changes_seen_total') >= 1 && total(x, 'swarmd_manager_nodes', { state: 'ready' }) === 3 && x
      },
      { timeoutMs: 60_000, what: `${w1.name} a manager that sees the leader` },
    )
    t.equal(total(leaderSeen, 'swarmd_manager_is_leader'), 0, 'a follower')
    const lead = await waitUntil(
      async () => {
        const x = (await scrape(metricsAddr(mgr))).samples
        return total(x, 'swarmd_manager_store_commit_duration_seconds_count', { store: 'etcd', outcome: 'ok' }) > 0 && x
      },
      { timeoutMs: 30_000, what: "the leader's commits to etcd" },
    )
    t.equal(total(lead, 'swarmd_manager_is_leader'), 1, 'the first manager still leads, now on etcd')
    t.ok(total(lead, 'swarmd_manager_leader_changes_seen_total') >= 1, 'it saw itself elected')
    t.ok(total(lead, 'swarmd_control_rpcs_total', { method: 'manager.enroll', outcome: 'ok' }) >= 1, "the new manager's enrollment")
    await checked(t, w1, s.dir)
  })
})

t.test('a bad --metrics-addr is refused before the daemon starts', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-metrics-addr-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const daemon = (addr: string) => {
    const sock = join(dir, 'd.sock')
    return run(process.execPath, [SWARMD, '--data-dir', join(dir, 'data'), '-H', `unix://${sock}`, '--hostname', 'bad', '--log-level', 'info', '--metrics-addr', addr], { timeoutMs: 20_000 }).then(r => ({ ...r, sock }))
  }
  for (const addr of ['127.0.16.9', 'localhost:9323', '127.0.16.9:0', '127.0.16.9:70000', '[127.0.16.9]:9323', '::1:9323']) {
    const r = await daemon(addr)
    t.equal(r.code, 2, `${addr}: exit status 2`)
    t.match(r.stderr, `want IP:PORT, e.g. 127.0.0.1:9323 or [::1]:9323, got "${addr}"`)
  }
  const holder = createServer()
  holder.listen(PORT, '127.0.16.9')
  await once(holder, 'listening')
  t.teardown(() => holder.close())
  for (const [addr, why] of [
    [`127.0.16.9:${PORT}`, 'the port is in use'],
    // TEST-NET-1: no interface has it. Binding sends nothing.
    [`192.0.2.1:${PORT}`, 'no interface of this host has that address'],
  ] as const) {
    const r = await daemon(addr)
    t.equal(r.code, 1, `${addr}: exit status 1`)
    const fatal = r.stderr
      .split('\n')
      .filter(l => l.startsWith('{'))
      .map(l => JSON.parse(l) as { level: number; code?: string; msg: string })
      .find(l => l.level === 60)
    t.same([fatal?.code, fatal?.msg], ['E_METRICS_LISTEN', `cannot serve metrics on ${addr}: ${why}`])
    t.notOk(existsSync(r.sock), 'no API socket came up')
    t.notOk(existsSync(join(dir, 'data', 'node.key')), 'and no node was opened')
  }
})
