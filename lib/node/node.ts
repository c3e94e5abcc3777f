import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Agent } from '../agent/agent.js'
import { CheckIn } from '../agent/checkin.js'
import type { Executor } from '../agent/executor.js'
import { ManagerPicker, type ManagerLink } from '../agent/manager-link.js'
import type { DataPlaneChoice, DataPlaneStatus } from '../agent/data-plane.js'
import { certificateAuth } from '../agent/mesh-auth.js'
import { NodeMesh } from '../agent/node-mesh.js'
import { NodeDns, USERSPACE_DNS } from '../agent/node-dns.js'
import { WorkerSession } from '../agent/worker-session.js'
import type { NodeCertificate } from '../control/ca.js'
import { ControlNode } from '../control/control-node.js'
import { exportPrivateKey, generateKeyPair, importPrivateKey, type KeyPair, nodeIdFor, publicKeyFromRaw, rawPublicKey } from '../control/identity.js'
import { requestJoin } from '../control/join-protocol.js'
import { callRpc } from '../control/rpc.js'
import type { Session } from '../control/session.js'
import { systemClock, wallClock } from '../gossip/clock.js'
import type { Membership } from '../gossip/membership.js'
import type { Mesh } from '../mesh/mesh.js'
import { Cluster, DEFAULT_TIMINGS, type ClusterTimings } from '../manager/cluster.js'
import type { CommitObserver } from '../manager/commit-timing.js'
import { dataKeyLocked, newDataKey, openDataKey, type KeyEncryption } from '../manager/data-key.js'
import { EventLog } from '../manager/event-log.js'
import { initialCluster } from '../manager/etcd/members.js'
import { peerUrl } from '../manager/etcd/member.js'
import { copyState, dropReplicated, REPLICATED_TABLES } from '../manager/etcd/migrate.js'
import { Replica, retireMember, type HaRecord } from '../manager/etcd/replica.js'
import { Manager, managerStarting } from '../manager/manager.js'
import type { ManagerObserver } from '../manager/observer.js'
import type { StateStore, WatchedState } from '../manager/state-store.js'
import { parseUnlockKey } from '../manager/unlock-key.js'
import { Store, type Mutation } from '../manager/store.js'
import { splitAddr } from '../types/addr.js'
import { CONTROL_PORT, ETCD_PEER_PORT, GOSSIP_PORT } from '../types/defaults.js'
import { ALREADY_IN_SWARM, NO_LEADER, NOT_IN_SWARM, NOT_MANAGER, SWARM_LOCKED, SwarmError } from '../types/errors.js'
import type { ClusterRecord, InitRequest, JoinRequest, NodeRecord } from '../types/node.js'
import type { ApiAnswer, ApiCall, CheckInAnswer, Enrollment } from '../types/session.js'
import { applyGossipKeys, startGossip } from './gossip.js'
import type { WorkerRecord } from './worker-record.js'

const LAST_MANAGER =
  'You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.'
const quorumLeave = (left: number, of: number): string =>
  `You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves ${left} managers out of ${of}. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with \`--force-new-cluster\`. Use \`--force\` to suppress this message.`

/** The tables of a node's own store that make it a member of a swarm. */
const NODE_TABLES = ['worker', 'certs', 'keys', 'ha']

/** The node's Ed25519 key in its data dir: its identity (the node ID derives from it). */
const NODE_KEY = 'node.key'

/** A fresh node key, written (owner-only) before it is used, through a rename so a crash leaves the old key or the new. */
function newNodeKey(dataDir: string): KeyPair {
  const identity = generateKeyPair()
  const path = join(dataDir, NODE_KEY)
  writeFileSync(`${path}.tmp`, exportPrivateKey(identity.privateKey), { mode: 0o600 })
  renameSync(`${path}.tmp`, path)
  return identity
}

/** How long a demoted manager waits for the leader to remove its etcd member. */
const REMOVAL_WAIT_MS = 20_000

/** What a node tells its metrics as it happens: its manager role's events, and each commit to its stores. */
export interface NodeObserver extends ManagerObserver {
  commit?(store: 'local' | 'etcd', ms: number, ok: boolean): void
}

/** The store option that times its commits for the observer, if there is one. */
const commitHook = (o: NodeOptions, store: 'local' | 'etcd'): { onCommit?: CommitObserver } => {
  const commit = o.observer?.commit?.bind(o.observer)
  return commit ? { onCommit: (ms, ok) => commit(store, ms, ok) } : {}
}

/** What runs on a node now (each part comes and goes with its roles): what its metrics read when scraped. */
export interface NodeParts {
  membership?: Membership
  mesh?: Mesh
  manager?: Manager
  agent?: Agent
  /** The node's own certificate, once it is in a swarm. */
  certificate?: NodeCertificate
}

/** How a node runs: timings a test may shorten, and the data plane's settings. */
export interface NodeOptions extends Partial<ClusterTimings> {
  /** Where published ports listen on this node (default every address). */
  ingressAddr?: string
  /** Closes mesh connections idle this long (0: never). */
  meshIdleTimeoutMs?: number
  meshBalancing?: 'round-robin' | 'least-connections'
  /** `swarmd --data-plane`: the kernel's where it can run, or the userspace mesh (default userspace here; the daemon's is auto). */
  dataPlane?: DataPlaneChoice
  /** Forwarder processes beside the daemon's for published ports (default none). */
  meshWorkers?: number
  /** Where the node's DNS answers tasks (default 127.0.0.11:53); null: no DNS. */
  dnsAddr?: { host: string; port: number } | null
  /** Where the node's DNS reads the host's resolvers (default /etc/resolv.conf). */
  resolvConf?: string
  /** Makes the executor that runs this node's tasks (given the node's ID); without one the node runs none and is given none. */
  executor?: (nodeId: string) => Executor
  observer?: NodeObserver
}

