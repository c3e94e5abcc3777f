/** Told of each commit to the swarm's state: how long it took (ms) and whether it landed. */
export type CommitObserver = (ms: number, ok: boolean) => void

/** Runs one commit and tells `observe` its duration and outcome; the commit's result or error passes through. */
export async function timedCommit<T>(observe: CommitObserver | undefined, run: () => Promise<T>): Promise<T> {
  if (!observe) return run()
  const start = performance.now()
  try {
    const r = await run()
    observe(performance.now() - start, true)
    return r
  } catch (e) {
    observe(performance.now() - start, false)
    throw e
  }
}
