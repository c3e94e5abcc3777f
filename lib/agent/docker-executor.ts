/**
 * Runs tasks as containers of the local Docker engine (dockerode), named and
 * labelled as Docker Swarm names and labels its task containers, so `docker
 * ps` on a swarmd node reads like one on a swarm node.
 *
 * Exits are watched through one engine event stream (`die` events of our
 * containers) rather than a `wait` request per container: one connection
 * serves every task of the node, the event carries the exit code, and after
 * the stream drops (engine restart) one inspect of each tracked container
 * catches whatever exited meanwhile. The stream is open before any container
 * starts, so not even an instant exit is missed.
 *
 * In the kernel data plane (attachNetworking) a task on networks joins
 * them as a process task does, in the manner of a CNI plugin: its container
 * has network mode `none`, and once started, its namespace (`ip netns
 * attach` of its pid, so it is named as a process task's) gets a veth on
 * each network's bridge with the task's address (TaskNetns). The
 * container's process starts before its interfaces exist (an engine gives
 * a container its namespace only when it starts it): it sees just `lo` for
 * the few milliseconds that takes, and the task is reported running only
 * after. Its resolv.conf names the node's DNS at its gateway (the engine
 * honours Dns with network mode `none`), and its published ports are the
 * data plane's (nftables DNAT to its address), not the engine's.
 */
import type Docker from 'dockerode'
import { chmodSync, mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from 'pino'
import { SwarmdError } from '../types/errors.js'
import type { PortStatus } from '../types/task.js'
import type { LogLine, LogOptions } from '../types/logs.js'
import { writeConfigs } from './config-files.js'
import type { Executor, ExecutorTask, TaskEvent } from './executor.js'
import { expandPlaceholders, templateContext } from './placeholders.js'
import { SWARM_LABELS, swarmLabels } from './task-labels.js'
import { resolverOf, type TaskNetworking } from './task-netns.js'

/** Docker Swarm's container labels, plus ours: marking the containers this executor owns, and those on the kernel data plane's networks. */
export const LABELS = { ...SWARM_LABELS, managed: 'io.swarmd.managed', netns: 'io.swarmd.netns' } as const

const TMPFS_MAGIC = 0x01021994
const RAMFS_MAGIC = 0x858458f6
const SECRETS_TARGET = '/run/secrets'
const SAFE_NAME = /^(?!\.\.?$)[A-Za-z0-9_.-]+$/

export interface DockerExecutorOptions {
  docker: Docker
  /** When set, recover() returns only this node's containers (several nodes may share an engine). */
  nodeId?: string
  /**
   * A directory on a tmpfs; each task's secrets live in `<root>/<task id>`,
   * bind-mounted read-only at /run/secrets, only while the task runs, so
   * the plaintext never reaches a disk. Default /dev/shm/swarmd-secrets.
   */
  secretsRoot?: string
  /** Where each task's configs are written (`<root>/<task id>`) to be bind-mounted read-only at their targets. Default /dev/shm/swarmd-configs. */
  configsRoot?: string
  /** The containers' network mode (default: the engine's default bridge). With 'host', ports are not mapped. */
  networkMode?: string
  logger?: Logger
}

interface Tracked {
  id: string
  containerId?: string
  emit: (e: TaskEvent) => void
  stopRequested: boolean
  /** The running event, held back until the container's healthcheck first passes. */
  awaitingHealth?: TaskEvent
  /** Its healthcheck failed: the container is being stopped, and the task fails. */
  unhealthy?: boolean
  /** The task's stop grace period, for stopping an unhealthy container. */
  graceMs?: number
  /** Settles once the task's namespace is removed (after its terminal state). */
  unplugged?: Promise<void>
  /** Resolves when a stop is asked for: a task held at `ready` gives up waiting. */
  stopAsked: Promise<void>
  askStop: () => void
  ended: boolean
  /** Settles once `running` is reported or the start gave up: exit reports wait for it, so states only move forward. */
  started: Promise<void>
  /** Settles once a terminal state is reported. */
  done: Promise<void>
  markDone: () => void
}

type Frame = { stream: 'stdout' | 'stderr'; data: Buffer }

/**
 * Splits the engine's multiplexed stream (per frame an 8-byte header: stream
 * 1 or 2, three zero bytes, a big-endian payload length) into frames, which
 * may arrive split across chunks or several to a chunk.
 */
export class StreamDemuxer {
  private pending: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    const frames: Frame[] = []
    while (this.pending.length >= 8) {
      const end = 8 + this.pending.readUInt32BE(4)
      if (this.pending.length < end) break
      frames.push({ stream: this.pending[0] === 2 ? 'stderr' : 'stdout', data: this.pending.subarray(8, end) })
      this.pending = this.pending.subarray(end)
    }
    return frames
  }
}

