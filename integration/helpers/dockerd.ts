/**
 * A private Docker engine for one test file: its own data and exec roots and
 * unix socket under a temp dir, its own containerd (dockerd starts one under
 * its exec-root), and its own network namespace (pinned by a file in the
 * temp dir, so a restarted engine gets the same one), so several test files
 * can each run one at once without touching the host's docker or each other
 * (docker0, port bindings and the userland proxies live in the namespace).
 * The engine gets a local image built from busybox-static, since there is no
 * registry to pull from.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runOk, spawnManaged, waitUntil, which, type ManagedProcess, type RunResult, run } from './procs.js'

/** The image every private engine gets: busybox with a link for each applet, and nothing else. */
export const TEST_IMAGE = 'swarmd-busybox:test'

const BUSYBOX = '/bin/busybox'

export interface Dockerd {
  /** Path of the engine's unix socket (for dockerode's socketPath, or DOCKER_HOST=unix://...). */
  readonly socket: string
  /** The temp dir holding everything the engine writes (removed by stop). */
  readonly dir: string
  readonly dataRoot: string
  /** The running dockerd's pid. */
  readonly pid: number
  /** Milliseconds until /_ping answered, and to build TEST_IMAGE. */
  readonly timings: { startMs: number; imageMs: number }
  /** Runs the docker CLI against this engine. */
  cli(args: readonly string[]): Promise<RunResult>
  /** Runs a host command inside the engine's network namespace (where published ports listen). */
  inNetns(cmd: string, args: readonly string[]): Promise<RunResult>
  /** Stops the engine (SIGTERM; its containers too unless live-restore), runs `whileDown`, and starts it again on the same roots. */
  restart(whileDown?: () => void | Promise<void>): Promise<void>
  /** Stops the engine (SIGTERM, then SIGKILL), kills anything it left, and removes the temp dir. Idempotent. */
  stop(): Promise<void>
}

