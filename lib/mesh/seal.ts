import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto'
import { SwarmdError } from '../types/errors.js'
import { ReplayWindow } from './replay-window.js'
import { FRAME_HEADER_LEN, FrameFlag, writeFrameHeader, type Frame, type FrameHeader } from './tunnel-frame.js'

/**
 * Per-network sealing of tunnel frames with AES-256-GCM.
 *
 * A sealed body is `nonce (12) | ciphertext | tag (16)`; the AAD is the
 * frame's 20-byte header (VXLAN + mesh header, length and key id included).
 * The nonce is the sender's 4-byte random salt (one per TCP connection
 * direction, one per UDP socket) and an 8-byte counter. The counter starts
 * at a random 48-bit value, so two senders that draw the same salt under one
 * key still collide only if their counter ranges overlap (≈2^-16 for
 * 2^32-frame ranges) — the salt alone would give a birthday bound near 2^16
 * senders per key.
 *
 * Keys carry a 1-byte id (1..255) so managers can rotate them: frames are
 * accepted under any installed key and sent under the primary.
 */

export const SEAL_KEY_BYTES = 32
const ALGORITHM = 'aes-256-gcm'
const NONCE_LEN = 12
const TAG_LEN = 16
/** Salts remembered per key for replay checks (oldest forgotten first); keys rotate long before this matters. */
const MAX_SALTS_PER_KEY = 16384
/** Counters stay exact JS integers: the top 11 bits of the 64-bit counter must be zero. */
const MAX_COUNTER_HI = 2 ** 21

/** Codes: E_SEAL_KEY (bad key or id), E_SEAL_PRIMARY (primary missing or removed). */
export class SealError extends SwarmdError {}

export interface SealKey {
  id: number
  key: Uint8Array
}

interface KeyEntry {
  id: number
  key: KeyObject
  /** Sender salt → its replay window, under this key. */
  replay: Map<number, ReplayWindow>
}

/** One network's keys. Mutate it in place to rotate; tunnels read it per frame. */
export class SealKeyring {
  private readonly entries = new Map<number, KeyEntry>()
  private primary: KeyEntry

  constructor(keys: SealKey[], primaryId: number) {
    for (const k of keys) this.install(k.id, k.key)
    const p = this.entries.get(primaryId)
    if (!p) throw new SealError('E_SEAL_PRIMARY', `primary key ${primaryId} is not among the keys`)
    this.primary = p
  }

  get primaryId(): number {
    return this.primary.id
  }

  ids(): number[] {
    return [...this.entries.keys()]
  }

  /** Installs (or replaces) a receive key. */
  install(id: number, key: Uint8Array): void {
    if (!Number.isInteger(id) || id < 1 || id > 255) throw new SealError('E_SEAL_KEY', `key id ${id} is outside 1..255`)
    if (key.length !== SEAL_KEY_BYTES) throw new SealError('E_SEAL_KEY', `a sealing key is ${SEAL_KEY_BYTES} bytes, got ${key.length}`)
    const e: KeyEntry = { id, key: createSecretKey(key), replay: new Map() }
    this.entries.set(id, e)
    if (this.primary?.id === id) this.primary = e
  }

  usePrimary(id: number): void {
    const e = this.entries.get(id)
    if (!e) throw new SealError('E_SEAL_PRIMARY', `key ${id} is not installed`)
    this.primary = e
  }

  remove(id: number): void {
    if (this.primary.id === id) throw new SealError('E_SEAL_PRIMARY', `key ${id} is the primary; make another primary first`)
    this.entries.delete(id)
  }

  /** @internal */
  primaryEntry(): KeyEntry {
    return this.primary
  }

  /** @internal */
  entry(id: number): KeyEntry | undefined {
    return this.entries.get(id)
  }
}

/** One sending direction's nonce source. */
export class Sealer {
  readonly salt: number
  private counter: number

  constructor() {
    const r = randomBytes(10)
    this.salt = r.readUInt32BE(0)
    this.counter = r.readUIntBE(4, 6)
  }

  /**
   * Seals `body` for the frame `h`: returns the wire buffers in order — the
   * header with the nonce (32 bytes), the ciphertext, the tag. No copy of
   * `body` is made beyond the encryption itself.
   */
  seal(keyring: SealKeyring, h: Omit<FrameHeader, 'length' | 'keyId' | 'flags'> & { flags?: number }, body: Uint8Array): Buffer[] {
    const k = keyring.primaryEntry()
    const head = Buffer.allocUnsafe(FRAME_HEADER_LEN + NONCE_LEN)
    writeFrameHeader(head, 0, { vni: h.vni, type: h.type, flags: (h.flags ?? 0) | FrameFlag.SEALED, keyId: k.id, streamId: h.streamId, length: NONCE_LEN + body.length + TAG_LEN })
    const c = this.counter++
    head.writeUInt32BE(this.salt, FRAME_HEADER_LEN)
    head.writeUInt32BE(Math.floor(c / 2 ** 32), FRAME_HEADER_LEN + 4)
    head.writeUInt32BE(c >>> 0, FRAME_HEADER_LEN + 8)
    const cipher = createCipheriv(ALGORITHM, k.key, head.subarray(FRAME_HEADER_LEN), { authTagLength: TAG_LEN })
    cipher.setAAD(head.subarray(0, FRAME_HEADER_LEN))
    const ct = cipher.update(body)
    cipher.final() // GCM is a stream mode: final() only computes the tag
    return [head, ct, cipher.getAuthTag()]
  }
}

/** Why a sealed frame was refused: no such key or a failed tag ('decrypt'), or a counter already seen ('replay'). */
export type OpenFailure = 'decrypt' | 'replay'

/**
 * Authenticates and decrypts a sealed frame's body. `strict` demands
 * counters strictly increase per salt (TCP); otherwise a sliding window
 * tolerates reordering (UDP). The replay state only advances on success.
 */
export function openFrame(keyring: SealKeyring, f: Frame, strict: boolean): Buffer | OpenFailure {
  const k = keyring.entry(f.keyId)
  if (!k) return 'decrypt'
  const body = f.body
  if (body.length < NONCE_LEN + TAG_LEN) return 'decrypt'
  const salt = body.readUInt32BE(0)
  const hi = body.readUInt32BE(4)
  if (hi >= MAX_COUNTER_HI) return 'decrypt'
  const counter = hi * 2 ** 32 + body.readUInt32BE(8)
  const window = k.replay.get(salt)
  if (window && !window.check(counter, strict)) return 'replay'
  let plain: Buffer
  try {
    const d = createDecipheriv(ALGORITHM, k.key, body.subarray(0, NONCE_LEN), { authTagLength: TAG_LEN })
    d.setAAD(f.header)
    d.setAuthTag(body.subarray(body.length - TAG_LEN))
    plain = d.update(body.subarray(NONCE_LEN, body.length - TAG_LEN))
    d.final() // throws when the tag does not verify
  } catch {
    return 'decrypt'
  }
  if (window) window.accept(counter)
  else {
    if (k.replay.size >= MAX_SALTS_PER_KEY) k.replay.delete(k.replay.keys().next().value!)
    const w = new ReplayWindow()
    w.accept(counter)
    k.replay.set(salt, w)
  }
  return plain
}
