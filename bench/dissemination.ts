/**
 * The real protocol code for 1,000 to 5,000 members on the simulated network
 * (virtual time): one member fails, and we record the fraction of the others
 * that know of the failure (have heard it suspected, or dead) against time
 * since the rumour started (the first suspicion), at 0 %, 10 % and 30 % packet
 * loss, beside
 * the logistic epidemic model of serf's convergence simulator
 * (reference/memberlist.md §6.1): after r gossip rounds a rumour has reached
 * 1 / (1 + (N+1)·e^(−β·N·r)) of the members, β = (fanout/N)·(1−loss)·0.5.
 *
 * Prints one JSON object per run and writes docs/dissemination.{json,svg}.
 *
 *   npm run bench:dissemination [-- --sizes 1000,2000,5000 --losses 0,0.1,0.3]
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Membership, type Member } from '../lib/index.js'
import { profiles } from '../lib/gossip/config.js'
import { SimNetwork } from '../lib/gossip/sim-network.js'
import { VirtualClock } from '../lib/gossip/virtual-clock.js'
import { seededRandom } from './seeded-random.js'
import { lineChart, type Series } from './svg-chart.js'

export interface DisseminationRun {
  n: number
  loss: number
  /** Virtual ms from the failure to the first suspicion (the rumour's start). */
  first_suspect_ms: number
  /** Virtual ms from the first suspicion until every live member knows of the failure. */
  spread_ms: number
  /** Gossip rounds (GossipInterval) from the first suspicion until 99.99 % know. */
  rounds_to_9999: number | null
  /** Virtual ms from the failure until every live member has declared it dead. */
  all_dead_ms: number
  /** Healthy members wrongly declared dead by anyone during the run. */
  false_dead: number
  /** [ms since the first suspicion, fraction of live members that know] every 100 ms. */
  curve: [number, number][]
  wall_ms: number
}

export function logisticModel(n: number, loss: number, fanout: number, rounds: number): number {
  const betaN = fanout * (1 - loss) * 0.5
  return 1 / (1 + (n + 1) * Math.exp(-betaN * rounds))
}

export async function simulate(n: number, loss: number, seed = 1): Promise<DisseminationRun> {
  const wall = performance.now()
  const clock = new VirtualClock()
  const random = seededRandom(seed)
  const net = new SimNetwork(clock, { latencyMs: 1, loss }, random)
  const members: Membership[] = []
  // Compression changes bytes, not who learns what when: off, to simulate faster.
  const tuning = { enableCompression: false }
  for (let i = 0; i < n; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    members.push(await Membership.create({ name: `n${i}`, transport: net.attach({ ip, port: 7946 }), clock, random, tuning }))
  }
  // Start converged: everyone knows everyone, nothing to gossip.
  const all: Member[] = members.map(m => ({ name: m.name, addr: m.address.ip, port: m.address.port, meta: Buffer.alloc(0), incarnation: 1, state: 'alive', vsn: [1, 5, 2, 0, 0, 0] }))
  for (const m of members) m.adopt(all)
  await clock.advance(2_000)

  const victim = members[n - 1]!
  const knows = new Map<string, number>()
  const dead = new Map<string, number>()
  let falseDead = 0
  for (const m of members.slice(0, n - 1)) {
    const learn = (x: Member): void => {
      if (x.name === victim.name && !knows.has(m.name)) knows.set(m.name, clock.now())
    }
    m.on('suspect', learn)
    m.on('dead', (x: Member) => {
      learn(x)
      if (x.name !== victim.name) falseDead++
      else if (!dead.has(m.name)) dead.set(m.name, clock.now())
    })
  }
  net.setDown(victim.address, true)
  const failedAt = clock.now()
  const live = n - 1
  const limit = failedAt + 10 * 60_000
  while (dead.size < live && clock.now() < limit) await clock.advance(100)
  const times = [...knows.values()].sort((a, b) => a - b)
  const first = times[0] ?? NaN
  const curve: [number, number][] = []
  for (let t = 0, i = 0; t <= (times.at(-1) ?? first) - first + 100; t += 100) {
    while (i < times.length && times[i]! - first <= t) i++
    curve.push([t, Math.round((i / live) * 10_000) / 10_000])
  }
  const interval = profiles.lan.gossipInterval
  const t9999 = times[Math.ceil(live * 0.9999) - 1]
  for (const m of members) await m.shutdown()
  return {
    n,
    loss,
    first_suspect_ms: first - failedAt,
    spread_ms: (times.at(-1) ?? first) - first,
    all_dead_ms: Math.max(...dead.values()) - failedAt,
    rounds_to_9999: t9999 === undefined ? null : Math.round(((t9999 - first) / interval) * 10) / 10,
    false_dead: falseDead,
    curve,
    wall_ms: Math.round(performance.now() - wall),
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1000,2000,5000' },
      losses: { type: 'string', default: '0,0.1,0.3' },
      out: { type: 'string', default: 'docs' },
    },
  })
  const runs: DisseminationRun[] = []
  for (const n of values.sizes.split(',').map(Number)) {
    for (const loss of values.losses.split(',').map(Number)) {
      const r = await simulate(n, loss)
      runs.push(r)
      const { curve, ...summary } = r
      console.log(JSON.stringify({ ...summary, curve_points: curve.length }))
    }
  }
  const interval = profiles.lan.gossipInterval
  const fanout = profiles.lan.gossipNodes
  const series: Series[] = []
  for (const r of runs) {
    series.push({ label: `sim n=${r.n} loss=${r.loss * 100}%`, points: r.curve.map(([t, f]) => [t / 1000, f]) })
  }
  for (const loss of [...new Set(runs.map(r => r.loss))]) {
    const n = Math.max(...runs.filter(r => r.loss === loss).map(r => r.n))
    const pts: [number, number][] = []
    for (let r = 0; r <= 40; r += 0.5) pts.push([(r * interval) / 1000, logisticModel(n, loss, fanout, r)])
    series.push({ label: `model n=${n} loss=${loss * 100}%`, points: pts, dashed: true })
  }
  const dir = resolve(fileURLToPath(new URL('../../', import.meta.url)), values.out) + '/'
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}dissemination.json`, JSON.stringify(runs) + '\n')
  writeFileSync(
    `${dir}dissemination.svg`,
    lineChart({ title: 'Members that know of a failure (suspect or dead), simulated beside the logistic model', xLabel: 'seconds since the first suspicion', yLabel: 'fraction of live members', series, xMax: 8 }),
  )
}