/** Why no private engine can run here, or undefined when it can. */
export function dockerdUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'dockerd needs Linux'
  if (process.getuid?.() !== 0) return 'dockerd needs root'
  for (const tool of ['dockerd', 'docker', 'unshare', 'nsenter', 'tar']) {
    if (!which(tool, [`/usr/sbin/${tool}`, `/usr/bin/${tool}`])) return `${tool} is not installed (run scripts/setup-docker.sh as root)`
  }
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (apt-get install busybox-static)`
  return undefined
}

const tool = (name: string): string => which(name, [`/usr/sbin/${name}`, `/usr/bin/${name}`]) ?? name

/** Asks the engine's /_ping over its socket; true once it answers OK. */
function ping(socket: string): Promise<boolean> {
  return new Promise(resolve => {
    const req = request({ socketPath: socket, path: '/_ping', timeout: 1000 }, res => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

/** A rootfs tar of busybox-static: the binary, a link per applet, and the dirs and users a shell expects. */
function buildRootfsTar(dir: string): string {
  const root = join(dir, 'rootfs')
  for (const d of ['bin', 'etc', 'tmp', 'run', 'proc', 'sys', 'dev']) mkdirSync(join(root, d), { recursive: true })
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'))
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(a => a && a !== 'busybox')
  for (const a of applets) symlinkSync('busybox', join(root, 'bin', a))
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n')
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n')
  const tar = join(dir, 'rootfs.tar')
  execFileSync(tool('tar'), ['-C', root, '-cf', tar, '.'])
  rmSync(root, { recursive: true, force: true })
  return tar
}

/** Pids of processes whose command line mentions `dir` (our containerd and its shims). */
function processesUnder(dir: string): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'latin1').includes(dir)) pids.push(Number(name))
    } catch {
      // exited meanwhile
    }
  }
  return pids
}

/** Init pids of containers the engine's containerd still tracks (a killed dockerd leaves them running). */
function containerInits(execRoot: string): number[] {
  const tasks = join(execRoot, 'containerd/daemon/io.containerd.runtime.v2.task/moby')
  if (!existsSync(tasks)) return []
  const pids: number[] = []
  for (const id of readdirSync(tasks)) {
    try {
      pids.push(Number(readFileSync(join(tasks, id, 'init.pid'), 'utf8').trim()))
    } catch {
      // not started, or already reaped
    }
  }
  return pids.filter(p => p > 0)
}

function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

/** Mount points under `dir` (network namespace files, leftover mounts), deepest first. */
function mountsUnder(dir: string): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8')
  return text
    .split('\n')
    .map(l => l.split(' ')[4] ?? '')
    .filter(m => m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length)
}

/**
 * Starts a private dockerd and builds TEST_IMAGE in it. Throws (after
 * cleaning up) when the engine does not come up; check
 * {@link dockerdUnavailable} first to skip where it cannot. With
 * `liveRestore`, containers outlive a restart() of the engine.
 */
export async function startDockerd(opts: { startTimeoutMs?: number; liveRestore?: boolean } = {}): Promise<Dockerd> {
  // Short: the socket path must fit in sun_path (108 bytes).
  const dir = mkdtempSync(join(tmpdir(), 'swd-'))
  const socket = join(dir, 'docker.sock')
  const dataRoot = join(dir, 'data')
  const execRoot = join(dir, 'exec')
  // A namespace pinned by a bind mount, so a restarted engine finds its bridge and proxies where it left them.
  const netns = join(dir, 'netns')
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'cli') }
  const dockerdArgs = [
    tool('dockerd'),
    `--data-root=${dataRoot}`,
    `--exec-root=${execRoot}`,
    `--host=unix://${socket}`,
    `--pidfile=${join(dir, 'docker.pid')}`,
    '--storage-driver=vfs',
    // The namespace is ours alone: no host firewall rules are needed (published ports go through docker-proxy).
    '--iptables=false',
    '--ip6tables=false',
    // Containers get SIGKILL this soon after SIGTERM when the engine shuts down.
    '--shutdown-timeout=2',
    '--log-level=warn',
    ...(opts.liveRestore ? ['--live-restore'] : []),
  ]
  // lo is down in a new network namespace; docker-proxy and the tests talk over it.
  const loUp = which('ip') ? `${tool('ip')} link set lo up` : `${BUSYBOX} ip link set lo up`
  let proc: ManagedProcess | undefined
  let stopped: Promise<void> | undefined

  const launch = async (): Promise<number> => {
    const t0 = performance.now()
    const p = spawnManaged(tool('nsenter'), [`--net=${netns}`, '--', '/bin/sh', '-c', `${loUp} && exec "$@"`, 'sh', ...dockerdArgs], {
      label: 'dockerd',
      env,
      mergeStderr: true,
    })
    proc = p
    await waitUntil(() => ping(socket), {
      timeoutMs: opts.startTimeoutMs ?? 30_000,
      intervalMs: 50,
      what: 'dockerd to answer /_ping',
      giveUp: () => (p.exitStatus ? new Error(`dockerd exited (code ${p.exitStatus.code})\n${p.stderrTail()}`) : undefined),
    })
    return performance.now() - t0
  }

  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (proc && !proc.exitStatus) {
        // The engine's own shutdown waits each container's stop timeout (10 s by default): kill them first.
        const ids = (await run(tool('docker'), ['ps', '-aq'], { env, timeoutMs: 5000 })).stdout.split('\n').filter(Boolean)
        if (ids.length > 0) await run(tool('docker'), ['rm', '-f', ...ids], { env, timeoutMs: 10_000 })
        await proc.stop({ signal: 'SIGTERM', graceMs: 10_000 })
      }
      killAll(containerInits(execRoot))
      killAll(processesUnder(dir))
      for (const m of mountsUnder(dir)) await run(tool('umount'), ['-l', m])
      rmSync(dir, { recursive: true, force: true })
    })())

  try {
    writeFileSync(netns, '')
    await runOk(tool('unshare'), [`--net=${netns}`, 'true'])
    const startMs = await launch()

    const t1 = performance.now()
    const tar = buildRootfsTar(dir)
    await runOk(tool('docker'), ['import', tar, TEST_IMAGE], { env })
    rmSync(tar)
    const imageMs = performance.now() - t1

    return {
      socket,
      dir,
      dataRoot,
      get pid() {
        return proc?.pid ?? -1
      },
      timings: { startMs, imageMs },
      cli: args => run(tool('docker'), args, { env }),
      inNetns: (cmd, args) => run(tool('nsenter'), [`--net=${netns}`, '--', cmd, ...args]),
      async restart(whileDown) {
        await proc?.stop({ signal: 'SIGTERM', graceMs: 10_000 })
        await whileDown?.()
        await launch()
      },
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
