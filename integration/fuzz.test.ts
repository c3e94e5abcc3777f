/**
 * `npm run fuzz` (dist/bench/fuzz.js) on a small budget: every plane in
 * bench/fuzz/ runs, the budget is used up, nothing crashes, and the one JSON
 * object says per plane how many inputs went in and which were dropped why,
 * and the memory before and after. Uses 127.0.0.245:29170-29171 (the control plane's real nodes).
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { run } from './helpers/procs.js'

const FUZZ = fileURLToPath(new URL('../dist/bench/fuzz.js', import.meta.url))

t.test('npm run fuzz on a small budget', async t => {
  const r = await run(process.execPath, ['--expose-gc', FUZZ, '--inputs', '3000', '--seconds', '60'], { timeoutMs: 120_000 })
  t.equal(r.code, 0, `exits 0: ${r.stderr}`)
  const out = JSON.parse(r.stdout) as {
    inputs: number
    crashes: number
    gc: boolean
    memory: Record<'before' | 'after', { rss_mib: number; heap_mib: number; buffers_mib: number }>
    planes: Record<string, { inputs: number; crashes: number; drops: Record<string, number> }>
  }
  t.ok(['codecs', 'control'].every(p => p in out.planes), `the planes ran: ${Object.keys(out.planes).join(', ')}`)
  t.equal(out.inputs, 3000, 'the whole budget')
  t.equal(Object.values(out.planes).reduce((n, p) => n + p.inputs, 0), out.inputs, 'split across the planes')
  t.equal(out.crashes, 0)
  // What a drop is, each plane says (a refusal, an HTTP status, a drop counter); every plane saw some.
  for (const [name, p] of Object.entries(out.planes)) t.ok(Object.values(p.drops).some(n => n > 0), `${name}: ${p.inputs} inputs, drops by ${Object.keys(p.drops).length} reasons`)
  t.ok(out.gc, 'memory measured after a forced GC')
  t.ok(['before', 'after'].every(k => Object.values(out.memory[k as 'before']).every(v => v > 0)), `memory: ${JSON.stringify(out.memory)}`)
})
