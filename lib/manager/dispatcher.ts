import type { Logger } from 'pino'
import type { LogLine, LogOptions } from '../types/logs.js'
import type { Session } from '../control/session.js'
import type { NodeAttachmentRecord } from '../types/network.js'
import { isEncrypted, type DownMessage, type Routing, type UpMessage } from '../types/session.js'
import type { StateStore } from './state-store.js'
import { isRunDesired, isTerminal, type Task, type TaskStatus } from '../types/task.js'
import type { ContainerSpec, Service } from '../types/service.js'

interface AssignmentView {
  routing: Routing
  /** Node ID → network ID → the node's address there. */
  nodeAddrs: Map<string, Record<string, string>>
  services: Map<string, Service>
  byNode: Map<string, Task[]>
  taskNets: Map<string, string[]>
  /** The encrypted networks' IDs; the ingress network's, if it is one. */
  encrypted: Set<string>
  ingress: string | undefined
}

/**
 * The manager's side of node sessions (swarmkit's dispatcher): it pushes each
 * node its assignments whenever they change, takes task status up to the
 * orchestrator, and brokers log requests to the nodes that ran the tasks.
 */
export class Dispatcher {
  private readonly sessions = new Map<string, Session>()
  /** What each node was last sent, to push only changes. */
  private readonly sent = new Map<string, string>()
  /** Encrypted network ID → the nodes it was given keys to and that are still owed them. */
  private readonly keyHolders = new Map<string, Set<string>>()
  private readonly logReqs = new Map<number, { onLine: (task: string, l: LogLine) => void; done: (err?: string) => void }>()
  private nextReq = 1

  constructor(
    private readonly d: {
      store: StateStore
      /** The networks, services' VIPs and ports every node's mesh serves. */
      routing: () => Routing
      /** Every node's own addresses on the networks (each node is sent its own). */
      nodeAttachments?: () => NodeAttachmentRecord[]
      /** Plaintext of the secrets these IDs name, base64. */
      secrets: (ids: string[]) => Record<string, string>
      /** Data of the configs these IDs name, base64. */
      configs: (ids: string[]) => Record<string, string>
      report: (nodeId: string, updates: { id: string; status: TaskStatus }[]) => Promise<void>
      /** A node given an encrypted network's keys is no longer owed them: the network's keys must rotate past what it holds. */
      keysWithdrawn?: (networkId: string) => void
      log: Logger
    },
  ) {}

  /** A node's session opened: it gets its assignments now; returns the handler of what it sends. */
  attach(nodeId: string, s: Session): (msg: unknown) => void {
    const old = this.sessions.get(nodeId)
    if (old && old !== s) void old.close()
    this.sessions.set(nodeId, s)
    this.sent.delete(nodeId)
    void s.closed.then(() => {
      if (this.sessions.get(nodeId) === s) {
        this.sessions.delete(nodeId)
        this.sent.delete(nodeId)
      }
    })
    this.push(nodeId)
    return msg => this.receive(nodeId, msg as UpMessage)
  }

  /** Ends a node's session (the node was removed): nothing more is pushed to it. */
  async detach(nodeId: string): Promise<void> {
    const s = this.sessions.get(nodeId)
    this.sessions.delete(nodeId)
    this.sent.delete(nodeId)
    // Its cut-off rotates every network's keys (the leader's nodeRemoved): nothing more to track for it.
    for (const holders of this.keyHolders.values()) holders.delete(nodeId)
    await s?.close()
  }

  /** The nodes with a session open. */
  nodeIds(): string[] {
    return [...this.sessions.keys()]
  }

  connected(nodeId: string): boolean {
    return this.sessions.has(nodeId)
  }

