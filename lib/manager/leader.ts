import type { Logger } from 'pino'
import { every, type Clock } from '../gossip/clock.js'
import { KEY_ROTATION_MS } from '../types/defaults.js'
import type { NodeAttachmentRecord } from '../types/network.js'
import type { NodeRecord } from '../types/node.js'
import type { Routing } from '../types/session.js'
import type { Cluster } from './cluster.js'
import type { Configs } from './configs.js'
import { CutOffs } from './cut-offs.js'
import { Dispatcher } from './dispatcher.js'
import type { Replica } from './etcd/replica.js'
import type { Networks } from './networks.js'
import type { Nodes } from './nodes.js'
import { Orchestrator } from './orchestrator/orchestrator.js'
import { observedPlanner, type ManagerObserver } from './observer.js'
import { planner } from './placement.js'
import type { Secrets } from './secrets.js'
import type { StateStore } from './state-store.js'

/** The cut-offs' name for the gossip keys (an encrypted network's is its ID, 25 characters). */
const GOSSIP = 'gossip'
/** A learner that has not caught up in this long is removed (k3s gives up after 5 minutes too). */
const LEARNER_TIMEOUT_MS = 5 * 60_000

export interface LeaderDeps {
  /** The state as the leader writes it: fenced by its token when there are several managers. */
  state: StateStore
  nodeId: string
  cluster: Cluster
  nodes: Nodes
  networks: Networks
  secrets: Secrets
  configs: Configs
  clock: Clock
  runsTasks: boolean
  routing: () => Routing
  /** Every node's own addresses on the networks. */
  nodeAttachments: () => NodeAttachmentRecord[]
  /** New gossip keys to use on this node. */
  applyGossipKeys: (keys: string[]) => void
  /** With several managers: etcd's membership, reconciled with the managers' roles. */
  replica?: Replica
  /** This manager is demoted: it must give the leadership up so another removes its member. */
  resign: () => void
  observer?: ManagerObserver
  log: Logger
}

/**
 * What only the leader does (swarmkit's becomeLeader): the orchestrator and
 * scheduler, the dispatcher that every node's session attaches to, the key
 * rotations, the cut-off of removed nodes, the nodes' states written for
 * the other managers, and, with several managers, etcd's membership kept in
 * step with the managers' roles. A new leader starts it afresh; the nodes
 * it has not heard from yet are Unknown for six heartbeats, so a change of
 * leader moves no task.
 */
export class LeaderDuties {
  readonly dispatcher: Dispatcher
  readonly orchestrator: Orchestrator
  private readonly stops: (() => void)[] = []
  /** Rotations still owed to cut nodes off: a removed one from every key, one that left an encrypted network from its keys. */
  private readonly cutOffs = new CutOffs()
  private readonly learners = new Map<string, number>()

  constructor(private readonly d: LeaderDeps) {
    const log = d.log.child({ layer: 'manager' })
    this.dispatcher = new Dispatcher({
      store: d.state,
      routing: d.routing,
      nodeAttachments: d.nodeAttachments,
      secrets: ids => d.secrets.values(ids),
      configs: ids => d.configs.values(ids),
      report: (nodeId, updates) => this.orchestrator.report(nodeId, updates),
      keysWithdrawn: networkId => {
        this.cutOffs.owe(networkId)
        void this.cutOffStep().catch(e => log.warn({ err: e, network: networkId }, 'key rotation after a node left an encrypted network failed'))
      },
      log,
    })
    const scheduled = d.observer?.scheduled?.bind(d.observer)
    const taskRunning = d.observer?.taskRunning?.bind(d.observer)
    this.orchestrator = new Orchestrator({
      store: d.state,
      clock: d.clock,
      nodes: () => d.nodes.infos(d.runsTasks),
      planner: scheduled ? observedPlanner(planner, scheduled) : planner,
      changed: () => this.dispatcher.pushAll(),
      ...(taskRunning ? { taskRunning } : {}),
      // Swarm's --task-history-limit, as the cluster has it now; negative keeps every ended task.
      taskHistory: () => (d.cluster.taskHistory() < 0 ? Infinity : d.cluster.taskHistory()),
      log,
    })
  }

