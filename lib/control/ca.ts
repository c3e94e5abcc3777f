import { createHash, type KeyObject } from 'node:crypto'
import { SwarmdError } from '../types/errors.js'
import {
  base36,
  exportPrivateKey,
  generateKeyPair,
  importPrivateKey,
  type KeyPair,
  nodeIdFor,
  publicKeyFromRaw,
  rawPublicKey,
  signBytes,
  verifyBytes,
} from './identity.js'

export class CertificateError extends SwarmdError {}

export type Role = 'manager' | 'worker'

/** What the CA vouches for: this key is node `nodeId` with `role`, for a while. */
export interface CertificateBody {
  v: 1
  nodeId: string
  role: Role
  /** The node's Ed25519 public key, raw, base64. */
  publicKey: string
  /** Digest of the CA that signed it. */
  ca: string
  notBefore: number
  notAfter: number
}

export interface NodeCertificate {
  body: CertificateBody
  /** Ed25519 signature by the CA over the canonical body, base64. */
  signature: string
}

/** The signed bytes: the body's fields in a fixed order, whatever order they arrived in. */
function canonical(b: CertificateBody): Buffer {
  return Buffer.from(
    JSON.stringify({ v: b.v, nodeId: b.nodeId, role: b.role, publicKey: b.publicKey, ca: b.ca, notBefore: b.notBefore, notAfter: b.notAfter }),
  )
}

/** The CA digest in join tokens: SHA-256 of the CA's public key, 50 base36 characters. */
export function caDigest(publicKey: KeyObject): string {
  let d = digests.get(publicKey)
  if (!d) digests.set(publicKey, (d = base36(createHash('sha256').update(rawPublicKey(publicKey)).digest(), 50)))
  return d
}

const digests = new WeakMap<KeyObject, string>()

/**
 * The cluster CA: an Ed25519 key created by `swarm init`. It certifies node
 * keys with their node ID and role; every control connection checks both
 * sides' certificates against it.
 */
export class ClusterCA {
  readonly digest: string

  private constructor(private readonly keys: KeyPair) {
    this.digest = caDigest(keys.publicKey)
  }

  static create(): ClusterCA {
    return new ClusterCA(generateKeyPair())
  }

  /** From the PEM that `export()` wrote to the manager's store. */
  static load(pem: string): ClusterCA {
    return new ClusterCA(importPrivateKey(pem))
  }

  get publicKey(): KeyObject {
    return this.keys.publicKey
  }

  export(): string {
    return exportPrivateKey(this.keys.privateKey)
  }

  issue(o: { nodePublicKey: KeyObject; role: Role; now: number; ttlMs: number }): NodeCertificate {
    const body: CertificateBody = {
      v: 1,
      nodeId: nodeIdFor(o.nodePublicKey),
      role: o.role,
      publicKey: rawPublicKey(o.nodePublicKey).toString('base64'),
      ca: this.digest,
      notBefore: o.now,
      notAfter: o.now + o.ttlMs,
    }
    return { body, signature: signBytes(this.keys.privateKey, canonical(body)).toString('base64') }
  }
}

function isBody(x: unknown): x is CertificateBody {
  const b = x as CertificateBody
  return (
    !!b &&
    b.v === 1 &&
    typeof b.nodeId === 'string' &&
    (b.role === 'manager' || b.role === 'worker') &&
    typeof b.publicKey === 'string' &&
    typeof b.ca === 'string' &&
    Number.isFinite(b.notBefore) &&
    Number.isFinite(b.notAfter)
  )
}

/**
 * Checks a certificate as received from a peer: well formed, signed by this
 * CA, valid now, ID derived from its key, and (when given) for the key the
 * peer actually proved it holds. Returns the body; throws with a reason.
 */
export function verifyCertificate(cert: unknown, o: { caPublicKey: KeyObject; now: number; peerKey?: KeyObject }): CertificateBody {
  const c = cert as NodeCertificate
  if (!c || typeof c.signature !== 'string' || !isBody(c.body)) throw new CertificateError('E_CERT_FORMAT', 'malformed node certificate')
  const body = c.body
  if (body.ca !== caDigest(o.caPublicKey)) throw new CertificateError('E_CERT_CA', `certificate from another CA (${body.ca.slice(0, 12)}…)`)
  if (!verifyBytes(o.caPublicKey, canonical(body), Buffer.from(c.signature, 'base64'))) {
    throw new CertificateError('E_CERT_SIGNATURE', `forged certificate for node ${body.nodeId}: the CA did not sign it`)
  }
  if (o.now < body.notBefore) throw new CertificateError('E_CERT_NOT_YET', `certificate of node ${body.nodeId} is not valid yet`)
  if (o.now >= body.notAfter) throw new CertificateError('E_CERT_EXPIRED', `certificate of node ${body.nodeId} expired at ${new Date(body.notAfter).toISOString()}`)
  const key = publicKeyFromRaw(Buffer.from(body.publicKey, 'base64'))
  if (nodeIdFor(key) !== body.nodeId) throw new CertificateError('E_CERT_ID', `certificate names node ${body.nodeId} for another key`)
  if (o.peerKey && !rawPublicKey(o.peerKey).equals(rawPublicKey(key))) {
    throw new CertificateError('E_CERT_KEY', `certificate of node ${body.nodeId} is for another key than the peer's`)
  }
  return body
}

/** Renew once two thirds of the validity are gone, well before expiry (Docker renews at about half). */
export function needsRenewal(body: CertificateBody, now: number): boolean {
  return now >= body.notBefore + ((body.notAfter - body.notBefore) * 2) / 3
}
