import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import dgram from 'node:dgram'
import { once } from 'node:events'
import fs from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Logger } from 'pino'
import { SwarmdError } from '../types/errors.js'
import type { PortStatus } from '../types/task.js'
import type { LogLine, LogOptions } from '../types/logs.js'
import { writeConfigs } from './config-files.js'
import type { Executor, ExecutorTask, TaskEvent } from './executor.js'
import type { TaskNetworking } from './task-netns.js'
import { expandPlaceholders, templateContext } from './placeholders.js'
import { childrenOf, cmdline, groupAlive, isAlive, makeFifo, processStat, readExitStatus, readRecord, signalGroup, taskPaths, writeRecord, type TaskPaths, type TaskRecord } from './task-dir.js'
import { readTaskLog, TaskLog, type TaskLogOptions } from './task-log.js'
import { healthcheckEnabled, HealthMonitor, probeArgv } from './healthcheck.js'
import { checkProcessSpec, prepareMounts, prlimitArgs } from './process-spec.js'
import { STOP_GRACE_MS } from '../types/defaults.js'

export interface ProcessExecutorOptions {
  /** The executor's own directory under the daemon's data dir: task records, FIFOs, logs. */
  dir: string
  logger?: Logger
  log?: TaskLogOptions
  /** A tmpfs for secrets (default /dev/shm, else $XDG_RUNTIME_DIR); never the data dir's disk. */
  secretsRoot?: string
  /** How often an adopted task, which is not our child, is checked for its exit (default 200 ms). */
  pollMs?: number
}

/**
 * The task runs as the child of this wrapper, which outlives the daemon (it
 * is detached into its own session and process group) and writes the exit
 * status to a file a later daemon can read, since only a parent can wait for
 * a process. The command gets the default signal dispositions back (POSIX
 * resets caught signals in children), while the wrapper's trap runs only once
 * the command has exited, with `$?` its status, so a SIGTERM to the group is
 * still recorded. (A SIGTERM before the fork mostly exits the wrapper before
 * the command runs; `terminate` covers the cases where the command misses it.)
 */
const wrapper = (stopSignal: string): string => `f=$1; shift; trap 'echo $? > "$f"; exit' TERM INT${stopSignal === 'TERM' || stopSignal === 'INT' ? '' : ` ${stopSignal}`}; "$@"; echo $? > "$f"`

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
/** After the task exits, how long its output may take to drain before the exit is reported anyway. */
const DRAIN_MS = 1000

type Protocol = ExecutorTask['ports'][number]['Protocol']

interface Entry {
  id: string
  paths: TaskPaths
  emit: (e: TaskEvent) => void
  rec?: TaskRecord
  child?: ChildProcess
  log?: TaskLog
  readers: net.Socket[]
  openReaders: number
  drainWaiters: (() => void)[]
  ports: PortStatus[]
  hostPorts: number[]
  stopping: boolean
  exited: boolean
  finished: boolean
  poll?: NodeJS.Timeout
  health?: HealthMonitor
  /** The healthcheck found it unhealthy: it is being stopped, and fails. */
  unhealthy: boolean
  /** Settles once start() has spawned the process or given up. */
  started: Promise<void>
  /** Resolves when a stop (or close) is asked for: a task held at `ready` gives up waiting. */
  stopAsked: Promise<void>
  askStop: () => void
  settleStarted: () => void
  /** Settles once the terminal state is reported (or the executor closed). */
  done: Promise<void>
  settle: () => void
  /** The removal of the task's network namespace, once it ended. */
  unplugged?: Promise<void>
}

interface Prepared {
  /** What runs the wrapper inside the task's network namespace (`ip netns exec NAME`), if it has one. */
  prefix: string[]
  program: string
  args: string[]
  env: Record<string, string>
  cwd: string | undefined
  /** The signal that asks the task to stop (ContainerSpec.StopSignal), as the shell's trap names it. */
  stopSignal: string
}