  private receive(nodeId: string, m: UpMessage): void {
    if (!m || typeof m !== 'object') return
    if (m.t === 'status' && Array.isArray(m.updates)) {
      // A task that stopped may have been the node's last on an encrypted network.
      void this.d
        .report(nodeId, m.updates)
        // The view reads the whole store: only built when some node holds keys at all.
        .then(() => this.keyHolders.size > 0 && this.withdrawKeys(this.view()))
        .catch(e => this.d.log.warn({ err: e, nodeId }, 'task status not recorded'))
    } else if (m.t === 'log' && Array.isArray(m.lines)) {
      const r = this.logReqs.get(m.req)
      if (r) for (const l of m.lines) r.onLine(l.task, l.line)
    } else if (m.t === 'logs-end') {
      this.logReqs.get(m.req)?.done(m.error)
    }
  }

  /** Pushes every connected node whose assignments changed. */
  pushAll(): void {
    const view = this.view()
    for (const id of this.sessions.keys()) this.push(id, view)
    this.withdrawKeys(view)
  }

  private push(nodeId: string, view = this.view()): void {
    const s = this.sessions.get(nodeId)
    if (!s) return
    const msg = this.assignments(nodeId, view)
    const key = JSON.stringify(msg)
    if (this.sent.get(nodeId) === key) return
    this.sent.set(nodeId, key)
    for (const n of msg.routing.networks) {
      if (!n.keys) continue
      let holders = this.keyHolders.get(n.id)
      if (!holders) this.keyHolders.set(n.id, (holders = new Set()))
      holders.add(nodeId)
    }
    s.send(msg)
  }

  /**
   * The nodes given an encrypted network's keys that are no longer owed
   * them (their last task there stopped, or moved, or they are gone): each
   * connected one is pushed its assignments without them, and the network
   * is reported so its keys rotate past what they hold. Held only by this
   * leader: a node that dropped out during a change of leader is not
   * noticed (the 12-hourly rotation still passes it by).
   */
  private withdrawKeys(v: AssignmentView): void {
    for (const [networkId, holders] of this.keyHolders) {
      if (!v.encrypted.has(networkId)) {
        // The network is gone (or no longer encrypted): no key of it is used any more.
        this.keyHolders.delete(networkId)
        continue
      }
      const gone = [...holders].filter(nodeId => !this.owedKeys(nodeId, v).has(networkId))
      if (!gone.length) continue
      for (const nodeId of gone) {
        holders.delete(nodeId)
        this.push(nodeId, v)
      }
      this.d.log.info({ network: networkId, nodes: gone }, 'nodes no longer on an encrypted network: its keys rotate')
      this.d.keysWithdrawn?.(networkId)
    }
  }

  /**
   * The encrypted networks whose keys a node is owed: those its tasks are
   * on, while they are to run or (on a connected node) until they have
   * stopped, so a task's draining connections keep their keys; a node that
   * is gone is owed none once its tasks are told to stop. And the ingress
   * network for every node: each answers every published port and forwards
   * it over the sealed tunnel to the node of a task, so each needs its keys
   * (its nodes are the swarm's, and only `node rm` cuts one off).
   */
  private owedKeys(nodeId: string, v: AssignmentView): Set<string> {
    const owed = new Set<string>()
    if (v.ingress && v.encrypted.has(v.ingress)) owed.add(v.ingress)
    const connected = this.sessions.has(nodeId)
    for (const t of v.byNode.get(nodeId) ?? []) {
      if (!isRunDesired(t.DesiredState) && !(connected && !isTerminal(t.Status.State))) continue
      for (const id of taskNetworks(t, v)) if (v.encrypted.has(id)) owed.add(id)
    }
    return owed
  }

