import { arch, cpus, totalmem } from 'node:os'
import type { Clock } from '../gossip/clock.js'
import { SwarmError } from '../types/errors.js'
import type { NodeRecord, NodeRole, NodeSpec } from '../types/node.js'
import type { NodeInfo } from './orchestrator/pass.js'
import type { StateStore } from './state-store.js'

const ARCH = arch() === 'x64' ? 'x86_64' : arch()

export type NodeState = 'ready' | 'down' | 'unknown'

/** What the node view needs to know besides the store: gossip's view of a node, and its session with the dispatcher. */
export interface Liveness {
  /** The node is a live member of gossip. */
  inGossip(nodeId: string): boolean
  /** Gossip saw the node and holds it dead or gone (not merely: does not know it yet). */
  deadInGossip(nodeId: string): boolean
  /** The node has a session open with this manager. */
  connected(nodeId: string): boolean
}

/**
 * The swarm's nodes as the manager keeps them: the records (swarm's Node
 * objects) and each node's state, Ready, Down or Unknown, from when it last
 * checked in over the control plane and what gossip says of it. Time comes
 * from the injected clock, so the rules are tested in virtual time.
 */
export class Nodes {
  /** When each node's control session last checked in. */
  private readonly lastSeen = new Map<string, number>()
  private startedAt: number

  constructor(
    private readonly d: {
      store: StateStore
      clock: Clock
      /** This manager's own node ID. */
      self: string
      /** This node is up (its gossip runs). */
      selfUp: () => boolean
      liveness: Liveness
      /** How often nodes check in. */
      heartbeatMs: () => number
    },
  ) {
    this.startedAt = d.clock.now()
  }

  list(): NodeRecord[] {
    return this.d.store.list<NodeRecord>('nodes')
  }

  /** A node by ID, unique ID prefix, or hostname, as the docker CLI allows. */
  get(ref: string): NodeRecord {
    const all = this.list()
    const exact = all.find(n => n.id === ref)
    if (exact) return exact
    const matches = all.filter(n => n.id.startsWith(ref) || n.hostname === ref)
    if (matches.length === 1) return matches[0]!
    if (matches.length > 1) throw new SwarmError('E_AMBIGUOUS', `node ${ref} is ambiguous (${matches.length} matches found)`)
    throw new SwarmError('E_NODE_NOT_FOUND', `node ${ref} not found`)
  }

  /** The role a node has now, or undefined for a node the swarm does not have (removed, or never joined). */
  role(nodeId: string): NodeRole | undefined {
    return this.d.store.get<NodeRecord>('nodes', nodeId)?.spec.Role
  }

  async update(ref: string, version: number, spec: NodeSpec): Promise<NodeRecord> {
    const n = this.get(ref)
    if (version !== n.version) throw new SwarmError('E_OUT_OF_SEQUENCE', 'update out of sequence')
    const next: NodeRecord = { ...n, spec: { ...n.spec, ...spec, Labels: spec.Labels ?? {} }, version: n.version + 1, updatedAt: new Date().toISOString() }
    await this.d.store.commit([{ op: 'put', table: 'nodes', id: n.id, value: next }])
    return next
  }

  /** `node rm`: only a Down node unless forced, never this manager itself. */
  async remove(ref: string, force: boolean): Promise<NodeRecord> {
    const n = this.get(ref)
    if (n.id === this.d.self) {
      throw new SwarmError('E_NODE_IS_MANAGER', `rpc error: code = FailedPrecondition desc = node ${n.id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`)
    }
    if (!force && this.isReady(n.id)) throw new SwarmError('E_NODE_NOT_DOWN', `rpc error: code = FailedPrecondition desc = node ${n.id} is not down and can't be removed`)
    await this.d.store.commit([{ op: 'delete', table: 'nodes', id: n.id }])
    this.lastSeen.delete(n.id)
    return n
  }

