import type { KeyObject } from 'node:crypto'
import type { Logger } from 'pino'
import type { ControlNode } from '../control/control-node.js'
import { serveSession, type Session } from '../control/session.js'
import { every, type Clock } from '../gossip/clock.js'
import { KEY_ROTATION_MS } from '../types/defaults.js'
import type { LogLine, LogOptions } from '../types/logs.js'
import type { NodeRecord, NodeSpec } from '../types/node.js'
import type { Routing } from '../types/session.js'
import type { Service } from '../types/service.js'
import type { Task } from '../types/task.js'
import { Cluster, type ClusterTimings } from './cluster.js'
import { Dispatcher } from './dispatcher.js'
import { Networks } from './networks.js'
import { Nodes, type Liveness } from './nodes.js'
import { Orchestrator } from './orchestrator/orchestrator.js'
import { planner } from './placement.js'
import { Secrets } from './secrets.js'
import { Services } from './services.js'
import type { Store } from './store.js'

/** Rotations that cut a removed node off: after the third, it holds no key anyone uses or accepts. */
const CUT_OFF_ROTATIONS = 3

export interface ManagerDeps {
  store: Store
  nodeId: string
  /** The node's private key: it unseals the data key (secrets, the CA key). */
  nodeKey: KeyObject
  control: ControlNode
  /** Wall time (objects' timestamps come from it), and the timers of the periodic work. */
  clock: Clock
  timings: ClusterTimings
  liveness: Omit<Liveness, 'connected'>
  /** This node runs tasks (it has an executor). */
  runsTasks: boolean
  /** This node's gossip is up. */
  selfUp: () => boolean
  /** New gossip keys to use on this node. */
  applyGossipKeys: (keys: string[]) => void
  /** A node checked in: the node rejoins gossip with it if gossip lost it. */
  onCheckIn: (node: NodeRecord) => void
  log: Logger
}

/**
 * The manager role of a node (swarmkit's manager): the cluster (CA, tokens,
 * keys, joins and RPCs), the node view, services, networks and secrets over
 * the store, the orchestrator and scheduler, and the dispatcher that node
 * sessions attach to. It owns no sockets of its own: the control node and
 * gossip belong to the node that runs it.
 */
export class Manager {
  readonly cluster: Cluster
  readonly nodes: Nodes
  readonly secrets: Secrets
  readonly networks: Networks
  readonly services: Services
  readonly dispatcher: Dispatcher
  readonly orchestrator: Orchestrator
  private readonly stops: (() => void)[] = []
  /** Rotations still owed to cut a removed node off, and when the next may run. */
  private cutOff = { left: 0, at: 0 }

  constructor(private readonly d: ManagerDeps) {
    const log = d.log.child({ layer: 'manager' })
    this.cluster = new Cluster({ store: d.store, nodeKey: d.nodeKey, timings: d.timings, log })
    this.dispatcher = new Dispatcher({
      store: d.store,
      routing: () => this.routing(),
      secrets: ids => this.secrets.values(ids),
      report: (nodeId, updates) => this.orchestrator.report(nodeId, updates),
      log,
    })
    this.nodes = new Nodes({
      store: d.store,
      clock: d.clock,
      self: d.nodeId,
      selfUp: d.selfUp,
      liveness: { inGossip: id => d.liveness.inGossip(id), connected: id => this.dispatcher.connected(id) },
      heartbeatMs: () => this.cluster.heartbeatMs(),
    })
    this.secrets = new Secrets(d.store, d.nodeKey)
    this.networks = new Networks(d.store)
    this.orchestrator = new Orchestrator({
      store: d.store,
      clock: d.clock,
      nodes: () => this.nodes.infos(d.runsTasks),
      planner,
      changed: () => this.dispatcher.pushAll(),
      log,
    })
    this.services = new Services({ store: d.store, secrets: this.secrets, networks: this.networks, kick: () => void this.orchestrator.kick() })
  }

