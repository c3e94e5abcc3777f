import { SwarmdError } from '../types/errors.js'

/** Thrown when a key is the wrong size or a keyring change is not allowed. */
export class KeyringError extends SwarmdError {}

/**
 * The AES keys a node accepts, primary first (memberlist `keyring.go`). The
 * primary encrypts everything sent; every key is tried when decrypting, so
 * keys can be rotated without a flag day: install, switch primary, remove.
 */
export class Keyring {
  // Private copies: callers mutating their buffers must not change our keys.
  #keys: Buffer[] = []

  /** Installs `primary` (or else the first of `keys`) as the primary, then the rest in order. */
  constructor(keys: Uint8Array[] = [], primary?: Uint8Array) {
    if (primary !== undefined) this.addKey(primary)
    for (const k of keys) this.addKey(k)
  }

  /** AES-128, AES-192 or AES-256: anything else is refused. */
  static validateKey(k: Uint8Array): void {
    if (k.length !== 16 && k.length !== 24 && k.length !== 32) {
      throw new KeyringError('E_KEY_SIZE', `key must be 16, 24 or 32 bytes, got ${k.length}`)
    }
  }

  /** Installs `k` last; the first key installed becomes the primary. No-op if installed. */
  addKey(k: Uint8Array): void {
    Keyring.validateKey(k)
    if (this.#indexOf(k) < 0) this.#keys.push(Buffer.from(k))
  }

  /** Makes an installed key the primary. */
  useKey(k: Uint8Array): void {
    const i = this.#indexOf(k)
    if (i < 0) throw new KeyringError('E_KEY_NOT_INSTALLED', 'requested key is not in the keyring')
    const [key] = this.#keys.splice(i, 1)
    this.#keys.unshift(key!)
  }

  /** Uninstalls a key; no-op if it is not installed. The primary cannot be removed. */
  removeKey(k: Uint8Array): void {
    const i = this.#indexOf(k)
    if (i === 0) throw new KeyringError('E_KEY_PRIMARY', 'removing the primary key is not allowed')
    if (i > 0) this.#keys.splice(i, 1)
  }

  /** Copies of the installed keys, primary first. */
  getKeys(): Buffer[] {
    return this.#keys.map(k => Buffer.from(k))
  }

  /** The installed keys, primary first, without copies: for the per-packet path, which must not modify them. */
  view(): readonly Buffer[] {
    return this.#keys
  }

  get size(): number {
    return this.#keys.length
  }

  primaryKey(): Buffer | undefined {
    const k = this.#keys[0]
    return k === undefined ? undefined : Buffer.from(k)
  }

  #indexOf(k: Uint8Array): number {
    return this.#keys.findIndex(installed => installed.equals(k))
  }
}
