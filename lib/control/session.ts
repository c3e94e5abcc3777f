import type { KeyObject } from 'node:crypto'
import { type CertificateBody, type NodeCertificate, type Role, verifyCertificate } from './ca.js'
import type { Channel } from './channel.js'
import type { ControlNode } from './control-node.js'
import { publicKeyFromRaw } from './identity.js'
import { answerOf, type ErrorBody } from './remote-error.js'
import { authenticate, notManager } from './rpc.js'

export const SESSION_PROTOCOL = '/swarmd/session/1.0.0'

/**
 * A node's long-lived conversation with the manager (swarmkit's dispatcher
 * session): assignments flow down, task status and log lines flow up, over
 * one authenticated stream, as they happen.
 */
export interface Session {
  send(msg: unknown): void
  /** Resolves when the stream ends, whichever side ended it. */
  readonly closed: Promise<void>
  close(): Promise<void>
}

/** Reads messages until the stream ends, handing each to `onMessage`. */
function pump(ch: Channel, onMessage: (msg: unknown) => void): Promise<void> {
  return (async () => {
    for (;;) {
      let msg: unknown
      try {
        msg = await ch.recv(Infinity)
      } catch {
        return
      }
      onMessage(msg)
    }
  })()
}

function sessionOf(ch: Channel, closed: Promise<void>): Session {
  return {
    send: msg => {
      try {
        ch.send(msg)
      } catch {
        // The stream is gone; `closed` tells the owner.
      }
    },
    closed,
    close: () => ch.close(),
  }
}

/**
 * Serves sessions: the opener presents its certificate (checked as every RPC
 * caller's is), the manager answers with its own, then both sides talk
 * until either closes.
 */
export function serveSession(
  node: ControlNode,
  d: {
    caPublicKey: () => KeyObject
    selfCert: () => NodeCertificate
    /** The role each node has in the swarm now; undefined for a node it does not have. */
    role: (nodeId: string) => Role | undefined
    onRefused: (why: string) => void
    onSession: (caller: CertificateBody, session: Session) => (msg: unknown) => void
    /** Whether this manager takes the caller's session now; a refusal to send instead (another manager leads). */
    refuse?: (caller: CertificateBody) => ErrorBody | undefined
  },
): Promise<void> {
  return node.handle(SESSION_PROTOCOL, async (ch, peer) => {
    const hello = await ch.recv<{ cert?: unknown }>()
    const caller = authenticate(ch, peer, hello?.cert, d)
    if (!caller) return
    const refused = d.refuse?.(caller)
    if (refused) {
      ch.send(refused)
      return
    }
    ch.send({ cert: d.selfCert() })
    let done!: () => void
    const closed = new Promise<void>(r => (done = r))
    const handler = d.onSession(caller, sessionOf(ch, closed))
    await pump(ch, m => handler(m))
    done()
  })
}

/** Opens a session with the manager at `to`, checking its certificate as callRpc does. */
export async function openSession(
  node: ControlNode,
  to: { ip: string; port: number },
  cert: NodeCertificate,
  caPublicKey: KeyObject,
  onMessage: (msg: unknown) => void,
): Promise<Session> {
  const { ch, peer } = await node.open(to, SESSION_PROTOCOL)
  try {
    ch.send({ cert })
    const r = answerOf(await ch.recv(), 'session answer')
    const mc = verifyCertificate(r.cert, { caPublicKey, now: Date.now(), peerKey: publicKeyFromRaw(peer.publicKey) })
    if (mc.role !== 'manager') throw notManager(to)
  } catch (e) {
    await ch.close()
    throw e
  }
  return sessionOf(ch, pump(ch, onMessage))
}
