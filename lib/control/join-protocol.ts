import { randomBytes } from 'node:crypto'
import { caDigest, type ClusterCA, type NodeCertificate, type Role, verifyCertificate } from './ca.js'
import type { Channel } from './channel.js'
import type { ControlNode, Peer } from './control-node.js'
import { publicKeyFromRaw } from './identity.js'
import { checkJoinProof, joinProof, parseJoinToken } from './join-token.js'
import { answerOf, errorBody, refusal, RemoteError } from './remote-error.js'
import { notManager } from './rpc.js'

export const JOIN_PROTOCOL = '/swarmd/join/1.0.0'
export const INVALID_TOKEN = 'A valid join token is necessary to join this cluster'

interface Hello {
  hostname: string
  advertiseAddr: string
}
interface Challenge {
  ca: string
  managerCert: NodeCertificate
  challenge: string
}
interface Proof {
  proof: string
}
export interface Admission {
  cert: NodeCertificate
  clusterId: string
  gossipKeys: string[]
  /** Where the manager gossips (ip:port): the joiner's first gossip contact. */
  gossipAddr: string
  /** Every manager's control address, the leader's first (swarm's RemoteManagers): where the joiner checks in. */
  managers?: string[]
}

export interface JoinServerDeps {
  ca: () => ClusterCA
  certTtlMs: () => number
  managerCert: () => NodeCertificate
  secrets: () => { worker: string; manager: string }
  admit: (o: { nodeId: string; role: Role; hostname: string; advertiseAddr: string; cert: NodeCertificate }) => Promise<Omit<Admission, 'cert'>>
  onRefused: (why: string, peer: Peer) => void
}

/**
 * The manager's side of a join, over Noise: send the CA and a fresh
 * challenge, check the proof of a token secret (which picks the role), then
 * certify the key the peer proved it holds and admit the node.
 */
export function serveJoin(node: ControlNode, d: JoinServerDeps): Promise<void> {
  return node.handle(JOIN_PROTOCOL, async (ch: Channel, peer: Peer) => {
    const hello = await ch.recv<Hello>()
    if (typeof hello?.hostname !== 'string' || typeof hello.advertiseAddr !== 'string') {
      d.onRefused('malformed hello', peer)
      ch.send(refusal('malformed join request', 'invalid_argument'))
      return
    }
    const challenge = randomBytes(32)
    const ca = d.ca()
    ch.send({ ca: ca.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64'), managerCert: d.managerCert(), challenge: challenge.toString('base64') } satisfies Challenge)
    const proof = (await ch.recv<Partial<Proof> | null>())?.proof
    const secrets = d.secrets()
    const given = Buffer.from(typeof proof === 'string' ? proof : '', 'base64')
    const role: Role | undefined = checkJoinProof(secrets.worker, challenge, peer.publicKey, given)
      ? 'worker'
      : checkJoinProof(secrets.manager, challenge, peer.publicKey, given)
        ? 'manager'
        : undefined
    if (!role) {
      d.onRefused('bad join token', peer)
      ch.send(refusal(INVALID_TOKEN, 'invalid_argument'))
      return
    }
    const cert = ca.issue({ nodePublicKey: publicKeyFromRaw(peer.publicKey), role, now: Date.now(), ttlMs: d.certTtlMs() })
    let rest: Omit<Admission, 'cert'>
    try {
      rest = await d.admit({ nodeId: cert.body.nodeId, role, hostname: hello.hostname, advertiseAddr: hello.advertiseAddr, cert })
    } catch (e) {
      ch.send(errorBody(e))
      return
    }
    ch.send({ cert, ...rest } satisfies Admission)
  })
}

/**
 * The joining node's side: pin the manager's CA to the token's digest,
 * check the manager's own certificate against the key Noise proved, prove
 * the secret (never sent), and take the certificate and gossip keys.
 */
export async function requestJoin(
  node: ControlNode,
  o: { token: string; manager: { ip: string; port: number }; hostname: string; advertiseAddr: string; publicKey: Buffer },
): Promise<Admission & { caPublicKey: string }> {
  const token = parseJoinToken(o.token)
  const { ch, peer } = await node.open(o.manager, JOIN_PROTOCOL)
  try {
    ch.send({ hostname: o.hostname, advertiseAddr: o.advertiseAddr } satisfies Hello)
    const c = answerOf(await ch.recv(), 'join challenge')
    if (typeof c.ca !== 'string' || typeof c.challenge !== 'string') throw new RemoteError('E_CONTROL_MALFORMED', 'malformed join challenge from the manager', { kind: 'unknown' })
    const caKey = publicKeyFromRaw(Buffer.from(c.ca, 'base64'))
    if (caDigest(caKey) !== token.caDigest) throw new RemoteError('E_CONTROL_CA_MISMATCH', `remote CA does not match fingerprint. Expected: ${token.caDigest}`, { kind: 'unknown' })
    const mc = verifyCertificate(c.managerCert, { caPublicKey: caKey, now: Date.now(), peerKey: publicKeyFromRaw(peer.publicKey) })
    if (mc.role !== 'manager') throw notManager(o.manager)
    ch.send({ proof: joinProof(token.secret, Buffer.from(c.challenge, 'base64'), o.publicKey).toString('base64') } satisfies Proof)
    const a = answerOf(await ch.recv(), 'admission')
    const cert = a.cert as NodeCertificate
    verifyCertificate(cert, { caPublicKey: caKey, now: Date.now(), peerKey: publicKeyFromRaw(o.publicKey) })
    const { clusterId, gossipKeys, gossipAddr } = a
    if (typeof clusterId !== 'string' || typeof gossipAddr !== 'string' || !Array.isArray(gossipKeys) || !gossipKeys.every(k => typeof k === 'string')) {
      throw new RemoteError('E_CONTROL_MALFORMED', 'malformed admission from the manager', { kind: 'unknown' })
    }
    return { cert, clusterId, gossipKeys, gossipAddr, caPublicKey: c.ca }
  } finally {
    await ch.close()
  }
}
