import type { Logger } from 'pino'
import type { DownMessage, Routing, UpMessage } from '../types/session.js'
import { isRunDesired, isTerminal, stateRank, type PortStatus, type Task, type TaskState, type TaskStatus } from '../types/task.js'
import type { FileTarget, PortConfig } from '../types/service.js'
import type { LogLine, LogOptions } from '../types/logs.js'
import type { Executor, ExecutorTask, TaskEvent } from './executor.js'
import type { NodeMesh } from './node-mesh.js'
import type { NodeDns } from './node-dns.js'
import { resolverOf } from './task-netns.js'
import { templateContext } from './placeholders.js'
import { swarmLabels } from './task-labels.js'
import { STOP_GRACE_MS } from '../types/defaults.js'

/** Docker's default mode of secret and config files; for secrets left to the executor, which gives process tasks 0400 (readable by the task's user only). */
const DOCKER_FILE_MODE = 0o444

/** How the mesh's published-port conflicts begin (see Mesh.publish). */
const MESH_PORT_ERROR = 'cannot listen on '

/** What this node's tasks did since the agent started: what the metrics show. */
export interface ExecutorCounters {
  /** Tasks started (adopted ones, found running after a restart, are not). */
  starts: number
  /** Starts in a slot whose previous task here ended by itself (exited, not stopped): the restart policy at work. */
  restarts: number
  /** Tasks that ended with an exit code, by code. */
  exits: Record<string, number>
}

/** A task's slot: replicated tasks by number, global ones (slot 0) by their service alone, since it runs once per node. */
const slotOf = (t: Task): string => `${t.ServiceID}/${t.Slot ?? 0}`

interface Local {
  status: TaskStatus
  slot: string
  /** The task as the manager assigned it (its status is the one above). */
  task: Task
  stopping?: Promise<void>
  /** The manager no longer lists it: it is being removed. */
  forgetting?: boolean
  /** Lets a task held at desired `ready` start. */
  release?: () => void
  /** What the mesh needs to announce the task's endpoints (`addresses`: network ID → the task's address there). */
  route?: { serviceId: string; serviceName: string; ports: PortConfig[]; networks: string[]; addresses: Record<string, string> }
  /** The host ports the executor gave the task's targets. */
  ports?: PortStatus[]
  /** When the executor reported it running. */
  startedAt?: string
}

/** A task this node runs, as `docker ps` on the node shows it: the task with its status here, its container's name and labels, its host ports. */
export interface LocalTask {
  task: Task
  name: string
  labels: Record<string, string>
  ports: PortStatus[]
  startedAt?: string
}

/**
 * The worker side of a node (swarmkit's agent): it runs what the manager
 * assigns through the executor, stops what is no longer wanted, and reports
 * each task's observed state. After a daemon restart it adopts the tasks the
 * executor still has that the manager still wants, and stops the rest.
 */
export class Agent {
  private readonly tasks = new Map<string, Local>()
  private recovered: Map<string, boolean> | undefined
  private pending: { id: string; status: TaskStatus }[] = []
  private flushing = false
  private send: ((m: UpMessage) => void) | undefined
  private readonly logStreams = new Map<number, AbortController>()
  private routing: Routing | undefined
  readonly counters: ExecutorCounters = { starts: 0, restarts: 0, exits: {} }
  /** Slots whose last task here ended by itself; the next start in one is a restart. */
  private readonly exitedSlots = new Set<string>()

  constructor(
    private readonly d: {
      executor: Executor
      /** The node's routing mesh: running tasks are announced there, and withdrawn before they stop. */
      mesh?: NodeMesh
      /** The node's DNS: fed each routing; its address goes to tasks as SWARMD_DNS. */
      dns?: NodeDns
      nodeId: string
      hostname: string
      log: Logger
    },
  ) {}

  /** Finds the tasks a previous life of the daemon left running; they wait for the first assignments. */
  async init(): Promise<void> {
    const found = await this.d.executor.recover()
    this.recovered = new Map(found.map(f => [f.taskId, f.running]))
    if (found.length) this.d.log.info({ tasks: found.length }, 'found tasks from before the restart')
  }

  /** A (new) session to the manager: everything known is reported again, since the last report may be lost. */
  connect(send: (m: UpMessage) => void): void {
    this.send = send
    for (const [id, l] of this.tasks) this.pending.push({ id, status: l.status })
    this.flush()
  }

  disconnect(): void {
    this.send = undefined
  }