  /** A node admitted by a join: a new record, or the one it had (its spec kept) with its new address. */
  async admit(a: { nodeId: string; role: NodeRole; hostname: string; addr: string; managerAddr?: string }): Promise<NodeRecord> {
    const t = new Date().toISOString()
    const existing = this.d.store.get<NodeRecord>('nodes', a.nodeId)
    const node: NodeRecord = {
      id: a.nodeId,
      version: (existing?.version ?? 0) + 1,
      createdAt: existing?.createdAt ?? t,
      updatedAt: t,
      spec: existing?.spec ?? { Labels: {}, Role: a.role, Availability: 'active' },
      hostname: a.hostname,
      addr: a.addr,
      ...(a.managerAddr ? { managerAddr: a.managerAddr } : {}),
    }
    await this.d.store.commit([{ op: 'put', table: 'nodes', id: node.id, value: node }])
    this.seen(node.id)
    return node
  }

  /** A new leader starts its view afresh: nodes it has not heard from are Unknown for six heartbeats, as after swarm's leader change. */
  restartGrace(): void {
    this.startedAt = this.d.clock.now()
    this.lastSeen.clear()
  }

  /** The node checked in (a heartbeat, a session opened). */
  seen(nodeId: string): void {
    this.lastSeen.set(nodeId, this.d.clock.now())
  }

  /**
   * Ready needs both signals: the node is alive in gossip, and it checked in
   * over the control plane within three heartbeat periods. Gossip declaring
   * it dead makes it Down at once when its session is gone too (a crashed
   * node's connections close); while its session stays open (a stall, a
   * partition, or a stale rumour from a node just back from one), it takes
   * a missed heartbeat as well, so a rumour alone never moves tasks.
   */
  isReady(nodeId: string): boolean {
    if (nodeId === this.d.self) return this.d.selfUp()
    const seen = this.lastSeen.get(nodeId)
    if (seen === undefined) return false
    const since = this.d.clock.now() - seen
    const period = this.d.heartbeatMs()
    if (since >= 3 * period + 1_000) return false
    if (this.d.liveness.inGossip(nodeId)) return true
    return this.d.liveness.connected(nodeId) && since < 1.5 * period + 500
  }

  /**
   * Ready, Down, or Unknown: right after the manager starts (or becomes the
   * leader), a node it has not heard from yet is Unknown (swarm's state after
   * a leader change) for six heartbeat periods; its tasks are not replaced
   * meanwhile, and nothing new is placed on it. A node gossip already holds
   * dead is Down at once: a manager host that died with the leader has its
   * tasks replaced now, not half a minute later.
   */
  state(nodeId: string): NodeState {
    if (this.isReady(nodeId)) return 'ready'
    const graceOver = this.d.clock.now() - this.startedAt > 6 * this.d.heartbeatMs()
    return !graceOver && !this.lastSeen.has(nodeId) && !this.d.liveness.deadInGossip(nodeId) ? 'unknown' : 'down'
  }

  /** Nodes as the orchestrator and scheduler see them: the records, their states, and whether they run tasks at all. */
  infos(selfRunsTasks: boolean): NodeInfo[] {
    return this.list().map(n => {
      const state = this.state(n.id)
      const self = n.id === this.d.self
      return {
        id: n.id,
        hostname: n.hostname,
        role: n.spec.Role,
        addr: n.addr,
        labels: n.spec.Labels,
        engineLabels: {},
        platform: { os: 'linux', arch: ARCH },
        // Nodes do not report their resources yet: only this one's are known.
        resources: self ? { nanoCPUs: cpus().length * 1e9, memoryBytes: totalmem() } : { nanoCPUs: Number.MAX_SAFE_INTEGER, memoryBytes: Number.MAX_SAFE_INTEGER },
        ready: state === 'ready' && (self ? selfRunsTasks : true),
        unknown: state === 'unknown',
        availability: n.spec.Availability,
      }
    })
  }
}
