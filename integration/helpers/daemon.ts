/** Runs the real swarmd daemon (the built bin/swarmd.js) and swarmctl for tests. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { run, spawnManaged, waitUntil, type ManagedProcess, type RunResult } from './procs.js'

// From the sources (tap) or compiled under dist/ (the benchmarks): bin/ is at the repository's root either way.
const ROOT = new URL(import.meta.url.includes('/dist/integration/') ? '../../../' : '../../', import.meta.url)
const SWARMD = fileURLToPath(new URL('bin/swarmd.js', ROOT))
const SWARMCTL = fileURLToPath(new URL('bin/swarmctl.js', ROOT))

/** A daemon of a loopback test: its own 127.0.0.x address, socket and data dir. */
export interface LoopbackHost {
  name: string
  ip: string
  sock: string
  dir: string
  id?: string
  proc?: ManagedProcess
}

export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

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
export async function startDaemon(o: { dataDir: string; sock: string; hostname: string; logLevel?: string; args?: string[]; env?: NodeJS.ProcessEnv }): Promise<ManagedProcess> {
  const p = spawnManaged(process.execPath, [SWARMD, '--data-dir', o.dataDir, '-H', `unix://${o.sock}`, '--hostname', o.hostname, '--log-level', o.logLevel ?? 'warn', ...(o.args ?? [])], {
    label: o.hostname,
    ...(o.env ? { env: { ...process.env, ...o.env } } : {}),
  })
  await waitUntil(() => pingSocket(o.sock), { timeoutMs: 15_000, what: `${o.hostname}'s API socket`, giveUp: () => (p.exitStatus ? new Error(`${o.hostname} exited: ${p.stderrTail()}`) : undefined) })
  return p
}

/** swarmctl against the daemon at `sock`. */
export function swarmctl(sock: string, ...args: string[]): Promise<RunResult> {
  return run(process.execPath, [SWARMCTL, '-H', `unix://${sock}`, ...args], { timeoutMs: 30_000 })
}

/** Task processes (the process executor's) that carry one of these node IDs in their environment, with their task IDs and environments (read once: a process may be gone by the time a test looks again). */
export function taskProcesses(nodeIds: readonly string[], service?: string): { pid: number; task: string; env: string[] }[] {
  const found: { pid: number; task: string; env: string[] }[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    let env: string
    try {
      env = readFileSync(`/proc/${d}/environ`, 'latin1')
    } catch {
      continue
    }
    const vars = env.split('\0')
    const node = vars.find(v => v.startsWith('SWARMD_NODE_ID='))?.slice('SWARMD_NODE_ID='.length)
    if (!node || !nodeIds.includes(node)) continue
    if (service && !vars.includes(`SWARMD_SERVICE_NAME=${service}`)) continue
    found.push({ pid: Number(d), task: vars.find(v => v.startsWith('SWARMD_TASK_ID='))?.slice('SWARMD_TASK_ID='.length) ?? '', env: vars })
  }
  return found
}

/** The distinct tasks of a service running as processes on these nodes. */
export const runningTasks = (nodeIds: readonly string[], service: string): Set<string> => new Set(taskProcesses(nodeIds, service).map(p => p.task))

/** The last resort of a test's teardown: no task process of its nodes outlives it. */
export function killTasks(nodeIds: readonly string[]): void {
  for (const { pid } of taskProcesses(nodeIds)) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

/** Three daemons on loopback addresses, the manager last, formed into a swarm. */
export interface LoopbackSwarm {
  dir: string
  hosts: [LoopbackHost, LoopbackHost, LoopbackHost]
  /** The node IDs known so far. */
  ids(): string[]
  /** Starts (or starts again, on its data dir) one host's daemon. */
  start(h: LoopbackHost): Promise<void>
  /** swarmctl against the manager; its stdout, or an error with stderr. */
  ctl(...args: string[]): Promise<string>
}

/**
 * Starts three daemons (`name(i)` on `ip(i)`, i = 1..3, the third the
 * manager), inits the swarm, joins the two workers and waits until all three
 * are Ready. The test's teardown stops them, kills any task process of
 * theirs and removes their data.
 */
export async function loopbackSwarm(
  t: Test,
  o: { prefix: string; name: (i: number) => string; ip: (i: number) => string; args?: (h: LoopbackHost) => string[] },
): Promise<LoopbackSwarm> {
  const dir = mkdtempSync(join(tmpdir(), `swarmd-${o.prefix}-`))
  const hosts = [1, 2, 3].map(i => ({ name: o.name(i), ip: o.ip(i), sock: join(dir, `h${i}.sock`), dir: join(dir, o.name(i)) })) as LoopbackSwarm['hosts']
  const [w1, w2, mgr] = hosts
  const ids = (): string[] => hosts.map(h => h.id).filter((x): x is string => !!x)
  t.teardown(async () => {
    await Promise.all(hosts.map(h => h.proc?.stop()))
    killTasks(ids())
    rmSync(dir, { recursive: true, force: true })
  })
  const start = async (h: LoopbackHost): Promise<void> => {
    h.proc = await startDaemon({ dataDir: h.dir, sock: h.sock, hostname: h.name, logLevel: 'info', args: o.args?.(h) ?? [] })
  }
  const ctl = async (...args: string[]): Promise<string> => {
    const r = await swarmctl(mgr.sock, ...args)
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`)
    return r.stdout
  }
  for (const h of hosts) await start(h)
  await ctl('swarm', 'init', '--advertise-addr', mgr.ip, '--listen-addr', `${mgr.ip}:2377`)
  const token = (await ctl('swarm', 'join-token', '-q', 'worker')).trim()
  for (const w of [w1, w2]) {
    const r = await swarmctl(w.sock, 'swarm', 'join', '--token', token, '--advertise-addr', w.ip, `${mgr.ip}:2377`)
    t.equal(r.code, 0, r.stderr)
  }
  await waitUntil(async () => ((await ctl('node', 'ls')).match(/Ready/g) ?? []).length === 3, { timeoutMs: 30_000, what: 'three Ready nodes' })
  for (const h of hosts) h.id = JSON.parse(await ctl('node', 'inspect', h.name))[0].ID
  return { dir, hosts, ids, start, ctl }
}
