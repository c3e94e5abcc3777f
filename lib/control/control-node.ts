import './polyfill.js'
import { createPublicKey, type KeyObject } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection } from '@libp2p/interface'
import { createLibp2p, type Libp2p } from 'libp2p'
import { SwarmdError } from '../types/errors.js'
import { Channel, type StreamLike } from './channel.js'
import { rawPublicKey } from './identity.js'
import { pendingUpgradeLimit } from './inbound-limit.js'

export class ControlError extends SwarmdError {}

/**
 * Inbound connections until authenticated (multistream-select, Noise,
 * yamux): libp2p keeps 10 pending upgrades in all and 10 s to finish one, so
 * a few connections dripping header bytes from one address starved every
 * worker's heartbeat. One address may have 8 upgrades under way, all
 * sources together 128 (a whole cluster rejoining at once), and an upgrade
 * that has not finished in 5 s is cut (the handshake takes milliseconds).
 */
export const CONTROL_LIMITS = { pendingUpgradesPerHost: 8, pendingUpgrades: 128, upgradeTimeoutMs: 5_000 } as const

/** The peer of a control conversation, authenticated by Noise: it proved this Ed25519 key. */
export interface Peer {
  publicKey: Buffer
}

export type ChannelHandler = (ch: Channel, peer: Peer) => Promise<void>

/** libp2p wants the 64-byte Ed25519 form (seed ‖ public key). */
function libp2pKey(privateKey: KeyObject): ReturnType<typeof privateKeyFromRaw> {
  const der = privateKey.export({ type: 'pkcs8', format: 'der' })
  const seed = der.subarray(der.length - 32)
  const pub = rawPublicKey(createPublicKey(privateKey))
  return privateKeyFromRaw(Buffer.concat([seed, pub]))
}

/**
 * A node on the control plane (port 2377): libp2p over TCP, Noise for
 * mutual authentication by node key and encryption, yamux for streams.
 * The node's libp2p identity is its swarm node key, so the certificate the
 * CA issued for that key is checked against what Noise proved.
 */
export class ControlNode {
  /** The connection to each address this node dials, reused by every conversation with it. */
  private readonly conns = new Map<string, Connection>()

  private constructor(
    private readonly p2p: Libp2p,
    /** Whether it listens (a manager's), or only dials. */
    readonly listening: boolean,
  ) {}

  static async create(o: { privateKey: KeyObject; listen?: { ip: string; port: number } }): Promise<ControlNode> {
    try {
      const p2p = await createLibp2p({
        privateKey: libp2pKey(o.privateKey),
        addresses: { listen: o.listen ? [`/ip4/${o.listen.ip}/tcp/${o.listen.port}`] : [] },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        connectionManager: {
          // libp2p refuses a host's sixth connection in a second by default; nodes behind one
          // address (or one machine in tests) join and check in faster than that.
          inboundConnectionThreshold: 100,
          maxIncomingPendingConnections: CONTROL_LIMITS.pendingUpgrades,
          inboundUpgradeTimeout: CONTROL_LIMITS.upgradeTimeoutMs,
        },
        connectionGater: pendingUpgradeLimit(CONTROL_LIMITS.pendingUpgradesPerHost),
      })
      return new ControlNode(p2p, !!o.listen)
    } catch (e) {
      throw new ControlError('E_CONTROL_LISTEN', `cannot start the control plane: ${(e as Error).message}`, { cause: e })
    }
  }

  /** Serves a protocol: each inbound stream is a conversation with an authenticated peer. A later call for the same protocol replaces the handler. */
  async handle(protocol: string, handler: ChannelHandler): Promise<void> {
    await this.p2p.handle(protocol, async (stream, connection) => {
      const ch = new Channel(stream as unknown as StreamLike)
      const publicKey = Buffer.from(connection.remotePeer.publicKey?.raw ?? new Uint8Array())
      try {
        await handler(ch, { publicKey })
      } finally {
        await ch.close()
      }
    }, { force: true })
  }

  /** Stops serving a protocol (the role that served it stopped). */
  async unhandle(protocol: string): Promise<void> {
    await this.p2p.unhandle(protocol)
  }

  /** Opens a conversation with the node at ip:port (whoever it turns out to be: the caller checks). */
  async open(to: { ip: string; port: number }, protocol: string): Promise<{ ch: Channel; peer: Peer }> {
    const key = `${to.ip}:${to.port}`
    try {
      // One connection per address, a stream per conversation: a dial by address alone would make libp2p
      // connect (TCP, Noise, yamux) anew every time, some 20 ms a call.
      let conn = this.conns.get(key)
      if (!conn || conn.status !== 'open') {
        conn = await this.p2p.dial(multiaddr(`/ip4/${to.ip}/tcp/${to.port}`), { signal: AbortSignal.timeout(10_000) })
        this.conns.set(key, conn)
      }
      const stream = await conn.newStream(protocol, { signal: AbortSignal.timeout(10_000), negotiateFully: false })
      return { ch: new Channel(stream as unknown as StreamLike), peer: { publicKey: Buffer.from(conn.remotePeer.publicKey?.raw ?? new Uint8Array()) } }
    } catch (e) {
      this.conns.delete(key)
      throw new ControlError('E_CONTROL_DIAL', `cannot reach the manager at ${to.ip}:${to.port}: ${(e as Error).message}`, { cause: e })
    }
  }

  async stop(): Promise<void> {
    await this.p2p.stop()
  }
}
