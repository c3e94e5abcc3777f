/**
 * Fuzzes every plane that has a module in bench/fuzz/ (each exports `plane`,
 * see bench/fuzz/plane.ts), one after the other, within one budget of
 * inputs and of time: each plane gets an equal share of what is left, so
 * what one leaves unused goes to the next, and further rounds give what
 * the slow ones left to the planes that kept up, with another seed. Prints one JSON object: inputs,
 * drops by reason and crashes per plane, and the process's memory before and
 * after (each after a full GC), the leak check. Exits 1 on any crash or when
 * fewer inputs than asked for were fed.
 *
 *   npm run fuzz [-- --inputs 1000000] [-- --seconds 600] [-- --planes codecs,control]
 */
import { readdirSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { FuzzPlane } from './fuzz/plane.js'

const { values } = parseArgs({ options: { inputs: { type: 'string', default: '1000000' }, seconds: { type: 'string', default: '600' }, planes: { type: 'string' } } })
const target = Number(values.inputs)
const seconds = Number(values.seconds)
if (!Number.isInteger(target) || target < 1 || !(seconds > 0)) {
  process.stderr.write('usage: npm run fuzz [-- --inputs N] [-- --seconds S] [-- --planes NAME,...]\n')
  process.exit(2)
}

const gc = (globalThis as { gc?: () => void }).gc
const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10
/**
 * Memory in MiB after a full collection (node runs with --expose-gc):
 * resident, the JS heap in use, and buffers outside it. What inputs leak
 * shows in the last two; RSS also keeps what the allocator does not return.
 */
function memory(): { rss_mib: number; heap_mib: number; buffers_mib: number } {
  gc?.()
  const u = process.memoryUsage()
  return { rss_mib: mib(u.rss), heap_mib: mib(u.heapUsed), buffers_mib: mib(u.external + u.arrayBuffers) }
}

const only = values.planes?.split(',')
const dir = new URL('./fuzz/', import.meta.url)
const planes: FuzzPlane[] = []
for (const f of readdirSync(dir).filter(f => f.endsWith('.js')).sort()) {
  const mod = (await import(new URL(f, dir).href)) as { plane?: FuzzPlane }
  if (mod.plane && (!only || only.includes(mod.plane.name))) planes.push(mod.plane)
}
if (only && planes.length !== only.length) {
  process.stderr.write(`no such plane among ${only.join(', ')}\n`)
  process.exit(2)
}

const before = memory()
const start = Date.now()
const end = start + seconds * 1000
let fed = 0
let crashes = 0
const results: Record<string, { inputs: number; crashes: number; seconds: number; drops: Record<string, number>; rss_mib_after: number }> = {}
// Rounds: a plane that ran out of time before its share of inputs (a slow one) leaves what it did not
// use to the planes after it, and sits out the next round, where the fast ones share what is left. In
// the first round no plane takes more than an equal part of the whole time, so a slow one that comes
// last still leaves time for that.
let active = planes
for (let round = 0; fed < target && Date.now() < end && active.length > 0; round++) {
  const next: FuzzPlane[] = []
  for (const [i, p] of active.entries()) {
    const left = active.length - i
    const t0 = Date.now()
    const inputs = Math.ceil((target - fed) / left)
    if (inputs <= 0 || t0 >= end) break
    let r
    try {
      const slice = round === 0 ? Math.min((end - t0) / left, (end - start) / planes.length) : (end - t0) / left
      r = await p.run({ inputs, deadlineMs: t0 + slice, seed: round * 1_000_003 + i })
    } catch (e) {
      process.stderr.write(`fuzz ${p.name}: the plane itself failed: ${(e as Error).stack ?? String(e)}\n`)
      r = { inputs: 0, drops: {}, crashes: 1 }
    }
    fed += r.inputs
    crashes += r.crashes
    if (r.inputs >= inputs) next.push(p)
    const sum = (results[p.name] ??= { inputs: 0, crashes: 0, seconds: 0, drops: {}, rss_mib_after: 0 })
    sum.inputs += r.inputs
    sum.crashes += r.crashes
    sum.seconds = Math.round((sum.seconds + (Date.now() - t0) / 1000) * 10) / 10
    for (const [k, n] of Object.entries(r.drops)) sum.drops[k] = (sum.drops[k] ?? 0) + n
    sum.rss_mib_after = memory().rss_mib
  }
  active = next
}
const after = memory()
console.log(
  JSON.stringify({
    inputs: fed,
    target,
    crashes,
    seconds: Math.round((Date.now() - start) / 100) / 10,
    gc: !!gc,
    memory: { before, after },
    planes: results,
  }),
)
process.exitCode = crashes > 0 || fed < target ? 1 : 0
