import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { isIPv6, createServer, connect, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { parsePeerKey, peerKey, type PeerAddress } from './peer-address.js'
import { openFrame, type SealKeyring } from './seal.js'
import { AcceptorHandshake, DialerHandshake, TRUST_NAMES, type TunnelAuth } from './tunnel-auth.js'
import { CONN_HIGH_WATER, Conn } from './tunnel-conn.js'
import { TunnelError } from './tunnel-error.js'
import type { ReplyRefusal } from './tunnel-flows.js'
import {
  FRAME_HEADER_LEN,
  FrameError,
  FrameFlag,
  FrameType,
  decodeOpenBody,
  encodeOpenBody,
  encodeTextBody,
  encodeU32Body,
  type Frame,
} from './tunnel-frame.js'
import { ConnectionLimits, DEFAULT_LIMITS, REFUSAL_REASONS, readFdLimit, type RefusalReason, type TunnelLimits } from './tunnel-limits.js'
import { TunnelStream } from './tunnel-stream.js'
import type { DropReason, TunnelCounters, TunnelNetwork } from './tunnel-types.js'
import { TunnelUdp, type DatagramFlow, type IncomingDatagram } from './tunnel-udp.js'
import type { Vni } from './types.js'
import { isValidVni } from './vxlan.js'

export type { PeerAddress } from './peer-address.js'
export { TunnelError } from './tunnel-error.js'
export type { DropReason, TunnelCounters, TunnelNetwork } from './tunnel-types.js'
export type { TunnelAuth } from './tunnel-auth.js'
export type { RefusalReason, TunnelLimits } from './tunnel-limits.js'
export type { DatagramFlow, IncomingDatagram } from './tunnel-udp.js'

/**
 * The routing mesh's data plane between nodes (port 4789, TCP + UDP, no
 * privileges). One TCP connection per node pair carries any number of
 * streams, each a Node Duplex with credit flow control; UDP carries
 * datagrams with a flow id so replies find their way back. Networks with
 * keys have every frame sealed (seal.ts); plaintext frames for them are
 * dropped. The receiving node resolves an endpoint key to its own task, so
 * a peer can only reach announced endpoints, never arbitrary addresses.
 *
 * Every TCP connection starts with a handshake (tunnel-auth.ts) in which
 * each side proves the name it claims, through the TunnelAuth it was given;
 * until both have, a connection carries nothing, answers nothing and
 * replaces no other. Connections are capped and timed out
 * (tunnel-limits.ts). Connections are tunnel-conn.ts, their streams
 * tunnel-stream.ts, and the UDP side tunnel-udp.ts, where a reply is taken
 * only from the peer and network its flow went to, under the flow's random id.
 *
 * Connection-level frames (HELLO, CHALLENGE, AUTH, PING, PONG) use VNI 0,
 * so VNI 0 is not a network (swarm allocates VNIs from 4096).
 */

/** Where a peer listens and, unless it is named by that address (`host:port`, a tunnel's default name), the name it must prove. */
export interface Peer extends PeerAddress {
  name?: string
}


/** An OPEN from a peer. Call exactly one of accept() or reject(). */
export interface IncomingStream {
  vni: Vni
  endpointKey: string
  /** Bytes to send to the task before the stream's data (a PROXY protocol header); may be empty. */
  preamble: Buffer
  /** The peer's advertised address. */
  from: PeerAddress
  /** Sends OPEN_OK and returns the stream; throws TunnelError (E_TUNNEL_RESET, E_TUNNEL_PEER_LOST) if the opener went away meanwhile. */
  accept(): Duplex
  /** Sends OPEN_FAIL with an errno-like reason ('ECONNREFUSED', 'ENOENT', …) that the opener's open() rejects with. */
  reject(reason: string): void
}

export interface TunnelOptions {
  /** Where to listen, TCP and UDP on the same port (0: any free port). */
  host: string
  port: number
  /** The UDP side on another port (where the kernel's VXLAN socket holds `port`'s UDP). */
  udpPort?: number
  /** The address peers dial to reach this tunnel and pass to open(); defaults to the bound host and port. */
  advertise?: PeerAddress
  /** The name this tunnel proves to its peers (default: its advertised `host:port`). */
  name?: string
  /** How names are proven and checked (default TRUST_NAMES: a peer's claim is taken at its word). */
  auth?: TunnelAuth
  /** Caps and timeouts; DEFAULT_LIMITS, and the process's own descriptor limit, fill in the rest. */
  limits?: Partial<TunnelLimits>
  /** The network behind a VNI, undefined if unknown here. Default: every VNI but 0 is a plaintext network. */
  network?: (vni: Vni) => TunnelNetwork | undefined
  onStream?: (s: IncomingStream) => void
  onDatagram?: (d: IncomingDatagram) => void
  /** Per-stream receive window in bytes (default 256 KiB). */
  window?: number
  /** How long open() waits for OPEN_OK or OPEN_FAIL (default 10 s). */
  openTimeoutMs?: number
  /** Concurrent streams a peer may open over one connection (default 4096). */
  maxStreamsPerConnection?: number
}


const DROP_REASONS: readonly DropReason[] = ['malformed', 'unknown_vni', 'plaintext', 'decrypt', 'replay', 'unknown_stream', 'flow_control', 'reply_unknown_flow', 'reply_wrong_peer']


const zeros = <K extends string>(keys: readonly K[]): Record<K, number> => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>

/** How a refusal reads to those whose opens it fails. */
const refusalCode = (r: RefusalReason): string => (r === 'auth' || r === 'unauthenticated' || r === 'handshake_timeout' ? 'E_TUNNEL_AUTH' : 'E_TUNNEL_REFUSED')

/** Connection-level frame types, out of place on a network's VNI. */
const CONN_TYPES: ReadonlySet<number> = new Set([FrameType.DGRAM, FrameType.HELLO, FrameType.CHALLENGE, FrameType.AUTH, FrameType.PING, FrameType.PONG])

const DEFAULT_WINDOW = 256 * 1024
const EMPTY = Buffer.alloc(0)

export class Tunnel {
  readonly address: PeerAddress
  readonly advertise: PeerAddress
  readonly name: string
  private readonly auth: TunnelAuth
  private readonly limits: ConnectionLimits
  private readonly network: (vni: Vni) => TunnelNetwork | undefined
  private readonly window: number
  private readonly openTimeoutMs: number
  private readonly maxStreams: number
  /** The connection new streams to a peer (by name) use. */
  private readonly primaries = new Map<string, Conn>()
  private readonly conns = new Set<Conn>()
  private readonly udp: TunnelUdp
  private closed = false
  private readonly stats: TunnelCounters = {
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    connectionsOpened: 0,
    connectionsClosed: 0,
    dropped: zeros(DROP_REASONS),
    refused: zeros(REFUSAL_REASONS),
    idleClosed: 0,
  }

  private constructor(
    private readonly opts: TunnelOptions,
    private readonly server: Server,
    udpSocket: UdpSocket,
  ) {
    const a = server.address()
    if (a === null || typeof a === 'string') throw new TunnelError('E_TUNNEL_PROTOCOL', 'the TCP listener has no address')
    this.address = { host: opts.host, port: a.port }
    this.advertise = opts.advertise ?? this.address
    this.name = opts.name ?? peerKey(this.advertise)
    this.auth = opts.auth ?? TRUST_NAMES
    this.limits = new ConnectionLimits({ ...DEFAULT_LIMITS, fdLimit: opts.limits?.fdLimit ?? readFdLimit(), ...opts.limits })
    this.network = opts.network ?? ((vni) => (vni === 0 ? undefined : {}))
    this.window = opts.window ?? DEFAULT_WINDOW
    this.openTimeoutMs = opts.openTimeoutMs ?? 10_000
    this.maxStreams = opts.maxStreamsPerConnection ?? 4096
    server.on('connection', (s) => this.accept(s))
    this.udp = new TunnelUdp(udpSocket, {
      stats: this.stats,
      network: this.network,
      networkOf: (vni) => this.networkOf(vni),
      unseal: (network, f, strict) => this.unseal(network, f, strict),
      onDatagram: opts.onDatagram,
    })
  }

  /** Binds TCP and then UDP, on the same port unless `udpPort` says otherwise. */
  static async listen(opts: TunnelOptions): Promise<Tunnel> {
    const server = createServer({ noDelay: true, highWaterMark: CONN_HIGH_WATER })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: opts.host, port: opts.port }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const port = (server.address() as { port: number }).port
    const udp = createSocket({ type: isIPv6(opts.host) ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 })
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject)
        udp.bind({ address: opts.host, port: opts.udpPort ?? port }, () => {
          udp.off('error', reject)
          resolve()
        })
      })
    } catch (e) {
      server.close()
      udp.close()
      throw e
    }
    return new Tunnel(opts, server, udp)
  }

  /** A snapshot of the counters. */
  counters(): TunnelCounters {
    return { ...this.stats, dropped: { ...this.stats.dropped }, refused: { ...this.stats.refused } }
  }

  /** Open TCP connections (any state), for tests and metrics. */
  connectionCount(): number {
    return this.conns.size
  }

  /**
   * Opens a stream to `endpointKey` on the peer, over the pair's one
   * connection (dialled on demand). Resolves once the peer accepted.
   */
  open(peer: Peer, vni: Vni, endpointKey: string, preamble: Uint8Array = EMPTY): Promise<Duplex> {
    if (this.closed) return Promise.reject(new TunnelError('E_TUNNEL_CLOSED', 'the tunnel is closed'))
    let network: TunnelNetwork
    try {
      network = this.networkOf(vni)
    } catch (e) {
      return Promise.reject(e)
    }
    let body: Buffer
    try {
      body = encodeOpenBody({ window: this.window, endpointKey, preamble: Buffer.from(preamble.buffer, preamble.byteOffset, preamble.byteLength) })
    } catch (e) {
      return Promise.reject(new TunnelError('E_TUNNEL_PROTOCOL', (e as Error).message, undefined, { cause: e }))
    }
    let conn: Conn
    try {
      conn = this.connTo(peer)
    } catch (e) {
      return Promise.reject(e)
    }
    const id = conn.allocateId()
    const stream = new TunnelStream(this, conn, id, vni, network, this.window)
    conn.addStream(stream)
    return new Promise<Duplex>((resolve, reject) => {
      const timer = setTimeout(() => stream.destroy(new TunnelError('E_TUNNEL_OPEN_TIMEOUT', `no answer to OPEN from ${peerKey(peer)} in ${this.openTimeoutMs} ms`)), this.openTimeoutMs)
      stream.opening = {
        resolve: () => {
          clearTimeout(timer)
          resolve(stream)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      conn.sendFrame(vni, FrameType.OPEN, id, body, network)
      if (id >= 0x7fff_fff0) this.retire(conn)
    })
  }

  /**
   * A UDP flow to `endpointKey` on the peer: datagrams go to its UDP port,
   * and `onReply` gets the replies that come from that address, on that
   * VNI, for the flow's id. `peer.host` must be an IP address (a reply's
   * source is compared with it). Throws TunnelError E_TUNNEL_UNKNOWN_VNI,
   * E_TUNNEL_PROTOCOL (a bad key or host), E_TUNNEL_CLOSED.
   */
  openFlow(peer: PeerAddress, vni: Vni, endpointKey: string, onReply: (payload: Buffer) => void): DatagramFlow {
    return this.udp.openFlow(peer, vni, endpointKey, onReply)
  }

  private networkOf(vni: Vni): TunnelNetwork {
    const network = isValidVni(vni) && vni !== 0 ? this.network(vni) : undefined
    if (!network) throw new TunnelError('E_TUNNEL_UNKNOWN_VNI', `no network with VNI ${vni}`)
    return network
  }

  /** Round-trip time to the peer over its connection, in milliseconds. */
  ping(peer: Peer, timeoutMs = 5000): Promise<number> {
    if (this.closed) return Promise.reject(new TunnelError('E_TUNNEL_CLOSED', 'the tunnel is closed'))
    try {
      return this.connTo(peer).ping(timeoutMs)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Drops every connection to the peer (by name) at once (it died): its streams fail with E_TUNNEL_PEER_LOST. */
  resetPeer(peer: Peer): void {
    const name = nameOf(peer)
    for (const c of [...this.conns]) if (c.peer === name) c.fail(new TunnelError('E_TUNNEL_PEER_LOST', `peer ${name} was reset`))
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const c of [...this.conns]) c.fail(new TunnelError('E_TUNNEL_CLOSED', 'the tunnel is closed'))
    await Promise.all([new Promise<void>((r) => this.server.close(() => r())), this.udp.close()])
  }

  // --- connections ----------------------------------------------------------

  /** The peer's primary connection, dialled (and its handshake started) if there is none. Throws TunnelError E_TUNNEL_REFUSED near the descriptor limit. */
  private connTo(peer: Peer): Conn {
    const name = nameOf(peer)
    const existing = this.primaries.get(name)
    if (existing) return existing
    const refusal = this.limits.admitDial()
    if (refusal) {
      this.stats.refused[refusal]++
      throw new TunnelError('E_TUNNEL_REFUSED', `not dialling ${name}: the process is near its descriptor limit`, 'EMFILE')
    }
    // highWaterMark reaches the Socket's Duplex at run time; @types/node omits it from connect's options.
    const opts = { host: peer.host, port: peer.port, noDelay: true, highWaterMark: CONN_HIGH_WATER }
    const socket = connect(opts)
    const handshake = new DialerHandshake(this.auth, { name: this.name, address: peerKey(this.advertise) }, name)
    const conn = this.adopt(new Conn(this, socket, true, { peer: name, peerAddress: { host: peer.host, port: peer.port }, handshake, ...this.timeouts() }))
    this.primaries.set(name, conn)
    conn.sendHandshake(FrameType.HELLO, handshake.helloBody())
    return conn
  }

  private accept(socket: Socket): void {
    const refusal = this.limits.admitInbound(socket.remoteAddress ?? '')
    if (refusal) {
      this.stats.refused[refusal]++
      socket.on('error', () => {})
      socket.resetAndDestroy()
      return
    }
    if (this.limits.handshakesFull) {
      // conns is in insertion order: the first inbound one still in its handshake is the oldest.
      for (const c of this.conns) {
        if (c.dialed || c.authenticated) continue
        this.refuse(c, 'unauthenticated_cap', 'making room for a newer handshake')
        break
      }
    }
    this.adopt(new Conn(this, socket, false, { handshake: new AcceptorHandshake(this.auth, this.name), ...this.timeouts() }))
  }

  private timeouts(): { handshakeTimeoutMs: number; idleTimeoutMs: number } {
    const { handshakeTimeoutMs, idleTimeoutMs } = this.limits.limits
    return { handshakeTimeoutMs, idleTimeoutMs }
  }

  private adopt(conn: Conn): Conn {
    this.conns.add(conn)
    this.limits.opened(conn)
    this.stats.connectionsOpened++
    if (this.closed) conn.fail(new TunnelError('E_TUNNEL_CLOSED', 'the tunnel is closed'))
    return conn
  }

  /** @internal */
  connClosed(conn: Conn): void {
    if (!this.conns.delete(conn)) return
    this.limits.closed(conn)
    this.stats.connectionsClosed++
    if (conn.peer !== undefined && this.primaries.get(conn.peer) === conn) this.primaries.delete(conn.peer)
  }

  /** No new streams on `conn`; its dialer closes it once its streams are done. */
  private retire(conn: Conn): void {
    if (conn.peer !== undefined && this.primaries.get(conn.peer) === conn) this.primaries.delete(conn.peer)
    conn.drain()
  }

  /** @internal The handshake did not finish in time. */
  handshakeExpired(conn: Conn): void {
    this.refuse(conn, 'handshake_timeout', `no handshake in ${this.limits.limits.handshakeTimeoutMs} ms`)
  }

  /** @internal No streams for the idle timeout. */
  idleExpired(conn: Conn): void {
    this.stats.idleClosed++
    conn.fail(new TunnelError('E_TUNNEL_PEER_LOST', `connection with ${conn.peer} closed after ${this.limits.limits.idleTimeoutMs} ms without streams`))
  }

  private refuse(conn: Conn, reason: RefusalReason, why: string): void {
    this.stats.refused[reason]++
    conn.fail(new TunnelError(refusalCode(reason), `connection ${conn.dialed ? 'to' : 'from'} ${conn.peer ?? conn.remote} refused: ${why}`, reason))
  }

  private broken(conn: Conn, why: string): void {
    this.stats.dropped.malformed++
    conn.fail(new TunnelError('E_TUNNEL_PROTOCOL', `connection ${conn.dialed ? 'to' : 'from'} ${conn.peer ?? conn.remote}: ${why}`))
  }

  /**
   * Before a connection is authenticated only the handshake's frames, in
   * order, are taken: the acceptor's HELLO then AUTH, the dialer's
   * CHALLENGE. Anything else ends the connection unanswered.
   */
  private onHandshake(conn: Conn, f: Frame): void {
    const hs = conn.handshake!
    const expected = hs instanceof DialerHandshake ? FrameType.CHALLENGE : hs.helloSeen ? FrameType.AUTH : FrameType.HELLO
    if (f.type !== expected || f.vni !== 0 || f.streamId !== 0 || f.flags !== 0) return this.refuse(conn, 'unauthenticated', `${typeName(f.type)} where the handshake expects ${typeName(expected)}`)
    try {
      if (hs instanceof DialerHandshake) {
        conn.sendHandshake(FrameType.AUTH, hs.onChallenge(f.body))
        conn.opened()
      } else if (expected === FrameType.HELLO) {
        conn.sendHandshake(FrameType.CHALLENGE, hs.onHello(f.body))
      } else {
        const hello = hs.onAuth(f.body)
        conn.peer = hello.name
        conn.peerAddress = parsePeerKey(hello.address)
        this.inboundAuthenticated(conn)
      }
    } catch (e) {
      if (e instanceof FrameError) return this.broken(conn, e.message)
      if (e instanceof TunnelError) return this.refuse(conn, 'auth', e.message)
      throw e
    }
  }

  /**
   * An inbound connection proved its dialer. When both nodes dialled each
   * other at once, both keep the connection dialled by the node whose name
   * sorts first; the other is retired by its dialer. A proven dialer
   * replaces its older connection (it dials only when it has none).
   */
  private inboundAuthenticated(conn: Conn): void {
    const refusal = this.limits.authenticated(conn)
    if (refusal) return this.refuse(conn, refusal, `${conn.peer} has ${this.limits.limits.maxConnectionsPerPeer} connections already`)
    conn.opened()
    const name = conn.peer!
    const existing = this.primaries.get(name)
    if (!existing) {
      this.primaries.set(name, conn)
    } else if (existing.dialed && this.name < name) {
      conn.retired = true // ours wins; the peer retires this one
    } else {
      this.primaries.set(name, conn)
      this.retire(existing)
    }
  }

  // --- inbound TCP frames ---------------------------------------------------

  /** @internal */
  onFrameError(conn: Conn, e: FrameError): void {
    this.broken(conn, e.message)
  }

  /** @internal */
  onFrame(conn: Conn, f: Frame): void {
    this.stats.framesIn++
    this.stats.bytesIn += FRAME_HEADER_LEN + f.length
    if (!conn.authenticated) return this.onHandshake(conn, f)
    if (f.vni === 0) return this.onConnFrame(conn, f)
    if (f.type === FrameType.OPEN) return this.onOpen(conn, f)
    if (CONN_TYPES.has(f.type)) {
      this.stats.dropped.malformed++
      return
    }
    const s = conn.streams.get(f.streamId)
    if (!s) {
      this.stats.dropped.unknown_stream++
      return
    }
    if (s.vni !== f.vni) {
      this.stats.dropped.malformed++
      return
    }
    const body = this.unseal(s.network, f, true)
    if (body === undefined) return
    try {
      s.onFrame(f.type, body)
    } catch (e) {
      if (!(e instanceof FrameError)) throw e
      this.stats.dropped.malformed++
      s.destroy(new TunnelError('E_TUNNEL_PROTOCOL', `peer sent a bad ${typeName(f.type)} frame: ${e.message}`))
    }
  }

  private onConnFrame(conn: Conn, f: Frame): void {
    if (f.streamId !== 0 || (f.flags & FrameFlag.SEALED) !== 0 || f.body.length !== 8) {
      this.stats.dropped.malformed++
      return
    }
    if (f.type === FrameType.PING) conn.sendFrame(0, FrameType.PONG, 0, Buffer.from(f.body), undefined)
    else if (f.type === FrameType.PONG) conn.onPong(f.body)
    else this.stats.dropped.malformed++
  }

  private onOpen(conn: Conn, f: Frame): void {
    const network = this.network(f.vni)
    if (!network) {
      this.stats.dropped.unknown_vni++
      conn.sendFrame(f.vni, FrameType.OPEN_FAIL, f.streamId, encodeTextBody('ENONET'), undefined)
      return
    }
    const body = this.unseal(network, f, true)
    if (body === undefined) return
    const fail = (reason: string): void => conn.sendFrame(f.vni, FrameType.OPEN_FAIL, f.streamId, encodeTextBody(reason), network)
    // The peer's stream ids have the parity of its role: odd when it dialled.
    const peerParity = conn.dialed ? 0 : 1
    if (f.streamId === 0 || f.streamId % 2 !== peerParity || conn.streams.has(f.streamId)) {
      this.stats.dropped.malformed++
      return fail('EPROTO')
    }
    let open
    try {
      open = decodeOpenBody(body)
    } catch {
      this.stats.dropped.malformed++
      return fail('EPROTO')
    }
    const onStream = this.opts.onStream
    if (!onStream) return fail('ENOTSUP')
    if (conn.streams.size >= this.maxStreams) return fail('EMFILE')
    const stream = new TunnelStream(this, conn, f.streamId, f.vni, network, this.window)
    stream.sendCredit = open.window
    stream.unclaimed = true
    conn.addStream(stream)
    let answered = false
    const answer = (): void => {
      if (answered) throw new TunnelError('E_TUNNEL_PROTOCOL', 'the stream was already accepted or rejected')
      answered = true
    }
    onStream({
      vni: f.vni,
      endpointKey: open.endpointKey,
      preamble: open.preamble,
      from: conn.peerAddress!,
      accept: () => {
        answer()
        if (stream.destroyed) throw stream.unclaimedError ?? new TunnelError('E_TUNNEL_RESET', 'the opener went away')
        stream.unclaimed = false
        conn.sendFrame(f.vni, FrameType.OPEN_OK, f.streamId, encodeU32Body(this.window), network)
        return stream
      },
      reject: (reason) => {
        answer()
        if (stream.destroyed) return
        stream.quiet = true
        stream.destroy()
        fail(reason.slice(0, 64))
      },
    })
  }

  /** The frame's plaintext body, or undefined (counted) when the network's sealing rules refuse it. */
  private unseal(network: TunnelNetwork, f: Frame, strict: boolean): Buffer | undefined {
    const sealed = (f.flags & FrameFlag.SEALED) !== 0
    if (network.seal) {
      if (!sealed) {
        this.stats.dropped.plaintext++
        return undefined
      }
      const r = openFrame(network.seal, f, strict)
      if (typeof r === 'string') {
        this.stats.dropped[r]++
        return undefined
      }
      return r
    }
    if (sealed) {
      this.stats.dropped.decrypt++
      return undefined
    }
    return f.body
  }

  /** @internal */
  countOut(bytes: number): void {
    this.stats.framesOut++
    this.stats.bytesOut += bytes
  }

  /** @internal */
  countDrop(reason: DropReason): void {
    this.stats.dropped[reason]++
  }
}

function typeName(t: number): string {
  return Object.entries(FrameType).find(([, v]) => v === t)?.[0] ?? `type ${t}`
}

const nameOf = (p: Peer): string => p.name ?? peerKey(p)
