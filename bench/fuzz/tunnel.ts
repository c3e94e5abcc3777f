/**
 * The 4789 tunnel under randomized frame sequences (bench/tunnel-fuzz.ts)
 * for a bounded time: a real Tunnel on 127.0.0.95:29245, over real TCP and
 * UDP sockets, with a legitimate peer beside it on .96.
 */
import fc from 'fast-check'
import { TunnelFuzz, fuzzCase } from '../tunnel-fuzz.js'

export const plane = {
  name: 'tunnel',
  /**
   * Plays up to `inputs` cases, stopping at `deadlineMs` (a Date.now() time, as bench/fuzz.ts passes it). Drops
   * are the tunnel's own counts by reason; crashes are the cases after which
   * it misbehaved: it threw, miscounted, or stopped serving its peer.
   */
  run: async (o: { inputs: number; deadlineMs: number }): Promise<{ inputs: number; drops: Record<string, number>; crashes: number }> => {
    const end = o.deadlineMs
    const drops: Record<string, number> = {}
    let crashes = 0
    let thrown = 0
    const onUncaught = (): void => void thrown++
    process.on('uncaughtException', onUncaught)
    const fz = await TunnelFuzz.start('127.0.0.95', 29245)
    let inputs = 0
    try {
      while (inputs < o.inputs && Date.now() < end) {
        const batch = fc.sample(fuzzCase, Math.min(50, o.inputs - inputs))
        for (const c of batch) {
          if (Date.now() >= end) break
          const before = thrown
          const r = await fz.run(c)
          inputs++
          for (const [k, n] of Object.entries(r.counted)) drops[k] = (drops[k] ?? 0) + n
          if (r.problems.length > 0 || thrown > before) crashes++
        }
      }
    } finally {
      process.off('uncaughtException', onUncaught)
      await fz.close()
    }
    return { inputs, drops, crashes }
  },
}
