import type { KeyObject } from 'node:crypto'
import { SWARM_LOCKED, SwarmError } from '../types/errors.js'
import { SecretBox } from './secret-box.js'
import type { Mutation, Store } from './store.js'

/** Where the sealed data key lives in the store. */
const ROW = { table: 'keys', id: 'data' } as const

/**
 * What this manager's data key is sealed under at rest: its node key, and
 * with autolock the swarm's unlock key too, which this manager knows only
 * once `swarm unlock` gave it (or the swarm set it while the manager ran).
 * The node and its manager role share this one object.
 */
export interface KeyEncryption {
  readonly nodeKey: KeyObject
  unlockKey?: Buffer
}

/** The row's two forms: sealed under the node key alone (a string, as before autolock existed), or under the unlock key too. */
type Row = string | { autolock: string }

/** The data key is sealed under an unlock key: the manager cannot start until `swarm unlock`. */
export function dataKeyLocked(store: Store): boolean {
  return typeof store.get<Row>(ROW.table, ROW.id) === 'object'
}

/**
 * The manager's data key (DEK): what seals the swarm's secrets and the CA's
 * private key at rest. The store holds it only sealed with a key derived
 * from this manager's node key (and the unlock key, with autolock), so a
 * copy of the store opens nothing. Locked and no unlock key known: Docker's
 * "Swarm is encrypted" error; a wrong unlock key: E_SECRET_KEY_MISMATCH.
 */
export function openDataKey(store: Store, keys: KeyEncryption): SecretBox | undefined {
  const row = store.get<Row>(ROW.table, ROW.id)
  if (row === undefined) return undefined
  if (typeof row === 'string') return SecretBox.open(keys.nodeKey, row)
  if (!keys.unlockKey) throw new SwarmError('E_SWARM_LOCKED', SWARM_LOCKED)
  return SecretBox.open(keys.nodeKey, row.autolock, keys.unlockKey)
}

/**
 * A fresh data key, the swarm's handed over by another manager, or this
 * manager's own sealed anew, and the mutation that stores it sealed under
 * `keys` as they are now.
 */
export function newDataKey(keys: KeyEncryption, shared?: Buffer): { box: SecretBox; mutation: Mutation } {
  const { box, sealedKey } = shared ? SecretBox.adopt(keys.nodeKey, shared, keys.unlockKey) : SecretBox.create(keys.nodeKey, keys.unlockKey)
  const value: Row = keys.unlockKey ? { autolock: sealedKey } : sealedKey
  return { box, mutation: { op: 'put', table: ROW.table, id: ROW.id, value } }
}