/** Newline-delimited text from byte chunks (a chunk may end mid-line or mid-character). */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8')
  private partial = ''

  push(chunk: Buffer): string[] {
    const lines = (this.partial + this.decoder.write(chunk)).split('\n')
    this.partial = lines.pop() ?? ''
    return lines
  }

  /** The unterminated last line, if any. */
  flush(): string | undefined {
    const rest = this.partial + this.decoder.end()
    this.partial = ''
    return rest === '' ? undefined : rest
  }
}

type ContainerEvent = { containerId: string; die: { exitCode: number } } | { containerId: string; health: 'healthy' | 'unhealthy' }

/** A container's `die` (with its exit code) or `health_status: …` event from an event line, or undefined for any other line. */
export function parseContainerEvent(line: string): ContainerEvent | undefined {
  let ev: { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } }
  try {
    ev = JSON.parse(line) as typeof ev
  } catch {
    return undefined
  }
  const id = ev.Actor?.ID
  if (ev.Type !== 'container' || !id) return undefined
  if (ev.Action === 'health_status: healthy' || ev.Action === 'health_status: unhealthy') return { containerId: id, health: ev.Action === 'health_status: healthy' ? 'healthy' : 'unhealthy' }
  if (ev.Action !== 'die') return undefined
  const code = Number(ev.Actor?.Attributes?.exitCode)
  return { containerId: id, die: { exitCode: Number.isInteger(code) ? code : -1 } }
}

/** The container and exit code of a `die` event line, or undefined for any other line. */
export function parseDieEvent(line: string): { containerId: string; exitCode: number } | undefined {
  const ev = parseContainerEvent(line)
  return ev && 'die' in ev ? { containerId: ev.containerId, exitCode: ev.die.exitCode } : undefined
}

/** Swarm's `IP host [alias...]` lines as the engine's ExtraHosts (`host:IP`), as dockerd converts them. */
export function extraHosts(hosts: string[]): string[] {
  return hosts.flatMap(line => {
    const [ip, ...names] = line.trim().split(/\s+/)
    return ip ? names.map(n => `${n}:${ip}`) : []
  })
}

/** A log line with the engine's timestamp prefix ("<RFC 3339 nanos> <text>"). */
function parseLogLine(stream: 'stdout' | 'stderr', raw: string): LogLine {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
  const sp = line.indexOf(' ')
  return sp < 0 ? { time: line, stream, text: '' } : { time: line.slice(0, sp), stream, text: line.slice(sp + 1) }
}

/** The message the engine put in its error body (what the docker CLI prints), else the error's own. */
function engineMessage(err: unknown): string {
  const json = (err as { json?: unknown }).json
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') return (json as { message: string }).message
  return err instanceof Error ? err.message : String(err)
}

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number }).statusCode

/** Docker's `since` takes seconds with an optional fraction. */
const sinceParam = (ms: number): string => {
  const whole = Math.floor(ms)
  return `${Math.floor(whole / 1000)}.${String(whole % 1000).padStart(3, '0')}`
}

const goArch = (arch: string): string => ({ x64: 'amd64', ia32: '386' })[arch] ?? arch

