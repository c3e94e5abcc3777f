/** Opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: unique symbol } | object

/**
 * Time source and timers. Injected so the protocol can run on real time or on
 * a simulated clock (virtual time) with the same code.
 */
export interface Clock {
  /** Milliseconds, monotonic enough for timeouts (need not be wall time). */
  now(): number
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
}

/** The real clock: `performance.now()` and Node timers (unref'd, so they never hold the process open). */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms)
    t.unref()
    return t
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout)
  },
}