  receive(msg: unknown): void {
    const m = msg as DownMessage
    if (!m || typeof m !== 'object') return
    if (m.t === 'assign' && Array.isArray(m.tasks)) {
      if (m.routing) {
        this.routing = m.routing
        void this.d.mesh?.sync(m.routing).then(() => this.showConflicts())
        this.d.dns?.sync(m.routing)
      }
      this.assign(m.tasks, m.secrets ?? {}, m.configs ?? {})
    } else if (m.t === 'logs') void this.streamLogs(m.req, m.taskIds, m)
    else if (m.t === 'logs-cancel') this.logStreams.get(m.req)?.abort()
  }

  private report(id: string, status: TaskStatus): void {
    const l = this.tasks.get(id)
    if (l) l.status = status
    this.pending.push({ id, status })
    this.flush()
  }

  private flush(): void {
    if (this.flushing) return
    this.flushing = true
    setImmediate(() => {
      this.flushing = false
      if (!this.send || this.pending.length === 0) return
      const updates = this.pending
      this.pending = []
      this.send({ t: 'status', updates })
    })
  }

  private assign(list: { task: Task; serviceName: string; ports: PortConfig[]; networks?: string[] }[], secrets: Record<string, string>, configs: Record<string, string>): void {
    const wanted = new Set(list.map(x => x.task.ID))
    for (const { task, serviceName, ports, networks } of list) {
      const local = this.tasks.get(task.ID)
      const addresses = Object.fromEntries((task.NetworksAttachments ?? []).map(a => [a.Network.ID, a.Addresses[0]?.split('/')[0] ?? '']))
      const route = { serviceId: task.ServiceID, serviceName, ports, networks: networks ?? [], addresses }
      if (local) local.route = route
      const recovered = this.recovered?.get(task.ID)
      if (isRunDesired(task.DesiredState)) {
        if (local) {
          if (task.DesiredState !== 'ready') local.release?.()
          continue
        }
        // Known to the executor from before the restart, running or ended meanwhile: adopting it reports which.
        if (recovered !== undefined) {
          this.track(task, route)
          void this.d.executor.adopt(task.ID, e => this.onEvent(task.ID, e)).catch(e => this.fail(task.ID, e))
          this.d.log.info({ task: task.ID }, 'adopted a task from before the restart')
        } else if (stateRank(task.Status.State) <= stateRank('assigned')) {
          const l = this.track(task, route)
          this.counted(task)
          const hold = task.DesiredState === 'ready' ? new Promise<void>(resolve => (l.release = resolve)) : undefined
          this.report(task.ID, this.status('accepted', 'accepted'))
          void this.d.executor.start(this.executorTask(task, serviceName, ports, networks ?? [], secrets, configs, hold), e => this.onEvent(task.ID, e)).catch(e => this.fail(task.ID, e))
        } else if (!isTerminal(task.Status.State)) {
          // The manager thinks it runs here, but it did not survive the node's restart.
          this.track(task)
          this.report(task.ID, { ...this.status('failed', 'task not found on the node'), Err: 'task: not running after the node restarted' })
        }
      } else if (local) {
        if (!isTerminal(local.status.State)) void this.stop(task.ID, task)
      } else if (recovered !== undefined) {
        this.track(task)
        void this.stop(task.ID, task)
      } else if (!isTerminal(task.Status.State)) {
        this.report(task.ID, this.status('shutdown', 'shutdown'))
      }
    }
    // What the manager no longer lists (it left the task history): stop it, then let it go with its log.
    for (const [id] of this.tasks) if (!wanted.has(id)) void this.forget(id)
    // Slots of services the swarm no longer has will not restart.
    const services = this.routing && new Set(this.routing.services.map(x => x.id))
    if (services) for (const s of this.exitedSlots) if (!services.has(s.slice(0, s.indexOf('/')))) this.exitedSlots.delete(s)
    if (this.recovered) {
      for (const [id] of this.recovered) if (!wanted.has(id)) void this.d.executor.stop(id, 0).then(() => this.d.executor.remove(id)).catch(() => undefined)
      this.recovered = undefined
    }
  }

  /**
   * A published port this node cannot listen on (another program holds it)
   * shows as the error of the service's tasks here, so `service ps` tells.
   */
  private showConflicts(): void {
    const conflicts = this.d.mesh?.conflicts
    if (!conflicts) return
    for (const [id, l] of this.tasks) {
      if (isTerminal(l.status.State) || !l.route) continue
      const err = conflicts.get(l.route.serviceId)
      if (err && l.status.Err !== err) this.report(id, { ...l.status, Err: err })
      else if (!err && l.status.Err?.startsWith(MESH_PORT_ERROR)) {
        const { Err: _gone, ...rest } = l.status
        this.report(id, rest)
      }
    }
  }

  private track(task: Task, route?: Local['route']): Local {
    const l: Local = { status: task.Status, slot: slotOf(task), task, ...(route ? { route } : {}) }
    this.tasks.set(task.ID, l)
    return l
  }

