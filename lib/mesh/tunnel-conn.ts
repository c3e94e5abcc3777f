import type { Socket } from 'node:net'
import type { PeerAddress } from './peer-address.js'
import { Sealer } from './seal.js'
import type { AcceptorHandshake, DialerHandshake } from './tunnel-auth.js'
import { TunnelError } from './tunnel-error.js'
import { FRAME_HEADER_LEN, FrameDecoder, FrameError, FrameType, encodeFrameHeader, type Frame } from './tunnel-frame.js'
import type { Slotted } from './tunnel-limits.js'
import type { TunnelStream } from './tunnel-stream.js'
import type { DropReason, TunnelNetwork } from './tunnel-types.js'
import type { Vni } from './types.js'

/** Bytes queued on a connection's socket before its streams wait for 'drain'. */
export const CONN_HIGH_WATER = 1024 * 1024
const KEEPALIVE_MS = 10_000

/** What a connection tells the tunnel that owns it (the Tunnel). */
export interface ConnOwner {
  onFrame(conn: Conn, f: Frame): void
  onFrameError(conn: Conn, e: FrameError): void
  handshakeExpired(conn: Conn): void
  idleExpired(conn: Conn): void
  connClosed(conn: Conn): void
  countOut(bytes: number): void
  countDrop(reason: DropReason): void
}

type QueuedFrame = [vni: Vni, type: FrameType, streamId: number, body: Buffer, network: TunnelNetwork | undefined]

