import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Agent } from '../agent/agent.js'
import { CheckIn } from '../agent/checkin.js'
import type { Executor } from '../agent/executor.js'
import type { ManagerLink } from '../agent/manager-link.js'
import { certificateAuth } from '../agent/mesh-auth.js'
import { NodeMesh } from '../agent/node-mesh.js'
import { WorkerSession } from '../agent/worker-session.js'
import type { NodeCertificate } from '../control/ca.js'
import { ControlNode } from '../control/control-node.js'
import { exportPrivateKey, generateKeyPair, importPrivateKey, type KeyPair, nodeIdFor, publicKeyFromRaw, rawPublicKey } from '../control/identity.js'
import { requestJoin } from '../control/join-protocol.js'
import type { Session } from '../control/session.js'
import { systemClock, wallClock } from '../gossip/clock.js'
import type { Membership } from '../gossip/membership.js'
import { Cluster, DEFAULT_TIMINGS, type ClusterTimings } from '../manager/cluster.js'
import { Manager } from '../manager/manager.js'
import { Store } from '../manager/store.js'
import { splitAddr } from '../types/addr.js'
import { CONTROL_PORT, GOSSIP_PORT } from '../types/defaults.js'
import { ALREADY_IN_SWARM, NOT_IN_SWARM, NOT_MANAGER, SwarmError } from '../types/errors.js'
import type { ClusterRecord, InitRequest, JoinRequest } from '../types/node.js'
import { applyGossipKeys, startGossip } from './gossip.js'
import type { WorkerRecord } from './worker-record.js'

const LAST_MANAGER =
  'You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.'

/** The tables a manager's swarm state lives in: the last manager leaving erases them. */
const SWARM_TABLES = ['cluster', 'certs', 'nodes', 'services', 'tasks', 'secrets', 'keys', 'networks', 'vips']

/** How a node runs: timings a test may shorten, and the data plane's settings. */
export interface NodeOptions extends Partial<ClusterTimings> {
  /** Where published ports listen on this node (default every address). */
  ingressAddr?: string
  /** Closes mesh connections idle this long (0: never). */
  meshIdleTimeoutMs?: number
  meshBalancing?: 'round-robin' | 'least-connections'
  /** Makes the executor that runs this node's tasks (given the node's ID); without one the node runs none and is given none. */
  executor?: (nodeId: string) => Executor
}

/**
 * One swarm node (swarmkit's node/): its identity and store, gossip on 7946
 * and the control node, the manager role when it is a manager, and the
 * agent that runs its tasks, attached to a manager's dispatcher over the
 * control plane (or in process, on a manager). This is where the layers
 * meet; the API drives the node through it.
 */
export class SwarmNode {
  readonly nodeId: string
  private membership: Membership | undefined
  private control: ControlNode | undefined
  private role: Manager | undefined
  private agent: Agent | undefined
  private nodeMesh: NodeMesh | undefined
  private workerSession: WorkerSession | undefined
  private checkIn: CheckIn | undefined
  private localSession: Session | undefined
  private readonly executor: Executor | undefined
  private readonly timings: ClusterTimings