/**
 * swarmd's default executor: each task is a process group on the host.
 *
 * Output goes through a FIFO per stream in the task's directory rather than
 * a pipe to the daemon: the task's own end is opened read-write, so the pipe
 * always has a reader and writes never fail with EPIPE when the daemon dies
 * (they only block once 64 KiB are waiting); a restarted daemon opens the
 * FIFO again and carries on writing the log.
 */
export class ProcessExecutor implements Executor {
  readonly kind = 'process' as const
  private readonly dir: string
  private readonly logger: Logger | undefined
  private readonly logOpts: TaskLogOptions
  private readonly secretsBase: string | undefined
  private readonly pollMs: number
  private readonly tasks = new Map<string, Entry>()
  /** Host ports handed to live tasks, which may not have bound them yet. */
  private readonly reserved = new Set<number>()
  private closed = false
  private networking: TaskNetworking | undefined

  constructor(opts: ProcessExecutorOptions) {
    this.dir = path.resolve(opts.dir)
    this.logger = opts.logger
    this.logOpts = opts.log ?? {}
    this.pollMs = opts.pollMs ?? 200
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    const root = opts.secretsRoot ?? (isDirectory('/dev/shm') ? '/dev/shm' : process.env.XDG_RUNTIME_DIR)
    const hash = createHash('sha256').update(this.dir).digest('hex').slice(0, 16)
    this.secretsBase = root !== undefined ? path.join(root, `swarmd-${hash}`) : undefined
  }

  attachNetworking(n: TaskNetworking): void {
    this.networking = n
  }

  async start(task: ExecutorTask, emit: (e: TaskEvent) => void): Promise<void> {
    this.assertOpen()
    const paths = taskPaths(this.dir, task.id)
    if (this.tasks.has(task.id) || fs.existsSync(paths.dir)) throw new SwarmdError('E_TASK_EXISTS', `task ${task.id} already exists`)
    const e = newEntry(task.id, paths, emit)
    this.tasks.set(task.id, e)
    try {
      emit({ state: 'preparing', message: 'preparing' })
      let prepared: Prepared
      try {
        prepared = await this.prepare(task, e)
      } catch (err) {
        this.finish(e, { state: 'rejected', message: 'preparing', err: errorText(err) })
        return
      }
      if (task.hold && !e.stopping) {
        emit({ state: 'ready', message: 'prepared' })
        await Promise.race([task.hold, e.stopAsked])
      }
      if (e.stopping || this.closed) {
        this.finish(e, { state: 'shutdown', message: 'shutdown' })
        return
      }
      emit({ state: 'starting', message: 'starting' })
      try {
        await this.spawn(e, prepared)
      } catch (err) {
        this.finish(e, { state: 'rejected', message: 'starting', err: errorText(err) })
        return
      }
      const hc = task.spec.ContainerSpec.Healthcheck
      // As Docker's executor: a task with a healthcheck stays starting until its first healthy probe.
      if (healthcheckEnabled(hc)) this.watchHealth(e, hc, prepared, task.spec.ContainerSpec.StopGracePeriod)
      else emit({ state: 'running', message: 'started', pid: e.rec?.pid, ports: e.ports })
    } finally {
      e.settleStarted()
    }
  }

  async stop(taskId: string, graceMs: number): Promise<void> {
    const e = this.tasks.get(taskId)
    if (e) {
      if (e.finished) return
      e.stopping = true
      e.askStop()
      await e.started
      if (e.finished || !e.rec) return e.done
      await terminate(e.rec, graceMs)
      // The exit is reported (as shutdown) once the wrapper's end is seen.
      return e.done
    }
    // A task of an earlier life that was not adopted: found by its record.
    const rec = readRecord(taskPaths(this.dir, taskId))
    if (rec) await terminate(rec, graceMs)
    this.removeSecrets(taskId)
    await this.networking?.teardown(taskId)
  }

