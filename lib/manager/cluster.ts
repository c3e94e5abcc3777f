import { randomBytes, type KeyObject } from 'node:crypto'
import type { Logger } from 'pino'
import { ClusterCA, needsRenewal, type NodeCertificate } from '../control/ca.js'
import type { ControlNode } from '../control/control-node.js'
import { base36, publicKeyFromRaw } from '../control/identity.js'
import { serveJoin } from '../control/join-protocol.js'
import { newJoinToken, parseJoinToken } from '../control/join-token.js'
import { serveRpc, type RpcMethod, type RpcOutcome } from '../control/rpc.js'
import { CERT_TTL_MS, CONTROL_PORT, DATA_PATH_PORT, GOSSIP_PORT, HEARTBEAT_MS, KEY_ROTATION_MS, TASK_HISTORY } from '../types/defaults.js'
import { ALREADY_IN_SWARM, SwarmError } from '../types/errors.js'
import { splitAddr } from '../types/addr.js'
import type { ClusterRecord, InitRequest, NodeRecord, NodeRole } from '../types/node.js'
import { certExpiryMs, clusterSettings } from './cluster-spec.js'
import { dataKeyLocked, newDataKey, openDataKey, type KeyEncryption } from './data-key.js'
import { EtcdCA } from './etcd/pki.js'
import type { SecretBox } from './secret-box.js'
import type { Nodes } from './nodes.js'
import type { StateStore } from './state-store.js'
import type { Store } from './store.js'
import { newUnlockKey } from './unlock-key.js'

const now = (): string => new Date().toISOString()
const newGossipKey = (): string => randomBytes(16).toString('base64')

/** How the cluster's timings are set: what a test may shorten. */
export interface ClusterTimings {
  /** Swarm rotates the gossip keys every 12 h. */
  gossipKeyRotationMs: number
  /** Nodes check in this often; the answer carries the current gossip keys. */
  heartbeatMs: number
}

export const DEFAULT_TIMINGS: ClusterTimings = { gossipKeyRotationMs: KEY_ROTATION_MS, heartbeatMs: HEARTBEAT_MS }

/**
 * The cluster of a manager (swarmkit's CA server and key manager, and the
 * control API's swarm half): the cluster record with its CA, whose private
 * key is sealed at rest under the manager's data key; the join tokens; node
 * certificates; the gossip keys and their rotation; and what it serves on
 * the control plane: joins, and the RPCs nodes make (check-in, renewal).
 */
export class Cluster {
  private caCache: { sealed: string; ca: ClusterCA } | undefined
  private box: SecretBox | undefined

  constructor(
    private readonly d: {
      /** The swarm's state: the cluster record. */
      state: StateStore
      /** This node's own store: its certificate, and the data key sealed under its node key. */
      local: Store
      /** The manager's node key (and the unlock key, with autolock): they open the data key that seals the CA key. */
      keys: KeyEncryption
      timings: ClusterTimings
      log: Logger
    },
  ) {}

  /**
   * `swarm init`: a new cluster with its CA, tokens and gossip keys, this node
   * its first manager, in one commit. Checks the request as Docker does.
   */
  static async bootstrap(store: Store, o: { nodeKey: KeyObject; nodePublicKey: KeyObject; nodeId: string; hostname: string; req: InitRequest }): Promise<ClusterRecord> {
    const req = o.req
    const listen = splitAddr(req.ListenAddr || `0.0.0.0:${CONTROL_PORT}`, CONTROL_PORT)
    const advertise = splitAddr(req.AdvertiseAddr || (listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host), listen.port)
    const dataPathPort = req.DataPathPort || DATA_PATH_PORT
    if (!Number.isInteger(dataPathPort) || dataPathPort < 1024 || dataPathPort > 49151) {
      throw new SwarmError('E_INVALID_ARGUMENT', `invalid DataPathPort ${req.DataPathPort}: it must be within 1024 - 49151`)
    }
    const expiryNs = req.Spec?.CAConfig?.NodeCertExpiry
    const certTtlMs = expiryNs === undefined || expiryNs === 0 ? CERT_TTL_MS : certExpiryMs(expiryNs)
    if (store.get('cluster', 'default')) throw new SwarmError('E_ALREADY_IN_SWARM', ALREADY_IN_SWARM)
    const ca = ClusterCA.create()
    const keys = { nodeKey: o.nodeKey }
    const dek = openDataKey(store, keys) ? undefined : newDataKey(keys)
    const box = dek?.box ?? openDataKey(store, keys)!
    const selfCert = ca.issue({ nodePublicKey: o.nodePublicKey, role: 'manager', now: Date.now(), ttlMs: certTtlMs })
    const t = now()
    const cluster: ClusterRecord = {
      id: base36(randomBytes(16), 25),
      version: 1,
      createdAt: t,
      updatedAt: t,
      caKey: box.seal(Buffer.from(ca.export())),
      tokens: { worker: newJoinToken(ca.digest), manager: newJoinToken(ca.digest) },
      gossipKeys: [0, 1, 2].map(newGossipKey),
      listenAddr: `${listen.host}:${listen.port}`,
      advertiseAddr: `${advertise.host}:${advertise.port}`,
      dataPathPort,
      certTtlMs,
    }
    const node: NodeRecord = {
      id: o.nodeId,
      version: 1,
      createdAt: t,
      updatedAt: t,
      spec: { Labels: {}, Role: 'manager', Availability: 'active' },
      hostname: o.hostname,
      addr: advertise.host,
      managerAddr: cluster.advertiseAddr,
    }
    await store.commit([
      ...(dek ? [dek.mutation] : []),
      { op: 'put', table: 'cluster', id: 'default', value: cluster },
      { op: 'put', table: 'nodes', id: node.id, value: node },
      { op: 'put', table: 'certs', id: 'self', value: selfCert },
    ])
    return cluster
  }

