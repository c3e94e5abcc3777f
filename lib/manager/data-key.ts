import type { KeyObject } from 'node:crypto'
import { SecretBox } from './secret-box.js'
import type { Mutation, Store } from './store.js'

/** Where the sealed data key lives in the store. */
const ROW = { table: 'keys', id: 'data' } as const

/**
 * The manager's data key (DEK): what seals the swarm's secrets and the CA's
 * private key at rest. The store holds it only sealed with a key derived
 * from this manager's node key, so a copy of the store opens nothing.
 */
export function openDataKey(store: Store, nodeKey: KeyObject): SecretBox | undefined {
  const sealed = store.get<string>(ROW.table, ROW.id)
  return sealed ? SecretBox.open(nodeKey, sealed) : undefined
}

/** A fresh data key (or the swarm's, handed over by another manager) and the mutation that stores it sealed. */
export function newDataKey(nodeKey: KeyObject, shared?: Buffer): { box: SecretBox; mutation: Mutation } {
  const { box, sealedKey } = shared ? SecretBox.adopt(nodeKey, shared) : SecretBox.create(nodeKey)
  return { box, mutation: { op: 'put', table: ROW.table, id: ROW.id, value: sealedKey } }
}
