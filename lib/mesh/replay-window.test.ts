import t from 'tap'
import fc from 'fast-check'
import { ReplayWindow } from './replay-window.js'

t.test('strict mode (TCP) accepts only increasing counters', async (t) => {
  const w = new ReplayWindow(64)
  t.ok(w.check(5, true))
  w.accept(5)
  t.notOk(w.check(5, true))
  t.notOk(w.check(4, true))
  t.ok(w.check(6, true))
})

t.test('sliding mode (UDP) tolerates reordering inside the window, once each', async (t) => {
  const w = new ReplayWindow(64)
  w.accept(100)
  t.ok(w.check(99, false))
  w.accept(99)
  t.notOk(w.check(99, false))
  t.ok(w.check(37, false), 'distance 63 is inside a 64-wide window')
  t.notOk(w.check(36, false), 'distance 64 is outside')
  w.accept(200)
  t.notOk(w.check(100, false), 'old ones slid out')
  t.ok(w.check(199, false))
  t.notOk(w.check(200, false))
})

t.test('rejects bad sizes', async (t) => {
  t.throws(() => new ReplayWindow(10))
})

t.test('property: matches a model set for any arrival order', async () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 3000 }), { maxLength: 400 }), fc.constantFrom(32, 64, 1024), (counters, size) => {
      const w = new ReplayWindow(size)
      const seen = new Set<number>()
      let highest = -1
      for (const c of counters) {
        const expected = !seen.has(c) && c > highest - size
        if (w.check(c, false) !== expected) return false
        if (expected) {
          w.accept(c)
          seen.add(c)
          highest = Math.max(highest, c)
        }
      }
      return true
    }),
  )
})
