import type { Clock, TimerHandle } from './clock.js'

/**
 * The minimum suspicion timeout, in ms (fractional when the interval does not
 * divide evenly): SuspicionMult × max(1, log10(max(1, n))) × interval. The
 * node scale is truncated to thousandths first, as upstream does to keep
 * precision in integer nanoseconds.
 */
export function suspicionTimeoutMs(suspicionMult: number, n: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)))
  return (suspicionMult * Math.trunc(nodeScale * 1000) * probeIntervalMs) / 1000
}

/**
 * Go's Duration.Seconds(): whole seconds plus the nanosecond remainder, summed
 * in float64. Reproduced because computing in ms directly lands a different
 * floor()ed millisecond for some inputs.
 */
function goSeconds(ms: number): number {
  const ns = Math.round(ms * 1e6)
  return Math.trunc(ns / 1e9) + (ns % 1e9) / 1e9
}

/**
 * Time left, in ms, before a suspect with `n` of `k` expected confirmations is
 * declared dead: the total timeout max − (ln(n+1)/ln(k+1))·(max − min),
 * floored to the millisecond and never below min, minus `elapsedMs`. May be
 * zero or negative, meaning "now".
 */
export function remainingSuspicionTime(n: number, k: number, elapsedMs: number, minMs: number, maxMs: number): number {
  const frac = Math.log(n + 1) / Math.log(k + 1)
  const maxS = goSeconds(maxMs)
  const timeout = Math.floor(1000 * (maxS - frac * (maxS - goSeconds(minMs))))
  // Written so NaN and −Infinity (k < 1) also give min, as upstream does on amd64.
  return (timeout >= minMs ? timeout : minMs) - elapsedMs
}

/**
 * Lifeguard's accelerating suspicion timer (LHA-Suspicion). It starts at max
 * (min when no confirmations are expected) and shrinks towards min as
 * distinct peers confirm the suspicion, up to `k` of them.
 */
export class Suspicion {
  private readonly k: number
  private readonly minMs: number
  private readonly maxMs: number
  private readonly clock: Clock
  private readonly onTimeout: (confirmations: number) => void
  /** Accusers seen so far. The first one is in it but is not a confirmation: our own suspicion may be gossiped back to us. */
  private readonly accusers: Set<string>
  private confirmations = 0
  private readonly start: number
  private timer: TimerHandle
  /** Set once fired or stopped: from then on the timer is never re-armed. */
  private done = false

  constructor(opts: {
    from: string
    k: number
    minMs: number
    maxMs: number
    clock: Clock
    onTimeout: (confirmations: number) => void
  }) {
    this.k = opts.k
    this.minMs = opts.minMs
    this.maxMs = opts.maxMs
    this.clock = opts.clock
    this.onTimeout = opts.onTimeout
    this.accusers = new Set([opts.from])
    this.timer = this.clock.setTimeout(this.fire, opts.k < 1 ? opts.minMs : opts.maxMs)
    // Taken after arming, as upstream, so any delay errs towards a longer timeout.
    this.start = this.clock.now()
  }

  /**
   * Records `from` as an accuser. Returns true when it is a new distinct
   * accuser and fewer than k confirmations were seen, in which case the timer
   * is shortened (and the caller should re-gossip the suspicion).
   */
  confirm(from: string): boolean {
    if (this.confirmations >= this.k || this.accusers.has(from)) return false
    this.accusers.add(from)
    this.confirmations++
    if (!this.done) {
      const remaining = remainingSuspicionTime(
        this.confirmations,
        this.k,
        this.clock.now() - this.start,
        this.minMs,
        this.maxMs,
      )
      this.clock.clearTimeout(this.timer)
      // Even when overdue, fire from a timer, not from inside confirm():
      // upstream fires on another goroutine, after its caller returns.
      this.timer = this.clock.setTimeout(this.fire, Math.max(0, remaining))
    }
    return true
  }

  /** Cancels the timer; onTimeout will not be called. */
  stop(): void {
    this.done = true
    this.clock.clearTimeout(this.timer)
  }

  /** Runs at most once: only one timer is ever pending, and none is armed once done. */
  private readonly fire = (): void => {
    this.done = true
    this.onTimeout(this.confirmations)
  }
}