  private counted(task: Task): void {
    this.counters.starts++
    if (this.exitedSlots.delete(slotOf(task))) this.counters.restarts++
  }

  /** The tasks this node has, running or ended and not yet let go (`docker ps -a` on the node). */
  list(): LocalTask[] {
    return [...this.tasks.values()].map(l => {
      const t = l.task
      const ids = { id: t.ID, serviceId: t.ServiceID, serviceName: l.route?.serviceName ?? '', nodeId: this.d.nodeId }
      const name = templateContext({ ...ids, slot: t.Slot ?? 0, nodeHostname: this.d.hostname }).Task.Name
      return { task: { ...t, Status: l.status }, name, labels: swarmLabels({ ...ids, name }, t.Spec.ContainerSpec.Labels), ports: l.ports ?? [], ...(l.startedAt ? { startedAt: l.startedAt } : {}) }
    })
  }

  /** A task's output as the executor kept it (`docker logs` on the node). */
  logs(taskId: string, opts: LogOptions, onLine: (l: LogLine) => void, signal: AbortSignal): Promise<void> {
    return this.d.executor.logs(taskId, opts, onLine, signal)
  }

  private status(state: TaskState, message: string): TaskStatus {
    return { Timestamp: new Date().toISOString(), State: state, Message: message }
  }

  private onEvent(id: string, e: TaskEvent): void {
    const local = this.tasks.get(id)
    const prev = local?.status
    if (prev && isTerminal(prev.State)) return
    if (e.exitCode !== undefined && isTerminal(e.state)) this.counters.exits[e.exitCode] = (this.counters.exits[e.exitCode] ?? 0) + 1
    if (local && (e.state === 'complete' || e.state === 'failed')) this.exitedSlots.add(local.slot)
    if (local && e.ports) local.ports = e.ports
    if (local && e.state === 'running') local.startedAt = new Date().toISOString()
    // Announced once running (with the ports the executor gave it), withdrawn once over.
    if (e.state === 'running' && local?.route) this.d.mesh?.taskRunning({ id, ...local.route, status: e.ports ?? [] })
    else if (isTerminal(e.state)) void this.d.mesh?.taskStopping(id, false)
    const conflict = local?.route ? this.d.mesh?.conflicts.get(local.route.serviceId) : undefined
    const cs = { ...prev?.ContainerStatus, ...(e.containerId ? { ContainerID: e.containerId } : {}), ...(e.pid ? { PID: e.pid } : {}), ...(e.exitCode !== undefined ? { ExitCode: e.exitCode } : {}) }
    // Swarm reports only host-mode ports in a task's status; ingress ones are the mesh's business.
    const ports = e.ports ? e.ports.filter(p => p.PublishMode === 'host') : prev?.PortStatus?.Ports
    this.report(id, {
      ...this.status(e.state, e.message),
      ...(e.err ? { Err: e.err } : conflict ? { Err: conflict } : {}),
      ...(Object.keys(cs).length ? { ContainerStatus: cs } : {}),
      ...(ports?.length ? { PortStatus: { Ports: ports } } : {}),
    })
  }

  private fail(id: string, e: unknown): void {
    const prev = this.tasks.get(id)?.status
    if (prev && isTerminal(prev.State)) return
    const started = prev && stateRank(prev.State) >= stateRank('starting')
    this.report(id, { ...this.status(started ? 'failed' : 'rejected', (e as Error).message), Err: (e as Error).message })
  }

  private stop(id: string, task?: Task): Promise<void> {
    const l = this.tasks.get(id)
    if (!l) return Promise.resolve()
    l.stopping ??= (async () => {
      // New connections go elsewhere before the task is asked to stop.
      await this.d.mesh?.taskStopping(id, true)
      const graceNs = task?.Spec.ContainerSpec.StopGracePeriod
      try {
        await this.d.executor.stop(id, graceNs !== undefined ? Math.floor(graceNs / 1e6) : STOP_GRACE_MS)
      } catch (e) {
        this.d.log.warn({ err: e, task: id }, 'stopping the task failed')
      }
      const cur = this.tasks.get(id)
      if (cur && !isTerminal(cur.status.State)) this.report(id, { ...cur.status, ...this.status('shutdown', 'shutdown') })
    })()
    return l.stopping
  }

  /**
   * An ended task stays with its log (its directory, its container) while
   * the manager keeps it in the history, so `service logs` shows why it
   * ended; it goes once the manager no longer lists it.
   */
  private async forget(id: string): Promise<void> {
    const l = this.tasks.get(id)
    if (!l || l.forgetting) return
    l.forgetting = true
    if (!isTerminal(l.status.State)) await this.stop(id)
    this.tasks.delete(id)
    await this.d.executor.remove(id).catch(e => this.d.log.warn({ err: e, task: id }, 'removing the task failed'))
  }

