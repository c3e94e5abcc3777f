/** Runs the real swarmd daemon (the built bin/swarmd.js) and swarmctl for tests. */
import { request } from 'node:http'
import { fileURLToPath } from 'node:url'
import { run, spawnManaged, waitUntil, type ManagedProcess, type RunResult } from './procs.js'

const SWARMD = fileURLToPath(new URL('../../bin/swarmd.js', import.meta.url))
const SWARMCTL = fileURLToPath(new URL('../../bin/swarmctl.js', import.meta.url))

/** True once the daemon answers /_ping on its socket. */
export function pingSocket(sock: string): Promise<boolean> {
  return new Promise(resolve => {
    const req = request({ socketPath: sock, path: '/_ping' }, res => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.end()
  })
}

/** Starts a daemon and waits until its API answers. */
export async function startDaemon(o: { dataDir: string; sock: string; hostname: string; logLevel?: string; args?: string[] }): Promise<ManagedProcess> {
  const p = spawnManaged(process.execPath, [SWARMD, '--data-dir', o.dataDir, '-H', `unix://${o.sock}`, '--hostname', o.hostname, '--log-level', o.logLevel ?? 'warn', ...(o.args ?? [])], {
    label: o.hostname,
  })
  await waitUntil(() => pingSocket(o.sock), { timeoutMs: 15_000, what: `${o.hostname}'s API socket`, giveUp: () => (p.exitStatus ? new Error(`${o.hostname} exited: ${p.stderrTail()}`) : undefined) })
  return p
}

/** swarmctl against the daemon at `sock`. */
export function swarmctl(sock: string, ...args: string[]): Promise<RunResult> {
  return run(process.execPath, [SWARMCTL, '-H', `unix://${sock}`, ...args], { timeoutMs: 30_000 })
}
