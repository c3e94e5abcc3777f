import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram'
import { createServer, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { SwarmdError } from '../types/errors.js'
import type { Delegate, Membership, MemberEvent } from '../gossip/membership.js'
import { Balancer, type BackendHealth, type BalancerTarget, type BalancingStrategy } from './balancer.js'
import { decodeDelta, decodeFullState, encodeDeltas, encodeFullState, EndpointTable, type TableUpdate } from './endpoint-table.js'
import { encodeProxyV1, encodeProxyV2, proxyAddresses } from './proxy-protocol.js'
import type { SealKeyring } from './seal.js'
import { Tunnel, type DatagramFlow, type IncomingDatagram, type IncomingStream, type Peer, type PeerAddress, type TunnelAuth, type TunnelLimits } from './tunnel.js'
import { endpointKey, type Endpoint, type Protocol, type Vni } from './types.js'
import { dial, join, splice } from './splice.js'
import { ForwarderPool } from './forwarder-pool.js'
import { DATA_PATH_PORT } from '../types/defaults.js'

export class MeshError extends SwarmdError {}

/** A network the mesh carries: its VNI, and its keys when it is encrypted. */
export interface MeshNetwork {
  id: string
  vni: Vni
  seal?: SealKeyring
}

export interface MeshOptions {
  membership: Membership
  /** This node's data-plane address: the tunnel listens there (TCP and UDP). */
  host: string
  /** The data-path port, the same on every node (swarm's 4789). */
  port?: number
  /** The tunnel's UDP side on this port instead (the same on every node), where the kernel's VXLAN socket holds the data-path port's UDP. */
  udpPort?: number
  networks?: MeshNetwork[]
  strategy?: BalancingStrategy
  /** Closes a connection idle this long, explicitly, on both sides (0: never; swarm's IPVS silently forgets them after 900 s). */
  idleTimeoutMs?: number
  /** TCP keepalive on client and backend sockets, so a dead peer is noticed (default 30 s; 0 off). */
  keepAliveMs?: number
  /** How long a withdrawn endpoint still takes its open connections before its task stops (default 2 s). */
  drainMs?: number
  /**
   * How the tunnel proves this node's name (the membership's) to peers and
   * checks theirs. Without it, a peer's claim is taken at its word: anyone
   * who reaches the data-path port can pose as a node. SharedKeyAuth is one
   * for embedders; swarmd nodes prove their node certificates.
   */
  auth?: TunnelAuth
  /** The tunnel's connection caps and timeouts (see TunnelLimits). */
  tunnelLimits?: Partial<TunnelLimits>
  /**
   * Forwarder processes beside this one (default 0: none). Each accepts on
   * the published TCP ports too and forwards to this node's tasks itself,
   * so connections spread over cores; a connection for another node's task
   * (or with PROXY protocol) is served here.
   */
  workers?: number
  logger?: Logger
}

/** What a published port or a VIP forwards to. */
export interface PublishTarget {
  network: string
  /** Service ID or name. */
  service: string
  targetPort: number
  protocol?: Protocol
  /** Sends the client's address to the task first (PROXY protocol); TCP only for v1. */
  proxyProtocol?: 'v1' | 'v2'
}

export interface MeshCounters {
  connections: number
  /** Bytes forwarded toward tasks (from clients, or from peers' tunnels to this node's tasks), and back. */
  bytesToTasks: number
  bytesFromTasks: number
  connectionsFailed: number
  retries: number
  datagrams: number
  tableUpdatesIn: number
  tableUpdatesOut: number
  dropped: { malformedTable: number }
}

/** A client connection's two ends, for PROXY protocol. */
export interface ClientAddresses {
  address: string
  port: number
  localAddress: string
  localPort: number
}

/** The first byte of the mesh's gossip messages, so other users of the membership keep theirs. */
const MESH_MSG = 0xa7
/** A mesh made after its membership joined asks the others for their tables with this and its member name; they answer it with MESH_STATE and their full state. */
const MESH_STATE_REQ = 0xa8
const MESH_STATE = 0xa9
const UDP_FLOW_IDLE_MS = 60_000

interface UdpFlow {
  client: { address: string; port: number }
  endpoint: Endpoint
  /** To a task on this node: a socket connected to it. */
  local?: UdpSocket
  /** To a task on another node: through the tunnel. */
  remote?: DatagramFlow
  last: number
}

/**
 * The routing mesh: every node knows every service endpoint (a table
 * disseminated over the membership's gossip, repaired by its push/pull, and
 * pruned at once when membership declares a node dead), and forwards
 * connections to published ports and VIPs to a healthy task, locally or
 * through the owning node's tunnel on 4789. Embeddable: give it a Membership.
 */
export class Mesh {
  readonly table: EndpointTable
  readonly balancer: Balancer
  private readonly networks = new Map<string, MeshNetwork>()
  private readonly byVni = new Map<Vni, MeshNetwork>()
  private readonly servers = new Map<string, Server | UdpSocket>()
  private readonly live = new Set<Duplex>()
  private readonly udpFlows = new Map<string, UdpFlow>()
  private readonly inboundUdp = new Map<string, UdpSocket>()
  private readonly timers: NodeJS.Timeout[] = []
  private readonly counters: MeshCounters = { connections: 0, bytesToTasks: 0, bytesFromTasks: 0, connectionsFailed: 0, retries: 0, datagrams: 0, tableUpdatesIn: 0, tableUpdatesOut: 0, dropped: { malformedTable: 0 } }
  private readonly onMember = (e: MemberEvent): void => this.memberEvent(e)
  private previous: Delegate = {}
  /** Members alive or suspect, kept from membership events: the balancer asks on every pick. */
  private readonly alive = new Set<string>()
  /** Service name → ID per network, kept from table updates, so a connection by name needs no scan. */
  private readonly serviceIds = new Map<string, string>()
  private readonly watchers = new Set<(u: TableUpdate) => void>()
  private pool: ForwarderPool | undefined
  /** The published TCP ports the workers accept on too, with their targets. */
  private readonly workerPorts = new Map<string, PublishTarget>()

  private constructor(
    private readonly o: Required<Omit<MeshOptions, 'logger' | 'networks' | 'strategy' | 'auth' | 'tunnelLimits' | 'workers' | 'udpPort'>> & Pick<MeshOptions, 'logger' | 'strategy' | 'udpPort'>,
    private readonly tunnel: Tunnel,
  ) {
    const self = o.membership.name
    this.table = new EndpointTable({ self })
    this.balancer = new Balancer({
      ...(o.strategy ? { strategy: o.strategy } : {}),
      nodeAlive: node => node === self || this.alive.has(node),
    })
    for (const m of o.membership.members()) if (m.state === 'alive' || m.state === 'suspect') this.alive.add(m.name)
  }

  static async create(opts: MeshOptions): Promise<Mesh> {
    const o = { port: DATA_PATH_PORT, idleTimeoutMs: 0, keepAliveMs: 30_000, drainMs: 2_000, ...opts }
    let mesh!: Mesh
    if (!o.auth) o.logger?.warn('mesh: no tunnel authentication; whoever reaches the data-path port can pose as a node')
    const tunnel = await Tunnel.listen({
      host: o.host,
      port: o.port,
      ...(o.udpPort !== undefined ? { udpPort: o.udpPort } : {}),
      name: o.membership.name,
      ...(o.auth ? { auth: o.auth } : {}),
      ...(o.tunnelLimits ? { limits: o.tunnelLimits } : {}),
      network: vni => {
        const n = mesh?.byVni.get(vni)
        return n ? (n.seal ? { seal: n.seal } : {}) : undefined
      },
      onStream: s => mesh.incomingStream(s),
      onDatagram: d => mesh.incomingDatagram(d),
    })
    mesh = new Mesh(o, tunnel)
    if (o.workers) {
      try {
        mesh.pool = await ForwarderPool.start(o.workers, { self: o.membership.name, keepAliveMs: o.keepAliveMs, idleTimeoutMs: o.idleTimeoutMs, reportMs: 1_000 }, (key, client, endpoint) => mesh.fromWorker(key, client, endpoint), o.logger)
      } catch (e) {
        await tunnel.close()
        throw e
      }
    }
    for (const n of opts.networks ?? []) mesh.addNetwork(n)
    mesh.previous = o.membership.setDelegate(mesh.delegate())
    o.membership.on('event', mesh.onMember)
    mesh.askForTables()
    const reap = setInterval(() => mesh.housekeeping(), 10_000)
    reap.unref()
    mesh.timers.push(reap)
    return mesh
  }

  get self(): string {
    return this.o.membership.name
  }

  /** Where peers reach this node's tunnel. */
  get address(): PeerAddress {
    return { host: this.o.host, port: this.o.port }
  }

  addNetwork(n: MeshNetwork): void {
    this.networks.set(n.id, n)
    this.byVni.set(n.vni, n)
  }

  removeNetwork(id: string): void {
    const n = this.networks.get(id)
    if (!n) return
    this.networks.delete(id)
    this.byVni.delete(n.vni)
  }

  // ------------------------------------------------------------- the table

  /** Announces a task's endpoint on this node to the whole cluster. */
  register(e: Omit<Endpoint, 'node'>): void {
    this.applyLocal(this.table.set({ ...e, node: this.self }))
  }

  /**
   * Withdraws an endpoint everywhere, then waits the drain delay: new
   * connections stop going to it before its task is stopped.
   */
  async withdraw(e: Pick<Endpoint, 'network' | 'task' | 'protocol' | 'targetPort'>, drainMs = this.o.drainMs): Promise<void> {
    this.applyLocal(this.table.delete(e.network, endpointKey(e)))
    if (drainMs > 0) await new Promise(r => setTimeout(r, drainMs).unref())
  }

  /** Endpoints of a service (ID or name) on a network. */
  endpoints(network: string, service?: string): Endpoint[] {
    return this.table.endpoints(network).filter(e => !service || e.service === service || e.serviceName === service)
  }

  /**
   * Calls `fn` with every change of the table that shows (an endpoint
   * added, removed or changed, a dead node's included); returns what
   * unsubscribes it.
   */
  watch(fn: (u: TableUpdate) => void): () => void {
    this.watchers.add(fn)
    return () => void this.watchers.delete(fn)
  }

  /** Table changes reach the balancer, the name index and the watchers. */
  private updated(u: TableUpdate): void {
    this.balancer.update(u)
    for (const e of [...u.added, ...u.updated]) this.serviceIds.set(`${e.network}/${e.serviceName}`, e.service)
    if (u.added.length || u.updated.length || u.removed.length) {
      this.syncWorkers()
      for (const fn of this.watchers) fn(u)
    }
  }

  /** A mesh made after its membership joined has an empty table until the next push/pull: the members are asked at once. */
  private askForTables(): void {
    for (const m of this.o.membership.members()) {
      if (m.name === this.self || m.state !== 'alive') continue
      this.o.membership.sendReliable(m.name, Buffer.concat([Buffer.from([MESH_STATE_REQ]), Buffer.from(this.self)])).catch(err => this.o.logger?.debug({ err, node: m.name }, 'mesh: asking for the table failed'))
    }
  }

  private mergeState(state: Buffer): void {
    try {
      const u = this.table.mergeFullState(decodeFullState(state))
      this.updated(u)
      this.send(u)
    } catch {
      this.counters.dropped.malformedTable++
    }
  }

  private applyLocal(u: TableUpdate): void {
    this.updated(u)
    this.send(u)
  }

  private send(u: TableUpdate): void {
    if (u.broadcast.length === 0) return
    for (const buf of encodeDeltas(u.broadcast)) {
      this.o.membership.broadcast(Buffer.concat([Buffer.from([MESH_MSG]), buf]))
      this.counters.tableUpdatesOut++
    }
  }

  private delegate(): Delegate {
    const prev = (): Delegate => this.previous
    return {
      notifyMsg: (msg, from) => {
        if (msg[0] === MESH_STATE_REQ) {
          // Answered to the member by name: `from` is the request's TCP source, an ephemeral port. An unknown name is refused there.
          const node = msg.subarray(1).toString()
          const state = Buffer.concat([Buffer.from([MESH_STATE]), encodeFullState(this.table.fullState())])
          this.o.membership.sendReliable(node, state).catch(err => this.o.logger?.debug({ err, node }, 'mesh: sending the table failed'))
          return
        }
        if (msg[0] === MESH_STATE) return this.mergeState(msg.subarray(1))
        if (msg[0] !== MESH_MSG) return prev().notifyMsg?.(msg, from)
        try {
          const u = this.table.apply(decodeDelta(msg.subarray(1)))
          this.counters.tableUpdatesIn++
          this.updated(u)
          this.send(u)
        } catch {
          this.counters.dropped.malformedTable++
        }
      },
      getBroadcasts: (overhead, limit) => prev().getBroadcasts?.(overhead, limit) ?? [],
      localState: () => Buffer.concat([Buffer.from([MESH_MSG]), encodeFullState(this.table.fullState())]),
      mergeRemoteState: state => {
        if (state[0] === MESH_MSG) this.mergeState(state.subarray(1))
      },
    }
  }

  /** Membership is the judge of life: a dead or departed node's endpoints leave the table, and its streams are reset, at once. */
  private memberEvent(e: MemberEvent): void {
    const name = e.member.name
    if (name === this.self) return
    if (e.type === 'dead' || e.type === 'left') this.alive.delete(name)
    else this.alive.add(name)
    this.syncWorkers()
    if (e.type === 'dead' || e.type === 'left') {
      this.updated(this.table.removeNode(name))
      this.tunnel.resetPeer({ host: e.member.addr, port: this.o.port, name })
      this.o.logger?.info({ node: name }, 'mesh: node gone, its endpoints withdrawn')
    } else if (e.type === 'join' || e.type === 'alive') {
      this.table.nodeBack(name)
    }
  }

  /** A node's tunnel, and the name it must prove there. */
  private peerOf(node: string): Peer {
    const m = this.o.membership.members().find(x => x.name === node)
    if (!m) throw new MeshError('E_MESH_NO_NODE', `node ${node} is not a member`)
    return { host: m.addr, port: this.o.port, name: node }
  }

  private network(id: string): MeshNetwork {
    const n = this.networks.get(id)
    if (!n) throw new MeshError('E_MESH_NO_NETWORK', `network ${id} is not known to the mesh`)
    return n
  }

  /** The balancer's key for a service given by ID or name. */
  private target(t: PublishTarget): BalancerTarget {
    return { network: t.network, service: this.serviceIds.get(`${t.network}/${t.service}`) ?? t.service, targetPort: t.targetPort, protocol: t.protocol ?? 'tcp' }
  }

  /** One of this node's own endpoints, as a peer's stream or datagram names it. */
  private localEndpoint(vni: Vni, key: string): Endpoint | undefined {
    const net = this.byVni.get(vni)
    const e = net ? this.table.get(net.id, key) : undefined
    return e?.node === this.self ? e : undefined
  }

  // --------------------------------------------------------------- streams

  /**
   * A connection to a healthy task of the service: direct when the task is
   * on this node, else through its node's tunnel. A backend that refuses is
   * marked failed and the next one is tried.
   */
  connect(t: PublishTarget, client?: ClientAddresses): Promise<Duplex> {
    return this.open(t, client)
  }

  /** connect(), trying `first` first when a worker chose it (and it is still in the table, on a live node). */
  private async open(t: PublishTarget, client?: ClientAddresses, first?: Endpoint): Promise<Duplex> {
    const target = this.target(t)
    const tried: Endpoint[] = []
    let pinned = first && this.table.get(first.network, endpointKey(first))
    if (pinned && pinned.node !== this.self && !this.alive.has(pinned.node)) pinned = undefined
    for (;;) {
      const e = pinned ?? this.balancer.pick(target, tried)
      pinned = undefined
      if (!e) {
        this.counters.connectionsFailed++
        throw new MeshError('E_MESH_NO_ENDPOINT', `no healthy task of service ${t.service} on port ${t.targetPort}/${target.protocol}${tried.length ? ` (${tried.length} refused)` : ''}`)
      }
      const preamble = client && t.proxyProtocol ? this.proxyHeader(t.proxyProtocol, client) : Buffer.alloc(0)
      try {
        const s = e.node === this.self ? await dial(e.host, e.port, this.o.keepAliveMs, preamble) : await this.tunnel.open(this.peerOf(e.node), this.network(e.network).vni, endpointKey(e), preamble)
        this.balancer.markOk(e)
        this.balancer.acquire(e)
        s.once('close', () => this.balancer.release(e))
        this.counters.connections++
        return s
      } catch (err) {
        this.balancer.markFailed(e)
        tried.push(e)
        this.counters.retries++
        this.o.logger?.debug({ err, endpoint: endpointKey(e), node: e.node }, 'mesh: backend failed, trying another')
      }
    }
  }

  private proxyHeader(v: 'v1' | 'v2', c: ClientAddresses): Buffer {
    const a = proxyAddresses('tcp', { address: c.address, port: c.port }, { address: c.localAddress, port: c.localPort })
    return v === 'v1' ? encodeProxyV1(a) : encodeProxyV2({ addresses: a })
  }

  /** Keeps both sides of a connection in `live` until the pair ends (close() destroys what is left). */
  private tracked(a: Duplex, b: Duplex): () => void {
    this.live.add(a)
    this.live.add(b)
    return () => {
      this.live.delete(a)
      this.live.delete(b)
    }
  }

  /** A stream a peer opened for one of our endpoints: only endpoints this node announced are reachable. */
  private incomingStream(s: IncomingStream): void {
    const e = this.localEndpoint(s.vni, s.endpointKey)
    if (!e) return s.reject('ENOENT')
    dial(e.host, e.port, this.o.keepAliveMs, s.preamble).then(
      backend => {
        let stream: Duplex
        try {
          stream = s.accept()
        } catch {
          backend.destroy()
          return
        }
        join(stream, backend, this.tracked(stream, backend), this.counters)
      },
      (err: NodeJS.ErrnoException) => s.reject(err.code ?? 'ECONNREFUSED'),
    )
  }

  // ----------------------------------------------------------- listeners

  /**
   * Listens on `host`:`port` (every address by default: a published port
   * answers on every node) and forwards each connection or datagram flow to
   * a task of the target service.
   */
  async publish(port: number, t: PublishTarget, host = '0.0.0.0'): Promise<void> {
    const protocol = t.protocol ?? 'tcp'
    const key = `${host}:${port}/${protocol}`
    if (this.servers.has(key)) throw new MeshError('E_MESH_PORT_TAKEN', `port ${port}/${protocol} is already published on ${host}`)
    if (protocol === 'udp') {
      const sock = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: false })
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject)
        sock.bind(port, host, () => {
          sock.off('error', reject)
          resolve()
        })
      })
      sock.on('message', (msg, rinfo) => this.udpIn(sock, t, msg, rinfo))
      sock.on('error', err => this.o.logger?.warn({ err, port }, 'mesh: udp listener error'))
      this.servers.set(key, sock)
      return
    }
    const server = createServer({ noDelay: true, allowHalfOpen: true, ...(this.o.keepAliveMs > 0 ? { keepAlive: true, keepAliveInitialDelay: this.o.keepAliveMs } : {}) }, client => this.accept(client, t, port))
    await new Promise<void>((resolve, reject) => {
      server.once('error', e =>
        reject(new MeshError('E_MESH_PORT_TAKEN', `cannot listen on ${host}:${port}/${protocol}: ${(e as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'port is already allocated' : e.message}`, { cause: e })),
      )
      server.listen({ port, host, backlog: 1024 }, () => resolve())
    })
    this.servers.set(key, server)
    // PROXY protocol needs the client's addresses before the first byte: the Mesh's own process serves those ports.
    if (this.pool && !t.proxyProtocol) {
      this.workerPorts.set(key, t)
      this.syncWorkers()
      await this.pool.listen(key, server)
    }
  }

  /** A client of a published TCP port: spliced to a task of the target, or reset when none takes it. */
  private accept(client: Socket, t: PublishTarget, port: number, first?: Endpoint): void {
    client.pause()
    // The client's addresses only matter to PROXY protocol.
    const info = t.proxyProtocol ? { address: client.remoteAddress ?? '', port: client.remotePort ?? 0, localAddress: client.localAddress ?? '', localPort: client.localPort ?? 0 } : undefined
    this.open(t, info, first).then(
      backend => {
        splice(client, backend, this.o.idleTimeoutMs, this.tracked(client, backend), this.counters)
        client.resume()
      },
      err => {
        this.o.logger?.debug({ err, port }, 'mesh: no backend for a connection')
        client.resetAndDestroy()
      },
    )
  }

  /** A connection a worker gave back (its task is on another node): served here, as if accepted here. */
  private fromWorker(key: string, client: Socket, endpoint?: Endpoint): void {
    const t = this.workerPorts.get(key)
    if (!t) return void client.destroy()
    // As the Mesh's own accepted sockets: a client's half-close must not end the answer's way back.
    client.allowHalfOpen = true
    client.on('error', () => client.destroy())
    if (this.o.keepAliveMs > 0) client.setKeepAlive(true, this.o.keepAliveMs)
    this.accept(client, t, client.localPort ?? 0, endpoint)
  }

  /** Each worker-served port's endpoints on live nodes, for the workers' balancers. */
  private syncWorkers(): void {
    if (!this.pool) return
    for (const [key, t] of this.workerPorts) {
      const target = this.target(t)
      this.pool.endpoints(key, target, this.balancer.endpoints(target).filter(e => e.node === this.self || this.alive.has(e.node)))
    }
  }

  async unpublish(port: number, protocol: Protocol = 'tcp', host = '0.0.0.0'): Promise<void> {
    const key = `${host}:${port}/${protocol}`
    const s = this.servers.get(key)
    if (!s) return
    this.servers.delete(key)
    if (this.workerPorts.delete(key)) await this.pool?.unlisten(key)
    await new Promise<void>(resolve => ('listen' in s ? s.close(() => resolve()) : (s as UdpSocket).close(() => resolve())))
  }

  /** Ports this mesh listens on, as `host:port/protocol`. */
  published(): string[] {
    return [...this.servers.keys()]
  }

  // ------------------------------------------------------------------ UDP

  private udpIn(listener: UdpSocket, t: PublishTarget, msg: Buffer, rinfo: RemoteInfo): void {
    const key = `${rinfo.address}:${rinfo.port}>${listener.address().port}`
    let flow = this.udpFlows.get(key)
    if (!flow) {
      const e = this.balancer.pick(this.target({ ...t, protocol: 'udp' }))
      if (!e) return
      const f: UdpFlow = { client: { address: rinfo.address, port: rinfo.port }, endpoint: e, last: Date.now() }
      const toClient = (reply: Buffer): void => {
        f.last = Date.now()
        listener.send(reply, f.client.port, f.client.address)
      }
      if (e.node === this.self) {
        f.local = createSocket('udp4')
        f.local.on('message', toClient)
        f.local.on('error', () => undefined)
        f.local.connect(e.port, e.host)
      } else {
        try {
          f.remote = this.tunnel.openFlow({ ...this.peerOf(e.node), port: this.o.udpPort ?? this.o.port }, this.network(e.network).vni, endpointKey(e), toClient)
        } catch (err) {
          this.o.logger?.debug({ err }, 'mesh: no flow to a remote task')
          return
        }
      }
      this.udpFlows.set(key, f)
      flow = f
    }
    flow.last = Date.now()
    this.counters.datagrams++
    if (flow.local) {
      const send = (): void => flow.local!.send(msg)
      try {
        send()
      } catch {
        flow.local.once('connect', send)
      }
    } else {
      try {
        flow.remote!.send(msg)
      } catch (err) {
        this.o.logger?.debug({ err }, 'mesh: datagram not forwarded')
      }
    }
  }

  /** A datagram from a peer's flow for one of our endpoints: relayed from a per-flow socket, so replies find the flow. */
  private incomingDatagram(d: IncomingDatagram): void {
    const e = this.localEndpoint(d.vni, d.endpointKey)
    if (!e) return
    const key = `${d.from.host}:${d.from.port}#${d.flowId}`
    let sock = this.inboundUdp.get(key)
    if (!sock) {
      sock = createSocket('udp4')
      sock.on('message', reply => d.reply(reply))
      sock.on('error', () => undefined)
      this.inboundUdp.set(key, sock)
      const s = sock
      const idle = setInterval(() => {
        if (Date.now() - ((s as unknown as { lastUse?: number }).lastUse ?? 0) > UDP_FLOW_IDLE_MS) {
          clearInterval(idle)
          this.inboundUdp.delete(key)
          s.close()
        }
      }, UDP_FLOW_IDLE_MS)
      idle.unref()
    }
    ;(sock as unknown as { lastUse?: number }).lastUse = Date.now()
    sock.send(Buffer.from(d.payload), e.port, e.host)
  }

  private housekeeping(): void {
    this.table.reap()
    const now = Date.now()
    for (const [key, f] of this.udpFlows) {
      if (now - f.last < UDP_FLOW_IDLE_MS) continue
      this.udpFlows.delete(key)
      f.local?.close()
      f.remote?.close()
    }
  }

  /**
   * The counters; with workers, their connections, retries and bytes as
   * they last reported (each second). `active` and `backends` are this
   * process's own.
   */
  stats(): MeshCounters & { active: number; backends: Record<string, BackendHealth>; tunnel: ReturnType<Tunnel['counters']> } {
    const c = this.counters
    const w = this.pool?.counters()
    return {
      ...c,
      connections: c.connections + (w?.connections ?? 0),
      retries: c.retries + (w?.retries ?? 0),
      bytesToTasks: c.bytesToTasks + (w?.bytesToTasks ?? 0),
      bytesFromTasks: c.bytesFromTasks + (w?.bytesFromTasks ?? 0),
      // Each forwarded connection holds two live sockets (or streams).
      active: this.live.size / 2,
      backends: Object.fromEntries(this.balancer.health()),
      tunnel: this.tunnel.counters(),
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.o.membership.off('event', this.onMember)
    this.o.membership.setDelegate(this.previous)
    for (const key of [...this.servers.keys()]) {
      const [hp, protocol] = key.split('/') as [string, Protocol]
      const i = hp.lastIndexOf(':')
      await this.unpublish(Number(hp.slice(i + 1)), protocol, hp.slice(0, i))
    }
    await this.pool?.close()
    for (const s of this.live) s.destroy()
    for (const f of this.udpFlows.values()) f.local?.close()
    for (const s of this.inboundUdp.values()) s.close()
    await this.tunnel.close()
  }
}
