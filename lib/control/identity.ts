import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto'
import { SwarmdError } from '../types/errors.js'

export class IdentityError extends SwarmdError {}

/** 128 bits in base36 take at most 25 characters, 256 bits at most 50: Docker's ID and digest widths. */
export function base36(bytes: Uint8Array, width: number): string {
  return BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`)
    .toString(36)
    .padStart(width, '0')
}

/** An Ed25519 key pair (node:crypto: 60-100x faster than pure JS). */
export interface KeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

export function generateKeyPair(): KeyPair {
  return generateKeyPairSync('ed25519')
}

// Every control call checks certificates, which converts keys between their raw form and KeyObjects
// several times; an export or an import costs far more than the signature check itself.
const rawOf = new WeakMap<KeyObject, Buffer>()
const keyOf = new Map<string, KeyObject>()
const KEYS_KEPT = 4096

/** The 32 raw bytes of an Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  let raw = rawOf.get(key)
  if (!raw) {
    const der = key.export({ type: 'spki', format: 'der' })
    rawOf.set(key, (raw = der.subarray(der.length - 32)))
  }
  return raw
}

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new IdentityError('E_KEY', `an Ed25519 public key has 32 bytes, got ${raw.length}`)
  const id = Buffer.from(raw).toString('base64')
  let key = keyOf.get(id)
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
    if (keyOf.size >= KEYS_KEPT) keyOf.delete(keyOf.keys().next().value!)
    keyOf.set(id, key)
    rawOf.set(key, Buffer.from(raw))
  }
  return key
}

/** PKCS#8 PEM, for the data dir. */
export function exportPrivateKey(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString()
}

export function importPrivateKey(pem: string): KeyPair {
  try {
    const privateKey = createPrivateKey(pem)
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`not an Ed25519 key: ${privateKey.asymmetricKeyType}`)
    return { privateKey, publicKey: createPublicKey(privateKey) }
  } catch (e) {
    throw new IdentityError('E_KEY', `cannot read the private key: ${(e as Error).message}`, { cause: e })
  }
}

/** A node's ID is derived from its key (25 base36 characters, as Docker's), so an ID cannot be claimed with another key. */
export function nodeIdFor(publicKey: KeyObject): string {
  return base36(createHash('sha256').update(rawPublicKey(publicKey)).digest().subarray(0, 16), 25)
}

export function signBytes(privateKey: KeyObject, data: Uint8Array): Buffer {
  return sign(null, data, privateKey)
}

export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, data, publicKey, signature)
  } catch {
    return false
  }
}