/** A node's link to the leader: its check-in and, when it runs tasks, its agent's session. */
interface RemoteLink {
  picker: ManagerPicker
  checkIn: CheckIn
  session?: WorkerSession
}

/**
 * One swarm node (swarmkit's node/): its identity and its own store, gossip
 * on 7946 and the control node, the manager role when it is a manager, and
 * the agent that runs its tasks. The agent talks to the leader's
 * dispatcher: in process on the leader, over the control plane elsewhere.
 * A manager keeps the swarm's state in its own store while it is the only
 * one, and moves it into etcd (an embedded member per manager) when a
 * second manager joins; a worker promoted or a manager demoted changes
 * roles in place. This is where the layers meet; the API drives it.
 */
export class SwarmNode {
  private id: string
  /** The swarm's events as this node's manager role sees them (`docker events`); kept across role changes. */
  readonly events = new EventLog()
  /** What this manager's data key is sealed under: the node key, and the unlock key once known (autolock). */
  private keys: KeyEncryption
  /** Autolock: this manager's data key is sealed under the unlock key, which `swarm unlock` has not given yet. */
  private locked = false
  private membership: Membership | undefined
  private control: ControlNode | undefined
  private role: Manager | undefined
  private replica: Replica | undefined
  /** The manager role is being prepared (moving into etcd, joining it, leaving it). */
  private preparing = false
  private agent: Agent | undefined
  private nodeMesh: NodeMesh | undefined
  private dns: NodeDns | undefined
  private link: RemoteLink | undefined
  private localSession: Session | undefined
  private unwatch: (() => void) | undefined
  private executor: Executor | undefined
  private readonly timings: ClusterTimings
  /** The node's API, as the API server mounted it: what serves the writes other managers forward here. */
  private api: ((call: ApiCall) => Promise<ApiAnswer>) | undefined

