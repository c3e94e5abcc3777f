import type { KeyObject } from 'node:crypto'
import { verifyCertificate, type NodeCertificate } from '../control/ca.js'
import { publicKeyFromRaw, signBytes, verifyBytes } from '../control/identity.js'
import type { TunnelAuth } from '../mesh/tunnel-auth.js'

const SIGNATURE_BYTES = 64

/**
 * The swarm's proof of a node's name on the 4789 tunnel, as on the control
 * plane: the node's certificate from the cluster CA, and its node key's
 * Ed25519 signature over the handshake transcript. A peer's proof holds if
 * the CA signed the certificate, it is valid now, it names the node ID the
 * peer claims (mesh names are node IDs), its key made the signature, and
 * the swarm still has the node.
 *
 * Wire form: u16 length, the certificate as JSON, the 64-byte signature.
 */
export function certificateAuth(o: {
  /** This node's key. */
  privateKey: KeyObject
  /** This node's current certificate (it renews). */
  certificate: () => NodeCertificate | undefined
  caPublicKey: () => KeyObject | undefined
  /** Whether the swarm still has this node: a removed node's certificate, valid as it may be, opens no tunnel. */
  known?: (nodeId: string) => boolean
  now?: () => number
}): TunnelAuth {
  const now = o.now ?? Date.now
  return {
    prove(transcript) {
      const cert = o.certificate()
      if (!cert) throw new Error('this node has no certificate yet')
      const json = Buffer.from(JSON.stringify(cert))
      const len = Buffer.allocUnsafe(2)
      len.writeUInt16BE(json.length, 0)
      return Buffer.concat([len, json, signBytes(o.privateKey, transcript)])
    },
    // A malformed or unverifiable certificate throws: the handshake takes that as a failed proof.
    verify(name, transcript, proof) {
      const ca = o.caPublicKey()
      if (!ca || proof.length < 2) return false
      const len = proof.readUInt16BE(0)
      if (proof.length !== 2 + len + SIGNATURE_BYTES) return false
      const body = verifyCertificate(JSON.parse(proof.subarray(2, 2 + len).toString('utf8')), { caPublicKey: ca, now: now() })
      if (o.known && !o.known(body.nodeId)) return false
      return body.nodeId === name && verifyBytes(publicKeyFromRaw(Buffer.from(body.publicKey, 'base64')), transcript, proof.subarray(2 + len))
    },
  }
}