  async remove(taskId: string): Promise<void> {
    const paths = taskPaths(this.dir, taskId)
    const e = this.tasks.get(taskId)
    if (!e?.finished) await this.stop(taskId, 0)
    await e?.unplugged
    this.tasks.delete(taskId)
    this.removeSecrets(taskId)
    fs.rmSync(paths.dir, { recursive: true, force: true })
  }

  async recover(): Promise<{ taskId: string; running: boolean }[]> {
    this.assertOpen()
    const found: { taskId: string; running: boolean }[] = []
    for (const d of fs.readdirSync(this.dir, { withFileTypes: true })) {
      if (!d.isDirectory() || this.tasks.has(d.name)) continue
      let rec: TaskRecord | undefined
      try {
        rec = readRecord(taskPaths(this.dir, d.name))
      } catch (err) {
        this.logger?.warn({ err, task: d.name }, 'unreadable task record')
      }
      if (!rec) {
        // Died before its process was started: nothing runs, nothing to report.
        this.removeSecrets(d.name)
        fs.rmSync(path.join(this.dir, d.name), { recursive: true, force: true })
        continue
      }
      const running = isAlive(rec)
      if (!running) this.removeSecrets(d.name)
      found.push({ taskId: d.name, running })
    }
    // Namespaces whose task no longer runs (it ended while the daemon was down, or its record is gone).
    await this.networking?.sweep(new Set(found.filter(f => f.running).map(f => f.taskId)))
    return found
  }