  start(): void {
    const fail = (what: string) => (e: unknown) => this.d.log.warn({ err: e }, `${what} failed`)
    const { clock, cluster } = this.d
    this.d.nodes.restartGrace()
    this.stops.push(
      every(clock, () => 1_000, () => this.tick(), fail('reconciliation')),
      every(clock, () => cluster.timings().gossipKeyRotationMs, () => this.rotateGossipKeys(), fail('gossip key rotation')),
      every(clock, () => KEY_ROTATION_MS, () => this.rotateNetworkKeys(), fail('network key rotation')),
      every(clock, () => cluster.heartbeatMs(), () => this.cutOffStep(), fail('key rotation to cut a node off')),
    )
    void this.orchestrator.kick()
  }

  private async tick(): Promise<void> {
    for (const id of this.dispatcher.nodeIds()) if (!this.d.state.get('nodes', id)) await this.nodeRemoved(id)
    await this.orchestrator.kick()
    await this.writeStates()
    if (this.d.replica) await this.reconcileMembers()
  }

  /**
   * A node is gone from the swarm (`node rm`): its session closes at once so
   * nothing more is pushed to it, and the gossip keys and every encrypted
   * network's keys rotate until none it holds is in use (three rotations,
   * two heartbeat periods apart, so the other nodes always have a key
   * before it encrypts). The dispatcher asks the same of one network's
   * keys when a node's last task there stops.
   */
  async nodeRemoved(nodeId: string): Promise<void> {
    await this.dispatcher.detach(nodeId)
    this.cutOffs.owe(GOSSIP)
    for (const n of this.d.networks.list()) if (n.Keys?.length) this.cutOffs.owe(n.ID)
    await this.cutOffStep()
    void this.orchestrator.kick()
  }

  private async cutOffStep(): Promise<void> {
    const due = this.cutOffs.due(this.d.clock.now(), 2 * this.d.cluster.heartbeatMs())
    if (!due.length) return
    if (due.includes(GOSSIP)) await this.rotateGossipKeys()
    const networks = new Set(due.filter(k => k !== GOSSIP))
    if (networks.size) await this.rotateNetworkKeys(networks)
  }

  /** Rotates the keys of these encrypted networks (default: all) and hands every node what it is owed of them. */
  private async rotateNetworkKeys(only?: ReadonlySet<string>): Promise<void> {
    await this.d.networks.rotateKeys(this.d.state, only)
    this.dispatcher.pushAll()
  }

  private async rotateGossipKeys(): Promise<void> {
    this.d.applyGossipKeys(await this.d.cluster.rotateGossipKeys(this.d.state))
  }

  /** The other managers show the nodes' states as the leader sees them, and `docker events` tells each change: each is written. */
  private async writeStates(): Promise<void> {
    const muts = []
    for (const n of this.d.nodes.list()) {
      const state = this.d.nodes.state(n.id)
      if (n.status?.state !== state) muts.push({ op: 'put' as const, table: 'nodes', id: n.id, value: { ...n, status: { state } } satisfies NodeRecord })
    }
    if (muts.length) await this.d.state.commit(muts)
  }

  /**
   * etcd's membership follows the managers' roles (swarmkit's role
   * manager): learners are promoted once caught up (or removed when they
   * never do), and the member of a node that is no longer a manager (or no
   * longer in the swarm) is removed; this leader's own, by resigning first.
   */
  private async reconcileMembers(): Promise<void> {
    const rep = this.d.replica!
    const members = rep.memberList()
    for (const m of members) {
      const node = m.name ? this.d.state.get<NodeRecord>('nodes', m.name) : undefined
      if (m.learner) {
        const since = this.learners.get(m.id) ?? this.d.clock.now()
        this.learners.set(m.id, since)
        if (await rep.members.promote(m.id)) this.learners.delete(m.id)
        else if (this.d.clock.now() - since > LEARNER_TIMEOUT_MS) await rep.members.remove(m, members)
        continue
      }
      if (!m.name || node?.spec.Role === 'manager') continue
      if (m.name === this.d.nodeId) {
        this.d.log.info('this manager was demoted: giving the leadership up')
        this.d.resign()
        return
      }
      await rep.members.remove(m, members).catch(e => this.d.log.warn({ err: e, member: m.name }, 'etcd: removing the member of a demoted manager failed'))
    }
  }

  async close(): Promise<void> {
    for (const stop of this.stops.splice(0)) stop()
    await this.orchestrator.close()
    await this.dispatcher.close()
  }
}