export class DockerExecutor implements Executor {
  readonly kind = 'docker' as const
  private readonly docker: Docker
  private readonly secretsRoot: string
  private readonly configsRoot: string
  private readonly tasks = new Map<string, Tracked>()
  private readonly byContainer = new Map<string, Tracked>()
  private watching: Promise<void> | undefined
  private events: NodeJS.ReadableStream | undefined
  private retry: NodeJS.Timeout | undefined
  private closed = false
  private networking: TaskNetworking | undefined

  constructor(private readonly opts: DockerExecutorOptions) {
    this.docker = opts.docker
    this.secretsRoot = opts.secretsRoot ?? '/dev/shm/swarmd-secrets'
    this.configsRoot = opts.configsRoot ?? '/dev/shm/swarmd-configs'
  }

  attachNetworking(n: TaskNetworking): void {
    this.networking = n
  }

  async start(task: ExecutorTask, emit: (e: TaskEvent) => void): Promise<void> {
    if (this.tasks.has(task.id)) throw new SwarmdError('E_TASK_EXISTS', `task ${task.id} is already known to this executor`)
    let markStarted!: () => void
    const tr = this.track(task.id, emit, new Promise<void>(resolve => (markStarted = resolve)))
    try {
      await this.run(task, tr)
    } finally {
      markStarted()
    }
  }

  private track(id: string, emit: (e: TaskEvent) => void, started: Promise<void>): Tracked {
    let markDone!: () => void
    let askStop!: () => void
    const done = new Promise<void>(resolve => (markDone = resolve))
    const stopAsked = new Promise<void>(resolve => (askStop = resolve))
    const tr: Tracked = { id, emit, stopRequested: false, stopAsked, askStop, ended: false, started, done, markDone }
    this.tasks.set(id, tr)
    return tr
  }

  private async run(task: ExecutorTask, tr: Tracked): Promise<void> {
    tr.emit({ state: 'preparing', message: 'preparing' })
    let container: Docker.Container
    try {
      await this.watch()
      container = await this.docker.createContainer(this.containerConfig(task, this.writeSecrets(task), this.writeConfigs(task)))
    } catch (err) {
      // Before starting, every failure is a rejection (swarmkit's agent/exec/controller.go).
      this.report(tr, { state: 'rejected', message: 'preparing', err: engineMessage(err) })
      return
    }
    tr.containerId = container.id
    this.byContainer.set(container.id, tr)
    tr.emit({ state: 'ready', message: 'prepared' })
    if (task.hold && !tr.stopRequested) await Promise.race([task.hold, tr.stopAsked])
    if (tr.stopRequested) {
      this.report(tr, { state: 'shutdown', message: 'shutdown' })
      return
    }
    tr.emit({ state: 'starting', message: 'starting' })
    try {
      await container.start()
      const info = await container.inspect()
      if (this.isolated(task)) await this.plug(task, container, info.State.Pid)
      const running: TaskEvent = {
        state: 'running',
        message: 'started',
        containerId: container.id,
        ...(info.State.Pid > 0 ? { pid: info.State.Pid } : {}),
        ...(task.ports.length > 0 ? { ports: this.portStatus(task, info) } : {}),
      }
      // As Docker's executor: with a healthcheck (the spec's or the image's), the task stays starting until healthy.
      const test = info.Config.Healthcheck?.Test
      tr.graceMs = Math.floor((task.spec.ContainerSpec.StopGracePeriod ?? 10e9) / 1e6)
      if (test?.length && test[0] !== 'NONE' && info.State.Health?.Status !== 'healthy') tr.awaitingHealth = running
      else tr.emit(running)
    } catch (err) {
      this.report(tr, { state: 'failed', message: 'starting', err: engineMessage(err) })
    }
  }

  /**
   * Plugs the started container into its networks; when that fails, the
   * container is killed (its exit, or the failure thrown here, is reported).
   */
  private async plug(task: ExecutorTask, container: Docker.Container, pid: number): Promise<void> {
    try {
      if (!(pid > 0)) throw new SwarmdError('E_ENGINE', 'the container exited before its network could be set up')
      await this.networking!.setup(task.id, task.networks!, pid)
    } catch (err) {
      await container.kill().catch(() => undefined)
      throw err
    }
  }

