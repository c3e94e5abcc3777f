import type { Logger } from 'pino'
import type { CertificateBody } from '../control/ca.js'
import type { ControlNode } from '../control/control-node.js'
import { refusal } from '../control/remote-error.js'
import { JOIN_PROTOCOL } from '../control/join-protocol.js'
import { RPC_PROTOCOL } from '../control/rpc.js'
import { serveSession, SESSION_PROTOCOL, type Session } from '../control/session.js'
import { every, type Clock } from '../gossip/clock.js'
import { ETCD_PEER_PORT } from '../types/defaults.js'
import { MANAGER_STARTING, NO_LEADER, SwarmError } from '../types/errors.js'
import type { LogLine, LogOptions } from '../types/logs.js'
import type { NodeRecord, NodeSpec } from '../types/node.js'
import type { ApiAnswer, ApiCall, CheckInAnswer, Enrollment, Routing } from '../types/session.js'
import type { Service } from '../types/service.js'
import type { Task } from '../types/task.js'
import { Cluster, type ClusterTimings } from './cluster.js'
import { Configs } from './configs.js'
import type { Dispatcher } from './dispatcher.js'
import { Election } from './etcd/election.js'
import type { Fence } from './etcd/etcd-store.js'
import { initialCluster, type Member } from './etcd/members.js'
import { peerUrl } from './etcd/member.js'
import type { Replica } from './etcd/replica.js'
import type { KeyEncryption } from './data-key.js'
import type { EventLog } from './event-log.js'
import { clusterEvent } from './events.js'
import { LeaderDuties } from './leader.js'
import { Networks } from './networks.js'
import { Nodes, type NodeState } from './nodes.js'
import type { ManagerObserver } from './observer.js'
import { Secrets } from './secrets.js'
import { Services } from './services.js'
import type { WatchedState } from './state-store.js'
import type { Store } from './store.js'

/** swarmd's leader lease: etcd rounds a TTL up to 1.5 election timeouts (2 s with its 1 s), and the leader steps down half a second early. */
const LEADER_TTL_S = 2

export const LAST_MANAGER_DEMOTE = 'attempting to demote the last manager of the swarm'
export const QUORUM_LOSS = "can't remove member from the raft: this would result in a loss of quorum"

export interface ManagerDeps {
  /** The swarm's state: this node's own store with one manager, etcd's copy (replica.store) with several. */
  state: WatchedState
  /** This node's own store: its certificate, its data key, its etcd record. */
  local: Store
  /** With several managers: this node's etcd member, its client and its copy of the state. */
  replica?: Replica
  nodeId: string
  /** The node's private key (and the unlock key, with autolock): they unseal the data key (secrets, the CA key). */
  keys: KeyEncryption
  /** Where the events of the swarm's state changes go (`docker events`). */
  events: EventLog
  control: ControlNode
  /** Wall time (objects' timestamps come from it), and the timers of the periodic work. */
  clock: Clock
  timings: ClusterTimings
  /** Whether gossip holds a node alive. */
  inGossip: (nodeId: string) => boolean
  /** Whether gossip saw a node and holds it dead or gone. */
  deadInGossip: (nodeId: string) => boolean
  /** This node runs tasks (it has an executor). */
  runsTasks: boolean
  /** This node's gossip is up. */
  selfUp: () => boolean
  /** New gossip keys to use on this node. */
  applyGossipKeys: (keys: string[]) => void
  /** A node checked in: the node rejoins gossip with it if gossip lost it. */
  onCheckIn: (node: NodeRecord) => void
  /** Leadership came or went (the node moves its own agent's session). */
  onLeadership: (leader: boolean) => void
  /**
   * A manager asks to join etcd while this one runs alone on its own
   * store: the node moves the state into etcd first and answers with the
   * manager that then runs.
   */
  goReplicated: () => Promise<Manager>
  /** What serves an API call forwarded by another manager (the node's API server, once it listens). */
  serveApi: () => ((call: ApiCall) => Promise<ApiAnswer>) | undefined
  /** Told of RPCs, scheduling decisions, tasks reaching running and leader changes (the node's metrics). */
  observer?: ManagerObserver
  log: Logger
}

/**
 * The manager role of a node (swarmkit's manager): the cluster (CA, tokens,
 * keys, joins and RPCs), the node view, services, networks and secrets over
 * the swarm's state; and, on the leader only, the duties that must run once
 * (leader.ts). With several managers the leader is elected through etcd;
 * the others answer the API from their copy of the state and send nodes'
 * sessions to the leader. It owns no sockets of its own: the control node
 * and gossip belong to the node that runs it.
 */
