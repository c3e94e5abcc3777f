import type { KeyObject } from 'node:crypto'
import { NOT_MANAGER } from '../types/errors.js'
import { type CertificateBody, type NodeCertificate, type Role, verifyCertificate } from './ca.js'
import type { Channel } from './channel.js'
import type { ControlNode, Peer } from './control-node.js'
import { publicKeyFromRaw } from './identity.js'
import { answerOf, errorBody, refusal, RemoteError } from './remote-error.js'

export const RPC_PROTOCOL = '/swarmd/rpc/1.0.0'

interface Call {
  cert: NodeCertificate
  method: string
  params?: unknown
}

export interface RpcMethod {
  /** Who may call it, by the role in the caller's certificate. */
  roles: readonly Role[]
  run(params: unknown, caller: CertificateBody): Promise<unknown> | unknown
}

/** How a served call ended: answered, the method failed, the caller was refused (certificate, role), or no such method. */
export type RpcOutcome = 'ok' | 'error' | 'refused' | 'unknown_method'

/**
 * Checks a caller's certificate against the CA, against the key Noise proved
 * for this connection, and against the swarm's node list; answers the refusal
 * itself and returns undefined when it does not hold. The caller's role is
 * the lesser of its certificate's and the one the swarm gives it now, so a
 * certificate issued before a demotion carries no manager rights.
 */
export function authenticate(
  ch: Channel,
  peer: Peer,
  cert: unknown,
  d: { caPublicKey: () => KeyObject; role: (nodeId: string) => Role | undefined; onRefused: (why: string) => void },
): CertificateBody | undefined {
  let caller: CertificateBody
  try {
    caller = verifyCertificate(cert, { caPublicKey: d.caPublicKey(), now: Date.now(), peerKey: publicKeyFromRaw(peer.publicKey) })
  } catch (e) {
    d.onRefused((e as Error).message)
    ch.send(refusal(`certificate refused: ${(e as Error).message}`))
    return undefined
  }
  const now = d.role(caller.nodeId)
  if (!now) {
    d.onRefused(`node ${caller.nodeId} is not in the swarm`)
    ch.send(refusal(`node ${caller.nodeId} is not part of this swarm`))
    return undefined
  }
  return now === caller.role ? caller : { ...caller, role: 'worker' }
}

/**
 * The manager's RPCs on the control plane. Every call carries the caller's
 * certificate, checked against the CA and against the key Noise proved for
 * this connection; what it may call depends on the caller's role (see
 * authenticate), whatever client it uses.
 */
export function serveRpc(
  node: ControlNode,
  d: {
    caPublicKey: () => KeyObject
    /** The manager's own certificate: the caller checks it too. */
    selfCert: () => NodeCertificate
    methods: Record<string, RpcMethod>
    /** The role each node has in the swarm now; undefined for a node it does not have. */
    role: (nodeId: string) => Role | undefined
    onRefused: (why: string) => void
    /** Each call served: its method (`unknown` for a name this manager does not serve), how it ended, and how long it took from its arrival. */
    onCall?: (method: string, outcome: RpcOutcome, ms: number) => void
  },
): Promise<void> {
  const answer = async (ch: Channel, peer: Peer, call: Call | undefined): Promise<RpcOutcome> => {
    const caller = authenticate(ch, peer, call?.cert, d)
    if (!caller || !call) return 'refused'
    const m = Object.hasOwn(d.methods, call.method) ? d.methods[call.method] : undefined
    if (!m) {
      ch.send(refusal(`unknown method ${String(call.method)}`, 'unimplemented'))
      return 'unknown_method'
    }
    if (!m.roles.includes(caller.role)) {
      d.onRefused(`${caller.role} ${caller.nodeId} called ${call.method}`)
      ch.send(refusal(NOT_MANAGER, 'unavailable'))
      return 'refused'
    }
    try {
      ch.send({ result: (await m.run(call.params, caller)) ?? null, cert: d.selfCert() })
      return 'ok'
    } catch (e) {
      ch.send(errorBody(e))
      return 'error'
    }
  }
  return node.handle(RPC_PROTOCOL, async (ch, peer) => {
    const call = await ch.recv<Call>()
    const start = performance.now()
    const outcome = await answer(ch, peer, call)
    // Only the names served here become labels: a caller cannot mint new ones.
    const method = typeof call?.method === 'string' && Object.hasOwn(d.methods, call.method) ? call.method : 'unknown'
    d.onCall?.(method, outcome, performance.now() - start)
  })
}

/**
 * One call to the manager at `to`, presenting our certificate; the answer
 * counts only if the manager's certificate checks out too (same CA, the key
 * Noise proved, role manager): both sides are authenticated on every call.
 */
export async function callRpc<T>(
  node: ControlNode,
  to: { ip: string; port: number },
  cert: NodeCertificate,
  caPublicKey: KeyObject,
  method: string,
  params?: unknown,
): Promise<T> {
  const { ch, peer } = await node.open(to, RPC_PROTOCOL)
  try {
    ch.send({ cert, method, params } satisfies Call)
    const r = answerOf(await ch.recv(), `answer to ${method}`)
    const mc = verifyCertificate(r.cert, { caPublicKey, now: Date.now(), peerKey: publicKeyFromRaw(peer.publicKey) })
    if (mc.role !== 'manager') throw notManager(to)
    return r.result as T
  } finally {
    await ch.close()
  }
}

/** The peer answered as a node whose certificate is not a manager's. */
export const notManager = (to: { ip: string; port: number }): RemoteError =>
  new RemoteError('E_CONTROL_NOT_MANAGER', `the node at ${to.ip}:${to.port} is not a manager`, { kind: 'failed_precondition' })
