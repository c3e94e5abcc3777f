/**
 * Several managers, measured in one run on loopback (daemons on
 * 127.0.0.151-153, etcd members beside them):
 *   - service create latency (sequential, p50 / p99) and throughput (8 at a
 *     time, creates per second), one manager on its write-ahead log against
 *     three on etcd (through a follower, whose writes go to the leader);
 *   - failover: the Leader's daemon killed -9 (its etcd member dies with it)
 *     `--kills` times (default 10): time until another manager leads, and
 *     until a write through a survivor succeeds (min / median / max);
 *   - memory: a manager's RSS alone on its log, and with its etcd member.
 * Prints one JSON object per result.
 *
 *   npm run bench:managers [-- --creates 200 --kills 10]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startDaemon, swarmctl } from '../integration/helpers/daemon.js'
import type { ManagedProcess } from '../integration/helpers/procs.js'

const { values: args } = parseArgs({ options: { creates: { type: 'string', default: '200' }, kills: { type: 'string', default: '10' } } })
const CREATES = Number(args.creates)
const KILLS = Number(args.kills)

interface Host {
  name: string
  ip: string
  sock: string
  dir: string
  proc?: ManagedProcess
}

const dir = mkdtempSync(join(tmpdir(), 'swarmd-bench-managers-'))
const hosts: Host[] = [1, 2, 3].map(i => ({ name: `bench-m${i}`, ip: `127.0.0.15${i}`, sock: join(dir, `m${i}.sock`), dir: join(dir, `m${i}`) }))
const emit = (o: Record<string, unknown>): void => console.log(JSON.stringify(o))
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!
const round = (x: number): number => Math.round(x * 100) / 100

function call(h: Host, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise(resolve => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const req = request({ socketPath: h.sock, method, path: `/v1.41${path}`, timeout: 15_000, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, res => {
      let t = ''
      res.on('data', d => (t += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: t ? JSON.parse(t) : undefined }))
    })
    req.on('error', () => resolve({ status: 0, body: undefined }))
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end(data)
  })
}

const spec = (name: string): unknown => ({ Name: name, TaskTemplate: { ContainerSpec: { Image: 'busybox', Command: ['true'] } }, Mode: { Replicated: { Replicas: 0 } } })

async function start(h: Host): Promise<void> {
  h.proc = await startDaemon({ dataDir: h.dir, sock: h.sock, hostname: h.name, logLevel: 'warn', args: ['--ingress-addr', h.ip] })
}

async function ctl(h: Host, ...a: string[]): Promise<string> {
  const r = await swarmctl(h.sock, ...a)
  if (r.code !== 0) throw new Error(`swarmctl ${a.join(' ')} on ${h.name}: ${r.stderr}`)
  return r.stdout
}

/** Sequential creates (latency), then `CREATES` more 8 at a time (throughput). */
async function creates(via: Host, label: string, prefix: string): Promise<void> {
  const lat: number[] = []
  for (let i = 0; i < CREATES; i++) {
    const t0 = performance.now()
    const r = await call(via, 'POST', '/services/create', spec(`${prefix}-s${i}`))
    if (r.status !== 200) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
    lat.push(performance.now() - t0)
  }
  let next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < CREATES) {
        const i = next++
        const r = await call(via, 'POST', '/services/create', spec(`${prefix}-p${i}`))
        if (r.status !== 200) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
      }
    }),
  )
  const secs = (performance.now() - t0) / 1000
  emit({ bench: 'service create', managers: label, sequential: { n: CREATES, p50Ms: round(quantile(lat, 0.5)), p99Ms: round(quantile(lat, 0.99)) }, concurrent8: { n: CREATES, perSecond: round(CREATES / secs) } })
}

/** RSS in MiB of a process and, with `children`, of its etcd child. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : 0
}

function etcdChildOf(pid: number): number | undefined {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  return kids.find(k => {
    try {
      return readFileSync(`/proc/${k}/cmdline`, 'utf8').includes('etcd')
    } catch {
      return false
    }
  })
}

async function leaderOf(via: Host): Promise<Host | undefined> {
  const r = await call(via, 'GET', '/nodes')
  if (r.status !== 200) return undefined
  const n = (r.body as { Description: { Hostname: string }; ManagerStatus?: { Leader: boolean } }[]).find(x => x.ManagerStatus?.Leader)
  return hosts.find(h => h.name === n?.Description.Hostname)
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000, everyMs = 50): Promise<void> {
  const end = performance.now() + timeoutMs
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise(r => setTimeout(r, everyMs))
  }
}

async function main(): Promise<void> {
  const [m1, m2, m3] = hosts as [Host, Host, Host]
  try {
    await start(m1)
    await ctl(m1, 'swarm', 'init', '--advertise-addr', m1.ip, '--listen-addr', `${m1.ip}:2377`)
    await creates(m1, 'one (write-ahead log)', 'wal')
    const alone = rss(m1.proc!.pid)

    for (const h of [m2, m3]) await start(h)
    const token = (await ctl(m1, 'swarm', 'join-token', '-q', 'manager')).trim()
    for (const h of [m2, m3]) await ctl(h, 'swarm', 'join', '--token', token, '--advertise-addr', h.ip, '--listen-addr', `${h.ip}:2377`, `${m1.ip}:2377`)
    await until('three managers, one leader', async () => !!(await leaderOf(m3)))
    const leader = (await leaderOf(m3))!
    const follower = hosts.find(h => h !== leader)!
    await creates(follower, 'three (etcd), through a follower', 'etcd')
    const withEtcd = rss(leader.proc!.pid)
    const etcd = etcdChildOf(leader.proc!.pid)
    emit({ bench: 'manager memory', aloneOnItsLogMiB: round(alone), withEtcdMemberMiB: { swarmd: round(withEtcd), etcd: etcd ? round(rss(etcd)) : null } })

    const leaderS: number[] = []
    const writeS: number[] = []
    for (let k = 0; k < KILLS; k++) {
      const lead = (await leaderOf(hosts.find(h => h.proc)!))!
      const survivor = hosts.find(h => h !== lead)!
      const t0 = performance.now()
      lead.proc!.kill('SIGKILL')
      await lead.proc!.exited
      lead.proc = undefined
      let wrote = 0
      let led = 0
      await until('a new leader and a write', async () => {
        if (!led) {
          const l = await leaderOf(survivor)
          if (l && l !== lead) led = performance.now() - t0
        }
        if (!wrote && (await call(survivor, 'POST', '/services/create', spec(`failover-${k}-${Math.round(performance.now())}`))).status === 200) wrote = performance.now() - t0
        return !!led && !!wrote
      })
      leaderS.push(led / 1000)
      writeS.push(wrote / 1000)
      await start(lead)
      await until(`${lead.name} back`, async () => {
        const r = await call(survivor, 'GET', '/nodes')
        return r.status === 200 && (r.body as { ManagerStatus?: { Reachability: string } }[]).filter(n => n.ManagerStatus?.Reachability === 'reachable').length === 3
      })
    }
    const stats = (xs: number[]) => ({ min: round(Math.min(...xs)), median: round(quantile(xs, 0.5)), max: round(Math.max(...xs)) })
    emit({ bench: 'failover', kills: KILLS, newLeaderS: stats(leaderS), firstWriteS: stats(writeS), goal: 'a new Leader and a write within 5 s; swarm with its defaults: 10-20 s' })
  } finally {
    await Promise.all(hosts.map(h => h.proc?.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