  /** Serves the control plane (joins, RPCs, sessions) and starts the periodic work: reconciliation, key rotations, renewal. */
  async start(): Promise<void> {
    const { control, log } = this.d
    await this.networks.ensureIngress()
    await this.cluster.serve(control, {
      nodes: this.nodes,
      onCheckIn: id => {
        const n = this.d.store.get<NodeRecord>('nodes', id)
        if (n) this.d.onCheckIn(n)
      },
    })
    await serveSession(control, {
      caPublicKey: () => this.cluster.ca().publicKey,
      selfCert: () => this.cluster.selfCert(),
      role: id => this.nodes.role(id),
      onRefused: why => log.warn({ why }, 'session refused'),
      onSession: (caller, session) => {
        this.nodes.seen(caller.nodeId)
        void this.orchestrator.kick()
        return this.dispatcher.attach(caller.nodeId, session)
      },
    })
    const fail = (what: string) => (e: unknown) => log.warn({ err: e }, `${what} failed`)
    const clock = this.d.clock
    this.stops.push(
      every(clock, () => 1_000, () => this.orchestrator.kick(), fail('reconciliation')),
      every(clock, () => this.d.timings.gossipKeyRotationMs, () => this.rotateGossipKeys(), fail('gossip key rotation')),
      every(clock, () => KEY_ROTATION_MS, async () => void (await this.networks.rotateKeys()), fail('network key rotation')),
      every(clock, () => this.cluster.heartbeatMs(), () => this.cluster.renewSelf(), fail('certificate renewal')),
      every(clock, () => this.cluster.heartbeatMs(), () => this.cutOffStep(), fail('key rotation after a node removal')),
    )
    void this.orchestrator.kick()
  }

  /** This node's own agent: it talks to the dispatcher in process, through the same messages as a remote node's. */
  attachLocal(session: Session): (msg: unknown) => void {
    return this.dispatcher.attach(this.d.nodeId, session)
  }

  kick(): void {
    void this.orchestrator.kick()
  }

  async updateNode(ref: string, version: number, spec: NodeSpec): Promise<void> {
    await this.nodes.update(ref, version, spec)
    this.kick()
  }

  /**
   * `node rm`: the node's record goes (its certificate then opens nothing),
   * its session closes at once so nothing more is pushed to it, and the
   * gossip keys and every encrypted network's keys rotate until none it
   * holds is in use (three rotations, two heartbeat periods apart, so the
   * other nodes always have a key before it encrypts).
   */
  async removeNode(ref: string, force: boolean): Promise<void> {
    const n = await this.nodes.remove(ref, force)
    await this.dispatcher.detach(n.id)
    this.d.log.info({ nodeId: n.id, force }, 'node removed')
    this.cutOff = { left: CUT_OFF_ROTATIONS, at: 0 }
    await this.cutOffStep()
    this.kick()
  }

  private async cutOffStep(): Promise<void> {
    const now = this.d.clock.now()
    if (this.cutOff.left <= 0 || now < this.cutOff.at) return
    this.cutOff = { left: this.cutOff.left - 1, at: now + 2 * this.cluster.heartbeatMs() }
    await this.rotateGossipKeys()
    await this.networks.rotateKeys()
    this.dispatcher.pushAll()
  }

  private async rotateGossipKeys(): Promise<void> {
    this.d.applyGossipKeys(await this.cluster.rotateGossipKeys())
  }

  /** What every node's mesh serves: networks with their VNIs (and keys when encrypted), services' ports and VIPs, and the nodes it may talk to. */
  routing(): Routing {
    const nets = this.networks.list()
    const known = new Set(nets.map(n => n.ID))
    return {
      dataPathPort: this.cluster.record().dataPathPort,
      networks: nets.map(n => ({ id: n.ID, vni: n.Vni, ingress: n.Ingress, ...(n.Keys?.length ? { keys: n.Keys } : {}) })),
      services: this.d.store.list<Service>('services').map(svc => ({
        id: svc.ID,
        name: svc.Spec.Name,
        labels: svc.Spec.Labels ?? {},
        ports: svc.Endpoint.Ports ?? [],
        vips: this.networks
          .vips(svc.ID)
          .filter(v => known.has(v.NetworkID))
          .map(v => ({ network: v.NetworkID, loopback: v.Loopback })),
      })),
      nodes: this.nodes.list().map(n => n.id),
    }
  }

  /**
   * Log lines of these tasks from the nodes that ran them, each node asked
   * over its session (this node's own agent in process).
   */
  async taskLogs(tasks: Task[], opts: LogOptions, onLine: (task: Task, l: LogLine) => void, signal: AbortSignal): Promise<void> {
    const byNode = new Map<string, Task[]>()
    for (const t of tasks) if (t.NodeID) byNode.set(t.NodeID, [...(byNode.get(t.NodeID) ?? []), t])
    await Promise.all(
      [...byNode].map(async ([nodeId, list]) => {
        const byId = new Map(list.map(t => [t.ID, t]))
        if (!this.dispatcher.connected(nodeId)) return
        await this.dispatcher.logs(nodeId, [...byId.keys()], opts, (id, l) => byId.has(id) && onLine(byId.get(id)!, l), signal).catch(e =>
          this.d.log.warn({ err: e, nodeId }, 'logs from a node failed'),
        )
      }),
    )
  }

  /** Stops reconciling and serving sessions; tasks keep running (a restarted manager adopts them). */
  async close(): Promise<void> {
    for (const stop of this.stops.splice(0)) stop()
    await this.orchestrator.close()
    await this.dispatcher.close()
  }
}
