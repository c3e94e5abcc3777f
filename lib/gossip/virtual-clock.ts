import type { Clock, TimerHandle } from './clock.js'

interface VTimer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/**
 * Virtual time for simulations and tests: timers run only when the owner
 * advances the clock, in time order (ties in creation order). A binary heap
 * keeps thousands of members' timers cheap.
 */
export class VirtualClock implements Clock {
  private t: number
  private seq = 0
  private readonly heap: VTimer[] = []

  constructor(start = 0) {
    this.t = start
  }

  now(): number {
    return this.t
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: VTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.push(timer)
    return timer
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle) (handle as VTimer).cancelled = true
  }

  /** Number of timers not yet run or cancelled. */
  pending(): number {
    return this.heap.filter(t => !t.cancelled).length
  }

  /**
   * Runs every timer due up to now + ms, moving time to each one first.
   * Drains callbacks between timers so promise chains and streams settle in virtual time.
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms
    for (;;) {
      await settle()
      const top = this.heap[0]
      if (!top || top.at > end) break
      this.pop()
      if (top.cancelled) continue
      this.t = top.at
      top.fn()
    }
    this.t = end
    await settle()
  }

  private less(a: VTimer, b: VTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  private push(x: VTimer): void {
    const h = this.heap
    h.push(x)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  private pop(): void {
    const h = this.heap
    const last = h.pop()!
    if (h.length === 0) return
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r
      if (m === i) break
      ;[h[i], h[m]] = [h[m]!, h[i]!]
      i = m
    }
  }
}

/** Lets every pending promise callback and nextTick run (streams use both) before time moves on. */
function settle(): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}
