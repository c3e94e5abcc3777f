/**
 * Speaking the 4789 tunnel's protocol by hand, to attack a real Tunnel:
 * rawPeer() completes (or not) the handshake over a plain TCP socket.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { peerKey, type PeerAddress } from '../lib/mesh/peer-address.js'
import { DialerHandshake, TRUST_NAMES, type TunnelAuth } from '../lib/mesh/tunnel-auth.js'
import { FrameDecoder, FrameType, encodeFrame, type Frame } from '../lib/mesh/tunnel-frame.js'

export interface RawPeer {
  socket: Socket
  /** Every frame the tunnel sent, the handshake's included. */
  received: Frame[]
  /** Resolves when the tunnel closes the connection. */
  closed: Promise<void>
  close(): void
}

const handshakeFrame = (type: FrameType, body: Buffer): Buffer => encodeFrame({ vni: 0, type, flags: 0, keyId: 0, streamId: 0 }, body)

/**
 * A TCP connection to `target` that says HELLO as `name` and, unless
 * `hello` is false, answers the CHALLENGE with AUTH under `auth` (by
 * default the claim alone, which only a tunnel without authentication
 * takes). The tunnel's own proof is not checked, only that it is named
 * `expected` (default: its address, a tunnel's default name). Resolves
 * once AUTH is sent, or when the tunnel closes first (or at once, without HELLO).
 */
export async function rawPeer(target: PeerAddress, o: { name: string; auth?: TunnelAuth; expected?: string; localAddress?: string; hello?: boolean }): Promise<RawPeer> {
  const socket = connect({ host: target.host, port: target.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) })
  socket.on('error', () => {})
  const received: Frame[] = []
  const closed = new Promise<void>((r) => socket.once('close', () => r()))
  const peer: RawPeer = { socket, received, closed, close: () => socket.destroy() }
  await Promise.race([once(socket, 'connect').catch(() => undefined), closed])
  const decoder = new FrameDecoder()
  let challenged: (f: Frame) => void = () => {}
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk, (f) => {
        received.push(f)
        if (f.type === FrameType.CHALLENGE) challenged(f)
      })
    } catch {
      socket.destroy()
    }
  })
  if (o.hello === false || socket.destroyed) return peer
  const auth = o.auth ?? TRUST_NAMES
  const hs = new DialerHandshake({ prove: (t) => auth.prove(t), verify: () => true }, { name: o.name, address: peerKey({ host: socket.localAddress!, port: socket.localPort! }) }, o.expected ?? peerKey(target))
  const challenge = new Promise<Frame | undefined>((resolve) => {
    challenged = resolve
    void closed.then(() => resolve(undefined))
  })
  socket.write(handshakeFrame(FrameType.HELLO, hs.helloBody()))
  const c = await challenge
  if (c) socket.write(handshakeFrame(FrameType.AUTH, hs.onChallenge(c.body)))
  return peer
}
