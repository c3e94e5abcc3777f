import t from 'tap'
import type { Clock, TimerHandle } from './clock.js'
import { remainingSuspicionTime, Suspicion, suspicionTimeoutMs } from './suspicion.js'

/** Virtual time: timers run only when the test advances the clock. */
class FakeClock implements Clock {
  private t = 0
  private seq = 0
  private readonly timers = new Map<TimerHandle, { at: number; seq: number; fn: () => void }>()

  now(): number {
    return this.t
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = {}
    this.timers.set(handle, { at: this.t + ms, seq: this.seq++, fn })
    return handle
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle)
  }

  pending(): number {
    return this.timers.size
  }

  /** Runs due timers in time order (then creation order), each at its own virtual time. */
  advance(ms: number): void {
    const end = this.t + ms
    for (;;) {
      let next: [TimerHandle, { at: number; seq: number; fn: () => void }] | undefined
      for (const entry of this.timers) {
        const [, tm] = entry
        if (tm.at <= end && (next === undefined || tm.at < next[1].at || (tm.at === next[1].at && tm.seq < next[1].seq))) {
          next = entry
        }
      }
      if (next === undefined) break
      this.timers.delete(next[0])
      this.t = Math.max(this.t, next[1].at)
      next[1].fn()
    }
    this.t = end
  }
}

/** LAN defaults, n ≤ 10: SuspicionMult 4, ProbeInterval 1 s, SuspicionMaxTimeoutMult 6, k = 4 − 2. */
const LAN_MIN = suspicionTimeoutMs(4, 10, 1000)
const LAN_MAX = 6 * LAN_MIN
const LAN_K = 2

function lan(clock: FakeClock, k = LAN_K) {
  const fired: { at: number; confirmations: number }[] = []
  const s = new Suspicion({
    from: 'accuser',
    k,
    minMs: LAN_MIN,
    maxMs: LAN_MAX,
    clock,
    onTimeout: confirmations => fired.push({ at: clock.now(), confirmations }),
  })
  return { s, fired }
}

t.test('suspicionTimeoutMs', async t => {
  t.equal(LAN_MIN, 4000, 'n ≤ 10: 4 s')
  t.equal(LAN_MAX, 24000, 'n ≤ 10: max 24 s')
  for (const n of [0, 1, 2, 5, 9, 10]) t.equal(suspicionTimeoutMs(4, n, 1000), 4000, `n=${n}`)
  t.equal(suspicionTimeoutMs(4, 100, 1000), 8000, 'n=100: 8 s')
  t.equal(suspicionTimeoutMs(4, 1000, 1000), 12000, 'n=1000: 12 s')
  t.equal(suspicionTimeoutMs(4, 10000, 1000), 16000, 'n=10000: 16 s')
  t.equal(suspicionTimeoutMs(6, 10, 5000), 30000, 'WAN n ≤ 10')
  // log10 is truncated to thousandths before scaling, as upstream.
  t.equal(suspicionTimeoutMs(4, 50, 1000), 6792, 'n=50: log10 = 1.69897 → 1.698')
  t.equal(suspicionTimeoutMs(4, 999, 1000), 11996)
  t.equal(suspicionTimeoutMs(4, 11, 200), 832.8, 'sub-ms precision kept')
})

t.test('remainingSuspicionTime', async t => {
  t.equal(remainingSuspicionTime(0, 2, 0, 4000, 24000), 24000, 'no confirmations: max')
  t.equal(remainingSuspicionTime(1, 2, 0, 4000, 24000), 11381, 'one of two: ≈11.4 s, floored to ms')
  t.equal(remainingSuspicionTime(2, 2, 0, 4000, 24000), 4000, 'two of two: min')
  t.equal(remainingSuspicionTime(3, 2, 0, 4000, 24000), 4000, 'never below min')
  t.equal(remainingSuspicionTime(1, 2, 5000, 4000, 24000), 6381, 'elapsed time is subtracted')
  t.equal(remainingSuspicionTime(2, 2, 10000, 4000, 24000), -6000, 'may be negative')
  t.equal(remainingSuspicionTime(1, 4, 0, 12000, 72000), 46159, 'n=1000, k=4')
  t.equal(remainingSuspicionTime(1, 0, 0, 4000, 24000), 4000, 'k=0: min')
  t.equal(remainingSuspicionTime(0, 0, 0, 4000, 24000), 4000, 'k=0, n=0: min')
  // Values from Go's remainingSuspicionTime where plain ms arithmetic floors to a different millisecond.
  t.equal(remainingSuspicionTime(1, 3, 0, 858, 5148), 3002)
  t.equal(remainingSuspicionTime(1, 3, 0, 866, 5196), 3030)
})