  private constructor(
    private readonly store: Store,
    private readonly dataDir: string,
    private identity: KeyPair,
    private readonly hostname: string,
    private readonly log: Logger,
    private readonly opts: NodeOptions,
  ) {
    this.id = nodeIdFor(identity.publicKey)
    this.keys = { nodeKey: identity.privateKey }
    this.executor = opts.executor?.(this.id)
    this.timings = { ...DEFAULT_TIMINGS, ...(opts.gossipKeyRotationMs ? { gossipKeyRotationMs: opts.gossipKeyRotationMs } : {}), ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}) }
  }

  /** Opens the data dir: the node key (created once), its store, and the planes of the swarm it is in. */
  static async open(dataDir: string, hostname: string, log: Logger, opts: NodeOptions = {}): Promise<SwarmNode> {
    const keyPath = join(dataDir, NODE_KEY)
    const store = await Store.open(join(dataDir, 'state'), commitHook(opts, 'local'))
    const identity = existsSync(keyPath) ? importPrivateKey(readFileSync(keyPath, 'utf8')) : newNodeKey(dataDir)
    const n = new SwarmNode(store, dataDir, identity, hostname, log, opts)
    n.locked = n.isManager && dataKeyLocked(n.store)
    if (n.locked) log.warn(SWARM_LOCKED)
    else await n.startRoles()
    return n
  }

  /** This node's ID, derived from its key: a new one after it leaves a swarm, as Docker's. */
  get nodeId(): string {
    return this.id
  }

  /** The roles the node's store says it has. */
  private async startRoles(): Promise<void> {
    if (this.haRecord) await this.startReplicatedManager()
    else if (this.store.get('cluster', 'default')) await this.startSingleManager()
    else if (this.worker) await this.startWorker()
  }

  /** Autolock: the manager waits for `swarm unlock`. */
  get isLocked(): boolean {
    return this.locked
  }

  /**
   * `swarm unlock`: the unlock key opens this manager's data key, and the
   * manager starts. Docker's texts for a node that is not locked and for a
   * key that does not open it.
   */
  async unlock(text: string): Promise<void> {
    if (!this.locked) {
      if (!this.isManager && !this.worker) throw new SwarmError('E_NOT_IN_SWARM', NOT_IN_SWARM)
      throw new SwarmError('E_NOT_LOCKED', 'swarm is not locked')
    }
    const keys = { nodeKey: this.identity.privateKey, unlockKey: parseUnlockKey(text) }
    try {
      openDataKey(this.store, keys)
    } catch (e) {
      throw new SwarmError('E_INVALID_UNLOCK_KEY', 'swarm could not be unlocked: invalid key provided', { cause: e })
    }
    this.keys = keys
    this.locked = false
    await this.startRoles()
    this.log.info('swarm unlocked')
  }

  get worker(): WorkerRecord | undefined {
    return this.store.get<WorkerRecord>('worker', 'self')
  }

  private get haRecord(): (HaRecord & { listenAddr: string; advertiseAddr: string }) | undefined {
    return this.store.get('ha', 'self')
  }

  /** The swarm's cluster record, when this node is a manager (its own store's, or its copy of etcd's). */
  get cluster(): ClusterRecord | undefined {
    if (this.role) return this.role.cluster.record()
    return this.store.get<ClusterRecord>('cluster', 'default')
  }

  /** Whether this node is a manager, or becoming one. */
  get isManager(): boolean {
    return !!this.role || this.preparing || !!this.haRecord || !!this.store.get('cluster', 'default')
  }

  /** The manager role, or Docker's 503 when this node is in no swarm, only a worker, or still preparing its role. */
  manager(): Manager {
    if (this.role) return this.role
    if (this.locked) throw new SwarmError('E_SWARM_LOCKED', SWARM_LOCKED)
    if (this.isManager) throw managerStarting()
    throw new SwarmError(this.worker ? 'E_NOT_MANAGER' : 'E_NOT_IN_SWARM', this.worker ? NOT_MANAGER : NOT_IN_SWARM)
  }

  /** The API server this node answers with: it serves the writes other managers forward here when this one leads. */
  serveApi(handler: (call: ApiCall) => Promise<ApiAnswer>): void {
    this.api = handler
  }

  /** The calls of the node itself (joining, leaving, starting a swarm): never forwarded. */
  private static readonly LOCAL = new Set(['/swarm/init', '/swarm/join', '/swarm/leave', '/swarm/unlock'])

  /**
   * A write that a manager which does not lead sends to the leader, as
   * swarmkit's managers do: the leader allocates and commits every change,
   * so two managers never allocate the same name, port, VIP or VNI. Returns
   * undefined when the call is served here (a read, a node's own call, the
   * leader, a single manager).
   */
  forward(call: ApiCall): Promise<ApiAnswer> | undefined {
    const role = this.role
    if (call.method === 'GET' || SwarmNode.LOCAL.has(call.path) || !role?.replicated || role.isLeader) return undefined
    return (async () => {
      const addr = role.leaderAddr()
      if (!addr) throw new SwarmError('E_NO_LEADER', NO_LEADER)
      const m = splitAddr(addr, CONTROL_PORT)
      try {
        return await callRpc<ApiAnswer>(this.control!, { ip: m.host, port: m.port }, this.store.get<NodeCertificate>('certs', 'self')!, role.cluster.ca().publicKey, 'api.call', call)
      } catch (e) {
        throw new SwarmError('E_NO_LEADER', NO_LEADER, { cause: e })
      }
    })()
  }

  /** Which data plane this node's agent runs (undefined before it has one). */
  get dataPlane(): DataPlaneStatus | undefined {
    return this.nodeMesh?.dataPlane
  }

  parts(): NodeParts {
    return {
      membership: this.membership,
      mesh: this.nodeMesh?.instance,
      manager: this.role,
      agent: this.agent,
      certificate: this.worker?.cert ?? this.store.get<NodeCertificate>('certs', 'self'),
    }
  }

  /** What this node runs, as `docker ps` and `docker logs` on it see it; none before it runs tasks. */
  get localTasks(): Pick<Agent, 'list' | 'logs'> | undefined {
    return this.agent
  }

  /** This node's gossip runs. */
  get gossipUp(): boolean {
    return !!this.membership
  }

  async init(req: InitRequest): Promise<string> {
    if (req.ForceNewCluster && this.isManager) {
      await this.forceNewCluster()
      return this.nodeId
    }
    if (this.isManager || this.worker) throw new SwarmError('E_ALREADY_IN_SWARM', ALREADY_IN_SWARM)
    const c = await Cluster.bootstrap(this.store, { nodeKey: this.identity.privateKey, nodePublicKey: this.identity.publicKey, nodeId: this.nodeId, hostname: this.hostname, req })
    await this.startSingleManager()
    this.log.info({ nodeId: this.nodeId, cluster: c.id }, 'swarm initialized')
    return this.nodeId
  }

  /** Gossip on `host`:7946, and the control node (listening on `listen` for a manager). Kept when the node changes roles. */
  private async planes(host: string, gossipKeys: string[], listen?: { host: string; port: number }): Promise<void> {
    if (!this.membership) await this.startGossip(host, gossipKeys)
    const listening = this.control?.listening
    if (this.control && !!listen === !!listening) return
    await this.control?.stop()
    this.control = await ControlNode.create({ privateKey: this.identity.privateKey, ...(listen ? { listen: { ip: listen.host, port: listen.port } } : {}) })
  }

  /** One manager alone: the swarm's state in this node's own store. */
  private async startSingleManager(): Promise<void> {
    const c = this.store.get<ClusterRecord>('cluster', 'default')!
    await this.planes(splitAddr(c.advertiseAddr, CONTROL_PORT).host, c.gossipKeys, splitAddr(c.listenAddr, CONTROL_PORT))
    await this.startManagerRole(this.store)
  }

  /** A manager among several: its etcd member, its copy of the state, the election. */
  private async startReplicatedManager(o: { forceNewCluster?: boolean } = {}): Promise<void> {
    const rec = this.haRecord!
    const box = openDataKey(this.store, this.keys)
    if (!box) throw new SwarmError('E_INTERNAL', "this manager's data key is missing from its store")
    this.replica = await Replica.open({ record: rec, dataDir: this.dataDir, box, log: this.log, ...(o.forceNewCluster ? { forceNewCluster: true } : {}), ...commitHook(this.opts, 'etcd') })
    if (rec.state === 'new') await this.store.commit([{ op: 'put', table: 'ha', id: 'self', value: { ...rec, state: 'existing' } }])
    const state = this.replica.store
    const c = state.get<ClusterRecord>('cluster', 'default')
    if (!c) throw new SwarmError('E_INTERNAL', 'etcd holds no cluster record')
    await this.planes(splitAddr(rec.advertiseAddr, CONTROL_PORT).host, c.gossipKeys, splitAddr(rec.listenAddr, CONTROL_PORT))
    // The leader rotates the gossip keys in the state; every manager applies them from its copy. A demotion arrives the same way.
    let keys = c.gossipKeys.join()
    this.unwatch = state.onChange((table, id) => {
      if (table === 'cluster' || table === '*') {
        const now = state.get<ClusterRecord>('cluster', 'default')?.gossipKeys
        if (now && now.join() !== keys && this.membership) {
          keys = now.join()
          applyGossipKeys(this.membership, now)
        }
      }
      if ((table === 'nodes' && id === this.nodeId) || table === '*') {
        if (state.get<NodeRecord>('nodes', this.nodeId)?.spec.Role === 'worker' && !this.preparing) void this.demoted()
      }
    })
    await this.startManagerRole(state)
  }

  private async startManagerRole(state: WatchedState): Promise<void> {
    const role = new Manager({
      state,
      local: this.store,
      ...(this.replica ? { replica: this.replica } : {}),
      nodeId: this.nodeId,
      keys: this.keys,
      events: this.events,
      control: this.control!,
      clock: wallClock,
      timings: this.timings,
      inGossip: id => !!this.membership?.members().some(m => m.name === id),
      deadInGossip: id => !!this.membership?.allMembers().some(m => m.name === id && (m.state === 'dead' || m.state === 'left')),
      runsTasks: !!this.executor,
      selfUp: () => this.gossipUp,
      applyGossipKeys: keys => this.membership && applyGossipKeys(this.membership, keys),
      onCheckIn: n => this.regossip(n.id, n.addr),
      onLeadership: leader => void this.leadership(leader).catch(e => this.log.warn({ err: e }, 'moving the agent to the new leader failed')),
      goReplicated: () => this.goReplicated(),
      serveApi: () => this.api,
      ...(this.opts.observer ? { observer: this.opts.observer } : {}),
      log: this.log,
    })
    this.role = role
    // After a restart, find the nodes again: their gossip still runs.
    const others = role.nodes.list().filter(n => n.id !== this.nodeId)
    if (others.length > 0) {
      void this.membership!.join(others.map(n => `${n.addr}:${GOSSIP_PORT}`)).catch(e => this.log.info({ err: e }, 'no known node answered yet'))
    }
    if (this.executor && !this.agent) await this.startAgent(splitAddr((this.haRecord?.advertiseAddr ?? this.cluster!.advertiseAddr), CONTROL_PORT).host)
    await role.start()
    if (!role.isLeader) await this.leadership(false)
  }

  /**
   * Where this node's own agent talks to the leader: in process on the
   * leader, over the control plane (checking in as every node does) on the
   * other managers.
   */
  private async leadership(leader: boolean): Promise<void> {
    const role = this.role
    if (!role) return
    if (leader) {
      await this.stopLink()
      const agent = this.agent
      if (!agent) return
      let done!: () => void
      const local: Session = { send: m => agent.receive(structuredClone(m)), closed: new Promise<void>(r => (done = r)), close: async () => done() }
      this.localSession = local
      const handler = role.attachLocal(local)
      agent.connect(m => handler(structuredClone(m)))
      return
    }
    await this.localSession?.close()
    this.localSession = undefined
    this.agent?.disconnect()
    const others = role.managerAddrs().filter(a => a !== this.haRecord?.advertiseAddr)
    if (!this.link && others.length) this.startLink(new ManagerPicker(others), role.cluster.ca().publicKey)
  }

  /**
   * A node that checks in but that gossip holds dead (back from a partition:
   * each side took the other for dead, and memberlist probes no dead node)
   * is joined again at once, so both sides learn it is alive without waiting.
   */
  private regossip(nodeId: string, addr: string): void {
    const m = this.membership
    if (!m || m.members().some(x => x.name === nodeId)) return
    void m.join([`${addr}:${GOSSIP_PORT}`]).catch(e => this.log.debug({ err: e, nodeId }, 'gossip rejoin failed'))
  }

  private async startAgent(host: string): Promise<Agent> {
    const mesh: NodeMesh = new NodeMesh({
      membership: () => this.membership,
      host,
      // The tunnel's peers prove their node IDs as on the control plane: a certificate of the cluster CA and the node key's signature.
      auth: certificateAuth({
        privateKey: this.identity.privateKey,
        certificate: () => this.worker?.cert ?? this.store.get<NodeCertificate>('certs', 'self'),
        caPublicKey: () => (this.role ? this.role.cluster.ca().publicKey : this.worker ? publicKeyFromRaw(Buffer.from(this.worker.caPublicKey, 'base64')) : undefined),
        known: id => mesh.knows(id),
      }),
      ingressHost: this.opts.ingressAddr ?? '0.0.0.0',
      ...(this.opts.meshIdleTimeoutMs ? { idleTimeoutMs: this.opts.meshIdleTimeoutMs } : {}),
      ...(this.opts.meshBalancing ? { strategy: this.opts.meshBalancing } : {}),
      ...(this.opts.dataPlane ? { dataPlane: this.opts.dataPlane } : {}),
      ...(this.opts.meshWorkers ? { workers: this.opts.meshWorkers } : {}),
      nodeId: this.nodeId,
      onProgrammed: () => this.dns?.resync(),
      log: this.log.child({ layer: 'mesh' }),
    })
    this.nodeMesh = mesh
    // Before the agent recovers its tasks: in the kernel data plane their namespaces are the executor's to find.
    await mesh.start()
    if (mesh.taskNetworking) this.executor?.attachNetworking?.(mesh.taskNetworking)
    const listen = this.opts.dnsAddr === undefined ? USERSPACE_DNS : this.opts.dnsAddr
    if (listen) {
      this.dns = new NodeDns({
        listen,
        mesh: () => mesh.instance,
        membership: () => this.membership,
        ...(this.opts.resolvConf ? { resolvConf: this.opts.resolvConf } : {}),
        kernel: () => mesh.dataPlane.kind === 'kernel',
        log: this.log.child({ layer: 'dns' }),
      })
      await this.dns.start()
    }
    this.agent = new Agent({ executor: this.executor!, mesh: this.nodeMesh, ...(this.dns ? { dns: this.dns } : {}), nodeId: this.nodeId, hostname: this.hostname, log: this.log.child({ layer: 'agent' }) })
    await this.agent.init()
    return this.agent
  }

  /** A worker after a restart (or a join): back into gossip through a manager, checking in, and its session for tasks. */
  private async startWorker(): Promise<void> {
    const w = this.worker!
    await this.planes(splitAddr(w.advertiseAddr, GOSSIP_PORT).host, w.gossipKeys)
    await this.membership!.join([w.gossipAddr]).catch(e => this.log.warn({ err: e }, "cannot reach the manager's gossip yet"))
    if (this.executor && !this.agent) await this.startAgent(splitAddr(w.advertiseAddr, GOSSIP_PORT).host)
    this.startLink(new ManagerPicker(w.managers ?? [w.managerAddr]))
  }

  /** This node's check-in with the leader (and its agent's session), failing over among the managers. */
  private startLink(picker: ManagerPicker, caKey?: ReturnType<typeof publicKeyFromRaw>): void {
    const w = this.worker
    const link: ManagerLink = {
      control: this.control!,
      manager: () => picker.current(),
      failed: () => picker.failed(),
      cert: () => this.worker?.cert ?? this.store.get<NodeCertificate>('certs', 'self')!,
      caPublicKey: caKey ?? publicKeyFromRaw(Buffer.from(w!.caPublicKey, 'base64')),
    }
    const checkIn = new CheckIn({
      ...link,
      renewed: async c => {
        if (this.worker) await this.saveWorker({ ...this.worker, cert: c })
      },
      answered: a => this.answered(a, picker),
      clock: systemClock,
      log: this.log,
    })
    checkIn.start()
    const session = this.agent ? new WorkerSession({ ...link, agent: this.agent, log: this.log }) : undefined
    session?.start()
    this.link = { picker, checkIn, ...(session ? { session } : {}) }
  }

  private async stopLink(): Promise<void> {
    const l = this.link
    this.link = undefined
    l?.checkIn.close()
    await l?.session?.close()
  }

  /** A check-in's answer: the managers to fail over to, and for a worker the gossip keys and a promotion. */
  private async answered(a: CheckInAnswer, picker: ManagerPicker): Promise<void> {
    const cur = this.worker
    if (!cur) return
    if (picker.update(a.managers)) await this.saveWorker({ ...this.worker!, managers: a.managers, managerAddr: a.managers[0]! })
    if (a.gossipKeys.join() !== cur.gossipKeys.join()) {
      if (this.membership) applyGossipKeys(this.membership, a.gossipKeys)
      await this.saveWorker({ ...this.worker!, gossipKeys: a.gossipKeys })
      this.log.info('gossip keys updated from the manager')
    }
    // Alone in gossip (restarted with keys that rotated meanwhile, or cut off): join again.
    const mem = this.membership
    if (mem && !mem.members().some(x => x.name !== this.nodeId)) {
      await mem.join([cur.gossipAddr]).catch(e => this.log.info({ err: e }, "the manager's gossip did not answer"))
    }
    if (a.role === 'manager' && !this.preparing) void this.promoted().catch(e => this.log.warn({ err: e }, 'becoming a manager failed; trying again at the next check-in'))
  }

  private async saveWorker(w: WorkerRecord): Promise<void> {
    await this.store.commit([{ op: 'put', table: 'worker', id: 'self', value: w }])
  }

  /** Joins gossip on `host`:7946; every membership event reaches the orchestrator, so a dead node's tasks are replaced now. */
  private async startGossip(host: string, gossipKeys: string[]): Promise<void> {
    this.membership = await startGossip({
      nodeId: this.nodeId,
      host,
      gossipKeys,
      log: this.log.child({ layer: 'gossip' }),
      onEvent: e => {
        this.log.info({ event: e.type, node: e.member.name }, 'membership')
        this.role?.kick()
      },
    })
  }

  /** `swarm join`: admission over the control plane, then gossip with the keys it brought; with the manager token, a member of etcd too. */
  async join(req: JoinRequest): Promise<void> {
    if (this.isManager || this.worker) throw new SwarmError('E_ALREADY_IN_SWARM', ALREADY_IN_SWARM)
    const remote = req.RemoteAddrs?.[0]
    if (!remote) throw new SwarmError('E_INVALID_ARGUMENT', 'at least 1 RemoteAddr is required to join')
    if (!req.JoinToken) throw new SwarmError('E_INVALID_ARGUMENT', 'JoinToken is required to join')
    const manager = splitAddr(remote, CONTROL_PORT)
    const listen = splitAddr(req.ListenAddr || `0.0.0.0:${CONTROL_PORT}`, CONTROL_PORT)
    const advertiseHost = splitAddr(req.AdvertiseAddr || (listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host), CONTROL_PORT).host
    const client = await ControlNode.create({ privateKey: this.identity.privateKey })
    let admission
    try {
      admission = await requestJoin(client, {
        token: req.JoinToken,
        manager: { ip: manager.host, port: manager.port },
        hostname: this.hostname,
        advertiseAddr: `${advertiseHost}:${GOSSIP_PORT}`,
        publicKey: rawPublicKey(this.identity.publicKey),
      })
    } finally {
      await client.stop()
    }
    const w: WorkerRecord = {
      clusterId: admission.clusterId,
      cert: admission.cert,
      caPublicKey: admission.caPublicKey,
      gossipKeys: admission.gossipKeys,
      gossipAddr: admission.gossipAddr,
      advertiseAddr: `${advertiseHost}:${GOSSIP_PORT}`,
      managerAddr: admission.managers?.[0] ?? `${manager.host}:${manager.port}`,
      managers: admission.managers?.length ? admission.managers : [`${manager.host}:${manager.port}`],
      listenAddr: `${listen.host === '0.0.0.0' ? advertiseHost : listen.host}:${listen.port}`,
    }
    await this.saveWorker(w)
    if (admission.cert.body.role !== 'manager') return this.startWorker()
    await this.planes(advertiseHost, w.gossipKeys)
    await this.membership!.join([w.gossipAddr]).catch(e => this.log.warn({ err: e }, "cannot reach the manager's gossip yet"))
    try {
      await this.enroll()
    } catch (e) {
      // Not a manager after all: this node is in no swarm, as before the join.
      await this.stopPlanes()
      await this.store.commit(this.nodeRows())
      throw e
    }
  }

  /**
   * A worker whose node the managers made a manager (`node promote`): a
   * manager certificate first, then it joins etcd as a learner.
   */
  private async promoted(): Promise<void> {
    if (this.preparing || !this.worker) return
    this.preparing = true
    try {
      const w = this.worker
      const picker = this.link?.picker ?? new ManagerPicker(w.managers ?? [w.managerAddr])
      const cert = await callRpc<NodeCertificate>(this.control!, picker.current(), w.cert, publicKeyFromRaw(Buffer.from(w.caPublicKey, 'base64')), 'renew')
      if (cert.body.role !== 'manager') return
      await this.saveWorker({ ...w, cert })
      await this.stopLink()
      this.log.info('promoted: joining the managers')
      await this.enroll()
    } finally {
      this.preparing = false
    }
  }

  /**
   * Joins etcd: the leader adds a learner member for this node and hands
   * over the member's certificate and the managers' data key; this node
   * keeps them (the key sealed under its own), starts its member, and runs
   * the manager role on its copy of the state.
   */
  private async enroll(): Promise<void> {
    const w = this.worker!
    this.preparing = true
    try {
      const picker = new ManagerPicker(w.managers ?? [w.managerAddr])
      const caKey = publicKeyFromRaw(Buffer.from(w.caPublicKey, 'base64'))
      const advertise = splitAddr(w.advertiseAddr, GOSSIP_PORT).host
      let e: Enrollment | undefined
      let lastErr: unknown
      for (let attempt = 0; attempt < 3 * Math.max(1, picker.list.length) && !e; attempt++) {
        try {
          e = await callRpc<Enrollment>(this.control!, picker.current(), w.cert, caKey, 'manager.enroll', { managerAddr: `${advertise}:${splitAddr(w.listenAddr ?? '', CONTROL_PORT).port}` })
        } catch (err) {
          lastErr = err
          picker.failed()
          await new Promise(r => setTimeout(r, 500).unref())
        }
      }
      if (!e) throw lastErr
      // Sealed under the node key: the manager role seals it under the unlock key once it runs, if the swarm is autolocked.
      const { mutation, box } = newDataKey(this.keys, Buffer.from(e.dataKey, 'base64'))
      const rec: HaRecord & { listenAddr: string; advertiseAddr: string } = {
        name: this.nodeId,
        ip: advertise,
        token: e.token,
        initialCluster: e.initialCluster,
        state: 'existing',
        tls: { ca: e.tls.ca, cert: e.tls.cert, keySealed: box.seal(Buffer.from(e.tls.key)) },
        listenAddr: w.listenAddr ?? `${advertise}:${CONTROL_PORT}`,
        advertiseAddr: `${advertise}:${splitAddr(w.listenAddr ?? '', CONTROL_PORT).port}`,
      }
      retireMember(this.dataDir, this.log)
      await this.store.commit([
        mutation,
        { op: 'put', table: 'certs', id: 'self', value: w.cert },
        { op: 'put', table: 'ha', id: 'self', value: rec },
        { op: 'delete', table: 'worker', id: 'self' },
      ])
      await this.startReplicatedManager()
      this.log.info('this node is a manager')
    } finally {
      this.preparing = false
    }
  }

  /**
   * The one manager, asked by a second to join etcd: it starts its own
   * member (a cluster of one), copies the swarm's tables into it, and from
   * then on runs on etcd, with nothing lost and no command from the user.
   * Until the copy is done, the API answers "Manager is being prepared".
   */
  private async goReplicated(): Promise<Manager> {
    if (this.replica) return this.role!
    this.preparing = true
    const old = this.role!
    try {
      const c = old.cluster.record()
      const etcdCa = await old.cluster.etcdCA()
      const advertise = splitAddr(c.advertiseAddr, CONTROL_PORT).host
      const tls = await etcdCa.issue({ nodeId: this.nodeId, ip: advertise, ttlMs: old.cluster.certTtlMs() })
      const box = old.cluster.dataKey()
      const rec: HaRecord & { listenAddr: string; advertiseAddr: string } = {
        name: this.nodeId,
        ip: advertise,
        token: c.id,
        initialCluster: initialCluster([{ name: this.nodeId, peerUrl: peerUrl(advertise, ETCD_PEER_PORT) }]),
        state: 'new',
        tls: { ca: etcdCa.certPem, cert: tls.cert, keySealed: box.seal(Buffer.from(tls.key)) },
        listenAddr: c.listenAddr,
        advertiseAddr: c.advertiseAddr,
      }
      this.role = undefined
      await old.close()
      let replica: Replica | undefined
      try {
        replica = await Replica.open({ record: rec, dataDir: this.dataDir, box, log: this.log })
        const rows = await copyState(this.store, replica.store)
        this.log.info({ rows }, "the swarm's state moved into etcd")
      } catch (e) {
        await replica?.close()
        retireMember(this.dataDir, this.log)
        await this.startManagerRole(this.store)
        throw e
      }
      await replica.close()
      // One commit: the node is a replicated manager, and its own store no longer holds the swarm's tables.
      await this.store.commit([{ op: 'put', table: 'ha', id: 'self', value: { ...rec, state: 'existing' } }, ...dropReplicated(this.store)])
      await this.startReplicatedManager()
      return this.role!
    } finally {
      this.preparing = false
    }
  }

  /**
   * A manager made a worker (`node demote`): the leadership goes to another
   * manager, whose reconciliation removes this one's etcd member; its member
   * data goes aside, its certificate is renewed as a worker's, and it runs
   * as a worker from there, its tasks untouched.
   */
  private async demoted(): Promise<void> {
    if (this.preparing || !this.role || !this.replica) return
    this.preparing = true
    try {
      const role = this.role
      const rep = this.replica
      const c = role.cluster.record()
      const managers = role.managerAddrs().filter(a => a !== this.haRecord?.advertiseAddr)
      const caKey = role.cluster.ca().publicKey
      this.log.info('demoted: leaving the managers')
      await role.resign()
      await this.stopLink()
      await this.stopRoleAndReplica()
      await this.memberRemoved(rep)
      await rep.close()
      retireMember(this.dataDir, this.log)
      const picker = new ManagerPicker(managers)
      let cert: NodeCertificate | undefined
      for (let i = 0; i < 10 && !cert; i++) {
        cert = await callRpc<NodeCertificate>(this.control!, picker.current(), this.store.get<NodeCertificate>('certs', 'self')!, caKey, 'renew').catch(() => {
          picker.failed()
          return undefined
        })
        if (cert?.body.role === 'manager') cert = undefined
        if (!cert) await new Promise(r => setTimeout(r, 1_000))
      }
      if (!cert) throw new SwarmError('E_INTERNAL', 'no manager renewed this demoted node\'s certificate')
      const ha = this.haRecord!
      const w: WorkerRecord = {
        clusterId: c.id,
        cert,
        caPublicKey: rawPublicKey(caKey).toString('base64'),
        gossipKeys: c.gossipKeys,
        gossipAddr: `${splitAddr(managers[0]!, CONTROL_PORT).host}:${GOSSIP_PORT}`,
        advertiseAddr: `${splitAddr(ha.advertiseAddr, CONTROL_PORT).host}:${GOSSIP_PORT}`,
        managerAddr: managers[0]!,
        managers,
        listenAddr: ha.listenAddr,
      }
      await this.store.commit([
        { op: 'put', table: 'worker', id: 'self', value: w },
        ...['certs', 'keys', 'ha', ...REPLICATED_TABLES].flatMap(table => this.store.ids(table).map(id => ({ op: 'delete' as const, table, id }))),
      ])
      await this.planes(splitAddr(w.advertiseAddr, GOSSIP_PORT).host, w.gossipKeys)
      this.startLink(new ManagerPicker(managers))
      this.log.info('this node is a worker')
    } finally {
      this.preparing = false
    }
  }

  /** Waits (a while) for the leader to remove this manager's etcd member: the member exits by itself once removed. */
  private async memberRemoved(rep: Replica): Promise<void> {
    const until = Date.now() + REMOVAL_WAIT_MS
    const exited = rep.member.exited.then(() => true)
    while (Date.now() < until && !(await Promise.race([exited, new Promise<false>(r => setTimeout(() => r(false), 500))]))) {
      // Polled: the leader's reconciliation runs every second.
    }
  }

  /** Stops the manager role and its watch of the state (the replica stays for the caller to close). */
  private async stopRoleAndReplica(): Promise<void> {
    this.unwatch?.()
    this.unwatch = undefined
    await this.localSession?.close()
    this.localSession = undefined
    this.agent?.disconnect()
    const role = this.role
    this.role = undefined
    await role?.close()
    this.replica = undefined
  }

  /**
   * `swarm init --force-new-cluster` on a manager of a swarm that lost its
   * quorum for good: its etcd member starts once as a cluster of one, with
   * the data it has (services, networks, secrets), then as usual; the other
   * managers are left Unreachable, to be demoted or removed.
   */
  private async forceNewCluster(): Promise<void> {
    const rec = this.haRecord
    if (!rec) return
    this.preparing = true
    try {
      const rep = this.replica
      await this.stopRoleAndReplica()
      await rep?.close()
      const self = initialCluster([{ name: this.nodeId, peerUrl: peerUrl(rec.ip, ETCD_PEER_PORT) }])
      await this.store.commit([{ op: 'put', table: 'ha', id: 'self', value: { ...rec, initialCluster: self, state: 'existing' } }])
      const box = openDataKey(this.store, this.keys)!
      const once = await Replica.open({ record: { ...rec, initialCluster: self }, dataDir: this.dataDir, box, log: this.log, forceNewCluster: true })
      await once.close()
      await this.startReplicatedManager()
      this.log.warn('forced a new cluster of one manager from this node\'s state')
    } finally {
      this.preparing = false
    }
  }

  async leave(force: boolean): Promise<void> {
    await this.leaveSwarm(force)
    // A new key: joining again, this node is a new node with a new ID, as Docker's.
    this.identity = newNodeKey(this.dataDir)
    this.id = nodeIdFor(this.identity.publicKey)
    this.keys = { nodeKey: this.identity.privateKey }
    await this.executor?.close()
    this.executor = this.opts.executor?.(this.id)
  }

  private async leaveSwarm(force: boolean): Promise<void> {
    if (this.worker && !this.isManager) {
      await this.agent?.stopAll()
      await this.stopPlanes()
      await this.store.commit(this.nodeRows())
      return
    }
    if (this.locked) {
      if (!force) throw new SwarmError('E_SWARM_LOCKED', 'Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.')
      retireMember(this.dataDir, this.log)
      await this.store.commit([...this.nodeRows(), ...dropReplicated(this.store)])
      this.locked = false
      return
    }
    const role = this.manager()
    if (this.replica) {
      const { managers, reachable } = role.managerCounts()
      const unreachable = managers - reachable
      if (!force && managers <= 1) throw new SwarmError('E_LAST_MANAGER', LAST_MANAGER)
      if (!force && reachable - 2 <= unreachable) throw new SwarmError('E_LAST_MANAGER', quorumLeave(reachable - 1, managers))
      if (managers > 1) {
        // The others remove this member once this node is a worker in the state.
        const n = role.nodes.get(this.nodeId)
        await role.sync().catch(() => undefined)
        await role.nodes.update(this.nodeId, n.version, { ...n.spec, Role: 'worker' }).catch(e => this.log.warn({ err: e }, 'leaving: could not give the manager role up'))
        this.preparing = true
        await role.resign()
        // Its member goes before it stops: with it stopped and still a member, the others could lose their quorum.
        await this.memberRemoved(this.replica)
      }
    } else if (!force) throw new SwarmError('E_LAST_MANAGER', LAST_MANAGER)
    await this.agent?.stopAll()
    const rep = this.replica
    await this.stopPlanes()
    await rep?.close()
    retireMember(this.dataDir, this.log)
    // Leaving erases what this node held of the swarm (all of it, for the last manager, as Docker's does).
    await this.store.commit([...this.nodeRows(), ...dropReplicated(this.store)])
    this.preparing = false
  }

  private nodeRows(): Mutation[] {
    return NODE_TABLES.flatMap(table => this.store.ids(table).map(id => ({ op: 'delete' as const, table, id })))
  }

  /** Stops every task this node runs (the daemon stops without --live-restore). */
  async stopTasks(): Promise<void> {
    await this.agent?.stopAll()
  }

  /** Stops the roles, the agent's sessions and the mesh; tasks keep running (a restarted daemon adopts them). */
  private async stopRoles(): Promise<void> {
    await this.stopLink()
    const rep = this.replica
    await this.stopRoleAndReplica()
    await rep?.close()
    this.agent?.close()
    this.agent = undefined
    await this.nodeMesh?.close()
    this.nodeMesh = undefined
    await this.dns?.close()
    this.dns = undefined
  }

  /** Leaves gossip gracefully (the others see "left") and closes the control plane. */
  private async stopPlanes(): Promise<void> {
    await this.stopRoles()
    await this.membership?.leave(2_000).catch(() => undefined)
    await this.membership?.shutdown()
    this.membership = undefined
    await this.control?.stop()
    this.control = undefined
  }

  async close(): Promise<void> {
    await this.stopRoles()
    await this.membership?.shutdown()
    this.membership = undefined
    await this.control?.stop()
    this.control = undefined
    await this.executor?.close()
    await this.store.close()
  }
}
