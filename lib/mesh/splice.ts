import { connect as tcpConnect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'

/**
 * Moving bytes between a client and a backend, shared by the Mesh and its
 * forwarder workers: dialing a task, TCP options, and the two-way splice.
 */

/** TCP keepalive (so a dead peer is noticed) and no Nagle delay on a mesh socket. */
export function tune(s: Socket, keepAliveMs: number): void {
  if (keepAliveMs > 0) s.setKeepAlive(true, keepAliveMs)
  s.setNoDelay(true)
}

/** A connection to a task's host and port, tuned, with `preamble` (PROXY protocol) written first; rejects with the dial's error. */
export function dial(host: string, port: number, keepAliveMs: number, preamble?: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port, noDelay: true, allowHalfOpen: true })
    s.once('error', reject)
    s.once('connect', () => {
      s.off('error', reject)
      tune(s, keepAliveMs)
      if (preamble?.length) s.write(preamble)
      resolve(s)
    })
  })
}

/**
 * Forwards both ways with backpressure (lighter than pipe(): fewer
 * listeners per connection). A half-close travels to the other side (the
 * sockets allow half-open); either side failing or closing ends both, and
 * `onEnd` runs once.
 */
export function join(a: Duplex, b: Duplex, onEnd: () => void): void {
  const forward = (from: Duplex, to: Duplex): void => {
    from.on('data', chunk => {
      if (!to.write(chunk)) {
        from.pause()
        to.once('drain', () => from.resume())
      }
    })
    from.once('end', () => to.end())
  }
  forward(a, b)
  forward(b, a)
  let ended = false
  const end = (): void => {
    a.destroy()
    b.destroy()
    if (ended) return
    ended = true
    onEnd()
  }
  a.once('error', end)
  b.once('error', end)
  a.once('close', end)
  b.once('close', end)
}

/** Joins a client connection and a backend; with `idleTimeoutMs`, an idle pair ends visibly (a reset the client sees), never silently. */
export function splice(client: Socket, backend: Duplex, idleTimeoutMs: number, onEnd: () => void): void {
  join(client, backend, onEnd)
  if (idleTimeoutMs > 0) {
    client.setTimeout(idleTimeoutMs, () => {
      client.resetAndDestroy()
      backend.destroy()
    })
  }
}