  private constructor(
    private readonly store: Store,
    private readonly identity: KeyPair,
    private readonly hostname: string,
    private readonly log: Logger,
    private readonly opts: NodeOptions,
  ) {
    this.nodeId = nodeIdFor(identity.publicKey)
    this.executor = opts.executor?.(this.nodeId)
    this.timings = { ...DEFAULT_TIMINGS, ...(opts.gossipKeyRotationMs ? { gossipKeyRotationMs: opts.gossipKeyRotationMs } : {}), ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}) }
  }

  /** Opens the data dir: the node key (created once), the store, and the planes of the swarm it is in. */
  static async open(dataDir: string, hostname: string, log: Logger, opts: NodeOptions = {}): Promise<SwarmNode> {
    const keyPath = join(dataDir, 'node.key')
    const store = await Store.open(join(dataDir, 'state'))
    let identity: KeyPair
    if (existsSync(keyPath)) identity = importPrivateKey(readFileSync(keyPath, 'utf8'))
    else {
      identity = generateKeyPair()
      writeFileSync(keyPath, exportPrivateKey(identity.privateKey), { mode: 0o600 })
    }
    const n = new SwarmNode(store, identity, hostname, log, opts)
    if (n.cluster) await n.startManager()
    else if (n.worker) await n.startWorker()
    return n
  }

  get worker(): WorkerRecord | undefined {
    return this.store.get<WorkerRecord>('worker', 'self')
  }

  get cluster(): ClusterRecord | undefined {
    return this.store.get<ClusterRecord>('cluster', 'default')
  }

  /** The manager role, or Docker's 503 when this node is in no swarm or only a worker. */
  manager(): Manager {
    if (this.role) return this.role
    throw new SwarmError(this.worker ? 'E_NOT_MANAGER' : 'E_NOT_IN_SWARM', this.worker ? NOT_MANAGER : NOT_IN_SWARM)
  }

  /** This node's gossip runs. */
  get gossipUp(): boolean {
    return !!this.membership
  }

  async init(req: InitRequest): Promise<string> {
    if (this.cluster || this.worker) throw new SwarmError('E_ALREADY_IN_SWARM', ALREADY_IN_SWARM)
    const c = await Cluster.bootstrap(this.store, { nodeKey: this.identity.privateKey, nodePublicKey: this.identity.publicKey, nodeId: this.nodeId, hostname: this.hostname, req })
    await this.startManager()
    this.log.info({ nodeId: this.nodeId, cluster: c.id }, 'swarm initialized')
    return this.nodeId
  }

  /** The manager's planes: gossip on the advertise address, the control plane on the listen address, then the manager role and this node's agent. */
  private async startManager(): Promise<void> {
    const c = this.cluster!
    await this.startGossip(splitAddr(c.advertiseAddr, CONTROL_PORT).host, c.gossipKeys)
    const listen = splitAddr(c.listenAddr, CONTROL_PORT)
    this.control = await ControlNode.create({ privateKey: this.identity.privateKey, listen: { ip: listen.host, port: listen.port } })
    const role = new Manager({
      store: this.store,
      nodeId: this.nodeId,
      nodeKey: this.identity.privateKey,
      control: this.control,
      clock: wallClock,
      timings: this.timings,
      liveness: { inGossip: id => !!this.membership?.members().some(m => m.name === id) },
      runsTasks: !!this.executor,
      selfUp: () => this.gossipUp,
      applyGossipKeys: keys => this.membership && applyGossipKeys(this.membership, keys),
      onCheckIn: n => this.regossip(n.id, n.addr),
      log: this.log,
    })
    this.role = role
    // After a restart, find the nodes again: their gossip still runs.
    const others = role.nodes.list().filter(n => n.id !== this.nodeId)
    if (others.length > 0) {
      void this.membership!.join(others.map(n => `${n.addr}:${GOSSIP_PORT}`)).catch(e => this.log.info({ err: e }, 'no known node answered yet'))
    }
    await role.start()
    if (this.executor) {
      const agent = await this.startAgent(c.advertiseAddr)
      let done!: () => void
      const local: Session = { send: m => agent.receive(structuredClone(m)), closed: new Promise<void>(r => (done = r)), close: async () => done() }
      this.localSession = local
      const handler = role.attachLocal(local)
      agent.connect(m => handler(structuredClone(m)))
    }
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

  private async startAgent(advertiseAddr: string): Promise<Agent> {
    const mesh: NodeMesh = new NodeMesh({
      membership: () => this.membership,
      host: splitAddr(advertiseAddr, CONTROL_PORT).host,
      // The tunnel's peers prove their node IDs as on the control plane: a certificate of the cluster CA and the node key's signature.
      auth: certificateAuth({
        privateKey: this.identity.privateKey,
        certificate: () => (this.cluster ? this.store.get<NodeCertificate>('certs', 'self') : this.worker?.cert),
        caPublicKey: () => (this.role ? this.role.cluster.ca().publicKey : this.worker ? publicKeyFromRaw(Buffer.from(this.worker.caPublicKey, 'base64')) : undefined),
        known: id => mesh.knows(id),
      }),
      ingressHost: this.opts.ingressAddr ?? '0.0.0.0',
      ...(this.opts.meshIdleTimeoutMs ? { idleTimeoutMs: this.opts.meshIdleTimeoutMs } : {}),
      ...(this.opts.meshBalancing ? { strategy: this.opts.meshBalancing } : {}),
      log: this.log.child({ layer: 'mesh' }),
    })
    this.nodeMesh = mesh
    this.agent = new Agent({ executor: this.executor!, mesh: this.nodeMesh, nodeId: this.nodeId, hostname: this.hostname, log: this.log.child({ layer: 'agent' }) })
    await this.agent.init()
    return this.agent
  }

  /** A worker after a restart (or a join): back into gossip through the manager, checking in, and its session for tasks. */
  private async startWorker(): Promise<void> {
    const w = this.worker!
    await this.startGossip(splitAddr(w.advertiseAddr, GOSSIP_PORT).host, w.gossipKeys)
    await this.membership!.join([w.gossipAddr]).catch(e => this.log.warn({ err: e }, "cannot reach the manager's gossip yet"))
    this.control = await ControlNode.create({ privateKey: this.identity.privateKey })
    const manager = (): { ip: string; port: number } => {
      const m = splitAddr(this.worker!.managerAddr, CONTROL_PORT)
      return { ip: m.host, port: m.port }
    }
    const link: ManagerLink = { control: this.control, manager, cert: () => this.worker!.cert, caPublicKey: publicKeyFromRaw(Buffer.from(w.caPublicKey, 'base64')) }
    this.checkIn = new CheckIn({
      ...link,
      renewed: async c => this.saveWorker({ ...this.worker!, cert: c }),
      answered: async a => {
        const cur = this.worker!
        if (a.gossipKeys.join() !== cur.gossipKeys.join()) {
          if (this.membership) applyGossipKeys(this.membership, a.gossipKeys)
          await this.saveWorker({ ...cur, gossipKeys: a.gossipKeys })
          this.log.info('gossip keys updated from the manager')
        }
        // Alone in gossip (restarted with keys that rotated meanwhile, or cut off): join again.
        const mem = this.membership
        if (mem && !mem.members().some(x => x.name !== this.nodeId)) {
          await mem.join([cur.gossipAddr]).catch(e => this.log.info({ err: e }, "the manager's gossip did not answer"))
        }
      },
      clock: systemClock,
      log: this.log,
    })
    this.checkIn.start()
    if (this.executor) {
      const agent = await this.startAgent(w.advertiseAddr)
      this.workerSession = new WorkerSession({ ...link, agent, log: this.log })
      this.workerSession.start()
    }
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

  /** `swarm join`: admission over the control plane, then gossip with the keys it brought. */
  async join(req: JoinRequest): Promise<void> {
    if (this.cluster || this.worker) throw new SwarmError('E_ALREADY_IN_SWARM', ALREADY_IN_SWARM)
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
    await this.saveWorker({
      clusterId: admission.clusterId,
      cert: admission.cert,
      caPublicKey: admission.caPublicKey,
      gossipKeys: admission.gossipKeys,
      gossipAddr: admission.gossipAddr,
      advertiseAddr: `${advertiseHost}:${GOSSIP_PORT}`,
      managerAddr: `${manager.host}:${manager.port}`,
    })
    await this.startWorker()
  }

  async leave(force: boolean): Promise<void> {
    if (this.worker) {
      await this.agent?.stopAll()
      await this.stopPlanes()
      await this.store.commit([{ op: 'delete', table: 'worker', id: 'self' }])
      return
    }
    this.manager()
    if (!force) throw new SwarmError('E_LAST_MANAGER', LAST_MANAGER)
    await this.agent?.stopAll()
    await this.stopPlanes()
    // The last manager leaving erases the swarm's state, as Docker's does.
    await this.store.commit(SWARM_TABLES.flatMap(table => this.store.ids(table).map(id => ({ op: 'delete' as const, table, id }))))
  }

  /** Stops every task this node runs (the daemon stops without --live-restore). */
  async stopTasks(): Promise<void> {
    await this.agent?.stopAll()
  }

  /** Stops the manager role, the agent's sessions and the mesh; tasks keep running (a restarted daemon adopts them). */
  private async stopRoles(): Promise<void> {
    this.checkIn?.close()
    this.checkIn = undefined
    await this.workerSession?.close()
    this.workerSession = undefined
    await this.localSession?.close()
    this.localSession = undefined
    await this.role?.close()
    this.role = undefined
    this.agent?.close()
    this.agent = undefined
    await this.nodeMesh?.close()
    this.nodeMesh = undefined
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
