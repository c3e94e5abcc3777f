/**
 * swarmd beside Go memberlist in the same run: the cluster benchmark of
 * bench/gossip.ts for each size, each implementation in its own process,
 * then the ratios swarmd / Go (below 1 is better for swarmd). With --runs R,
 * each figure is the median of R runs.
 *
 *   npm run bench:gossip:compare [-- --sizes 32,128,256 --runs 1 --base 30000]
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { benchGo, type GossipBenchResult } from './gossip.js'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '32,128,256' },
    runs: { type: 'string', default: '1' },
    base: { type: 'string', default: '30000' },
    kill: { type: 'string', default: '1' },
    profile: { type: 'string', default: 'lan' },
  },
})
const sizes = values.sizes.split(',').map(Number)
const runs = Number(values.runs)
const base = Number(values.base)
const kill = Number(values.kill)
const profile = values.profile as 'lan' | 'wan' | 'local'
const self = fileURLToPath(new URL('./gossip.js', import.meta.url))

async function swarmd(n: number): Promise<GossipBenchResult> {
  const { stdout } = await promisify(execFile)(process.execPath, [self, '--impl', 'swarmd', '--n', String(n), '--kill', String(kill), '--profile', profile, '--base', String(base)], {
    maxBuffer: 1 << 20,
  })
  return JSON.parse(stdout.trim().split('\n').pop()!) as GossipBenchResult
}

const KEYS = ['join_converge_ms', 'failure_converge_ms', 'cpu_ms', 'bytes_per_member_per_s'] as const

function median(rs: GossipBenchResult[]): GossipBenchResult {
  const out = { ...rs[0]! }
  for (const k of KEYS) {
    const v = rs.map(r => r[k]).sort((a, b) => a - b)
    out[k] = v[Math.floor(v.length / 2)]!
  }
  return out
}

const round = (x: number): number => Math.round(x * 100) / 100

for (const n of sizes) {
  const ours: GossipBenchResult[] = []
  const go: GossipBenchResult[] = []
  for (let r = 0; r < runs; r++) {
    ours.push(await swarmd(n))
    go.push(await benchGo({ n, kill, profile, base, windowMs: 10_000, settleMs: 5_000, timeoutMs: 180_000 }))
  }
  const a = median(ours)
  const b = median(go)
  console.log(JSON.stringify(a))
  console.log(JSON.stringify(b))
  console.log(
    JSON.stringify({
      n,
      runs,
      ratio_swarmd_over_go: {
        join_converge: round(a.join_converge_ms / b.join_converge_ms),
        failure_converge: round(a.failure_converge_ms / b.failure_converge_ms),
        cpu: round(a.cpu_ms / b.cpu_ms),
        bytes_per_member: round(a.bytes_per_member_per_s / b.bytes_per_member_per_s),
      },
    }),
  )
}