  /** In a namespace of its own on the kernel data plane's overlays (not on the host's network). */
  private isolated(task: ExecutorTask): task is ExecutorTask & { networks: NonNullable<ExecutorTask['networks']> } {
    return this.networking !== undefined && !!task.networks?.length && !this.usesHostNetwork(task)
  }

  private usesHostNetwork(task: ExecutorTask): boolean {
    return this.opts.networkMode === 'host' || (task.spec.Networks ?? []).some(n => n.Target === 'host')
  }

  private containerConfig(task: ExecutorTask, secretsDir: string | undefined, configs: { target: string; file: string }[]): Docker.ContainerCreateOptions {
    const spec = task.spec.ContainerSpec
    const ctx = templateContext(task, { OS: process.platform, Architecture: goArch(process.arch) })
    const isolated = this.isolated(task)
    // The kernel data plane serves an isolated task's published ports; host networking needs no mapping.
    const ports = this.usesHostNetwork(task) || isolated ? [] : task.ports
    const key = (p: ExecutorTask['ports'][number]): string => `${p.TargetPort}/${p.Protocol}`
    const limits = task.spec.Resources?.Limits
    const hc = spec.Healthcheck
    const dns = spec.DNSConfig
    // As Docker's embedded resolver, at the gateway of the task's first network with names; ndots:0 since service names are single labels.
    const nameservers = dns?.Nameservers?.length ? dns.Nameservers : isolated ? [resolverOf(task.networks!)!] : []
    const dnsOptions = dns?.Options?.length ? dns.Options : isolated ? ['ndots:0'] : []
    const log = task.spec.LogDriver
    return {
      name: ctx.Task.Name,
      ...(spec.StopSignal ? { StopSignal: spec.StopSignal } : {}),
      ...(spec.TTY ? { Tty: true } : {}),
      ...(spec.OpenStdin ? { OpenStdin: true } : {}),
      ...(hc ? { Healthcheck: { Test: hc.Test ?? [], Interval: hc.Interval ?? 0, Timeout: hc.Timeout ?? 0, StartPeriod: hc.StartPeriod ?? 0, StartInterval: hc.StartInterval ?? 0, Retries: hc.Retries ?? 0 } as Docker.HealthConfig } : {}),
      Image: spec.Image,
      // As swarm: Command replaces the image's entrypoint, Args its command.
      ...(spec.Command && spec.Command.length > 0 ? { Entrypoint: spec.Command } : {}),
      ...(spec.Args && spec.Args.length > 0 ? { Cmd: spec.Args } : {}),
      Env: (spec.Env ?? []).map(e => expandPlaceholders(e, ctx)),
      ...(spec.Dir ? { WorkingDir: spec.Dir } : {}),
      ...(spec.Hostname ? { Hostname: expandPlaceholders(spec.Hostname, ctx) } : {}),
      ...(spec.User ? { User: spec.User } : {}),
      Labels: { ...swarmLabels({ ...task, name: ctx.Task.Name }, spec.Labels), [LABELS.managed]: 'true', ...(isolated ? { [LABELS.netns]: 'true' } : {}) },
      ExposedPorts: Object.fromEntries(ports.map(p => [key(p), {}])),
      HostConfig: {
        // An empty HostPort lets the engine pick a free one; host-mode ports keep the one asked for.
        PortBindings: Object.fromEntries(ports.map(p => [key(p), [{ HostPort: p.PublishMode === 'host' && p.PublishedPort ? String(p.PublishedPort) : '' }]])),
        ...(secretsDir || configs.length ? { Binds: [...(secretsDir ? [`${secretsDir}:${SECRETS_TARGET}:ro`] : []), ...configs.map(c => `${c.file}:${c.target}:ro`)] } : {}),
        ...(isolated ? { NetworkMode: 'none' } : this.opts.networkMode ? { NetworkMode: this.opts.networkMode } : {}),
        ...(spec.Init !== undefined ? { Init: spec.Init } : {}),
        ...(limits?.NanoCPUs ? { NanoCpus: limits.NanoCPUs } : {}),
        ...(limits?.MemoryBytes ? { Memory: limits.MemoryBytes } : {}),
        ...(limits?.Pids ? { PidsLimit: limits.Pids } : {}),
        ...(spec.Mounts?.length ? { Mounts: spec.Mounts as Docker.MountSettings[] } : {}),
        ...(spec.ReadOnly ? { ReadonlyRootfs: true } : {}),
        ...(spec.CapabilityAdd?.length ? { CapAdd: spec.CapabilityAdd } : {}),
        ...(spec.CapabilityDrop?.length ? { CapDrop: spec.CapabilityDrop } : {}),
        ...(nameservers.length ? { Dns: nameservers } : {}),
        ...(dns?.Search?.length ? { DnsSearch: dns.Search } : {}),
        ...(dnsOptions.length ? { DnsOptions: dnsOptions } : {}),
        ...(spec.Hosts?.length ? { ExtraHosts: extraHosts(spec.Hosts) } : {}),
        ...(Object.keys(spec.Sysctls ?? {}).length ? { Sysctls: spec.Sysctls } : {}),
        ...(spec.Ulimits?.length ? { Ulimits: spec.Ulimits } : {}),
        ...(spec.Groups?.length ? { GroupAdd: spec.Groups } : {}),
        ...(spec.OomScoreAdj ? { OomScoreAdj: spec.OomScoreAdj } : {}),
        ...(spec.Isolation && spec.Isolation !== 'default' ? { Isolation: spec.Isolation } : {}),
        ...(log?.Name ? { LogConfig: { Type: log.Name, Config: log.Options ?? {} } as Docker.HostConfig['LogConfig'] } : {}),
      },
    }
  }

