import { connect } from 'node:net'

/**
 * Resolves true once something accepts TCP connections at `host`:`port`,
 * or false after `timeoutMs`: tried every `intervalMs`, each attempt
 * closed at once.
 */
export async function listening(host: string, port: number, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>(resolve => {
      const s = connect({ host, port, timeout: Math.max(intervalMs, 200) })
      const done = (v: boolean): void => {
        s.destroy()
        resolve(v)
      }
      s.once('connect', () => done(true))
      s.once('error', () => done(false))
      s.once('timeout', () => done(false))
    })
    if (ok) return true
    if (Date.now() >= until) return false
    await new Promise(r => setTimeout(r, intervalMs).unref())
  }
}