export class Manager {
  readonly cluster: Cluster
  readonly nodes: Nodes
  readonly secrets: Secrets
  readonly configs: Configs
  readonly networks: Networks
  readonly services: Services
  private duties: LeaderDuties | undefined
  private election: Election | undefined
  private readonly stops: (() => void)[] = []
  private closed = false

  constructor(private readonly d: ManagerDeps) {
    const log = d.log.child({ layer: 'manager' })
    this.cluster = new Cluster({ state: d.state, local: d.local, keys: d.keys, timings: d.timings, log })
    this.nodes = new Nodes({
      store: d.state,
      clock: d.clock,
      self: d.nodeId,
      selfUp: d.selfUp,
      liveness: { inGossip: id => d.inGossip(id), deadInGossip: id => d.deadInGossip(id), connected: id => !!this.duties?.dispatcher.connected(id) },
      heartbeatMs: () => this.cluster.heartbeatMs(),
    })
    this.secrets = new Secrets(d.state, () => this.cluster.dataKey())
    this.configs = new Configs(d.state)
    this.networks = new Networks(d.state)
    this.services = new Services({ store: d.state, secrets: this.secrets, configs: this.configs, networks: this.networks, kick: () => void this.kick() })
  }

  get replicated(): boolean {
    return !!this.d.replica
  }

  get isLeader(): boolean {
    return !!this.duties
  }

  /** The leader's node ID: this one's alone; the election's with several managers. */
  get leaderId(): string | undefined {
    return this.d.replica ? this.election?.leader : this.d.nodeId
  }

  /** The leader's dispatcher; elsewhere, swarm's no-leader error. */
  get dispatcher(): Dispatcher {
    if (!this.duties) throw new SwarmError('E_NOT_LEADER', NO_LEADER)
    return this.duties.dispatcher
  }

  /** Serves the control plane (joins, RPCs, sessions), renews this manager's certificate, and leads or campaigns. */
  async start(): Promise<void> {
    const { control, log } = this.d
    this.stops.push(this.watchState())
    await this.cluster.sealDataKey()
    await this.networks.ensureIngress().catch(e => (this.d.replica ? log.info({ err: e }, 'the ingress network is created by the leader') : Promise.reject(e)))
    const rpc = this.d.observer?.rpc?.bind(this.d.observer)
    await this.cluster.serve(control, { nodes: this.nodes, methods: this.methods(), managers: () => this.managerAddrs(), ...(rpc ? { onCall: rpc } : {}) })
    await serveSession(control, {
      caPublicKey: () => this.cluster.ca().publicKey,
      selfCert: () => this.cluster.selfCert(),
      role: id => this.nodes.role(id),
      onRefused: why => log.warn({ why }, 'session refused'),
      refuse: () => (this.duties ? undefined : refusal(`${NO_LEADER_HERE}: ${this.leaderAddr() ?? 'none'}`, 'unavailable')),
      onSession: (caller, session) => {
        this.nodes.seen(caller.nodeId)
        void this.kick()
        return this.dispatcher.attach(caller.nodeId, session)
      },
    })
    this.stops.push(every(this.d.clock, () => this.cluster.heartbeatMs(), () => this.cluster.renewSelf(), e => log.warn({ err: e }, 'certificate renewal failed')))
    if (!this.d.replica) return this.lead()
    this.election = new Election({
      client: this.d.replica.client,
      nodeId: this.d.nodeId,
      ttlS: LEADER_TTL_S,
      log,
      leaderGone: id => this.d.replica!.memberGone(id),
      on: {
        elected: fence => void this.lead(fence),
        deposed: () => void this.follow(),
        leaderChanged: id => {
          log.info({ leader: id }, 'leader changed')
          this.d.observer?.leaderChanged?.(id)
        },
      },
    })
    await this.election.start()
  }

  /**
   * What this manager does with each change of the state, whoever made it
   * (with several managers, etcd's watch brings every manager's): the
   * event `docker events` shows, and its data key sealed anew when
   * autolock was turned on or off or its key rotated.
   */
  private watchState(): () => void {
    return this.d.state.onChange((table, _id, before, after) => {
      if (table === 'cluster' || table === '*') void this.cluster.sealDataKey().catch(e => this.d.log.error({ err: e }, 'sealing the data key under the swarm\'s autolock setting failed'))
      const e = clusterEvent(table, before, after, this.d.clock.now())
      if (e) this.d.events.publish(e)
    })
  }