  /**
   * The host port the engine gave each target (with host networking, the
   * target itself); in a namespace of its own, the target, or the host-mode
   * published port the data plane forwards to it.
   */
  private portStatus(task: ExecutorTask, info: Docker.ContainerInspectInfo): PortStatus[] {
    const host = this.usesHostNetwork(task)
    const isolated = this.isolated(task)
    return task.ports.map(p => {
      const bound = info.NetworkSettings.Ports?.[`${p.TargetPort}/${p.Protocol}`]?.[0]?.HostPort
      const published = isolated ? (p.PublishMode === 'host' && p.PublishedPort ? p.PublishedPort : p.TargetPort) : host ? p.TargetPort : Number(bound ?? 0)
      return { Protocol: p.Protocol, TargetPort: p.TargetPort, PublishMode: p.PublishMode, PublishedPort: published }
    })
  }

  /** The task's own directory under `root` (of its secrets, of its configs). */
  private dirOf(root: string, taskId: string): string {
    if (!SAFE_NAME.test(taskId)) throw new SwarmdError('E_BAD_TASK_ID', `task id ${JSON.stringify(taskId)} cannot name a directory`)
    return join(root, taskId)
  }

  /** Writes the task's secrets to its own dir on the tmpfs; undefined when it has none. */
  private writeSecrets(task: ExecutorTask): string | undefined {
    if (task.secrets.length === 0) return undefined
    mkdirSync(this.secretsRoot, { recursive: true, mode: 0o700 })
    const fsType = statfsSync(this.secretsRoot).type
    if (fsType !== TMPFS_MAGIC && fsType !== RAMFS_MAGIC) throw new SwarmdError('E_SECRETS_ON_DISK', `secrets: ${this.secretsRoot} is not on a tmpfs`)
    const dir = this.dirOf(this.secretsRoot, task.id)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { mode: 0o755 })
    for (const s of task.secrets) {
      if (!SAFE_NAME.test(s.name)) throw new SwarmdError('E_BAD_SECRET_NAME', `secret file name ${JSON.stringify(s.name)} is not allowed`)
      const file = join(dir, s.name)
      writeFileSync(file, s.data, { flag: 'wx', mode: 0o600 })
      // Exactly the mode asked for, whatever the umask.
      chmodSync(file, s.mode ?? 0o444)
    }
    return dir
  }

  /** Writes the task's configs to its own dir, one file per target to bind-mount. */
  private writeConfigs(task: ExecutorTask): { target: string; file: string }[] {
    if (!task.configs?.length) return []
    return writeConfigs(this.dirOf(this.configsRoot, task.id), task.configs)
  }

  /** What a task leaves on the host: its secrets and its configs. */
  private removeSecrets(taskId: string): void {
    rmSync(this.dirOf(this.secretsRoot, taskId), { recursive: true, force: true })
    rmSync(this.dirOf(this.configsRoot, taskId), { recursive: true, force: true })
  }

  /** Reports a state; a terminal one once only, and it drops the task's secrets and its namespace. */
  private report(tr: Tracked, e: TaskEvent): void {
    if (tr.ended) return
    const terminal = e.state === 'complete' || e.state === 'failed' || e.state === 'rejected' || e.state === 'shutdown'
    if (terminal) {
      tr.ended = true
      try {
        this.removeSecrets(tr.id)
      } catch (err) {
        this.opts.logger?.warn({ err, task: tr.id }, 'removing the task secrets failed')
      }
      tr.unplugged = this.unplug(tr.id)
    }
    tr.emit(e)
    if (terminal) tr.markDone()
  }

  /** Removes the task's namespace, if it has one (its veths go with it). */
  private async unplug(taskId: string): Promise<void> {
    await this.networking?.teardown(taskId).catch(err => this.opts.logger?.warn({ err, task: taskId }, 'removing the task namespace failed'))
  }

  /** The container stopped with `exitCode`: shutdown if we stopped it, else complete or failed as swarm says. */
  private async exited(tr: Tracked, exitCode: number): Promise<void> {
    await tr.started
    if (tr.stopRequested) this.report(tr, { state: 'shutdown', message: 'shutdown', exitCode })
    else if (exitCode === 0) this.report(tr, { state: 'complete', message: 'finished', exitCode })
    else this.report(tr, { state: 'failed', message: 'started', err: `task: non-zero exit (${exitCode})${tr.unhealthy ? ': dockerexec: unhealthy container' : ''}`, exitCode })
  }

  /** The engine's healthcheck spoke: healthy lets a starting task run; unhealthy stops the container, which then fails. */
  private async health(tr: Tracked, status: 'healthy' | 'unhealthy'): Promise<void> {
    await tr.started
    if (tr.ended || tr.stopRequested) return
    if (status === 'healthy') {
      const running = tr.awaitingHealth
      tr.awaitingHealth = undefined
      if (running && !tr.unhealthy) tr.emit(running)
      return
    }
    if (tr.unhealthy || !tr.containerId) return
    tr.unhealthy = true
    try {
      await this.docker.getContainer(tr.containerId).stop({ t: Math.max(0, Math.ceil((tr.graceMs ?? 10_000) / 1000)) })
    } catch (err) {
      if (statusOf(err) !== 304 && statusOf(err) !== 404) this.opts.logger?.warn({ err, task: tr.id }, 'stopping an unhealthy container failed')
    }
  }

  /** Reports the container's exit if it is no longer running (after a gap in the event stream, or at adoption). */
  private async check(tr: Tracked): Promise<void> {
    await tr.started
    if (tr.ended || !tr.containerId) return
    const info = await this.docker.getContainer(tr.containerId).inspect()
    if (info.State.Running) return
    if (info.State.Status === 'created') {
      // Created by an earlier life of the daemon that died before starting it.
      this.report(tr, { state: tr.stopRequested ? 'shutdown' : 'failed', message: 'starting', err: 'task: container was never started' })
      return
    }
    await this.exited(tr, info.State.ExitCode)
  }

  /** Opens the event stream once; reopens it (and catches up by inspection) whenever it drops. */
  private watch(): Promise<void> {
    this.watching ??= this.connect().catch((err: unknown) => {
      this.watching = undefined
      throw err
    })
    return this.watching
  }

  private async connect(): Promise<void> {
    const stream = await this.docker.getEvents({ filters: { type: ['container'], event: ['die', 'health_status'], label: [`${LABELS.managed}=true`] } })
    if (this.closed) {
      ;(stream as unknown as { destroy(): void }).destroy()
      return
    }
    this.events = stream
    const lines = new LineSplitter()
    stream.on('data', (chunk: Buffer) => {
      for (const line of lines.push(chunk)) {
        const ev = parseContainerEvent(line)
        const tr = ev && this.byContainer.get(ev.containerId)
        if (!ev || !tr) continue
        if ('die' in ev) void this.exited(tr, ev.die.exitCode)
        else void this.health(tr, ev.health)
      }
    })
    const lost = (): void => {
      if (this.events !== stream) return
      this.events = undefined
      this.watching = undefined
      if (!this.closed) this.reconnect(500)
    }
    stream.on('end', lost)
    stream.on('close', lost)
    stream.on('error', lost)
  }

  private reconnect(delayMs: number): void {
    this.retry = setTimeout(() => {
      this.retry = undefined
      this.watch().then(
        () => Promise.all([...this.tasks.values()].map(tr => this.check(tr).catch(() => undefined))),
        (err: unknown) => {
          this.opts.logger?.warn({ err }, 'docker event stream unavailable; retrying')
          if (!this.closed) this.reconnect(Math.min(delayMs * 2, 5000))
        },
      )
    }, delayMs)
  }

  /** Our container for a task: tracked, or found by its label (a task of an earlier life not adopted). */
  private async containerIdOf(taskId: string): Promise<string | undefined> {
    const known = this.tasks.get(taskId)?.containerId
    if (known) return known
    const [c] = await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.managed}=true`, `${LABELS.taskId}=${taskId}`] } })
    return c?.Id
  }

  async stop(taskId: string, graceMs: number): Promise<void> {
    const tr = this.tasks.get(taskId)
    if (tr) {
      tr.stopRequested = true
      tr.askStop()
      // A task still being created sees the request and never starts; one being started is stopped below.
      await tr.started
      if (tr.ended) return
    }
    const id = await this.containerIdOf(taskId)
    if (id) {
      try {
        await this.docker.getContainer(id).stop({ t: Math.max(0, Math.ceil(graceMs / 1000)) })
      } catch (err) {
        // 304: not running; 404: gone.
        if (statusOf(err) !== 304 && statusOf(err) !== 404) throw err
      }
    }
    if (!tr) {
      this.removeSecrets(taskId)
      await this.unplug(taskId)
      return
    }
    // The die event reports it too; inspecting does not wait for the stream.
    await this.check(tr).catch(() => this.report(tr, { state: 'shutdown', message: 'shutdown' }))
    await tr.done
  }

  async remove(taskId: string): Promise<void> {
    const tr = this.tasks.get(taskId)
    await (tr?.unplugged ?? this.unplug(taskId))
    const id = await this.containerIdOf(taskId)
    if (id) {
      try {
        await this.docker.getContainer(id).remove({ force: true, v: true })
      } catch (err) {
        if (statusOf(err) !== 404) throw err
      }
      this.byContainer.delete(id)
    }
    this.removeSecrets(taskId)
    this.tasks.delete(taskId)
  }

  async recover(): Promise<{ taskId: string; running: boolean }[]> {
    const label = [`${LABELS.managed}=true`, ...(this.opts.nodeId ? [`${LABELS.nodeId}=${this.opts.nodeId}`] : [])]
    const list = await this.docker.listContainers({ all: true, filters: { label } })
    const found = list.flatMap(c => {
      const taskId = c.Labels[LABELS.taskId]
      return taskId ? [{ taskId, running: c.State === 'running' }] : []
    })
    // Namespaces whose container no longer runs (it ended while the daemon was down, or is gone).
    await this.networking?.sweep(new Set(found.filter(f => f.running).map(f => f.taskId)))
    return found
  }

  async adopt(taskId: string, emit: (e: TaskEvent) => void): Promise<void> {
    if (this.tasks.has(taskId)) throw new SwarmdError('E_TASK_EXISTS', `task ${taskId} is already known to this executor`)
    const id = await this.containerIdOf(taskId)
    if (!id) throw new SwarmdError('E_NO_TASK', `task ${taskId} has no container on this engine`)
    const tr = this.track(taskId, emit, Promise.resolve())
    tr.containerId = id
    this.byContainer.set(id, tr)
    try {
      await this.watch()
      await this.check(tr)
      if (!tr.ended) await this.replug(tr, id)
    } catch (err) {
      this.tasks.delete(taskId)
      this.byContainer.delete(id)
      throw err
    }
  }

  /**
   * An adopted container on the kernel data plane's networks: running
   * again, so the new daemon's data plane takes its address back into the
   * rotation (it needs no port status: it reaches the task at its target
   * ports). One whose daemon died before it was plugged in never got its
   * network: it is killed and fails.
   */
  private async replug(tr: Tracked, containerId: string): Promise<void> {
    const info = await this.docker.getContainer(containerId).inspect()
    if (info.Config.Labels?.[LABELS.netns] !== 'true') return
    if (this.networking?.has(tr.id)) {
      tr.emit({ state: 'running', message: 'started', containerId, ...(info.State.Pid > 0 ? { pid: info.State.Pid } : {}) })
      return
    }
    this.report(tr, { state: 'failed', message: 'started', err: 'task: the container never joined its networks (the daemon stopped before)' })
    await this.docker
      .getContainer(containerId)
      .kill()
      .catch(() => undefined)
  }

  async logs(taskId: string, opts: LogOptions, onLine: (l: LogLine) => void, signal: AbortSignal): Promise<void> {
    const id = await this.containerIdOf(taskId)
    if (!id) throw new SwarmdError('E_NO_TASK', `No such task: ${taskId}`, { kind: 'not_found' })
    if (signal.aborted) return
    const query: Record<string, string | boolean> = {
      stdout: true,
      stderr: true,
      timestamps: true,
      follow: opts.follow ?? false,
      tail: opts.tail === undefined ? 'all' : String(opts.tail),
    }
    if (opts.since !== undefined) query.since = sinceParam(opts.since)
    // Through the modem, so the body is a stream whether following or not.
    const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
      this.docker.modem.dial(
        { path: `/containers/${id}/logs?`, method: 'GET', options: query, isStream: true, statusCodes: { 200: true, 404: 'no such container', 500: 'server error' } },
        (err: unknown, data: unknown) => (err ? reject(new SwarmdError('E_ENGINE', engineMessage(err), { cause: err, kind: statusOf(err) === 404 ? 'not_found' : 'unknown' })) : resolve(data as NodeJS.ReadableStream)),
      )
    })
    const demux = new StreamDemuxer()
    const splitters = { stdout: new LineSplitter(), stderr: new LineSplitter() }
    await new Promise<void>(resolve => {
      let settled = false
      const finish = (): void => {
        if (settled) return
        settled = true
        signal.removeEventListener('abort', onAbort)
        for (const s of ['stdout', 'stderr'] as const) {
          const rest = splitters[s].flush()
          if (rest !== undefined && !signal.aborted) onLine(parseLogLine(s, rest))
        }
        resolve()
      }
      const onAbort = (): void => {
        ;(stream as unknown as { destroy(): void }).destroy()
        finish()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      stream.on('data', (chunk: Buffer) => {
        if (signal.aborted) return
        for (const f of demux.push(chunk)) for (const line of splitters[f.stream].push(f.data)) onLine(parseLogLine(f.stream, line))
      })
      stream.on('end', finish)
      stream.on('error', finish)
      stream.on('close', finish)
    })
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.retry) clearTimeout(this.retry)
    const events = this.events
    this.events = undefined
    if (events) (events as unknown as { destroy(): void }).destroy()
  }
}