/** One TCP connection to a peer: its handshake, framing, write coalescing, stream table, idle timer. */
export class Conn implements Slotted {
  readonly streams = new Map<number, TunnelStream>()
  readonly sealer = new Sealer()
  /** The peer's name: the one it must prove (dialled), or the one it proved (inbound). */
  peer: string | undefined
  peerAddress: PeerAddress | undefined
  readonly remote: string
  readonly source: string
  slot: Slotted['slot']
  /** Until both sides proved their names, only the handshake goes in or out. */
  authenticated = false
  handshake: DialerHandshake | AcceptorHandshake | undefined
  /** No new streams go out on it; the dialer closes it when idle. */
  retired = false
  closed = false
  private connected = false
  private nextId: number
  private corked = false
  private readonly decoder = new FrameDecoder()
  /** Streams waiting for the socket to drain. */
  private readonly waiting = new Set<TunnelStream>()
  private readonly pings = new Map<number, { start: bigint; resolve: (ms: number) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  private nextPing = 1
  /** What the dialer sends before the acceptor proved its name: it leaves once it has. */
  private queued: QueuedFrame[] = []
  private handshakeTimer: NodeJS.Timeout | undefined
  private idleTimer: NodeJS.Timeout | undefined
  private readonly idleMs: number
  /** A frame came after the handshake. */
  private heard = false

  constructor(
    private readonly tunnel: ConnOwner,
    readonly socket: Socket,
    readonly dialed: boolean,
    o: { peer?: string; peerAddress?: PeerAddress; handshake: DialerHandshake | AcceptorHandshake; handshakeTimeoutMs: number; idleTimeoutMs: number },
  ) {
    this.nextId = dialed ? 1 : 2
    this.peer = o.peer
    this.peerAddress = o.peerAddress
    this.handshake = o.handshake
    // The dialer closes an idle connection; the acceptor waits longer, for a dialer that does not.
    this.idleMs = dialed ? o.idleTimeoutMs : 2 * o.idleTimeoutMs
    this.source = socket.remoteAddress ?? ''
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    socket.setNoDelay(true)
    socket.setKeepAlive(true, KEEPALIVE_MS)
    if (dialed) socket.once('connect', () => (this.connected = true))
    else this.connected = true
    this.handshakeTimer = setTimeout(() => tunnel.handshakeExpired(this), o.handshakeTimeoutMs)
    this.handshakeTimer.unref()
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, (f) => {
          if (this.closed) return
          this.heard ||= this.authenticated
          tunnel.onFrame(this, f)
        })
      } catch (e) {
        if (!(e instanceof FrameError)) throw e
        if (!this.closed) tunnel.onFrameError(this, e)
      }
    })
    socket.on('drain', () => {
      const ws = [...this.waiting]
      this.waiting.clear()
      for (const s of ws) s.flush()
    })
    socket.on('error', (e) => this.fail(this.lossError(e)))
    socket.on('close', () => this.fail(this.lossError(undefined)))
  }

  private lossError(cause: Error | undefined): TunnelError {
    const who = this.peer ?? this.remote
    // The acceptor closes unanswered a connection whose proof it refused; what the dialer sends right after AUTH always has an answer.
    if (this.dialed && this.authenticated && !this.heard) return new TunnelError('E_TUNNEL_AUTH', `${who} closed the connection without accepting this node's proof`, 'auth', { cause })
    return this.connected
      ? new TunnelError('E_TUNNEL_PEER_LOST', `connection to ${who} lost${cause ? `: ${cause.message}` : ''}`, undefined, { cause })
      : new TunnelError('E_TUNNEL_PEER_UNREACHABLE', `cannot reach ${who}${cause ? `: ${cause.message}` : ''}`, (cause as NodeJS.ErrnoException | undefined)?.code, { cause })
  }

  /** Both sides proved their names: what waited goes out, the idle clock starts. */
  opened(): void {
    this.authenticated = true
    this.handshake = undefined
    clearTimeout(this.handshakeTimer)
    const q = this.queued
    this.queued = []
    for (const f of q) this.write(...f)
    this.armIdle()
  }

  addStream(s: TunnelStream): void {
    this.streams.set(s.id, s)
    clearTimeout(this.idleTimer)
    this.idleTimer = undefined
  }

  private armIdle(): void {
    if (this.idleMs <= 0 || !this.authenticated || this.closed || this.streams.size > 0) return
    clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => this.tunnel.idleExpired(this), this.idleMs)
    this.idleTimer.unref()
  }

  allocateId(): number {
    const id = this.nextId
    this.nextId += 2
    return id
  }

  get congested(): boolean {
    return this.socket.writableLength >= CONN_HIGH_WATER
  }

  waitDrain(s: TunnelStream): void {
    this.waiting.add(s)
  }

  /** Sends one frame once the connection is authenticated (queued until then). */
  sendFrame(vni: Vni, type: FrameType, streamId: number, body: Buffer, network: TunnelNetwork | undefined): void {
    if (this.authenticated) this.write(vni, type, streamId, body, network)
    else if (!this.closed) this.queued.push([vni, type, streamId, body, network])
  }

  sendHandshake(type: FrameType, body: Buffer): void {
    this.write(0, type, 0, body, undefined)
  }

  /** Writes one frame, sealed under the network's primary key if it has keys. Writes in one tick leave in one writev. */
  private write(vni: Vni, type: FrameType, streamId: number, body: Buffer, network: TunnelNetwork | undefined): void {
    if (this.closed) return
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      process.nextTick(this.uncork)
    }
    let size: number
    if (network?.seal) {
      const parts = this.sealer.seal(network.seal, { vni, type, streamId }, body)
      size = 0
      for (const p of parts) {
        size += p.length
        this.socket.write(p)
      }
    } else {
      this.socket.write(encodeFrameHeader({ vni, type, flags: 0, keyId: 0, streamId, length: body.length }))
      if (body.length > 0) this.socket.write(body)
      size = FRAME_HEADER_LEN + body.length
    }
    this.tunnel.countOut(size)
  }

  private readonly uncork = (): void => {
    this.corked = false
    this.socket.uncork()
  }

  ping(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new TunnelError('E_TUNNEL_PEER_LOST', 'connection closed'))
      const id = this.nextPing++
      const timer = setTimeout(() => {
        this.pings.delete(id)
        reject(new TunnelError('E_TUNNEL_OPEN_TIMEOUT', `no PONG in ${timeoutMs} ms`))
      }, timeoutMs)
      this.pings.set(id, { start: process.hrtime.bigint(), resolve, reject, timer })
      const body = Buffer.alloc(8)
      body.writeUInt32BE(id, 0)
      this.sendFrame(0, FrameType.PING, 0, body, undefined)
    })
  }

  onPong(body: Buffer): void {
    const id = body.readUInt32BE(0)
    const p = this.pings.get(id)
    if (!p) return this.tunnel.countDrop('unknown_stream')
    this.pings.delete(id)
    clearTimeout(p.timer)
    p.resolve(Number(process.hrtime.bigint() - p.start) / 1e6)
  }

  /** Retire: no new streams; the dialer ends the connection once its streams are done. */
  drain(): void {
    this.retired = true
    this.maybeEnd()
  }

  streamGone(s: TunnelStream): void {
    if (this.streams.get(s.id) === s) this.streams.delete(s.id)
    this.waiting.delete(s)
    this.maybeEnd()
    this.armIdle()
  }

  private maybeEnd(): void {
    if (this.retired && this.dialed && this.streams.size === 0 && !this.closed) this.socket.end()
  }

  /** Ends the connection now: every stream and ping fails with `err`. */
  fail(err: TunnelError): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.handshakeTimer)
    clearTimeout(this.idleTimer)
    this.queued = []
    this.tunnel.connClosed(this)
    this.socket.destroy()
    for (const s of [...this.streams.values()]) {
      s.quiet = true
      s.destroy(err)
    }
    this.streams.clear()
    for (const p of this.pings.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.pings.clear()
  }
}

