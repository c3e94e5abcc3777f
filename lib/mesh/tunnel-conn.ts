import type { Socket } from 'node:net'
import { FRAME_HEADER_LEN, FrameDecoder, FrameError, FrameType, encodeFrameHeader } from './tunnel-frame.js'
import { parsePeerKey, type PeerAddress } from './peer-address.js'
import { Sealer } from './seal.js'
import { TunnelError } from './tunnel-error.js'
import type { TunnelStream } from './tunnel-stream.js'
import type { Tunnel, TunnelNetwork } from './tunnel.js'
import type { Vni } from './types.js'

/** Bytes queued on a connection's socket before its streams wait for 'drain'. */
export const CONN_HIGH_WATER = 1024 * 1024
const HANDSHAKE_TIMEOUT_MS = 10_000
const KEEPALIVE_MS = 10_000

/** One TCP connection to a peer: framing, write coalescing, stream table. */
export class Conn {
  readonly streams = new Map<number, TunnelStream>()
  readonly sealer = new Sealer()
  peerAddress: PeerAddress | undefined
  readonly remote: string
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
  private handshake: NodeJS.Timeout | undefined

  constructor(
    private readonly tunnel: Tunnel,
    readonly socket: Socket,
    readonly dialed: boolean,
    public peer: string | undefined,
  ) {
    this.nextId = dialed ? 1 : 2
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    this.peerAddress = peer !== undefined ? parsePeerKey(peer) : undefined
    socket.setNoDelay(true)
    socket.setKeepAlive(true, KEEPALIVE_MS)
    if (dialed) socket.once('connect', () => (this.connected = true))
    else {
      this.connected = true
      this.handshake = setTimeout(() => this.fail(new TunnelError('E_TUNNEL_PROTOCOL', `no HELLO from ${this.remote}`)), HANDSHAKE_TIMEOUT_MS)
      this.handshake.unref()
    }
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, (f) => {
          if (!this.closed) tunnel.onFrame(this, f)
        })
      } catch (e) {
        if (!(e instanceof FrameError)) throw e
        tunnel.onFrameError(this, e)
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
    return this.connected
      ? new TunnelError('E_TUNNEL_PEER_LOST', `connection to ${who} lost${cause ? `: ${cause.message}` : ''}`, undefined, { cause })
      : new TunnelError('E_TUNNEL_PEER_UNREACHABLE', `cannot reach ${who}${cause ? `: ${cause.message}` : ''}`, (cause as NodeJS.ErrnoException | undefined)?.code, { cause })
  }

  helloDone(): void {
    clearTimeout(this.handshake)
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

  /** Writes one frame, sealed under the network's primary key if it has keys. Writes in one tick leave in one writev. */
  sendFrame(vni: Vni, type: FrameType, streamId: number, body: Buffer, network: TunnelNetwork | undefined): void {
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
  }

  private maybeEnd(): void {
    if (this.retired && this.dialed && this.streams.size === 0 && !this.closed) this.socket.end()
  }

  /** Ends the connection now: every stream and ping fails with `err`. */
  fail(err: TunnelError): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.handshake)
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