  /** Also reports `running` again (with pid and ports) when the task still runs, for the restarted agent. */
  async adopt(taskId: string, emit: (e: TaskEvent) => void): Promise<void> {
    this.assertOpen()
    if (this.tasks.has(taskId)) throw new SwarmdError('E_TASK_EXISTS', `task ${taskId} is already attached`)
    const paths = taskPaths(this.dir, taskId)
    const rec = readRecord(paths)
    if (!rec) throw new SwarmdError('E_NO_SUCH_TASK', `no such task: ${taskId}`)
    const e = newEntry(taskId, paths, emit)
    this.tasks.set(taskId, e)
    e.rec = rec
    e.ports = rec.ports
    for (const p of new Set(rec.ports.map(p => p.PublishedPort))) {
      e.hostPorts.push(p)
      this.reserved.add(p)
    }
    e.log = new TaskLog(paths.log, this.logOpts)
    const fds: number[] = []
    for (const fifo of [paths.stdout, paths.stderr]) {
      try {
        fds.push(fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    if (fds.length === 2) this.attach(e, fds[0] as number, fds[1] as number)
    else for (const fd of fds) fs.closeSync(fd)
    e.settleStarted()
    if (!isAlive(rec)) {
      void this.onGone(e, null, null)
      return
    }
    emit({ state: 'running', message: 'started', pid: rec.pid, ports: e.ports })
    e.poll = setInterval(() => {
      if (readExitStatus(paths) !== undefined || !isAlive(rec)) void this.onGone(e, null, null)
    }, this.pollMs)
    e.poll.unref()
  }

  logs(taskId: string, opts: LogOptions, onLine: (l: LogLine) => void, signal: AbortSignal): Promise<void> {
    const e = this.tasks.get(taskId)
    if (e?.log) return e.log.read(opts, onLine, signal)
    const paths = taskPaths(this.dir, taskId)
    if (!fs.existsSync(paths.dir)) return Promise.reject(new SwarmdError('E_NO_SUCH_TASK', `no such task: ${taskId}`))
    readTaskLog(paths.log, this.logOpts.maxFiles ?? 3, opts, onLine)
    return Promise.resolve()
  }

  /** Stops watching and reading; the tasks keep running for the next life of the daemon. */
  async close(): Promise<void> {
    this.closed = true
    for (const e of this.tasks.values()) {
      clearInterval(e.poll)
      e.health?.stop()
      e.child?.removeAllListeners('exit')
      for (const s of e.readers) s.destroy()
      e.log?.end()
      e.askStop()
      e.settleStarted()
      e.settle()
    }
    this.tasks.clear()
    this.reserved.clear()
  }

  private assertOpen(): void {
    if (this.closed) throw new SwarmdError('E_CLOSED', 'the process executor is closed')
  }

  /** Probes the task's health; healthy reports it running, unhealthy stops it (it then fails, as Docker's do). */
  private watchHealth(e: Entry, hc: Parameters<typeof healthcheckEnabled>[0] & { Test: string[] }, p: Prepared, graceNs: number | undefined): void {
    e.health = new HealthMonitor(hc, {
      env: p.env,
      ...(p.cwd ? { cwd: p.cwd } : {}),
      onChange: status => {
        if (e.finished || e.stopping || !e.rec) return
        if (status === 'healthy' && !e.unhealthy) e.emit({ state: 'running', message: 'started', pid: e.rec.pid, ports: e.ports })
        else if (status === 'unhealthy') {
          e.unhealthy = true
          this.logger?.info({ task: e.id }, 'task unhealthy: stopping it')
          void terminate(e.rec, graceNs !== undefined ? Math.floor(graceNs / 1e6) : STOP_GRACE_MS)
        }
      },
    })
  }

  private async prepare(task: ExecutorTask, e: Entry): Promise<Prepared> {
    // The directory and log first, so the task's logs can be read from the moment it exists.
    fs.mkdirSync(e.paths.dir, { mode: 0o700 })
    e.log = new TaskLog(e.paths.log, this.logOpts)
    checkProcessSpec(task.spec)
    const spec = task.spec.ContainerSpec
    if (healthcheckEnabled(spec.Healthcheck)) probeArgv(spec.Healthcheck.Test)
    const stopSignal = trapName(spec.StopSignal)
    const ctx = templateContext(task, { OS: os.platform(), Architecture: os.machine() })
    const argv = [...(spec.Command ?? []), ...(spec.Args ?? [])]
    const name = argv[0]
    if (name === undefined || name === '') throw new SwarmdError('E_NO_COMMAND', 'No command specified')
    const hostname = spec.Hostname ? expandPlaceholders(spec.Hostname, ctx) : task.nodeHostname
    const cwd = spec.Dir ? expandPlaceholders(spec.Dir, ctx) : undefined
    if (cwd !== undefined) {
      if (!path.isAbsolute(cwd)) throw new SwarmdError('E_BAD_DIR', `the working directory '${cwd}' is invalid, it needs to be an absolute path`)
      if (!isDirectory(cwd)) throw new SwarmdError('E_BAD_DIR', `chdir ${cwd}: no such directory`)
    }
    // A clean environment, as a container's, with the host's PATH and HOME so programs are found.
    const env: Record<string, string> = { PATH: process.env.PATH ?? DEFAULT_PATH, HOSTNAME: hostname }
    if (process.env.HOME !== undefined) env.HOME = process.env.HOME
    for (const entry of spec.Env ?? []) {
      const kv = expandPlaceholders(entry, ctx)
      const eq = kv.indexOf('=')
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1)
    }
    let program = resolveProgram(name, env.PATH ?? DEFAULT_PATH, cwd)
    let args = argv.slice(1)
    if (spec.Ulimits?.length) {
      // prlimit sets the limits on itself, then execs the command.
      args = [...prlimitArgs(spec.Ulimits), '--', program, ...args]
      program = resolveProgram('prlimit', env.PATH ?? DEFAULT_PATH, cwd)
    }
    if (spec.Mounts?.length) Object.assign(env, prepareMounts(spec.Mounts, () => this.privateDir(`${task.id}.mounts`)))
    Object.assign(env, {
      SWARMD_SERVICE_NAME: task.serviceName,
      SWARMD_SERVICE_ID: task.serviceId,
      SWARMD_TASK_ID: task.id,
      SWARMD_TASK_SLOT: String(task.slot),
      SWARMD_NODE_ID: task.nodeId,
      SWARMD_NODE_HOSTNAME: task.nodeHostname,
    })

    // In a namespace of its own the task listens on its target ports themselves; on the host, on ports of its own.
    const isolated = !!task.networks?.length && this.networking !== undefined
    await this.allocatePorts(task, e, isolated)
    const inner = (p: PortStatus): number => (isolated ? p.TargetPort : p.PublishedPort)
    const first = e.ports[0]
    if (first) env.PORT = String(inner(first))
    for (const p of e.ports) env[`SWARMD_PORT_${p.TargetPort}`] = String(inner(p))

    await makeFifo(e.paths.stdout)
    await makeFifo(e.paths.stderr)
    if (task.secrets.length > 0) env.SWARMD_SECRETS_DIR = this.writeSecrets(task)
    // Configs are no secret: beside the task's log, laid out as in a container's root.
    if (task.configs?.length) {
      env.SWARMD_CONFIGS_DIR = path.join(e.paths.dir, 'configs')
      writeConfigs(env.SWARMD_CONFIGS_DIR, task.configs)
    }
    const prefix = isolated ? await this.networking!.setup(task.id, task.networks!) : []
    return { prefix, program, args, env, cwd, stopSignal }
  }

  /**
   * One host port per target port (free on each of its protocols), or
   * exactly the host-mode published one; a task in a namespace of its own
   * needs only the host-mode ones (the data plane forwards them).
   */
  private async allocatePorts(task: ExecutorTask, e: Entry, isolated: boolean): Promise<void> {
    const byTarget = new Map<number, { protocols: Protocol[]; fixed?: number }>()
    for (const p of task.ports) {
      const g = byTarget.get(p.TargetPort) ?? { protocols: [] }
      if (!g.protocols.includes(p.Protocol)) g.protocols.push(p.Protocol)
      if (p.PublishMode === 'host' && p.PublishedPort && g.fixed === undefined) g.fixed = p.PublishedPort
      byTarget.set(p.TargetPort, g)
    }
    const hostPort = new Map<number, number>()
    for (const [target, g] of byTarget) {
      let port: number
      if (g.fixed !== undefined) {
        port = g.fixed
        for (const proto of g.protocols) {
          if (this.reserved.has(port) || (await probePort(proto, port)) === undefined) {
            throw new SwarmdError('E_PORT_IN_USE', `host-mode port already in use: ${port}/${proto}`)
          }
        }
      } else if (isolated) {
        hostPort.set(target, target)
        continue
      } else {
        port = await this.freePort(g.protocols)
      }
      this.reserved.add(port)
      e.hostPorts.push(port)
      hostPort.set(target, port)
    }
    e.ports = task.ports.map(p => ({ Protocol: p.Protocol, TargetPort: p.TargetPort, PublishedPort: hostPort.get(p.TargetPort) ?? 0, PublishMode: p.PublishMode }))
  }

  private async freePort(protocols: Protocol[]): Promise<number> {
    const [first = 'tcp', ...rest] = protocols
    for (let attempt = 0; attempt < 32; attempt++) {
      const port = await probePort(first, 0)
      if (port === undefined) break
      if (this.reserved.has(port)) continue
      let free = true
      for (const proto of rest) if ((await probePort(proto, port)) === undefined) free = false
      if (free) return port
    }
    throw new SwarmdError('E_NO_PORT', `no free host port for ${protocols.join('+')}`)
  }

  /** A fresh directory of the task's on the tmpfs (its secrets, its tmpfs mounts), under a base private to this user. */
  private privateDir(name: string): string {
    const base = this.secretsBase
    if (base === undefined) throw new SwarmdError('E_NO_TMPFS', 'secrets and tmpfs mounts need a tmpfs: neither /dev/shm nor $XDG_RUNTIME_DIR is available')
    fs.mkdirSync(base, { recursive: true, mode: 0o700 })
    // The tmpfs is shared: refuse a directory someone else planted there to read the secrets.
    const st = fs.lstatSync(base)
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) {
      throw new SwarmdError('E_SECRETS_DIR', `${base} is not a private directory of this user`)
    }
    const dir = path.join(base, name)
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { mode: 0o700 })
    return dir
  }