  /**
   * What every node's assignments are made of, read from the store once per
   * push: services by ID, the tasks of each node (those that ended too, while
   * the history keeps them: the node keeps their logs until they are no
   * longer listed), and the networks each service's tasks join (its VIPs',
   * and for dnsrr its attachments).
   */
  private view(): AssignmentView {
    const byNode = new Map<string, Task[]>()
    for (const t of this.d.store.list<Task>('tasks')) {
      if (!t.NodeID) continue
      let l = byNode.get(t.NodeID)
      if (!l) byNode.set(t.NodeID, (l = []))
      l.push(t)
    }
    const routing = this.d.routing()
    const nodeAddrs = new Map<string, Record<string, string>>()
    for (const a of this.d.nodeAttachments?.() ?? []) nodeAddrs.set(a.NodeID, { ...nodeAddrs.get(a.NodeID), [a.NetworkID]: a.Addr })
    return {
      routing,
      nodeAddrs,
      services: new Map(this.d.store.list<Service>('services').map(s => [s.ID, s])),
      byNode,
      taskNets: new Map(routing.services.map(r => [r.id, [...new Set([...r.vips.map(v => v.network), ...(r.networks ?? [])])]])),
      encrypted: new Set(routing.networks.filter(isEncrypted).map(n => n.id)),
      ingress: routing.networks.find(n => n.ingress)?.id,
    }
  }

  /**
   * A node's tasks, with the secrets and configs of those that are to run
   * and nothing more, and the routing with the keys of the encrypted
   * networks it is owed (the others stay marked encrypted, without keys).
   * Its own addresses go as they are: on an encrypted network the kernel
   * data plane gives it no VXLAN device, so an address there carries
   * nothing off the node.
   */
  private assignments(nodeId: string, v: AssignmentView): Extract<DownMessage, { t: 'assign' }> {
    const tasks = v.byNode.get(nodeId) ?? []
    const running = tasks.filter(t => isRunDesired(t.DesiredState)).map(t => t.Spec.ContainerSpec)
    const ids = (refs: (c: ContainerSpec) => string[] | undefined): string[] => [...new Set(running.flatMap(c => refs(c) ?? []))]
    const owed = this.owedKeys(nodeId, v)
    const networks = v.routing.networks.map(({ keys, ...n }) => (keys && owed.has(n.id) ? { ...n, keys } : n))
    return {
      t: 'assign',
      tasks: tasks.map(task => {
        const svc = v.services.get(task.ServiceID)
        return { task, serviceName: svc?.Spec.Name ?? '', ports: svc?.Endpoint.Ports ?? [], networks: taskNetworks(task, v) }
      }),
      secrets: this.d.secrets(ids(c => c.Secrets?.map(r => r.SecretID))),
      configs: this.d.configs(ids(c => c.Configs?.map(r => r.ConfigID))),
      routing: { ...v.routing, networks, ...(v.nodeAddrs.has(nodeId) ? { nodeAddrs: v.nodeAddrs.get(nodeId)! } : {}) },
    }
  }

  /**
   * Log lines of `taskIds` from the node that ran them. Resolves when the node
   * has sent everything asked for (with `follow`, when `signal` aborts).
   */
  logs(nodeId: string, taskIds: string[], opts: LogOptions, onLine: (task: string, l: LogLine) => void, signal: AbortSignal): Promise<void> {
    const s = this.sessions.get(nodeId)
    if (!s) return Promise.reject(new Error(`node ${nodeId} is not connected`))
    const req = this.nextReq++
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: string): void => {
        this.logReqs.delete(req)
        signal.removeEventListener('abort', abort)
        if (err) reject(new Error(err))
        else resolve()
      }
      const abort = (): void => {
        s.send({ t: 'logs-cancel', req } satisfies DownMessage)
        finish()
      }
      this.logReqs.set(req, { onLine, done: finish })
      signal.addEventListener('abort', abort, { once: true })
      void s.closed.then(() => this.logReqs.has(req) && finish())
      s.send({ t: 'logs', req, taskIds, opts } satisfies DownMessage)
    })
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.close()
    this.sessions.clear()
  }
}

/** The networks a task has addresses on once allocated, else its service's (VIP or not). */
const taskNetworks = (t: Task, v: AssignmentView): string[] => t.NetworksAttachments?.map(a => a.Network.ID) ?? v.taskNets.get(t.ServiceID) ?? []
