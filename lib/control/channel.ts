import { SwarmdError } from '../types/errors.js'

export class ChannelError extends SwarmdError {}

/** A control message is JSON; frames are [u32 BE length][UTF-8 JSON]. */
const MAX_FRAME = 4 * 1024 * 1024

/** What the channel needs of a libp2p 3 stream. */
export interface StreamLike {
  send(data: Uint8Array): boolean
  close(): Promise<void>
  abort(err: Error): void
  addEventListener(type: 'message', fn: (e: { data: { subarray(): Uint8Array } }) => void): void
  addEventListener(type: 'close' | 'remoteCloseWrite', fn: () => void): void
}

/**
 * Request / response conversations over one stream: length-prefixed JSON
 * frames, read as they arrive. Oversized or malformed frames end the stream.
 */
export class Channel {
  private buf: Buffer = Buffer.alloc(0)
  private readonly inbox: unknown[] = []
  private waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void } | undefined
  private closed: Error | undefined

  constructor(private readonly stream: StreamLike) {
    stream.addEventListener('message', e => this.onData(Buffer.from(e.data.subarray())))
    stream.addEventListener('close', () => this.fail(new ChannelError('E_CHANNEL_CLOSED', 'the peer closed the stream')))
    // libp2p closes a stream one direction at a time: the peer being done means the conversation is over, so end ours too.
    stream.addEventListener('remoteCloseWrite', () => {
      this.fail(new ChannelError('E_CHANNEL_CLOSED', 'the peer closed the stream'))
      void stream.close().catch(() => undefined)
    })
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0)
      if (len > MAX_FRAME) {
        this.fail(new ChannelError('E_CHANNEL_FRAME', `control frame of ${len} bytes exceeds ${MAX_FRAME}`))
        this.stream.abort(this.closed!)
        return
      }
      if (this.buf.length < 4 + len) return
      let msg: unknown
      try {
        msg = JSON.parse(this.buf.subarray(4, 4 + len).toString('utf8'))
      } catch (e) {
        this.fail(new ChannelError('E_CHANNEL_JSON', 'malformed control message', { cause: e }))
        this.stream.abort(this.closed!)
        return
      }
      this.buf = this.buf.subarray(4 + len)
      if (this.waiting) {
        const w = this.waiting
        this.waiting = undefined
        w.resolve(msg)
      } else this.inbox.push(msg)
    }
  }

  private fail(e: Error): void {
    this.closed ??= e
    if (this.waiting) {
      const w = this.waiting
      this.waiting = undefined
      w.reject(e)
    }
  }

  send(msg: unknown): void {
    const body = Buffer.from(JSON.stringify(msg))
    const frame = Buffer.allocUnsafe(4 + body.length)
    frame.writeUInt32BE(body.length, 0)
    body.copy(frame, 4)
    try {
      this.stream.send(frame)
    } catch (e) {
      // libp2p throws once the stream is closing: to the conversation that is the peer having gone.
      throw new ChannelError('E_CHANNEL_CLOSED', 'cannot send: the stream is closed', { cause: e })
    }
  }

  /** The next message; rejects after `timeoutMs` (never when Infinity) or when the stream ends. */
  recv<T>(timeoutMs = 10_000): Promise<T> {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift() as T)
    if (this.closed) return Promise.reject(this.closed)
    return new Promise<T>((resolve, reject) => {
      const timer =
        timeoutMs === Infinity
          ? undefined
          : setTimeout(() => {
              this.waiting = undefined
              reject(new ChannelError('E_CHANNEL_TIMEOUT', `no answer within ${timeoutMs} ms`))
            }, timeoutMs)
      this.waiting = {
        resolve: v => {
          clearTimeout(timer)
          resolve(v as T)
        },
        reject: e => {
          clearTimeout(timer)
          reject(e)
        },
      }
    })
  }

  async close(): Promise<void> {
    await this.stream.close().catch(() => undefined)
  }
}