  record(): ClusterRecord {
    const c = this.d.state.get<ClusterRecord>('cluster', 'default')
    if (!c) throw new SwarmError('E_INTERNAL', 'the cluster record is missing from the store')
    return c
  }

  /** The cluster CA, unsealed and parsed once: every join, check-in and renewal uses it. */
  ca(): ClusterCA {
    const sealed = this.record().caKey
    if (this.caCache?.sealed !== sealed) {
      this.caCache = { sealed, ca: ClusterCA.load(this.dataKey().open(sealed).toString()) }
    }
    return this.caCache.ca
  }

  /** The data key, which seals the CA's keys and the secrets. */
  dataKey(): SecretBox {
    this.box ??= openDataKey(this.d.local, this.d.keys)
    if (!this.box) throw new SwarmError('E_INTERNAL', 'the data key that seals the CA key is missing from the store')
    return this.box
  }

  selfCert(): NodeCertificate {
    return this.d.local.get<NodeCertificate>('certs', 'self')!
  }

  certTtlMs(): number {
    return this.record().certTtlMs ?? CERT_TTL_MS
  }

  issueCert(publicKey: KeyObject, role: NodeRole): NodeCertificate {
    return this.ca().issue({ nodePublicKey: publicKey, role, now: Date.now(), ttlMs: this.certTtlMs() })
  }

  /** This manager's own certificate, renewed at two thirds of its life. */
  async renewSelf(): Promise<void> {
    const own = this.selfCert()
    if (!own || !needsRenewal(own.body, Date.now())) return
    const cert = this.issueCert(publicKeyFromRaw(Buffer.from(own.body.publicKey, 'base64')), 'manager')
    await this.d.local.commit([{ op: 'put', table: 'certs', id: 'self', value: cert }])
    this.d.log.info('certificate renewed')
  }

  timings(): ClusterTimings {
    return this.d.timings
  }

  /**
   * The managers' etcd CA (reference/ha.md §3.4: not the node CA, which
   * workers hold too), created the first time a second manager joins and
   * kept in the cluster record, its key sealed under the data key.
   */
  async etcdCA(): Promise<EtcdCA> {
    const c = this.record()
    if (c.etcdCa) return EtcdCA.load(c.etcdCa.cert, this.dataKey().open(c.etcdCa.keySealed).toString())
    const ca = await EtcdCA.create(c.id)
    await this.d.state.commit([{ op: 'put', table: 'cluster', id: 'default', value: { ...c, etcdCa: { cert: ca.certPem, keySealed: this.dataKey().seal(Buffer.from(await ca.exportKey())) } } }])
    return ca
  }

  /** Nodes check in this often (swarm's dispatcher heartbeat), and often enough that no key rotation or certificate expiry can outpace them. */
  heartbeatMs(): number {
    const c = this.d.state.get<ClusterRecord>('cluster', 'default')
    const ttl = c?.certTtlMs ?? CERT_TTL_MS
    return Math.min(c?.heartbeatMs ?? this.d.timings.heartbeatMs, Math.floor(this.d.timings.gossipKeyRotationMs / 3), Math.floor(ttl / 6))
  }

  /** Ended tasks kept per slot; negative: all of them. */
  taskHistory(): number {
    return this.d.state.get<ClusterRecord>('cluster', 'default')?.taskHistory ?? TASK_HISTORY
  }

  /**
   * `swarm update` (and `join-token --rotate`, `unlock-key --rotate`): the
   * settings of a swarm.Spec, the tokens and the unlock key rotated as
   * asked, at the version the caller read. Autolock on makes an unlock key
   * (32 random bytes, sealed under the data key); off drops it. This
   * manager seals its own data key accordingly at once, the others when
   * they see the record change.
   */
  async update(version: number, spec: unknown, rotate: { worker?: boolean; manager?: boolean; unlockKey?: boolean }): Promise<void> {
    const c = this.record()
    const s = clusterSettings(spec, c)
    if (version !== c.version) throw new SwarmError('E_OUT_OF_SEQUENCE', 'rpc error: code = Unknown desc = update out of sequence')
    const digest = this.ca().digest
    const next: ClusterRecord = {
      ...c,
      version: c.version + 1,
      updatedAt: now(),
      tokens: { worker: rotate.worker ? newJoinToken(digest) : c.tokens.worker, manager: rotate.manager ? newJoinToken(digest) : c.tokens.manager },
      taskHistory: s.taskHistory,
      certTtlMs: s.certTtlMs,
      labels: s.labels,
    }
    if (s.heartbeatMs === undefined) delete next.heartbeatMs
    else next.heartbeatMs = s.heartbeatMs
    if (!s.autolock) delete next.unlockKeySealed
    else if (!c.unlockKeySealed || rotate.unlockKey) next.unlockKeySealed = this.dataKey().seal(newUnlockKey())
    await this.d.state.commit([{ op: 'put', table: 'cluster', id: 'default', value: next }])
    await this.sealDataKey()
  }

