import { randomBytes } from 'node:crypto'
import { SwarmError } from '../types/errors.js'

/**
 * The swarm's unlock key (autolock) and how people see it, as swarmkit's
 * encryption package writes and reads it: 32 random bytes, shown as
 * `SWMKEY-1-` and their unpadded base64.
 */
const PREFIX = 'SWMKEY-1-'
const LENGTH = 32

export const newUnlockKey = (): Buffer => randomBytes(LENGTH)

export const humanUnlockKey = (key: Buffer): string => PREFIX + key.toString('base64').replace(/=+$/, '')

/** The key's bytes from its human form; swarmkit's "invalid key string" for anything else. */
export function parseUnlockKey(text: string): Buffer {
  const body = text.startsWith(PREFIX) ? text.slice(PREFIX.length) : undefined
  const key = body !== undefined && /^[A-Za-z0-9+/]*$/.test(body) ? Buffer.from(body, 'base64') : undefined
  // Canonical text only: Node's decoder would skip foreign characters and stray bits.
  if (!key || humanUnlockKey(key) !== text) throw new SwarmError('E_INVALID_ARGUMENT', 'invalid key string')
  return key
}
