/**
 * Cluster benchmark on real sockets: n members in one process on loopback
 * (each its own port), all joining the first. Prints one JSON object:
 *   join_converge_ms     joins start → every member sees n alive
 *   cpu_ms               process CPU over a fixed steady-state window (after --settle ms)
 *   bytes_per_member_per_s  UDP + TCP bytes sent in that window, per member
 *   failure_converge_ms  `kill` members stop without leaving → no survivor lists them
 * `--impl go` runs the same measurement on Go memberlist (bench/go/gossipbench).
 *
 *   npm run bench:gossip -- --n 128 --kill 1 --profile lan --base 30000
 */
import { parseArgs } from 'node:util'
import { Membership } from '../lib/index.js'
import type { Profile } from '../lib/gossip/config.js'
import { buildGoProgram } from '../integration/helpers/gopeer.js'
import { runOk } from '../integration/helpers/procs.js'

export interface GossipBenchResult {
  impl: string
  n: number
  profile: string
  join_converge_ms: number
  kill: number
  failure_converge_ms: number
  cpu_ms: number
  window_ms: number
  settle_ms: number
  bytes_per_member_per_s: number
  /** Bytes sent per member from the first join until the window starts (join traffic). */
  join_bytes_per_member: number
}

export interface GossipBenchOptions {
  n: number
  kill: number
  profile: Profile
  base: number
  windowMs: number
  /** Quiet time after join convergence, so the window sees steady state, not the join's broadcasts. */
  settleMs: number
  timeoutMs: number
  lifeguard?: boolean
}

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

async function waitUntil(what: string, timeoutMs: number, cond: () => boolean): Promise<number> {
  const start = performance.now()
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timeout waiting for ${what}`)
    await sleep(10)
  }
  return performance.now() - start
}

export async function benchSwarmd(o: GossipBenchOptions): Promise<GossipBenchResult> {
  const members: Membership[] = []
  for (let i = 0; i < o.n; i++) {
    members.push(await Membership.create({ name: `m-${i}`, bind: { ip: '127.0.0.1', port: o.base + i }, profile: o.profile, lifeguard: o.lifeguard ?? true }))
  }
  try {
    const start = performance.now()
    const first = `127.0.0.1:${o.base}`
    for (const m of members.slice(1)) await m.join([first])
    const slow = setTimeout(() => process.stderr.write(`slow join convergence: ${describeGaps(members)}\n`), 10_000)
    await waitUntil('join convergence', o.timeoutMs, () => members.every(m => m.numMembers() === o.n)).finally(() => clearTimeout(slow))
    const joinMs = performance.now() - start

    await sleep(o.settleMs)
    const sent = (): number => members.reduce((a, m) => a + m.counters.bytesSent + m.counters.streamBytesSent, 0)
    const bytes0 = sent()
    const joinBytes = bytes0
    const cpu0 = process.cpuUsage()
    await sleep(o.windowMs)
    const cpu = process.cpuUsage(cpu0)
    const bytes = sent() - bytes0

    const killed = new Set(members.slice(o.n - o.kill).map(m => m.name))
    for (const m of members.slice(o.n - o.kill)) await m.shutdown()
    const alive = members.slice(0, o.n - o.kill)
    const failMs = await waitUntil('failure convergence', o.timeoutMs, () => alive.every(m => !m.members().some(x => killed.has(x.name))))
    return {
      impl: 'swarmd',
      n: o.n,
      profile: o.profile,
      join_converge_ms: round(joinMs),
      kill: o.kill,
      failure_converge_ms: round(failMs),
      cpu_ms: round((cpu.user + cpu.system) / 1000),
      window_ms: o.windowMs,
      settle_ms: o.settleMs,
      bytes_per_member_per_s: round(bytes / o.n / (o.windowMs / 1000)),
      join_bytes_per_member: round(joinBytes / o.n),
    }
  } finally {
    await Promise.all(members.map(m => m.shutdown()))
  }
}

/** Who does not list whom as alive, and what it thinks instead: to explain a slow convergence. */
function describeGaps(members: Membership[]): string {
  const gaps: string[] = []
  for (const m of members) {
    const known = new Map(m.allMembers().map(x => [x.name, x.state]))
    for (const other of members) {
      const st = known.get(other.name)
      if (st !== 'alive' && st !== 'suspect') gaps.push(`${m.name} has ${other.name} ${st ?? 'unknown'}`)
    }
  }
  return gaps.slice(0, 20).join('; ')
}

export async function benchGo(o: GossipBenchOptions): Promise<GossipBenchResult> {
  const bin = await buildGoProgram('bench/go/gossipbench')
  const args = ['-n', String(o.n), '-kill', String(o.kill), '-profile', o.profile, '-base', String(o.base), '-window', String(o.windowMs), '-settle', String(o.settleMs), '-timeout', String(o.timeoutMs)]
  const { stdout } = await runOk(bin, args, { timeoutMs: o.windowMs + 3 * o.timeoutMs })
  return JSON.parse(stdout.trim().split('\n').pop()!) as GossipBenchResult
}

const round = (x: number): number => Math.round(x * 100) / 100

export function parseBenchArgs(argv: string[]): GossipBenchOptions & { impl: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string', default: '32' },
      kill: { type: 'string', default: '1' },
      profile: { type: 'string', default: 'lan' },
      base: { type: 'string', default: '30000' },
      window: { type: 'string', default: '10000' },
      settle: { type: 'string', default: '5000' },
      timeout: { type: 'string', default: '180000' },
      impl: { type: 'string', default: 'swarmd' },
    },
  })
  const n = Number(values.n)
  const kill = Number(values.kill)
  if (!Number.isInteger(n) || n < 2) throw new Error('--n must be an integer >= 2')
  if (!Number.isInteger(kill) || kill < 1 || kill >= n) throw new Error('--kill must be 1..n-1')
  if (!['lan', 'wan', 'local'].includes(values.profile)) throw new Error('--profile must be lan, wan or local')
  return {
    n,
    kill,
    profile: values.profile as Profile,
    base: Number(values.base),
    windowMs: Number(values.window),
    settleMs: Number(values.settle),
    timeoutMs: Number(values.timeout),
    impl: values.impl,
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const o = parseBenchArgs(process.argv.slice(2))
  const r = o.impl === 'go' ? await benchGo(o) : await benchSwarmd(o)
  console.log(JSON.stringify(r))
}
