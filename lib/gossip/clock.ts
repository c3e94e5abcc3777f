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

/** The real clock on wall time (`Date.now()`): for what stamps times on objects, as the manager's orchestrator does. */
export const wallClock: Clock = { ...systemClock, now: () => Date.now() }

/**
 * Runs `fn` every `period()` ms on `clock` (the period is read again each
 * time, so it may change), never two runs at once; errors go to `onError`.
 * Returns what stops it: a run in flight finishes, no new one starts.
 */
export function every(clock: Clock, period: () => number, fn: () => Promise<void> | void, onError: (e: unknown) => void): () => void {
  let stopped = false
  let timer: TimerHandle | undefined
  const arm = (): void => {
    if (stopped) return
    timer = clock.setTimeout(() => {
      timer = undefined
      void (async () => fn())()
        .catch(onError)
        .finally(arm)
    }, period())
  }
  arm()
  return () => {
    stopped = true
    if (timer) clock.clearTimeout(timer)
  }
}