  /** The RPCs only the leader answers (a node's check-in, a manager's enrollment), as the cluster serves them. */
  private methods(): Parameters<Cluster['serve']>[1]['methods'] {
    return {
      heartbeat: {
        roles: ['worker', 'manager'],
        run: (_params, caller) => this.checkIn(caller),
      },
      // A write another manager forwards (swarmkit's raft proxy): served here through the same API as a local one.
      'api.call': {
        roles: ['manager'],
        run: async params => {
          if (!this.duties) throw new SwarmError('E_NOT_LEADER', NO_LEADER)
          const serve = this.d.serveApi()
          if (!serve) throw managerStarting()
          await this.sync()
          return serve(params as ApiCall)
        },
      },
      'manager.enroll': {
        roles: ['manager'],
        run: async (params, caller) => {
          if (!this.duties) throw new SwarmError('E_NOT_LEADER', `${NO_LEADER_HERE}: ${this.leaderAddr() ?? 'none'}`)
          const addr = (params as { managerAddr?: unknown } | null)?.managerAddr
          if (typeof addr !== 'string') throw new SwarmError('E_INVALID_ARGUMENT', 'manager.enroll needs the control address the new manager advertises (managerAddr)')
          const m = this.d.replica ? this : await this.d.goReplicated()
          return m.enroll(caller, addr)
        },
      },
    }
  }

  private checkIn(caller: CertificateBody): CheckInAnswer {
    if (!this.duties) throw new SwarmError('E_NOT_LEADER', `${NO_LEADER_HERE}: ${this.leaderAddr() ?? 'none'}`)
    this.nodes.seen(caller.nodeId)
    const n = this.d.state.get<NodeRecord>('nodes', caller.nodeId)
    if (n) this.d.onCheckIn(n)
    return { gossipKeys: this.cluster.record().gossipKeys, periodMs: this.cluster.heartbeatMs(), role: n?.spec.Role ?? 'worker', managers: this.managerAddrs() }
  }

  /** Every manager's control address, the leader's first. */
  managerAddrs(): string[] {
    const ms = this.nodes.list().filter(n => n.spec.Role === 'manager' && n.managerAddr)
    const leader = this.leaderId
    return ms.sort((a, b) => Number(b.id === leader) - Number(a.id === leader)).map(n => n.managerAddr!)
  }

  leaderAddr(): string | undefined {
    const id = this.leaderId
    return id ? this.d.state.get<NodeRecord>('nodes', id)?.managerAddr : undefined
  }

  /**
   * A manager joins etcd: a learner member for its address, a member
   * certificate from the managers' etcd CA, and the data key. The leader
   * promotes the learner once it has caught up.
   */
  async enroll(caller: CertificateBody, managerAddr: string): Promise<Enrollment> {
    const rep = this.d.replica!
    let node = this.d.state.get<NodeRecord>('nodes', caller.nodeId)
    if (!node) throw new SwarmError('E_NODE_NOT_FOUND', `node ${caller.nodeId} not found`)
    if (node.managerAddr !== managerAddr) {
      // A promoted worker: where the others (and the workers) reach it as a manager.
      node = { ...node, managerAddr, version: node.version + 1, updatedAt: new Date().toISOString() }
      await this.d.state.commit([{ op: 'put', table: 'nodes', id: node.id, value: node }])
    }
    const etcdCa = await this.cluster.etcdCA()
    const tls = { ca: etcdCa.certPem, ...(await etcdCa.issue({ nodeId: node.id, ip: node.addr, ttlMs: this.cluster.certTtlMs() })) }
    const { cluster } = await rep.members.addLearner(node.id, peerUrl(node.addr, ETCD_PEER_PORT))
    this.d.log.info({ nodeId: node.id, addr: node.addr }, 'a manager joins etcd')
    return {
      tls,
      initialCluster: initialCluster(cluster.filter((m: Member) => m.name)),
      token: this.cluster.record().id,
      dataKey: this.cluster.dataKey().exportKey().toString('base64'),
    }
  }

