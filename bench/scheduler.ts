/**
 * Scheduler throughput against swarmkit's published microbenchmarks (PR #193,
 * `BenchmarkScheduler*`: one group of identical tasks, ready nodes, timed with
 * object creation). Each case times creating the nodes and task ids, feeding
 * them to a fresh Scheduler and placing the tasks; one warm-up, then the
 * median of 3 runs. Prints one JSON object per case.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/scheduler.js
 */
import { performance } from 'node:perf_hooks'
import { parseConstraints } from '../lib/manager/constraint.js'
import type { SchedNode } from '../lib/manager/sched-node.js'
import { type Batch, Scheduler } from '../lib/manager/scheduler.js'

interface Case {
  tasks: number
  nodes: number
  /** Swarmkit's figure for the same shape, when there is one. */
  swarmkitMs: number | null
  /** Split the tasks over this many services (one batch each). */
  services?: number
  /** Add a constraint and a zone spread preference. */
  placement?: boolean
  note?: string
}

const cases: Case[] = [
  { tasks: 1_000, nodes: 1_000, swarmkitMs: 189 },
  { tasks: 10_000, nodes: 1_000, swarmkitMs: 1_800 },
  { tasks: 100_000, nodes: 1_000, swarmkitMs: 22_600 },
  { tasks: 100_000, nodes: 10_000, swarmkitMs: 29_200, note: "swarmkit's figure is for 100k nodes" },
  { tasks: 100_000, nodes: 100_000, swarmkitMs: 29_200 },
  { tasks: 10_000, nodes: 1_000, swarmkitMs: null, placement: true },
  { tasks: 10_000, nodes: 1_000, swarmkitMs: null, services: 1_000, placement: true },
]

function makeNode(i: number): SchedNode {
  return {
    id: `node${i}`,
    hostname: `name${i}`,
    role: i % 50 === 0 ? 'manager' : 'worker',
    addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    ready: true,
    availability: 'active',
    labels: { zone: `z${i % 3}` },
    engineLabels: {},
    platform: { os: 'linux', arch: 'x86_64' },
    resources: { nanoCPUs: 8e9, memoryBytes: 32 * 2 ** 30 },
  }
}

function run(c: Case): number {
  const start = performance.now()
  const s = new Scheduler()
  for (let i = 0; i < c.nodes; i++) s.upsertNode(makeNode(i))
  const services = c.services ?? 1
  const per = Math.ceil(c.tasks / services)
  let placed = 0
  for (let svc = 0; svc < services; svc++) {
    const count = Math.min(per, c.tasks - svc * per)
    const batch: Batch = {
      serviceId: `service${svc}`,
      taskIds: Array.from({ length: count }, (_, k) => `task${svc}.${k}`),
      constraints: c.placement ? parseConstraints(['node.role==worker']) : [],
      preferences: c.placement ? ['node.labels.zone'] : [],
      reservations: { nanoCPUs: 0, memoryBytes: 0 },
      hostPorts: [],
      maxReplicas: 0,
    }
    placed += s.schedule(batch).placed
  }
  const ms = performance.now() - start
  if (placed !== c.tasks) throw new Error(`placed ${placed} of ${c.tasks} tasks`)
  return ms
}

for (const c of cases) {
  run(c)
  const runs = [run(c), run(c), run(c)].sort((a, b) => a - b)
  const ms = runs[1]!
  console.log(
    JSON.stringify({
      bench: 'scheduler',
      tasks: c.tasks,
      nodes: c.nodes,
      ...(c.services ? { services: c.services } : {}),
      ...(c.placement ? { placement: 'constraint node.role==worker, spread node.labels.zone' } : {}),
      ms: Math.round(ms * 10) / 10,
      placementsPerSec: Math.round(c.tasks / (ms / 1000)),
      swarmkitMs: c.swarmkitMs,
      ratio: c.swarmkitMs === null ? null : Math.round((ms / c.swarmkitMs) * 10_000) / 10_000,
      ...(c.note ? { note: c.note } : {}),
    }),
  )
}
