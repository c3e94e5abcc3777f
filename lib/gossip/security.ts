import { createCipheriv, createDecipheriv, createSecretKey, randomFillSync, type CipherGCMTypes, type KeyObject } from 'node:crypto'
import { SwarmdError } from '../types/errors.js'
import { Keyring } from './keyring.js'

/**
 * memberlist's encrypted blob (`security.go`, reference §2):
 * `[version u8][nonce 12][ciphertext][tag 16]`, AES-GCM with the key size
 * picking AES-128/192/256. Version 0 pads the plaintext PKCS#7-style first;
 * version 1 (protocol ≥ 2) does not.
 */

/** Thrown when a blob cannot be decrypted. */
export class SecurityError extends SwarmdError {}

export type EncryptionVersion = 0 | 1

const NONCE_SIZE = 12
const TAG_SIZE = 16
const BLOCK_SIZE = 16
const HEADER_SIZE = 1 + NONCE_SIZE
const MAX_VERSION = 1

const ALGORITHMS: Partial<Record<number, CipherGCMTypes>> = {
  16: 'aes-128-gcm',
  24: 'aes-192-gcm',
  32: 'aes-256-gcm',
}

/**
 * Per-packet costs that need not be paid per packet: a KeyObject for each
 * installed key (keyed by the keyring's own buffers), and nonces cut from a
 * block of CSPRNG output (one getrandom for hundreds of packets).
 */
const keyObjects = new WeakMap<Uint8Array, KeyObject>()
const noncePool = Buffer.allocUnsafe(NONCE_SIZE * 512)
let nonceOffset = noncePool.length

function keyObject(key: Uint8Array): KeyObject {
  let k = keyObjects.get(key)
  if (!k) {
    k = createSecretKey(key)
    keyObjects.set(key, k)
  }
  return k
}

function freshNonce(): Buffer {
  if (nonceOffset + NONCE_SIZE > noncePool.length) {
    randomFillSync(noncePool)
    nonceOffset = 0
  }
  const n = noncePool.subarray(nonceOffset, nonceOffset + NONCE_SIZE)
  nonceOffset += NONCE_SIZE
  return n
}

function algorithmFor(key: Uint8Array): CipherGCMTypes {
  Keyring.validateKey(key)
  return ALGORITHMS[key.length]!
}

/** Bytes encryption adds: exact for v1, the worst case (16 bytes of padding) for v0. */
export function encryptOverhead(version: EncryptionVersion): number {
  return HEADER_SIZE + TAG_SIZE + (version === 0 ? BLOCK_SIZE : 0)
}

/** Seals `plaintext` under a fresh random nonce. `aad` is the label or stream header, if any. */
export function encryptPayload(
  version: EncryptionVersion,
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array | undefined,
): Buffer {
  return encryptPayloadWithNonce(version, key, freshNonce(), plaintext, aad)
}

/** @internal {@link encryptPayload} with a caller-chosen nonce, for golden-vector tests. Never reuse a nonce. */
export function encryptPayloadWithNonce(
  version: EncryptionVersion,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array | undefined,
): Buffer {
  const pad = version === 0 ? BLOCK_SIZE - (plaintext.length % BLOCK_SIZE) : 0
  const sealedLength = plaintext.length + pad
  const out = Buffer.allocUnsafe(HEADER_SIZE + sealedLength + TAG_SIZE)
  out[0] = version
  out.set(nonce, 1)
  const cipher = createCipheriv(algorithmFor(key), keyObject(key), nonce, { authTagLength: TAG_SIZE })
  if (aad !== undefined && aad.length > 0) cipher.setAAD(aad)
  let o = HEADER_SIZE
  o += cipher.update(plaintext).copy(out, o)
  // GCM is a stream mode, so the padding can be fed separately instead of
  // concatenating a padded copy of the plaintext.
  if (pad > 0) o += cipher.update(Buffer.alloc(pad, pad)).copy(out, o)
  o += cipher.final().copy(out, o)
  cipher.getAuthTag().copy(out, o)
  return out
}

/**
 * Opens a blob with the first of `keys` that authenticates it (primary
 * first, as memberlist does) and returns the plaintext without padding.
 */
export function decryptPayload(
  keys: readonly Uint8Array[],
  blob: Uint8Array,
  aad: Uint8Array | undefined,
): Buffer {
  if (blob.length === 0) throw new SecurityError('E_CRYPT_SHORT', 'cannot decrypt an empty payload')
  const version = blob[0]!
  if (version > MAX_VERSION) {
    throw new SecurityError('E_CRYPT_VERSION', `unsupported encryption version ${version}`)
  }
  // An empty message still carries the header, the tag and (v0) a full block of padding.
  const minimum = encryptOverhead(version as EncryptionVersion)
  if (blob.length < minimum) {
    throw new SecurityError('E_CRYPT_SHORT', `payload is too small to decrypt: ${blob.length} bytes`)
  }
  const nonce = blob.subarray(1, HEADER_SIZE)
  const ciphertext = blob.subarray(HEADER_SIZE, blob.length - TAG_SIZE)
  const tag = blob.subarray(blob.length - TAG_SIZE)

  for (const key of keys) {
    const alg = ALGORITHMS[key.length]
    if (alg === undefined) continue // cannot be an AES key, so it cannot open anything
    const decipher = createDecipheriv(alg, keyObject(key), nonce, { authTagLength: TAG_SIZE })
    if (aad !== undefined && aad.length > 0) decipher.setAAD(aad)
    decipher.setAuthTag(tag)
    const plain = decipher.update(ciphertext)
    try {
      decipher.final()
    } catch {
      continue // authentication failed: not this key
    }
    if (version === 1) return plain
    // The v0 minimum length guarantees at least 16 plaintext bytes, so a pad
    // of 1..16 always fits.
    const pad = plain[plain.length - 1]!
    if (pad === 0 || pad > BLOCK_SIZE) {
      throw new SecurityError('E_CRYPT_PAD', `invalid padding length ${pad}`)
    }
    return plain.subarray(0, plain.length - pad)
  }
  throw new SecurityError('E_CRYPT_NOKEY', 'No installed keys could decrypt the message')
}