  private async lead(fence?: Fence): Promise<void> {
    if (this.duties || this.closed) return
    const state = fence ? this.d.replica!.store.fenced(fence) : this.d.state
    const duties = new LeaderDuties({
      state,
      nodeId: this.d.nodeId,
      cluster: this.cluster,
      nodes: this.nodes,
      networks: this.networks,
      secrets: this.secrets,
      configs: this.configs,
      clock: this.d.clock,
      runsTasks: this.d.runsTasks,
      routing: () => this.routing(),
      nodeAttachments: () => this.networks.nodeAttachments(),
      applyGossipKeys: this.d.applyGossipKeys,
      ...(this.d.replica ? { replica: this.d.replica } : {}),
      resign: () => void this.election?.resign(),
      ...(this.d.observer ? { observer: this.d.observer } : {}),
      log: this.d.log,
    })
    this.duties = duties
    if (this.d.replica) await this.networks.ensureIngress().catch(e => this.d.log.warn({ err: e }, 'ingress network not created'))
    duties.start()
    this.d.onLeadership(true)
  }

  private async follow(): Promise<void> {
    const duties = this.duties
    this.duties = undefined
    if (!duties) return
    await duties.close()
    this.d.onLeadership(false)
  }

  /** This node's own agent, on the leader: it talks to the dispatcher in process, through the same messages as a remote node's. */
  attachLocal(session: Session): (msg: unknown) => void {
    return this.dispatcher.attach(this.d.nodeId, session)
  }

  /** A reconciliation pass now (on the leader); resolves when it is done. */
  kick(): Promise<void> {
    return this.duties?.orchestrator.kick() ?? Promise.resolve()
  }

  /** Waits until this manager's copy of the state holds every write committed before (a no-op with one manager): what an API write starts with. */
  async sync(): Promise<void> {
    await this.d.replica?.store.sync()
  }

  /** A node's state: the leader's own view; another manager shows what the leader last wrote. */
  nodeState(n: NodeRecord): NodeState {
    if (this.duties || !this.d.replica) return this.nodes.state(n.id)
    return n.status?.state ?? 'unknown'
  }

  /** Docker's ManagerStatus of a manager node: leader, reachability (its etcd member there and alive), address. */
  managerStatus(n: NodeRecord): { Leader: boolean; Reachability: 'reachable' | 'unreachable'; Addr: string } | undefined {
    if (n.spec.Role !== 'manager' || !n.managerAddr) return undefined
    return { Leader: n.id === this.leaderId, Reachability: this.reachable(n.id) ? 'reachable' : 'unreachable', Addr: n.managerAddr }
  }

  private reachable(nodeId: string): boolean {
    const rep = this.d.replica
    if (!rep) return nodeId === this.d.nodeId
    if (nodeId === this.d.nodeId) return rep.quorum
    return rep.memberList().some(m => m.name === nodeId && !m.learner) && this.d.inGossip(nodeId)
  }

  /**
   * Swarm's checks on a demotion, on the consensus' members as swarmkit's
   * are on raft's: never the last member, and never one whose removal
   * leaves the reachable members short of a majority of those left. A
   * manager that is no member (lost, after --force-new-cluster) may go.
   */
  private checkDemotion(n: NodeRecord): void {
    const voters = this.d.replica ? this.d.replica.memberList().filter(m => !m.learner).map(m => m.name) : this.nodes.list().filter(x => x.spec.Role === 'manager').map(x => x.id)
    if (!voters.includes(n.id)) return
    if (voters.length <= 1) throw new SwarmError('E_LAST_MANAGER_DEMOTE', `rpc error: code = FailedPrecondition desc = ${LAST_MANAGER_DEMOTE}`)
    const left = voters.filter(id => id !== n.id)
    if (left.filter(id => this.reachable(id)).length <= left.length / 2) throw new SwarmError('E_QUORUM_LOSS', `rpc error: code = FailedPrecondition desc = ${QUORUM_LOSS}`)
  }

  /** The managers that count for quorum, and how many of them are reachable. */
  managerCounts(): { managers: number; reachable: number } {
    const ms = this.nodes.list().filter(n => n.spec.Role === 'manager')
    return { managers: ms.length, reachable: ms.filter(n => this.reachable(n.id)).length }
  }

  /**
   * `node update`, with swarm's checks on a demotion: never the last
   * manager, and never when the managers left reachable would not be a
   * majority of those left.
   */
  async updateNode(ref: string, version: number, spec: NodeSpec): Promise<void> {
    const n = this.nodes.get(ref)
    if (n.spec.Role === 'manager' && spec.Role === 'worker') this.checkDemotion(n)
    await this.nodes.update(ref, version, spec)
    void this.kick()
  }