  private writeSecrets(task: ExecutorTask): string {
    const dir = this.privateDir(task.id)
    for (const s of task.secrets) {
      if (s.name === '' || s.name === '.' || s.name === '..' || s.name.includes('/')) throw new SwarmdError('E_SECRET_NAME', `invalid secret file name ${JSON.stringify(s.name)}`)
      const file = path.join(dir, s.name)
      const mode = s.mode ?? 0o400
      fs.writeFileSync(file, s.data, { mode, flag: 'wx' })
      // The umask may have taken bits away from an explicit mode.
      fs.chmodSync(file, mode)
    }
    return dir
  }

  private removeSecrets(taskId: string): void {
    if (this.secretsBase === undefined) return
    fs.rmSync(path.join(this.secretsBase, taskId), { recursive: true, force: true })
    fs.rmSync(path.join(this.secretsBase, `${taskId}.mounts`), { recursive: true, force: true })
    // The base goes with its last task, so a data dir that is deleted leaves nothing on the tmpfs.
    try {
      fs.rmdirSync(this.secretsBase)
    } catch {
      // Still in use by another task, or already gone.
    }
  }

  private async spawn(e: Entry, p: Prepared): Promise<void> {
    // The FIFO must have its reader open before our copy of the task's end is
    // closed, or output of a task that exits at once would vanish with the pipe.
    const outW = fs.openSync(e.paths.stdout, fs.constants.O_RDWR)
    const errW = fs.openSync(e.paths.stderr, fs.constants.O_RDWR)
    const outR = fs.openSync(e.paths.stdout, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    const errR = fs.openSync(e.paths.stderr, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    let child: ChildProcess
    try {
      // `ip netns exec` execs the wrapper in the same process: the pid recorded is the wrapper's either way.
      const [cmd, ...args] = [...p.prefix, '/bin/sh', '-c', wrapper(p.stopSignal), 'swarmd-task', e.paths.exit, p.program, ...p.args]
      child = spawn(cmd!, args, {
        cwd: p.cwd,
        env: p.env,
        detached: true,
        stdio: ['ignore', outW, errW],
      })
    } finally {
      fs.closeSync(outW)
      fs.closeSync(errW)
    }
    const pid = child.pid
    if (pid === undefined) {
      fs.closeSync(outR)
      fs.closeSync(errR)
      const [err] = (await once(child, 'error')) as [Error]
      throw err
    }
    // Recorded before anything else can happen, so no crash leaves an unknown process behind.
    const rec: TaskRecord = { id: e.id, pid, startTime: processStat(pid)?.startTime ?? '', ports: e.ports, createdAt: new Date().toISOString(), ...(p.stopSignal !== 'TERM' ? { stopSignal: `SIG${p.stopSignal}` as NodeJS.Signals } : {}) }
    writeRecord(e.paths, rec)
    e.rec = rec
    e.child = child
    child.unref()
    child.on('exit', (code, signal) => void this.onGone(e, code, signal))
    this.attach(e, outR, errR)
  }

  /** Reads the task's FIFOs (non-blocking, so no thread-pool thread waits on them) into its log. */
  private attach(e: Entry, outFd: number, errFd: number): void {
    for (const [stream, fd] of [['stdout', outFd], ['stderr', errFd]] as const) {
      const s = new net.Socket({ fd, readable: true, writable: false, allowHalfOpen: true })
      e.openReaders++
      s.on('data', (chunk: Buffer) => e.log?.append(stream, chunk))
      s.on('error', err => this.logger?.warn({ err, task: e.id, stream }, 'reading task output failed'))
      s.once('close', () => {
        if (--e.openReaders === 0) for (const w of e.drainWaiters.splice(0)) w()
      })
      e.readers.push(s)
    }
  }

  /** The task's process is gone: collect the exit status, its output, and report the end. */
  private async onGone(e: Entry, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (e.exited || this.closed) return
    e.exited = true
    clearInterval(e.poll)
    e.health?.stop()
    // As when a container's init exits: whatever the task left in its group goes too.
    if (e.rec) signalGroup(e.rec, 'SIGKILL')
    await this.drained(e)
    if (this.closed) return
    // The wrapper's own status (or signal) only when it could not write the command's.
    const status = readExitStatus(e.paths) ?? code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : undefined)
    let event: TaskEvent
    if (e.stopping) event = { state: 'shutdown', message: 'shutdown', exitCode: status }
    else if (status === 0) event = { state: 'complete', message: 'finished', exitCode: 0 }
    // Docker's text for a container its healthcheck stopped (daemon/cluster/executor/container).
    else if (e.unhealthy) event = { state: 'failed', message: 'started', err: `task: non-zero exit (${status ?? 137}): dockerexec: unhealthy container`, exitCode: status }
    else if (status === undefined) event = { state: 'failed', message: 'started', err: 'task: exited while swarmd was down, exit status unknown' }
    else event = { state: 'failed', message: 'started', err: `task: non-zero exit (${status})`, exitCode: status }
    this.finish(e, event)
  }

  private drained(e: Entry): Promise<void> {
    if (e.openReaders === 0) return Promise.resolve()
    return new Promise(resolve => {
      // Output held open by a process outside the group must not delay the report forever.
      const timer = setTimeout(() => {
        for (const s of e.readers) s.destroy()
      }, DRAIN_MS)
      e.drainWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** Reports the terminal state once and releases what the task held but its log. */
  private finish(e: Entry, event: TaskEvent): void {
    if (e.finished) return
    e.finished = true
    clearInterval(e.poll)
    e.health?.stop()
    for (const s of e.readers) s.destroy()
    e.log?.end()
    for (const p of e.hostPorts) this.reserved.delete(p)
    this.removeSecrets(e.id)
    e.unplugged = this.networking?.teardown(e.id).catch(err => this.logger?.warn({ err, task: e.id }, 'removing the task namespace failed'))
    try {
      e.emit(event)
    } finally {
      e.settle()
    }
  }
}

/**
 * SIGTERM to the task's process group, SIGKILL after `graceMs`; resolves
 * once nothing of the group runs. The wrapper's trap leaves a window: a
 * SIGTERM that reaches its command between the fork and the exec (still
 * running the wrapper's code, with the wrapper's trap) is lost, as is one
 * sent before the fork. So a command that had not yet exec'd when the group
 * was signalled (its argv is still the wrapper's) gets its own SIGTERM once
 * it has.
 */
async function terminate(rec: TaskRecord, graceMs: number): Promise<void> {
  const wrapperArgv = cmdline(rec.pid)
  const execd = (pid: number): boolean => cmdline(pid) !== wrapperArgv
  const signalled = new Set(childrenOf(rec.pid).filter(execd))
  const stopSignal = rec.stopSignal ?? 'SIGTERM'
  signalGroup(rec, stopSignal)
  const killAt = Date.now() + Math.max(0, graceMs)
  let killed = false
  while (groupAlive(rec.pid)) {
    if (!killed && Date.now() >= killAt) {
      signalGroup(rec, 'SIGKILL')
      killed = true
    } else if (!killed && wrapperArgv !== undefined) {
      for (const pid of childrenOf(rec.pid)) {
        if (signalled.has(pid) || !execd(pid)) continue
        signalled.add(pid)
        try {
          process.kill(pid, stopSignal)
        } catch {
          // Already gone.
        }
      }
    }
    // SIGKILL is delivered asynchronously; a process that ignores even that is stuck in the kernel.
    if (killed && Date.now() > killAt + 5000) return
    await new Promise(r => setTimeout(r, 10))
  }
}

function newEntry(id: string, paths: TaskPaths, emit: (e: TaskEvent) => void): Entry {
  let settleStarted = (): void => undefined
  let settle = (): void => undefined
  let askStop = (): void => undefined
  const started = new Promise<void>(r => (settleStarted = r))
  const done = new Promise<void>(r => (settle = r))
  const stopAsked = new Promise<void>(r => (askStop = r))
  return { id, paths, emit, readers: [], openReaders: 0, drainWaiters: [], ports: [], hostPorts: [], stopping: false, exited: false, finished: false, unhealthy: false, started, settleStarted, stopAsked, askStop, done, settle }
}

/** The program as exec would find it, checked now so a missing one rejects the task instead of failing it. */
function resolveProgram(name: string, searchPath: string, cwd: string | undefined): string {
  const base = cwd ?? process.cwd()
  const candidates = name.includes('/') ? [path.resolve(base, name)] : searchPath.split(':').map(d => path.resolve(base, d || '.', name))
  let denied = false
  for (const c of candidates) {
    try {
      if (!fs.statSync(c).isFile()) {
        denied = true
        continue
      }
      fs.accessSync(c, fs.constants.X_OK)
      return c
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') denied = true
    }
  }
  if (denied) throw new SwarmdError('E_EXEC', `exec: "${name}": permission denied`)
  if (name.includes('/')) throw new SwarmdError('E_EXEC', `exec: "${name}": stat ${name}: no such file or directory`)
  throw new SwarmdError('E_EXEC', `exec: "${name}": executable file not found in $PATH`)
}

/**
 * The port if `proto` can be bound on it (0: any free one), else undefined.
 * Node has no SCTP sockets, so SCTP is probed as TCP, the closest guess.
 */
function probePort(proto: Protocol, port: number): Promise<number | undefined> {
  if (proto === 'udp') return probeUdp(port, 'udp6')
  return new Promise(resolve => {
    const srv = net.createServer()
    srv.once('error', () => resolve(undefined))
    // No host: the dual-stack wildcard, so the port is free for IPv4 and IPv6.
    srv.listen({ port, exclusive: true }, () => {
      const bound = (srv.address() as AddressInfo).port
      srv.close(() => resolve(bound))
    })
  })
}

function probeUdp(port: number, type: 'udp4' | 'udp6'): Promise<number | undefined> {
  return new Promise(resolve => {
    const s = dgram.createSocket(type)
    s.once('error', err => {
      try {
        s.close()
      } catch {
        // Never bound: nothing to close.
      }
      const noV6 = (err as NodeJS.ErrnoException).code === 'EAFNOSUPPORT' || (err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL'
      resolve(type === 'udp6' && noV6 ? probeUdp(port, 'udp4') : undefined)
    })
    s.bind(port, () => {
      const bound = s.address().port
      s.close(() => resolve(bound))
    })
  })
}

/** ContainerSpec.StopSignal ("SIGINT", "INT", "2") as the shell's trap names it; Docker's error for an unknown one. */
function trapName(signal: string | undefined): string {
  if (!signal) return 'TERM'
  const byNumber = /^\d+$/.test(signal) ? Object.entries(os.constants.signals).find(([, n]) => n === Number(signal))?.[0] : undefined
  const name = byNumber ?? `SIG${signal.toUpperCase().replace(/^SIG/, '')}`
  if (!(name in os.constants.signals) || name === 'SIGKILL' || name === 'SIGSTOP') throw new SwarmdError('E_SIGNAL', `Invalid signal: ${signal}`)
  return name.slice(3)
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory()
  } catch {
    return false
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
