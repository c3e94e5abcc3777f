/**
 * Lifeguard under stress, on real sockets: a 32-member cluster (31 members in
 * this process, one `swarmd gossip` agent in its own process) where the lone
 * agent is stalled with SIGSTOP for 2-5 s, then resumed, `--trials` times.
 * Counts the healthy members that anyone declared dead (false positives), the
 * suspicions of healthy members, and how often the stalled member itself was
 * declared dead, with Lifeguard on and with it off (plain SWIM: no awareness,
 * no nacks, a fixed suspicion timeout). Prints one JSON object per mode.
 *
 *   npm run bench:lifeguard [-- --trials 10 --n 32 --base 33000]
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Membership, type MemberEvent } from '../lib/index.js'
import { seededRandom } from './seeded-random.js'

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const BIN = fileURLToPath(new URL('../../bin/swarmd.js', import.meta.url))

export interface LifeguardResult {
  lifeguard: boolean
  n: number
  trials: number
  stall_ms: number[]
  /** Healthy members declared dead by any member: Lifeguard's false positives. */
  healthy_declared_dead: number
  healthy_suspected: number
  stalled_declared_dead: number
  /** Highest health score (Lifeguard's awareness) among the in-process members during the trials. */
  max_health_score: number
}

async function waitUntil(what: string, timeoutMs: number, cond: () => boolean): Promise<void> {
  const start = performance.now()
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timeout waiting for ${what}`)
    await sleep(20)
  }
}

export async function stress(o: { n: number; trials: number; base: number; lifeguard: boolean; recoverMs: number; seed: number }): Promise<LifeguardResult> {
  const members: Membership[] = []
  const events: { at: number; e: MemberEvent }[] = []
  for (let i = 0; i < o.n - 1; i++) {
    members.push(
      await Membership.create({
        name: `m-${i}`,
        bind: { ip: '127.0.0.1', port: o.base + i },
        profile: 'lan',
        lifeguard: o.lifeguard,
        onEvent: e => events.push({ at: performance.now(), e }),
      }),
    )
  }
  const stalledName = 'stalled'
  const args = [BIN, 'gossip', '--name', stalledName, '--bind', `127.0.0.1:${o.base + o.n - 1}`, '--profile', 'lan', '--join', `127.0.0.1:${o.base}`, '--log-level', 'silent']
  if (!o.lifeguard) args.push('--no-lifeguard')
  const agent = spawn(process.execPath, args, { stdio: 'ignore' })
  const random = seededRandom(o.seed)
  try {
    for (const m of members.slice(1)) await m.join([`127.0.0.1:${o.base}`])
    await waitUntil('convergence', 60_000, () => members.every(m => m.numMembers() === o.n))
    await sleep(3_000)
    events.length = 0
    const stalls: number[] = []
    let maxHealth = 0
    for (let t = 0; t < o.trials; t++) {
      const stall = Math.round(2_000 + random() * 3_000)
      stalls.push(stall)
      agent.kill('SIGSTOP')
      await sleep(stall)
      agent.kill('SIGCONT')
      // Recover: long enough for any suspicion (LAN, n=32: 6 s to 36 s) to end one way or the other.
      const until = performance.now() + o.recoverMs
      while (performance.now() < until) {
        maxHealth = Math.max(maxHealth, ...members.map(m => m.healthScore()))
        await sleep(250)
      }
      // A stalled member declared dead rejoins by refuting; wait for everyone to list it again.
      await waitUntil('the stalled member back', 60_000, () => members.every(m => m.numMembers() === o.n)).catch(() => undefined)
    }
    const healthyDead = events.filter(x => x.e.type === 'dead' && x.e.member.name !== stalledName).length
    const healthySuspect = events.filter(x => x.e.type === 'suspect' && x.e.member.name !== stalledName).length
    const stalledDead = events.filter(x => x.e.type === 'dead' && x.e.member.name === stalledName).length
    return {
      lifeguard: o.lifeguard,
      n: o.n,
      trials: o.trials,
      stall_ms: stalls,
      healthy_declared_dead: healthyDead,
      healthy_suspected: healthySuspect,
      stalled_declared_dead: stalledDead,
      max_health_score: maxHealth,
    }
  } finally {
    agent.kill('SIGCONT')
    agent.kill('SIGKILL')
    await Promise.all(members.map(m => m.shutdown()))
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '10' },
      n: { type: 'string', default: '32' },
      base: { type: 'string', default: '33000' },
      recover: { type: 'string', default: '15000' },
    },
  })
  for (const lifeguard of [true, false]) {
    const r = await stress({ n: Number(values.n), trials: Number(values.trials), base: Number(values.base), lifeguard, recoverMs: Number(values.recover), seed: 7 })
    console.log(JSON.stringify(r))
  }
}
