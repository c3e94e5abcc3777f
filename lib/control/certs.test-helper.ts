import type { ClusterCA, NodeCertificate, Role } from './ca.js'
import type { KeyPair } from './identity.js'

/** A certificate valid for an hour from a minute ago. */
export const issue = (ca: ClusterCA, keys: KeyPair, role: Role): NodeCertificate => ca.issue({ nodePublicKey: keys.publicKey, role, now: Date.now() - 60_000, ttlMs: 3600_000 })
