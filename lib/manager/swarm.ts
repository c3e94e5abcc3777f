import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { arch, cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { ApiError } from '../errors.js'
import { ClusterCA, needsRenewal, type NodeCertificate } from '../control/ca.js'
import { ControlNode } from '../control/control-node.js'
import { base36, exportPrivateKey, generateKeyPair, importPrivateKey, type KeyPair, nodeIdFor, publicKeyFromRaw, rawPublicKey } from '../control/identity.js'
import { CERT_TTL_MS, requestJoin, serveJoin } from '../control/join-protocol.js'
import { callRpc, serveRpc } from '../control/rpc.js'
import { newJoinToken, parseJoinToken } from '../control/join-token.js'
import { Membership } from '../gossip/membership.js'
import type { Executor, LogLine, LogOptions } from '../agent/executor.js'
import { Agent } from '../agent/agent.js'
import { NodeMesh } from '../agent/node-mesh.js'
import { openSession, serveSession, type Session } from '../control/session.js'
import { Dispatcher } from './dispatcher.js'
import { Orchestrator, type NodeInfo } from './orchestrator.js'
import { KEY_ROTATION_MS, Networks } from './networks.js'
import { planner } from './placement.js'
import { Secrets } from './secrets.js'
import { Services } from './services.js'
import { Store } from './store.js'
import type { Routing } from './session-messages.js'
import type { Service, Task } from './types.js'

export type Availability = 'active' | 'pause' | 'drain'
export type NodeRole = 'manager' | 'worker'

export interface NodeSpec {
  Name?: string
  Labels: Record<string, string>
  Role: NodeRole
  Availability: Availability
}

/** A node as the manager stores it. */
export interface NodeRecord {
  id: string
  version: number
  createdAt: string
  updatedAt: string
  spec: NodeSpec
  hostname: string
  addr: string
  managerAddr?: string
}

export interface ClusterRecord {
  id: string
  version: number
  createdAt: string
  updatedAt: string
  caPem: string
  tokens: { worker: string; manager: string }
  /** Three AES-128 gossip keys, oldest first; the middle one is primary, as swarm's. */
  gossipKeys: string[]
  listenAddr: string
  advertiseAddr: string
  dataPathPort: number
  /** Node certificates' validity (swarm's CAConfig.NodeCertExpiry), 90 days by default. */
  certTtlMs?: number
}

/** What a worker keeps of the swarm it joined. */
export interface WorkerRecord {
  clusterId: string
  cert: NodeCertificate
  caPublicKey: string
  gossipKeys: string[]
  gossipAddr: string
  advertiseAddr: string
  managerAddr: string
}

export interface JoinRequest {
  ListenAddr?: string
  AdvertiseAddr?: string
  RemoteAddrs?: string[]
  JoinToken?: string
}

export interface InitRequest {
  ListenAddr?: string
  AdvertiseAddr?: string
  DataPathPort?: number
  Spec?: { CAConfig?: { NodeCertExpiry?: number } }
}

/** How the swarm's node runs: timings a test may shorten. */
export interface SwarmOptions {
  /** Swarm rotates the gossip keys every 12 h. */
  gossipKeyRotationMs?: number
  /** Workers check in this often; the answer carries the current gossip keys. */
  heartbeatMs?: number
  /** Where published ports listen on this node (default every address). */
  ingressAddr?: string
  /** Closes mesh connections idle this long (0: never). */
  meshIdleTimeoutMs?: number
  meshBalancing?: 'round-robin' | 'least-connections'

  /** Makes the executor that runs this node's tasks (given the node's ID); without one the node runs none and is given none. */
  executor?: (nodeId: string) => Executor
}

const ARCH = arch() === 'x64' ? 'x86_64' : arch()

export const GOSSIP_PORT = 7946
export const CONTROL_PORT = 2377

export const NOT_IN_SWARM = 'This node is not part of a swarm'
export const NOT_MANAGER =
  "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."
export const ALREADY_IN_SWARM = 'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.'
const LAST_MANAGER =
  'You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.'

const now = (): string => new Date().toISOString()

/** host[:port] → host and port, Docker's way: a bare host gets the default port. */
function splitAddr(addr: string, port: number): { host: string; port: number } {
  const m = /^(.*?)(?::(\d+))?$/.exec(addr.trim())!
  const host = m[1]!
  if (!host) throw new ApiError(400, `invalid address: "${addr}"`)
  return { host, port: m[2] ? Number(m[2]) : port }
}

/**
 * The manager role of one daemon: cluster state in the durable store, the CA
 * and join tokens, the gossip keys, and the gossip member it runs. This is
 * the single-manager swarm; workers join through the control plane.
 */
export class SwarmManager {
  private membership: Membership | undefined
  private control: ControlNode | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  /** When each node's control session last checked in (manager side). */
  private readonly lastSeen = new Map<string, number>()
  private managerStartedAt = 0
  private caCache: { pem: string; ca: ClusterCA } | undefined
  /** A worker's heartbeat period, as the manager last said. */
  private workerPeriod = 1_000
  /** Bumped when the planes stop, so a periodic task in flight does not re-arm. */
  private generation = 0
  private agent: Agent | undefined
  private nodeMesh: NodeMesh | undefined
  private readonly executor: Executor | undefined
  private session: Session | undefined
  private orchestrator: Orchestrator | undefined
  private dispatcher: Dispatcher | undefined
  private servicesApi: Services | undefined
  private secretsApi: Secrets | undefined
  private networksApi: Networks | undefined
  readonly nodeId: string

  private constructor(
    private readonly store: Store,
    private readonly identity: KeyPair,
    private readonly hostname: string,
    private readonly log: Logger,
    private readonly opts: Required<Omit<SwarmOptions, 'executor' | 'ingressAddr' | 'meshIdleTimeoutMs' | 'meshBalancing'>> & Pick<SwarmOptions, 'executor' | 'ingressAddr' | 'meshIdleTimeoutMs' | 'meshBalancing'>,
  ) {
    this.nodeId = nodeIdFor(identity.publicKey)
    this.executor = opts.executor?.(this.nodeId)
  }

  /** Opens the data dir: the node key (created once), the store, and an active swarm's gossip. */
  static async open(dataDir: string, hostname: string, log: Logger, opts: SwarmOptions = {}): Promise<SwarmManager> {
    const keyPath = join(dataDir, 'node.key')
    const store = await Store.open(join(dataDir, 'state'))
    let identity: KeyPair
    if (existsSync(keyPath)) identity = importPrivateKey(readFileSync(keyPath, 'utf8'))
    else {
      identity = generateKeyPair()
      writeFileSync(keyPath, exportPrivateKey(identity.privateKey), { mode: 0o600 })
    }
    const m = new SwarmManager(store, identity, hostname, log, { gossipKeyRotationMs: 12 * 3600_000, heartbeatMs: 5_000, ...opts })
    if (m.cluster) await m.startManager()
    else if (m.worker) await m.startWorker()
    return m
  }

  get worker(): WorkerRecord | undefined {
    return this.store.get<WorkerRecord>('worker', 'self')
  }

  get cluster(): ClusterRecord | undefined {
    return this.store.get<ClusterRecord>('cluster', 'default')
  }

  /** The cluster record, or Docker's 503 when this node is in no swarm or only a worker. */
  requireCluster(): ClusterRecord {
    const c = this.cluster
    if (c) return c
    throw new ApiError(503, this.worker ? NOT_MANAGER : NOT_IN_SWARM)
  }

  async init(req: InitRequest): Promise<string> {
    if (this.cluster || this.worker) throw new ApiError(503, ALREADY_IN_SWARM)
    const listen = splitAddr(req.ListenAddr || '0.0.0.0:2377', CONTROL_PORT)
    const advertise = splitAddr(req.AdvertiseAddr || (listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host), listen.port)
    const dataPathPort = req.DataPathPort || 4789
    if (!Number.isInteger(dataPathPort) || dataPathPort < 1024 || dataPathPort > 49151) {
      throw new ApiError(400, `invalid DataPathPort ${req.DataPathPort}: it must be within 1024 - 49151`)
    }
    const expiryNs = req.Spec?.CAConfig?.NodeCertExpiry
    if (expiryNs !== undefined && (!Number.isFinite(expiryNs) || expiryNs < 1e9)) {
      throw new ApiError(400, `invalid CAConfig.NodeCertExpiry ${expiryNs}: it must be at least 1s (in nanoseconds)`)
    }
    const certTtlMs = expiryNs ? Math.floor(expiryNs / 1e6) : CERT_TTL_MS
    const ca = ClusterCA.create()
    const selfCert = ca.issue({ nodePublicKey: this.identity.publicKey, role: 'manager', now: Date.now(), ttlMs: certTtlMs })
    const t = now()
    const cluster: ClusterRecord = {
      id: base36(randomBytes(16), 25),
      version: 1,
      createdAt: t,
      updatedAt: t,
      caPem: ca.export(),
      tokens: { worker: newJoinToken(ca.digest), manager: newJoinToken(ca.digest) },
      gossipKeys: [0, 1, 2].map(() => randomBytes(16).toString('base64')),
      listenAddr: `${listen.host}:${listen.port}`,
      advertiseAddr: `${advertise.host}:${advertise.port}`,
      dataPathPort,
      certTtlMs,
    }
    const node: NodeRecord = {
      id: this.nodeId,
      version: 1,
      createdAt: t,
      updatedAt: t,
      spec: { Labels: {}, Role: 'manager', Availability: 'active' },
      hostname: this.hostname,
      addr: advertise.host,
      managerAddr: cluster.advertiseAddr,
    }
    await this.store.commit([
      { op: 'put', table: 'cluster', id: 'default', value: cluster },
      { op: 'put', table: 'nodes', id: node.id, value: node },
      { op: 'put', table: 'certs', id: 'self', value: selfCert },
    ])
    await this.networks().ensureIngress()
    await this.startManager()
    this.log.info({ nodeId: this.nodeId, cluster: cluster.id }, 'swarm initialized')
    return this.nodeId
  }

  /** The manager's planes: gossip on the advertise address, the control plane on the listen address. */
  private async startManager(): Promise<void> {
    const c = this.requireCluster()
    this.managerStartedAt = Date.now()
    await this.startGossip(splitAddr(c.advertiseAddr, CONTROL_PORT).host, c.gossipKeys)
    // After a restart, find the nodes again: their gossip still runs.
    const others = this.store.list<NodeRecord>('nodes').filter(n => n.id !== this.nodeId)
    if (others.length > 0) {
      void this.membership!.join(others.map(n => `${n.addr}:${GOSSIP_PORT}`)).catch(e => this.log.info({ err: e }, 'no known node answered yet'))
    }
    const listen = splitAddr(c.listenAddr, CONTROL_PORT)
    this.control = await ControlNode.create({ privateKey: this.identity.privateKey, listen: { ip: listen.host, port: listen.port } })
    await serveJoin(this.control, {
      ca: () => this.ca(),
      certTtlMs: () => this.requireCluster().certTtlMs ?? CERT_TTL_MS,
      managerCert: () => this.store.get<NodeCertificate>('certs', 'self')!,
      secrets: () => {
        const t = this.requireCluster().tokens
        return { worker: parseJoinToken(t.worker).secret, manager: parseJoinToken(t.manager).secret }
      },
      admit: async a => {
        const t = now()
        const existing = this.store.get<NodeRecord>('nodes', a.nodeId)
        const host = splitAddr(a.advertiseAddr, GOSSIP_PORT).host
        const node: NodeRecord = {
          id: a.nodeId,
          version: (existing?.version ?? 0) + 1,
          createdAt: existing?.createdAt ?? t,
          updatedAt: t,
          spec: existing?.spec ?? { Labels: {}, Role: a.role, Availability: 'active' },
          hostname: a.hostname,
          addr: host,
          ...(a.role === 'manager' ? { managerAddr: `${host}:${CONTROL_PORT}` } : {}),
        }
        await this.store.commit([{ op: 'put', table: 'nodes', id: node.id, value: node }])
        this.lastSeen.set(node.id, Date.now())
        this.log.info({ nodeId: a.nodeId, role: a.role, hostname: a.hostname }, 'node joined')
        const cl = this.requireCluster()
        return { clusterId: cl.id, gossipKeys: cl.gossipKeys, gossipAddr: `${splitAddr(cl.advertiseAddr, CONTROL_PORT).host}:${GOSSIP_PORT}` }
      },
      onRefused: (why, peer) => this.log.warn({ why, peer: peer.publicKey.toString('base64') }, 'join refused'),
    })
    await serveRpc(this.control, {
      caPublicKey: () => this.ca().publicKey,
      selfCert: () => this.store.get<NodeCertificate>('certs', 'self')!,
      known: id => !!this.store.get('nodes', id),
      onRefused: why => this.log.warn({ why }, 'control call refused'),
      methods: {
        heartbeat: {
          roles: ['worker', 'manager'],
          run: (_params, caller) => {
            this.lastSeen.set(caller.nodeId, Date.now())
            this.regossip(caller.nodeId)
            return { gossipKeys: this.requireCluster().gossipKeys, periodMs: this.heartbeatPeriod() }
          },
        },
        // A new certificate for the caller's key, with the role its node has now (promote / demote take effect here).
        renew: {
          roles: ['worker', 'manager'],
          run: (_params, caller) => {
            const n = this.store.get<NodeRecord>('nodes', caller.nodeId)!
            return this.issueCert(caller.publicKey, n.spec.Role)
          },
        },
        'nodes.list': { roles: ['manager'], run: () => this.store.list<NodeRecord>('nodes') },
      },
    })
    await this.startOrchestration()
    this.repeat(() => this.opts.gossipKeyRotationMs, () => this.rotateGossipKeys())
    this.repeat(() => this.heartbeatPeriod(), async () => {
      const own = this.store.get<NodeCertificate>('certs', 'self')
      if (own && needsRenewal(own.body, Date.now())) {
        await this.store.commit([{ op: 'put', table: 'certs', id: 'self', value: this.issueCert(own.body.publicKey, 'manager') }])
        this.log.info('certificate renewed')
      }
    })
  }

  /**
   * The manager's orchestration: services and secrets in the store, the
   * orchestrator and scheduler, and the dispatcher that sessions attach to,
   * this node's own agent among them.
   */
  private async startOrchestration(): Promise<void> {
    const log = this.log.child({ layer: 'manager' })
    this.secretsApi = new Secrets(this.store, this.identity.privateKey)
    const dispatcher = new Dispatcher({
      store: this.store,
      routing: () => this.routing(),
      secrets: ids => this.secretsApi!.values(ids),
      report: (nodeId, updates) => this.orchestrator!.report(nodeId, updates),
      log,
    })
    this.dispatcher = dispatcher
    this.orchestrator = new Orchestrator({
      store: this.store,
      clock: { now: () => Date.now() },
      nodes: () => this.nodeInfos(),
      planner,
      changed: () => dispatcher.pushAll(),
      log,
    })
    this.servicesApi = new Services({ store: this.store, secrets: this.secretsApi, networks: this.networks(), kick: () => void this.orchestrator?.kick() })
    await serveSession(this.control!, {
      caPublicKey: () => this.ca().publicKey,
      selfCert: () => this.store.get<NodeCertificate>('certs', 'self')!,
      known: id => !!this.store.get('nodes', id),
      onRefused: why => this.log.warn({ why }, 'session refused'),
      onSession: (caller, session) => {
        this.lastSeen.set(caller.nodeId, Date.now())
        void this.orchestrator?.kick()
        return dispatcher.attach(caller.nodeId, session)
      },
    })
    if (this.executor) {
      const agent = await this.startAgent()
      // This node's own agent talks to the dispatcher in process, through the same messages.
      let done!: () => void
      const local: Session = { send: m => agent.receive(structuredClone(m)), closed: new Promise<void>(r => (done = r)), close: async () => done() }
      const handler = dispatcher.attach(this.nodeId, local)
      agent.connect(m => handler(structuredClone(m)))
    }
    this.repeat(() => 1_000, () => this.orchestrator!.kick())
    this.repeat(() => KEY_ROTATION_MS, async () => void (await this.networks().rotateKeys()))
    void this.orchestrator.kick()
  }

  private async startAgent(): Promise<Agent> {
    const advertise = this.cluster?.advertiseAddr ?? this.worker!.advertiseAddr
    this.nodeMesh = new NodeMesh({
      membership: () => this.membership,
      host: splitAddr(advertise, CONTROL_PORT).host,
      ingressHost: this.opts.ingressAddr ?? '0.0.0.0',
      ...(this.opts.meshIdleTimeoutMs ? { idleTimeoutMs: this.opts.meshIdleTimeoutMs } : {}),
      ...(this.opts.meshBalancing ? { strategy: this.opts.meshBalancing } : {}),
      log: this.log.child({ layer: 'mesh' }),
    })
    this.agent = new Agent({ executor: this.executor!, mesh: this.nodeMesh, nodeId: this.nodeId, hostname: this.hostname, log: this.log.child({ layer: 'agent' }) })
    await this.agent.init()
    return this.agent
  }

  /** Nodes as the scheduler sees them: what the store says, Ready from gossip and check-ins, and whether they run tasks at all. */
  private nodeInfos(): NodeInfo[] {
    return this.store.list<NodeRecord>('nodes').map(n => {
      const state = this.nodeState(n.id)
      return {
        id: n.id,
        hostname: n.hostname,
        role: n.spec.Role,
        addr: n.addr,
        labels: n.spec.Labels,
        engineLabels: {},
        platform: { os: 'linux', arch: ARCH },
        // Nodes do not report their resources yet: only this one's are known.
        resources: n.id === this.nodeId ? { nanoCPUs: cpus().length * 1e9, memoryBytes: totalmem() } : { nanoCPUs: Number.MAX_SAFE_INTEGER, memoryBytes: Number.MAX_SAFE_INTEGER },
        ready: state === 'ready' && (n.id === this.nodeId ? !!this.executor : true),
        unknown: state === 'unknown',
        availability: n.spec.Availability,
      }
    })
  }

  services(): Services {
    this.requireCluster()
    return this.servicesApi!
  }

  /** What every node's mesh serves: networks with their VNIs (and keys when encrypted), and services' ports and VIPs. */
  private routing(): Routing {
    const nets = this.networks().list()
    const loopback = new Map(nets.map(n => [n.ID, n]))
    return {
      dataPathPort: this.requireCluster().dataPathPort,
      networks: nets.map(n => ({ id: n.ID, vni: n.Vni, ingress: n.Ingress, ...(n.Keys?.length ? { keys: n.Keys } : {}) })),
      services: this.store.list<Service>('services').map(svc => ({
        id: svc.ID,
        name: svc.Spec.Name,
        labels: svc.Spec.Labels ?? {},
        ports: svc.Endpoint.Ports ?? [],
        vips: this.networks()
          .vips(svc.ID)
          .filter(v => loopback.has(v.NetworkID))
          .map(v => ({ network: v.NetworkID, loopback: v.Loopback })),
      })),
    }
  }

  networks(): Networks {
    this.requireCluster()
    return (this.networksApi ??= new Networks(this.store))
  }

  secrets(): Secrets {
    this.requireCluster()
    return this.secretsApi!
  }

  /**
   * Log lines of these tasks from the nodes that ran them, each node asked
   * over its session (this node's own agent directly).
   */
  async taskLogs(tasks: Task[], opts: LogOptions, onLine: (task: Task, l: LogLine) => void, signal: AbortSignal): Promise<void> {
    this.requireCluster()
    const byNode = new Map<string, Task[]>()
    for (const t of tasks) if (t.NodeID) byNode.set(t.NodeID, [...(byNode.get(t.NodeID) ?? []), t])
    await Promise.all(
      [...byNode].map(async ([nodeId, list]) => {
        const byId = new Map(list.map(t => [t.ID, t]))
        if (!this.dispatcher!.connected(nodeId)) return
        await this.dispatcher!.logs(nodeId, [...byId.keys()], opts, (id, l) => byId.has(id) && onLine(byId.get(id)!, l), signal).catch(e =>
          this.log.warn({ err: e, nodeId }, 'logs from a node failed'),
        )
      }),
    )
  }

  /**
   * A node that checks in but that gossip holds dead (back from a partition:
   * each side took the other for dead, and memberlist probes no dead node)
   * is joined again at once, so both sides learn it is alive without waiting.
   */
  private regossip(nodeId: string): void {
    const m = this.membership
    const n = this.store.get<NodeRecord>('nodes', nodeId)
    if (!m || !n || m.members().some(x => x.name === nodeId)) return
    void m.join([`${n.addr}:${GOSSIP_PORT}`]).catch(e => this.log.debug({ err: e, nodeId }, 'gossip rejoin failed'))
  }

  /** The cluster CA, parsed once: every join, check-in and renewal uses it. */
  private ca(): ClusterCA {
    const pem = this.requireCluster().caPem
    if (this.caCache?.pem !== pem) this.caCache = { pem, ca: ClusterCA.load(pem) }
    return this.caCache.ca
  }

  private issueCert(publicKeyB64: string, role: NodeRole): NodeCertificate {
    const c = this.requireCluster()
    return this.ca().issue({ nodePublicKey: publicKeyFromRaw(Buffer.from(publicKeyB64, 'base64')), role, now: Date.now(), ttlMs: c.certTtlMs ?? CERT_TTL_MS })
  }

  /** Workers check in often enough that no key rotation or certificate expiry can outpace them. */
  private heartbeatPeriod(): number {
    const ttl = this.cluster?.certTtlMs ?? CERT_TTL_MS
    return Math.min(this.opts.heartbeatMs, Math.floor(this.opts.gossipKeyRotationMs / 3), Math.floor(ttl / 6))
  }

  private repeat(ms: () => number, fn: () => Promise<void>): void {
    const gen = this.generation
    const tick = (): void => {
      if (gen !== this.generation) return
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        void fn()
          .catch(e => this.log.warn({ err: e }, 'periodic task failed'))
          .finally(tick)
      }, ms())
      timer.unref()
      this.timers.add(timer)
    }
    tick()
  }

  /** Swarm's rotation: drop the oldest of three keys, add a new one; the middle one encrypts. */
  private async rotateGossipKeys(): Promise<void> {
    const c = this.requireCluster()
    const gossipKeys = [...c.gossipKeys.slice(1), randomBytes(16).toString('base64')]
    await this.store.commit([{ op: 'put', table: 'cluster', id: 'default', value: { ...c, gossipKeys, updatedAt: now() } }])
    this.applyGossipKeys(gossipKeys)
    this.log.info('gossip keys rotated')
  }

  /** Installs new keys, makes the middle one primary, removes the dropped ones: no flag day. */
  private applyGossipKeys(gossipKeys: string[]): void {
    const m = this.membership
    if (!m) return
    const keys = gossipKeys.map(k => Buffer.from(k, 'base64'))
    for (const k of keys) m.installKey(k)
    m.useKey(keys[1]!)
    for (const k of m.keyring.getKeys()) if (!keys.some(x => x.equals(k))) m.removeKey(k)
  }

  /** A worker's check-in with the manager; the answer carries the current gossip keys. */
  private async heartbeat(): Promise<void> {
    const w = this.worker
    if (!w || !this.control) return
    const m = splitAddr(w.managerAddr, CONTROL_PORT)
    const to = { ip: m.host, port: m.port }
    const ca = publicKeyFromRaw(Buffer.from(w.caPublicKey, 'base64'))
    if (needsRenewal(w.cert.body, Date.now())) {
      const cert = await callRpc<NodeCertificate>(this.control, to, w.cert, ca, 'renew')
      await this.store.commit([{ op: 'put', table: 'worker', id: 'self', value: { ...this.worker!, cert } }])
      this.log.info({ notAfter: new Date(cert.body.notAfter).toISOString() }, 'certificate renewed')
      return this.heartbeat()
    }
    const r = await callRpc<{ gossipKeys: string[]; periodMs: number }>(this.control, to, w.cert, ca, 'heartbeat')
    if (Number.isFinite(r.periodMs) && r.periodMs >= 100) this.workerPeriod = r.periodMs
    if (r.gossipKeys.join() !== w.gossipKeys.join()) {
      this.applyGossipKeys(r.gossipKeys)
      await this.store.commit([{ op: 'put', table: 'worker', id: 'self', value: { ...w, gossipKeys: r.gossipKeys } }])
      this.log.info('gossip keys updated from the manager')
    }
    // Alone in gossip (restarted with keys that rotated meanwhile, or cut off): join again.
    const mem = this.membership
    if (mem && !mem.members().some(x => x.name !== this.nodeId)) {
      await mem.join([w.gossipAddr]).catch(e => this.log.info({ err: e }, "the manager's gossip did not answer"))
    }
  }

  /** A worker after a restart: back into gossip through the manager, by itself. */
  private async startWorker(): Promise<void> {
    const w = this.worker!
    await this.startGossip(splitAddr(w.advertiseAddr, GOSSIP_PORT).host, w.gossipKeys)
    await this.membership!.join([w.gossipAddr]).catch(e => this.log.warn({ err: e }, "cannot reach the manager's gossip yet"))
    this.control = await ControlNode.create({ privateKey: this.identity.privateKey })
    this.repeat(() => this.workerPeriod, () => this.heartbeat())
    if (this.executor) {
      await this.startAgent()
      void this.sessionLoop(this.generation)
    }
  }

  /** A worker's session with the manager, opened again whenever it drops. */
  private async sessionLoop(gen: number): Promise<void> {
    while (gen === this.generation) {
      const w = this.worker
      const agent = this.agent
      if (!w || !this.control || !agent) return
      const m = splitAddr(w.managerAddr, CONTROL_PORT)
      try {
        const s = await openSession(this.control, { ip: m.host, port: m.port }, w.cert, publicKeyFromRaw(Buffer.from(w.caPublicKey, 'base64')), msg => agent.receive(msg))
        if (gen !== this.generation) {
          await s.close()
          return
        }
        this.session = s
        agent.connect(msg => s.send(msg))
        this.log.info('session with the manager open')
        await s.closed
      } catch (e) {
        this.log.info({ err: e }, 'no session with the manager yet')
      }
      agent.disconnect()
      this.session = undefined
      await new Promise(r => setTimeout(r, 1_000).unref())
    }
  }

  /** Joins gossip on `host`:7946, encrypted with the swarm's keys (the middle one primary, as swarm's). */
  private async startGossip(host: string, gossipKeys: string[]): Promise<void> {
    const keys = gossipKeys.map(k => Buffer.from(k, 'base64'))
    this.membership = await Membership.create({
      name: this.nodeId,
      bind: { ip: host, port: GOSSIP_PORT },
      keys: [keys[1]!, keys[0]!, keys[2]!],
      logger: this.log.child({ layer: 'gossip' }),
      onEvent: e => {
        this.log.info({ event: e.type, node: e.member.name }, 'membership')
        // The scheduler and the data plane see the same event: a dead node's tasks are replaced now.
        void this.orchestrator?.kick()
      },
    })
  }

  /** `swarm join`: admission over the control plane, then gossip with the keys it brought. */
  async join(req: JoinRequest): Promise<void> {
    if (this.cluster || this.worker) throw new ApiError(503, ALREADY_IN_SWARM)
    const remote = req.RemoteAddrs?.[0]
    if (!remote) throw new ApiError(400, 'at least 1 RemoteAddr is required to join')
    if (!req.JoinToken) throw new ApiError(400, 'JoinToken is required to join')
    const manager = splitAddr(remote, CONTROL_PORT)
    const listen = splitAddr(req.ListenAddr || '0.0.0.0:2377', CONTROL_PORT)
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
      managerAddr: `${manager.host}:${manager.port}`,
    }
    await this.store.commit([{ op: 'put', table: 'worker', id: 'self', value: w }])
    await this.startWorker()
  }


  nodes(): NodeRecord[] {
    this.requireCluster()
    return this.store.list<NodeRecord>('nodes')
  }

  /** A node by ID, unique ID prefix, or hostname, as the docker CLI allows. */
  node(ref: string): NodeRecord {
    const all = this.nodes()
    const exact = all.find(n => n.id === ref)
    if (exact) return exact
    const matches = all.filter(n => n.id.startsWith(ref) || n.hostname === ref)
    if (matches.length === 1) return matches[0]!
    if (matches.length > 1) throw new ApiError(400, `node ${ref} is ambiguous (${matches.length} matches found)`)
    throw new ApiError(404, `node ${ref} not found`)
  }

  async updateNode(ref: string, version: number, spec: NodeSpec): Promise<void> {
    const n = this.node(ref)
    if (version !== n.version) throw new ApiError(500, 'update out of sequence')
    const next: NodeRecord = { ...n, spec: { ...n.spec, ...spec, Labels: spec.Labels ?? {} }, version: n.version + 1, updatedAt: now() }
    await this.store.commit([{ op: 'put', table: 'nodes', id: n.id, value: next }])
    void this.orchestrator?.kick()
  }

  /** `node rm`: only a Down node unless forced, never the manager itself; its certificate stops working at once. */
  async removeNode(ref: string, force: boolean): Promise<void> {
    const n = this.node(ref)
    if (n.id === this.nodeId) {
      throw new ApiError(400, `rpc error: code = FailedPrecondition desc = node ${n.id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`)
    }
    if (!force && this.isReady(n.id)) throw new ApiError(400, `rpc error: code = FailedPrecondition desc = node ${n.id} is not down and can't be removed`)
    await this.store.commit([{ op: 'delete', table: 'nodes', id: n.id }])
    this.log.info({ nodeId: n.id, force }, 'node removed')
  }

  async rotateTokens(version: number, worker: boolean, manager: boolean): Promise<void> {
    const c = this.requireCluster()
    if (version !== c.version) throw new ApiError(500, 'update out of sequence')
    const digest = this.ca().digest
    const tokens = { worker: worker ? newJoinToken(digest) : c.tokens.worker, manager: manager ? newJoinToken(digest) : c.tokens.manager }
    await this.store.commit([{ op: 'put', table: 'cluster', id: 'default', value: { ...c, tokens, version: c.version + 1, updatedAt: now() } }])
  }

  async leave(force: boolean): Promise<void> {
    if (this.worker) {
      await this.agent?.stopAll()
      await this.stopPlanes()
      await this.store.commit([{ op: 'delete', table: 'worker', id: 'self' }])
      return
    }
    this.requireCluster()
    if (!force) throw new ApiError(503, LAST_MANAGER)
    await this.agent?.stopAll()
    await this.stopPlanes()
    // The last manager leaving erases the swarm's state, as Docker's does.
    await this.store.commit(
      ['cluster', 'certs', 'nodes', 'services', 'tasks', 'secrets', 'keys', 'networks', 'vips'].flatMap(table => this.store.ids(table).map(id => ({ op: 'delete' as const, table, id }))),
    )
    this.networksApi = undefined
  }

  /** Leaves gossip gracefully (the others see "left") and closes the control plane. */
  private async stopPlanes(): Promise<void> {
    this.generation++
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    await this.stopOrchestration()
    await this.membership?.leave(2_000).catch(() => undefined)
    await this.membership?.shutdown()
    this.membership = undefined
    await this.control?.stop()
    this.control = undefined
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
    if (nodeId === this.nodeId) return !!this.membership
    const seen = this.lastSeen.get(nodeId)
    if (seen === undefined) return false
    const since = Date.now() - seen
    const period = this.heartbeatPeriod()
    if (since >= 3 * period + 1_000) return false
    if (this.membership?.members().some(m => m.name === nodeId)) return true
    return !!this.dispatcher?.connected(nodeId) && since < 1.5 * period + 500
  }

  /**
   * Ready, Down, or Unknown: right after the manager starts, a node it has not
   * heard from yet is Unknown (swarm's state after a leader change) for six
   * heartbeat periods; its tasks are not replaced meanwhile, and nothing new
   * is placed on it.
   */
  nodeState(nodeId: string): 'ready' | 'down' | 'unknown' {
    if (this.isReady(nodeId)) return 'ready'
    const graceOver = Date.now() - this.managerStartedAt > 6 * this.heartbeatPeriod()
    return !graceOver && !this.lastSeen.has(nodeId) ? 'unknown' : 'down'
  }

  /** Stops every task this node runs (the daemon stops without --live-restore). */
  async stopTasks(): Promise<void> {
    await this.agent?.stopAll()
  }

  /** Stops scheduling and sessions; tasks keep running (a restarted daemon adopts them). */
  private async stopOrchestration(): Promise<void> {
    this.orchestrator?.close()
    this.orchestrator = undefined
    await this.session?.close()
    await this.dispatcher?.close()
    this.dispatcher = undefined
    this.agent?.close()
    this.agent = undefined
    await this.nodeMesh?.close()
    this.nodeMesh = undefined
  }

  async close(): Promise<void> {
    this.generation++
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    await this.stopOrchestration()
    await this.membership?.shutdown()
    await this.control?.stop()
    await this.executor?.close()
    await this.store.close()
  }
}
