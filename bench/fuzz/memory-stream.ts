import type { StreamLike } from '../../lib/control/channel.js'

type Listener = (e: { data: { subarray(): Uint8Array } }) => void

/**
 * One end of an in-process stream, for a Channel: what the Channel sends is
 * kept in `sent`, `deliver` hands it bytes as from the peer, and `end` is the
 * peer closing its side. Plain plumbing, so that the control channel's
 * framing and handlers can take millions of inputs without sockets.
 */
export class MemoryStream implements StreamLike {
  readonly sent: Buffer[] = []
  /** Set once the Channel closed or aborted its side. */
  closed = false
  aborted: Error | undefined
  private readonly onMessage: Listener[] = []
  private readonly onEnd: (() => void)[] = []

  send(data: Uint8Array): boolean {
    this.sent.push(Buffer.from(data))
    return true
  }

  async close(): Promise<void> {
    this.closed = true
  }

  abort(err: Error): void {
    this.aborted = err
    this.closed = true
  }

  addEventListener(type: 'message' | 'close' | 'remoteCloseWrite', fn: Listener | (() => void)): void {
    if (type === 'message') this.onMessage.push(fn as Listener)
    else if (type === 'remoteCloseWrite') this.onEnd.push(fn as () => void)
  }

  deliver(bytes: Uint8Array): void {
    for (const fn of this.onMessage) fn({ data: { subarray: () => bytes } })
  }

  end(): void {
    for (const fn of this.onEnd) fn()
  }
}
