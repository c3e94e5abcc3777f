import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { ApiError } from '../errors.js'
import { ClusterCA } from '../control/ca.js'
import { base36, exportPrivateKey, generateKeyPair, importPrivateKey, type KeyPair, nodeIdFor } from '../control/identity.js'
import { newJoinToken } from '../control/join-token.js'
import { Membership } from '../gossip/membership.js'
import { Store } from './store.js'

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
  state: 'ready' | 'down' | 'unknown'
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
}

export interface InitRequest {
  ListenAddr?: string
  AdvertiseAddr?: string
  DataPathPort?: number
}

export const GOSSIP_PORT = 7946
export const CONTROL_PORT = 2377

export const NOT_IN_SWARM = 'This node is not part of a swarm'
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
  readonly nodeId: string

  private constructor(
    private readonly store: Store,
    private readonly identity: KeyPair,
    private readonly hostname: string,
    private readonly log: Logger,
  ) {
    this.nodeId = nodeIdFor(identity.publicKey)
  }

  /** Opens the data dir: the node key (created once), the store, and an active swarm's gossip. */
  static async open(dataDir: string, hostname: string, log: Logger): Promise<SwarmManager> {
    const keyPath = join(dataDir, 'node.key')
    const store = await Store.open(join(dataDir, 'state'))
    let identity: KeyPair
    if (existsSync(keyPath)) identity = importPrivateKey(readFileSync(keyPath, 'utf8'))
    else {
      identity = generateKeyPair()
      writeFileSync(keyPath, exportPrivateKey(identity.privateKey), { mode: 0o600 })
    }
    const m = new SwarmManager(store, identity, hostname, log)
    if (m.cluster) await m.startGossip()
    return m
  }

  get cluster(): ClusterRecord | undefined {
    return this.store.get<ClusterRecord>('cluster', 'default')
  }

  /** The cluster record, or Docker's 503 when this node is in no swarm. */
  requireCluster(): ClusterRecord {
    const c = this.cluster
    if (!c) throw new ApiError(503, NOT_IN_SWARM)
    return c
  }

  async init(req: InitRequest): Promise<string> {
    if (this.cluster) throw new ApiError(503, ALREADY_IN_SWARM)
    const listen = splitAddr(req.ListenAddr || '0.0.0.0:2377', CONTROL_PORT)
    const advertise = splitAddr(req.AdvertiseAddr || (listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host), listen.port)
    const dataPathPort = req.DataPathPort || 4789
    if (!Number.isInteger(dataPathPort) || dataPathPort < 1024 || dataPathPort > 49151) {
      throw new ApiError(400, `invalid DataPathPort ${req.DataPathPort}: it must be within 1024 - 49151`)
    }
    const ca = ClusterCA.create()
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
    }
    const node: NodeRecord = {
      id: this.nodeId,
      version: 1,
      createdAt: t,
      updatedAt: t,
      spec: { Labels: {}, Role: 'manager', Availability: 'active' },
      hostname: this.hostname,
      addr: advertise.host,
      state: 'ready',
      managerAddr: cluster.advertiseAddr,
    }
    await this.store.commit([
      { op: 'put', table: 'cluster', id: 'default', value: cluster },
      { op: 'put', table: 'nodes', id: node.id, value: node },
    ])
    await this.startGossip()
    this.log.info({ nodeId: this.nodeId, cluster: cluster.id }, 'swarm initialized')
    return this.nodeId
  }

  /** Joins (or rejoins after a restart) gossip on the advertise address, encrypted with the swarm's keys. */
  private async startGossip(): Promise<void> {
    const c = this.requireCluster()
    const host = splitAddr(c.advertiseAddr, CONTROL_PORT).host
    const keys = c.gossipKeys.map(k => Buffer.from(k, 'base64'))
    this.membership = await Membership.create({
      name: this.nodeId,
      bind: { ip: host, port: GOSSIP_PORT },
      keys: [keys[1]!, keys[0]!, keys[2]!],
      logger: this.log.child({ layer: 'gossip' }),
      onEvent: e => this.log.info({ event: e.type, node: e.member.name }, 'membership'),
    })
  }

  nodes(): NodeRecord[] {
    this.requireManager()
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
  }

  async rotateTokens(version: number, worker: boolean, manager: boolean): Promise<void> {
    const c = this.requireCluster()
    if (version !== c.version) throw new ApiError(500, 'update out of sequence')
    const digest = ClusterCA.load(c.caPem).digest
    const tokens = { worker: worker ? newJoinToken(digest) : c.tokens.worker, manager: manager ? newJoinToken(digest) : c.tokens.manager }
    await this.store.commit([{ op: 'put', table: 'cluster', id: 'default', value: { ...c, tokens, version: c.version + 1, updatedAt: now() } }])
  }

  async leave(force: boolean): Promise<void> {
    this.requireCluster()
    if (!force) throw new ApiError(503, LAST_MANAGER)
    await this.membership?.leave(2_000).catch(() => undefined)
    await this.membership?.shutdown()
    this.membership = undefined
    await this.store.commit([
      { op: 'delete', table: 'cluster', id: 'default' },
      ...this.store.list<NodeRecord>('nodes').map(n => ({ op: 'delete' as const, table: 'nodes', id: n.id })),
    ])
  }

  private requireManager(): void {
    this.requireCluster()
  }

  /** Alive gossip members: Ready nodes. */
  isReady(nodeId: string): boolean {
    return nodeId === this.nodeId ? !!this.membership : !!this.membership?.members().some(m => m.name === nodeId && m.state !== 'dead')
  }

  async close(): Promise<void> {
    await this.membership?.shutdown()
    await this.store.close()
  }
}