  /** `node rm`: refused for a manager (demote it first) and, without force, for a node that is not Down. */
  async removeNode(ref: string, force: boolean): Promise<void> {
    const n = this.nodes.get(ref)
    if (n.spec.Role === 'manager') {
      throw new SwarmError('E_NODE_IS_MANAGER', `rpc error: code = FailedPrecondition desc = node ${n.id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`)
    }
    await this.nodes.remove(ref, force)
    this.d.log.info({ nodeId: n.id, force }, 'node removed')
    await this.duties?.nodeRemoved(n.id)
  }

  /**
   * What every node's mesh serves: networks with their VNIs (encrypted ones
   * marked, with every key: the dispatcher gives each node only those it is
   * owed), services' ports and VIPs, and the nodes it may talk to.
   */
  routing(): Routing {
    const nets = this.networks.list()
    const known = new Set(nets.map(n => n.ID))
    return {
      dataPathPort: this.cluster.record().dataPathPort,
      networks: nets.map(n => ({ id: n.ID, name: n.Name, vni: n.Vni, ingress: n.Ingress, subnet: n.Subnet, gateway: n.Gateway, ...(n.Keys?.length ? { encrypted: true as const, keys: n.Keys } : {}) })),
      services: this.d.state.list<Service>('services').map(svc => ({
        id: svc.ID,
        name: svc.Spec.Name,
        labels: svc.Spec.Labels ?? {},
        ports: svc.Endpoint.Ports ?? [],
        vips: this.networks
          .vips(svc.ID)
          .filter(v => known.has(v.NetworkID))
          .map(v => ({ network: v.NetworkID, loopback: v.Loopback, addr: v.Addr.split('/')[0]! })),
        ...serviceNames(svc, known),
      })),
      nodes: this.nodes.list().map(n => n.id),
    }
  }

  /**
   * Log lines of these tasks from the nodes that ran them, each node asked
   * over its session with the leader (this node's own agent in process).
   */
  async taskLogs(tasks: Task[], opts: LogOptions, onLine: (task: Task, l: LogLine) => void, signal: AbortSignal): Promise<void> {
    const dispatcher = this.dispatcher
    const byNode = new Map<string, Task[]>()
    for (const t of tasks) if (t.NodeID) byNode.set(t.NodeID, [...(byNode.get(t.NodeID) ?? []), t])
    await Promise.all(
      [...byNode].map(async ([nodeId, list]) => {
        const byId = new Map(list.map(t => [t.ID, t]))
        if (!dispatcher.connected(nodeId)) return
        await dispatcher.logs(nodeId, [...byId.keys()], opts, (id, l) => byId.has(id) && onLine(byId.get(id)!, l), signal).catch(e =>
          this.d.log.warn({ err: e, nodeId }, 'logs from a node failed'),
        )
      }),
    )
  }

  /** Gives the leadership up at once (another manager takes over without waiting for the lease to expire). */
  async resign(): Promise<void> {
    await this.election?.resign()
  }

  /** Stops leading, campaigning and serving sessions; tasks keep running (a restarted manager adopts them). */
  async close(): Promise<void> {
    this.closed = true
    for (const stop of this.stops.splice(0)) stop()
    // What this manager served goes with it: a demoted node admits no join and answers no manager's call.
    for (const p of [JOIN_PROTOCOL, RPC_PROTOCOL, SESSION_PROTOCOL]) await this.d.control.unhandle(p).catch(() => undefined)
    await this.election?.close()
    await this.follow()
  }
}

/** The start of what a manager that does not lead answers a node's check-in or session with. */
export const NO_LEADER_HERE = 'this manager is not the leader; the leader is at'

/** The text an API call gets while the manager role is being prepared (moving into etcd, joining it). */
export const managerStarting = (): SwarmError => new SwarmError('E_MANAGER_STARTING', MANAGER_STARTING)

/** What a node's DNS needs of a service beyond its VIPs: its endpoint mode, the networks it is on, its aliases there. */
function serviceNames(svc: Service, known: Set<string>): Pick<Routing['services'][number], 'mode' | 'networks' | 'aliases'> {
  const attached = (svc.Spec.TaskTemplate.Networks ?? []).filter(n => known.has(n.Target))
  const aliases = Object.fromEntries(attached.filter(n => n.Aliases?.length).map(n => [n.Target, n.Aliases!]))
  return {
    ...(svc.Spec.EndpointSpec?.Mode === 'dnsrr' ? { mode: 'dnsrr' as const } : {}),
    ...(attached.length ? { networks: attached.map(n => n.Target) } : {}),
    ...(Object.keys(aliases).length ? { aliases } : {}),
  }
}
