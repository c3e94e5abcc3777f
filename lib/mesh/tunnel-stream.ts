import { Duplex } from 'node:stream'
import { FrameError, FrameType, MAX_DATA_PAYLOAD, decodeTextBody, decodeU32Body, encodeTextBody, encodeU32Body } from './tunnel-frame.js'
import { TunnelError } from './tunnel-error.js'
import type { DropReason, TunnelNetwork } from './tunnel-types.js'

/** What a stream needs of the connection it travels on (tunnel-conn.ts's Conn). */
export interface StreamConn {
  readonly closed: boolean
  readonly congested: boolean
  sendFrame(vni: Vni, type: FrameType, streamId: number, body: Buffer, network: TunnelNetwork | undefined): void
  waitDrain(s: TunnelStream): void
  streamGone(s: TunnelStream): void
}
import type { Vni } from './types.js'

const EMPTY = Buffer.alloc(0)

/**
 * One multiplexed stream. The sender may have at most the receiver's window
 * of bytes unacknowledged; the receiver grants more (WINDOW) as its
 * consumer reads, so a slow reader stalls only its own stream, and memory
 * stays bounded by the window whatever the writer does.
 */
export class TunnelStream extends Duplex {
  sendCredit = 0
  opening: { resolve: () => void; reject: (e: Error) => void } | undefined
  /** Set when the peer knows already (it reset us, or the connection is gone): destroy sends no RST. */
  quiet = false
  /** An incoming stream not yet accepted: nobody listens for its errors, so accept() throws them instead. */
  unclaimed = false
  unclaimedError: Error | undefined
  private received = 0
  private acked = 0
  private finSent = false
  private finReceived = false
  private pending: { chunk: Buffer; off: number; cb: (e?: Error | null) => void } | undefined
  private readonly threshold: number

  constructor(
    private readonly tunnel: { countDrop(reason: DropReason): void },
    private readonly conn: StreamConn,
    readonly id: number,
    readonly vni: Vni,
    readonly network: TunnelNetwork,
    private readonly recvWindow: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: recvWindow, writableHighWaterMark: MAX_DATA_PAYLOAD })
    this.threshold = Math.max(1, Math.floor(recvWindow / 4))
  }

  /** @internal A frame for this stream, already unsealed. Throws FrameError on a bad body. */
  onFrame(type: FrameType, body: Buffer): void {
    if (this.destroyed) return
    switch (type) {
      case FrameType.OPEN_OK: {
        const o = this.opening
        if (!o) throw new FrameError('E_FRAME_BODY', 'OPEN_OK for an open stream')
        this.sendCredit = decodeU32Body(body)
        this.opening = undefined
        o.resolve()
        return
      }
      case FrameType.OPEN_FAIL: {
        const o = this.opening
        if (!o) throw new FrameError('E_FRAME_BODY', 'OPEN_FAIL for an open stream')
        const reason = decodeTextBody(body)
        this.quiet = true
        this.destroy(new TunnelError('E_TUNNEL_OPEN_FAILED', `the peer refused the stream: ${reason}`, reason))
        return
      }
      case FrameType.DATA:
        if (this.opening || this.finReceived) throw new FrameError('E_FRAME_BODY', 'DATA outside an open stream')
        if (this.received + body.length > this.acked + this.recvWindow) {
          this.tunnel.countDrop('flow_control')
          this.destroy(new TunnelError('E_TUNNEL_PROTOCOL', 'the peer overran its flow-control window'))
          return
        }
        this.received += body.length
        this.push(body)
        this.creditBack()
        return
      case FrameType.WINDOW:
        this.sendCredit += decodeU32Body(body)
        this.flush()
        return
      case FrameType.FIN:
        if (this.opening || this.finReceived) throw new FrameError('E_FRAME_BODY', 'FIN outside an open stream')
        this.finReceived = true
        this.push(null)
        this.maybeDone()
        return
      case FrameType.RST: {
        const reason = decodeTextBody(body)
        this.quiet = true
        this.destroy(new TunnelError('E_TUNNEL_RESET', `the peer reset the stream${reason ? `: ${reason}` : ''}`, reason))
        return
      }
      default:
        throw new FrameError('E_FRAME_BODY', `frame type ${type} on a stream`)
    }
  }

  /** Grants the sender credit for what the consumer took, in batches, or at once when the sender may be stalled. */
  private creditBack(): void {
    if (this.finReceived || this.destroyed) return
    const consumed = this.received - this.readableLength
    const inc = consumed - this.acked
    if (inc <= 0) return
    if (inc >= this.threshold || this.received - this.acked >= this.recvWindow - this.threshold) {
      this.acked = consumed
      this.conn.sendFrame(this.vni, FrameType.WINDOW, this.id, encodeU32Body(inc), this.network)
    }
  }

  /**
   * Credit follows consumption, which happens in read() (paused reads, flow
   * and pipe all call it) or in push() itself when a flowing stream hands a
   * chunk straight to 'data' (see onFrame). _read() is no place for it: it
   * runs before read() takes the bytes out of the buffer.
   */
  override read(size?: number): unknown {
    const r: unknown = super.read(size)
    this.creditBack()
    return r
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.pending = { chunk, off: 0, cb }
    this.flush()
  }

  /** @internal Sends as much of the pending write as credit and the socket allow. */
  flush(): void {
    const p = this.pending
    if (!p || this.destroyed) return
    while (p.off < p.chunk.length) {
      if (this.conn.closed) return
      if (this.conn.congested) return this.conn.waitDrain(this)
      const n = Math.min(this.sendCredit, MAX_DATA_PAYLOAD, p.chunk.length - p.off)
      if (n === 0) return
      this.conn.sendFrame(this.vni, FrameType.DATA, this.id, p.chunk.subarray(p.off, p.off + n), this.network)
      this.sendCredit -= n
      p.off += n
    }
    this.pending = undefined
    p.cb()
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.finSent = true
    this.conn.sendFrame(this.vni, FrameType.FIN, this.id, EMPTY, this.network)
    cb()
    this.maybeDone()
  }

  private maybeDone(): void {
    if (this.finSent && this.finReceived) this.conn.streamGone(this)
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.pending = undefined
    const o = this.opening
    this.opening = undefined
    if (!this.quiet && !(this.finSent && this.finReceived) && !this.conn.closed) {
      const reason = (err as NodeJS.ErrnoException | null)?.code ?? (err ? 'EIO' : 'ECANCELED')
      this.conn.sendFrame(this.vni, FrameType.RST, this.id, encodeTextBody(reason.slice(0, 64)), this.network)
    }
    this.conn.streamGone(this)
    if (o) {
      o.reject(err ?? new TunnelError('E_TUNNEL_RESET', 'the stream was destroyed while opening'))
      cb()
    } else if (this.unclaimed) {
      this.unclaimedError = err ?? undefined
      cb()
    } else cb(err)
  }
}
