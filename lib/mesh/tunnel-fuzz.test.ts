import t from 'tap'
import fc from 'fast-check'
import { TunnelFuzz, fuzzCase, planTcp, type FuzzCase } from '../../bench/tunnel-fuzz.js'

// 127.0.0.93 (the target) and .94 (its legitimate peer), port 29241.

t.test('randomized frame sequences against a real Tunnel: no crash, every drop counted by its reason, the real peer served', async (t) => {
  const fz = await TunnelFuzz.start('127.0.0.93', 29241)
  t.teardown(() => fz.close())
  const seen = new Set<string>()
  await fc.assert(
    fc.asyncProperty(fuzzCase, async (c: FuzzCase) => {
      const r = await fz.run(c)
      for (const k of Object.keys(r.counted)) seen.add(k)
      if (r.problems.length) throw new Error(r.problems.join('; '))
    }),
    { numRuns: 300 },
  )
  // The generator reaches every reason the tunnel has for a frame or a connection it will not take (save the caps and timeouts, tested apart).
  const reasons = ['malformed', 'unknown_vni', 'plaintext', 'decrypt', 'unknown_stream', 'flow_control', 'reply_unknown_flow', 'auth', 'unauthenticated']
  t.same(reasons.filter((r) => !seen.has(r)), [], `reasons seen: ${[...seen].sort().join(', ')}`)
})

t.test('the model counts what it sends', async (t) => {
  const p = planTcp([{ k: 'open' }, { k: 'data', s: 0, len: 10 }, { k: 'fin', s: 0 }, { k: 'data', s: 0, len: 1 }, { k: 'data', s: 0, len: 1 }, { k: 'pong', id: 3 }], new Uint8Array([1]))
  t.same(p.expect, { malformed: 2, unknown_stream: 2 }, 'DATA after FIN ends the stream; then the stream is unknown; the broken framing')
  t.equal(p.open, false)
  t.equal(p.predicted, true)
})