  /** The swarm's unlock key (32 bytes), when autolock is on. */
  unlockKey(): Buffer | undefined {
    const sealed = this.record().unlockKeySealed
    return sealed ? this.dataKey().open(sealed) : undefined
  }

  private sealing: Promise<void> = Promise.resolve()

  /**
   * Seals this manager's data key as the swarm wants it now: under the
   * unlock key too when autolock is on, under the node key alone when it
   * is off. The store is snapshotted after, so the log no longer holds the
   * data key as it was sealed before. Called on every change of the
   * cluster record; one at a time.
   */
  sealDataKey(): Promise<void> {
    const run = async (): Promise<void> => {
      const want = this.unlockKey()
      const keys = this.d.keys
      if (dataKeyLocked(this.d.local) === !!want && (!want || keys.unlockKey?.equals(want))) return
      const box = this.dataKey()
      const { mutation } = newDataKey({ nodeKey: keys.nodeKey, ...(want ? { unlockKey: want } : {}) }, box.exportKey())
      await this.d.local.commit([mutation])
      if (want) keys.unlockKey = want
      else delete keys.unlockKey
      await this.d.local.snapshot()
      this.d.log.info({ autolock: !!want }, want ? "this manager's data key is sealed under the unlock key" : "this manager's data key is sealed under its node key alone")
    }
    this.sealing = this.sealing.then(run, run)
    return this.sealing
  }

  /** Swarm's rotation: drop the oldest of three keys, add a new one; the middle one encrypts. Returns the new keys. */
  async rotateGossipKeys(state: StateStore = this.d.state): Promise<string[]> {
    const c = this.record()
    const gossipKeys = [...c.gossipKeys.slice(1), newGossipKey()]
    await state.commit([{ op: 'put', table: 'cluster', id: 'default', value: { ...c, gossipKeys, updatedAt: now() } }])
    this.d.log.info('gossip keys rotated')
    return gossipKeys
  }

  /** Where this manager gossips: the first contact a joining node is given. */
  gossipAddr(): string {
    return `${splitAddr(this.record().advertiseAddr, CONTROL_PORT).host}:${GOSSIP_PORT}`
  }

  /**
   * Serves joins and the nodes' RPCs on the control plane: `methods` (the
   * manager's: check-in, enrollment) and the cluster's own (certificate
   * renewal, the node list). Every RPC's authority is the role the caller
   * has in the state now, never more than its certificate says: a demoted
   * node's manager certificate calls as a worker, a removed node's calls
   * nothing.
   */
  async serve(
    control: ControlNode,
    o: { nodes: Nodes; methods: Record<string, RpcMethod>; managers: () => string[]; onCall?: (method: string, outcome: RpcOutcome, ms: number) => void },
  ): Promise<void> {
    const { nodes } = o
    await serveJoin(control, {
      ca: () => this.ca(),
      certTtlMs: () => this.certTtlMs(),
      managerCert: () => this.selfCert(),
      secrets: () => {
        const t = this.record().tokens
        return { worker: parseJoinToken(t.worker).secret, manager: parseJoinToken(t.manager).secret }
      },
      admit: async a => {
        const host = splitAddr(a.advertiseAddr, GOSSIP_PORT).host
        const node = await nodes.admit({ nodeId: a.nodeId, role: a.role, hostname: a.hostname, addr: host, ...(a.role === 'manager' ? { managerAddr: `${host}:${CONTROL_PORT}` } : {}) })
        this.d.log.info({ nodeId: node.id, role: a.role, hostname: a.hostname }, 'node joined')
        return { clusterId: this.record().id, gossipKeys: this.record().gossipKeys, gossipAddr: this.gossipAddr(), managers: o.managers() }
      },
      onRefused: (why, peer) => this.d.log.warn({ why, peer: peer.publicKey.toString('base64') }, 'join refused'),
    })
    await serveRpc(control, {
      caPublicKey: () => this.ca().publicKey,
      selfCert: () => this.selfCert(),
      role: id => nodes.role(id),
      onRefused: why => this.d.log.warn({ why }, 'control call refused'),
      ...(o.onCall ? { onCall: o.onCall } : {}),
      methods: {
        ...o.methods,
        // A new certificate for the caller's key, with the role its node has now (promote / demote take effect here).
        renew: {
          roles: ['worker', 'manager'],
          run: (_params, caller) => this.issueCert(publicKeyFromRaw(Buffer.from(caller.publicKey, 'base64')), nodes.role(caller.nodeId)!),
        },
        'nodes.list': { roles: ['manager'], run: () => nodes.list() },
      },
    })
  }
}
