import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { SwarmdError } from '../types/errors.js'
import { base36 } from './identity.js'

export class JoinTokenError extends SwarmdError {}

/** `SWMTKN-1-<CA digest, 50 base36>-<secret, 25 base36>`, as Docker's. */
const TOKEN = /^SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})$/

export interface JoinToken {
  /** What the joining node checks the manager's CA against. */
  caDigest: string
  /** What the joining node proves it knows; never sent as is. */
  secret: string
}

export function newJoinToken(caDigest: string): string {
  if (!/^[0-9a-z]{50}$/.test(caDigest)) throw new JoinTokenError('E_TOKEN_DIGEST', 'a CA digest is 50 base36 characters')
  return `SWMTKN-1-${caDigest}-${base36(randomBytes(16), 25)}`
}

export function parseJoinToken(token: string): JoinToken {
  const m = TOKEN.exec(token.trim())
  if (!m) throw new JoinTokenError('E_TOKEN_FORMAT', 'invalid join token')
  return { caDigest: m[1]!, secret: m[2]! }
}

/**
 * Proof of the token's secret bound to this session and this node's key:
 * HMAC-SHA256(secret, challenge ‖ node public key). A replayed proof fails
 * for another challenge or key.
 */
export function joinProof(secret: string, challenge: Uint8Array, nodePublicKey: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(challenge).update(nodePublicKey).digest()
}

export function checkJoinProof(secret: string, challenge: Uint8Array, nodePublicKey: Uint8Array, proof: Uint8Array): boolean {
  const want = joinProof(secret, challenge, nodePublicKey)
  return proof.length === want.length && timingSafeEqual(proof, want)
}
