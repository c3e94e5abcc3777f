import { hkdfSync, type KeyObject, randomBytes } from 'node:crypto'
import nacl from 'tweetnacl'
import { SwarmdError } from '../types/errors.js'

/**
 * Seals secrets at rest (NaCl secretbox: XSalsa20-Poly1305). Secrets are
 * sealed with a random data key (DEK); the DEK is itself sealed with a
 * key-encryption key derived from the node's Ed25519 private key, so the
 * store holds only ciphertext and a stolen store file is useless without the
 * node key. This mirrors swarmkit, whose raft log is secretbox-sealed with a
 * DEK that the manager's key-encryption key protects. With autolock the KEK
 * is derived from the swarm's unlock key as well, which is never on disk, so
 * the node key alone no longer opens the DEK.
 */

const NONCE = nacl.secretbox.nonceLength
const KEY = nacl.secretbox.keyLength
const SALT = 16
// Binds derived keys to this one use, so the same node key can safely feed other HKDF uses.
const KEK_INFO = Buffer.from('swarmd/secret-box/kek/v1')
const LOCKED_KEK_INFO = Buffer.from('swarmd/secret-box/kek/autolock/v1')

/** A sealed secret failed authentication: it was altered, truncated or sealed with another key. */
export const E_SECRET_TAMPERED = 'E_SECRET_TAMPERED'
/** The sealed data key does not open with this node key. */
export const E_SECRET_KEY_MISMATCH = 'E_SECRET_KEY_MISMATCH'
/** The node key is not an Ed25519 private key. */
export const E_SECRET_NODE_KEY = 'E_SECRET_NODE_KEY'

export class SecretBox {
  readonly #key: Uint8Array

  private constructor(key: Uint8Array) {
    this.#key = key
  }

  /** A fresh random data key, with its sealed form to store beside the secrets. */
  static create(nodeKey: KeyObject, unlockKey?: Buffer): { box: SecretBox; sealedKey: string } {
    return SecretBox.adopt(nodeKey, randomBytes(KEY), unlockKey)
  }

  /**
   * A data key another manager handed over (the swarm's managers share one,
   * since the secrets they replicate are sealed with it), or this one's own
   * sealed anew, with its sealed form under this node's key (and the unlock
   * key, with autolock).
   */
  static adopt(nodeKey: KeyObject, dek: Buffer, unlockKey?: Buffer): { box: SecretBox; sealedKey: string } {
    if (dek.length !== KEY) throw new SwarmdError(E_SECRET_KEY_MISMATCH, `a data key is ${KEY} bytes, got ${dek.length}`)
    const salt = randomBytes(SALT)
    return { box: new SecretBox(new Uint8Array(dek)), sealedKey: Buffer.concat([salt, sealWith(kek(nodeKey, salt, unlockKey), dek)]).toString('base64') }
  }

  /** The data key itself, to hand to a manager joining the swarm (over its authenticated, encrypted session only). */
  exportKey(): Buffer {
    return Buffer.from(this.#key)
  }

  /** Recovers the data key stored as `sealedKey`; throws E_SECRET_KEY_MISMATCH for another node's key (or another unlock key). */
  static open(nodeKey: KeyObject, sealedKey: string, unlockKey?: Buffer): SecretBox {
    const raw = decode(sealedKey)
    const dek = raw && raw.length > SALT ? openWith(kek(nodeKey, raw.subarray(0, SALT), unlockKey), raw.subarray(SALT)) : undefined
    if (dek?.length !== KEY) throw new SwarmdError(E_SECRET_KEY_MISMATCH, 'the sealed secret key does not open with this node key')
    return new SecretBox(dek)
  }

  /** base64 of nonce ‖ secretbox(plaintext); a fresh random nonce every call. */
  seal(plaintext: Buffer): string {
    return sealWith(this.#key, plaintext).toString('base64')
  }

  open(sealed: string): Buffer {
    const raw = decode(sealed)
    const plain = raw && openWith(this.#key, raw)
    if (!plain) throw new SwarmdError(E_SECRET_TAMPERED, 'sealed secret failed authentication')
    return Buffer.from(plain)
  }
}

function kek(nodeKey: KeyObject, salt: Uint8Array, unlockKey?: Buffer): Uint8Array {
  if (nodeKey.type !== 'private' || nodeKey.asymmetricKeyType !== 'ed25519') {
    throw new SwarmdError(E_SECRET_NODE_KEY, 'sealing secrets needs the node\'s Ed25519 private key')
  }
  const der = nodeKey.export({ type: 'pkcs8', format: 'der' })
  // Both keys: a copy of the data dir lacks the unlock key, and the unlock key alone lacks this node's key.
  const ikm = unlockKey ? Buffer.concat([unlockKey, der]) : der
  return new Uint8Array(hkdfSync('sha256', ikm, salt, unlockKey ? LOCKED_KEK_INFO : KEK_INFO, KEY))
}

function sealWith(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const nonce = new Uint8Array(randomBytes(NONCE))
  return Buffer.concat([nonce, nacl.secretbox(plaintext, nonce, key)])
}

function openWith(key: Uint8Array, raw: Uint8Array): Uint8Array | undefined {
  if (raw.length < NONCE + nacl.secretbox.overheadLength) return undefined
  return nacl.secretbox.open(raw.subarray(NONCE), raw.subarray(0, NONCE), key) ?? undefined
}

// Node's base64 decoder skips foreign characters; only canonical text is accepted.
function decode(text: string): Buffer | undefined {
  const raw = Buffer.from(text, 'base64')
  return raw.toString('base64') === text ? raw : undefined
}