t.test('no confirmations: fires at max with 0', async t => {
  const clock = new FakeClock()
  const { fired } = lan(clock)
  clock.advance(LAN_MAX - 1)
  t.same(fired, [])
  clock.advance(1)
  t.same(fired, [{ at: 24000, confirmations: 0 }])
  clock.advance(100000)
  t.equal(fired.length, 1, 'fires once')
})

t.test('one confirmation: ≈11.4 s total', async t => {
  const clock = new FakeClock()
  const { s, fired } = lan(clock)
  clock.advance(2000)
  t.equal(s.confirm('b'), true)
  t.equal(clock.pending(), 1, 'one timer, re-armed')
  clock.advance(11381 - 2000 - 1)
  t.same(fired, [], 'the elapsed 2 s count towards the total')
  clock.advance(1)
  t.same(fired, [{ at: 11381, confirmations: 1 }])
})

t.test('two confirmations: min (4 s)', async t => {
  const clock = new FakeClock()
  const { s, fired } = lan(clock)
  t.equal(s.confirm('b'), true)
  clock.advance(1000)
  t.equal(s.confirm('c'), true)
  clock.advance(2999)
  t.same(fired, [])
  clock.advance(1)
  t.same(fired, [{ at: 4000, confirmations: 2 }])
})

t.test('overdue after a late confirmation: fires at once, but not inside confirm()', async t => {
  const clock = new FakeClock()
  const { s, fired } = lan(clock)
  clock.advance(10000)
  t.equal(s.confirm('b'), true)
  t.equal(s.confirm('c'), true)
  t.same(fired, [], 'deferred to a timer')
  clock.advance(0)
  t.same(fired, [{ at: 10000, confirmations: 2 }])
})

t.test('the first accuser and repeats are not confirmations', async t => {
  const clock = new FakeClock()
  const { s, fired } = lan(clock)
  t.equal(s.confirm('accuser'), false, 'the first accuser is already counted as seen')
  t.equal(s.confirm('b'), true)
  t.equal(s.confirm('b'), false, 'repeated accuser')
  t.equal(s.confirm('c'), true)
  t.equal(s.confirm('d'), false, 'k reached')
  clock.advance(LAN_MIN)
  t.same(fired, [{ at: 4000, confirmations: 2 }])
})

t.test('k < 1 starts at min and takes no confirmations', async t => {
  const clock = new FakeClock()
  const { s, fired } = lan(clock, 0)
  t.equal(s.confirm('b'), false)
  clock.advance(LAN_MIN - 1)
  t.same(fired, [])
  clock.advance(1)
  t.same(fired, [{ at: 4000, confirmations: 0 }])
})

t.test('stop cancels the timer for good', async t => {
  const clock = new FakeClock()
  const { s, fired } = lan(clock)
  s.stop()
  t.equal(clock.pending(), 0)
  t.equal(s.confirm('b'), true, 'still counted, as upstream')
  t.equal(clock.pending(), 0, 'but nothing re-armed')
  clock.advance(LAN_MAX * 2)
  t.same(fired, [])
})

t.test('a confirmation after firing does not re-arm', async t => {
  const clock = new FakeClock()
  const { s, fired } = lan(clock)
  clock.advance(LAN_MAX)
  t.equal(fired.length, 1)
  t.equal(s.confirm('b'), true)
  t.equal(clock.pending(), 0)
  clock.advance(LAN_MAX)
  t.equal(fired.length, 1, 'onTimeout at most once')
})

t.test('larger clusters: n=1000, k=2', async t => {
  const clock = new FakeClock()
  const min = suspicionTimeoutMs(4, 1000, 1000)
  const fired: number[] = []
  const s = new Suspicion({ from: 'a', k: 2, minMs: min, maxMs: 6 * min, clock, onTimeout: () => fired.push(clock.now()) })
  t.equal(s.confirm('b'), true)
  clock.advance(72000)
  t.same(fired, [remainingSuspicionTime(1, 2, 0, 12000, 72000)])
  t.equal(fired[0], 34144)
})