  /**
   * How a task finds the other services on its networks: SWARMD_VIP_<NAME>
   * is the service's VIP in the kernel data plane, and in the userspace
   * mesh the VIP's loopback twin it listens on, on every node, at the
   * service's target ports.
   */
  private serviceVips(networks: string[]): string[] {
    const env: string[] = []
    for (const s of this.routing?.services ?? []) {
      const vip = s.vips.find(v => networks.includes(v.network) && !this.routing!.networks.find(n => n.id === v.network)?.ingress)
      if (vip) env.push(`SWARMD_VIP_${s.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}=${this.d.mesh?.vipAddress(vip) ?? vip.loopback}`)
    }
    return env
  }

  private executorTask(task: Task, serviceName: string, ports: PortConfig[], networks: string[], secrets: Record<string, string>, configs: Record<string, string>, hold: Promise<void> | undefined): ExecutorTask {
    const attached = this.d.mesh?.taskNetworks(task.NetworksAttachments)
    // A task in a namespace of its own asks its first network's gateway (as its resolv.conf says), not the host's loopback.
    const resolver = attached && resolverOf(attached)
    const dns = this.d.dns && resolver ? `${resolver}:53` : this.d.dns?.address
    const vips = [...this.serviceVips(networks), ...(dns ? [`SWARMD_DNS=${dns}`] : [])]
    const spec = vips.length ? { ...task.Spec, ContainerSpec: { ...task.Spec.ContainerSpec, Env: [...vips, ...(task.Spec.ContainerSpec.Env ?? [])] } } : task.Spec
    return {
      ...(attached ? { networks: attached } : {}),
      id: task.ID,
      serviceId: task.ServiceID,
      serviceName,
      slot: task.Slot ?? 0,
      nodeId: this.d.nodeId,
      nodeHostname: this.d.hostname,
      spec,
      ports: ports.map(p => ({ TargetPort: p.TargetPort, Protocol: p.Protocol ?? 'tcp', PublishMode: p.PublishMode ?? 'ingress', ...(p.PublishMode === 'host' && p.PublishedPort ? { PublishedPort: p.PublishedPort } : {}) })),
      secrets: delivered(spec.ContainerSpec.Secrets, secrets, r => r.SecretID, r => r.SecretName).map(({ mode, ...f }) => ({ ...f, ...(mode !== DOCKER_FILE_MODE ? { mode } : {}) })),
      configs: delivered(spec.ContainerSpec.Configs, configs, r => r.ConfigID, r => r.ConfigName).map(({ name, ...f }) => ({ target: name, ...f })),
      ...(hold ? { hold } : {}),
    }
  }

  private async streamLogs(req: number, taskIds: string[], m: Extract<DownMessage, { t: 'logs' }>): Promise<void> {
    const ac = new AbortController()
    this.logStreams.set(req, ac)
    let batch: { task: string; line: LogLine }[] = []
    let timer: NodeJS.Timeout | undefined
    const flush = (): void => {
      if (timer) clearTimeout(timer)
      timer = undefined
      if (batch.length) this.send?.({ t: 'log', req, lines: batch })
      batch = []
    }
    let error: string | undefined
    try {
      await Promise.all(
        taskIds.map(id =>
          this.d.executor.logs(
            id,
            m.opts ?? {},
            line => {
              batch.push({ task: id, line })
              if (batch.length >= 500) flush()
              else timer ??= setTimeout(flush, 20)
            },
            ac.signal,
          ),
        ),
      )
    } catch (e) {
      if (!ac.signal.aborted) error = (e as Error).message
    }
    flush()
    this.logStreams.delete(req)
    this.send?.({ t: 'logs-end', req, ...(error ? { error } : {}) })
  }

  /** Stops and removes every task (the node leaves the swarm). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.tasks.keys()].map(id => this.forget(id)))
  }

  /** Stops reading logs; tasks keep running (the daemon may be restarting). */
  close(): void {
    for (const ac of this.logStreams.values()) ac.abort()
    this.send = undefined
  }
}

/** The references whose data the manager sent, decoded, with their file name (or path) and mode: how secrets and configs alike reach a task. */
function delivered<R extends { File?: FileTarget }>(refs: R[] | undefined, values: Record<string, string>, id: (r: R) => string, name: (r: R) => string): { name: string; data: Buffer; mode: number }[] {
  return (refs ?? []).filter(r => values[id(r)] !== undefined).map(r => ({ name: r.File?.Name ?? name(r), data: Buffer.from(values[id(r)]!, 'base64'), mode: r.File?.Mode ?? DOCKER_FILE_MODE }))
}
