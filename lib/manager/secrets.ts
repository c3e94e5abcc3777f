import { DataObjects, type Payload } from './data-objects.js'
import type { SecretBox } from './secret-box.js'
import type { StateStore } from './state-store.js'
import type { Secret } from '../types/secret.js'

/**
 * Secrets: stored sealed (NaCl secretbox) under the managers' data key,
 * which each manager keeps only sealed with a key derived from its own node
 * key, so the state never holds a usable key beside the ciphertext. Values are never returned by the
 * API; the dispatcher unseals them only for the nodes whose tasks use them.
 */
export class Secrets extends DataObjects<Secret> {
  constructor(
    store: StateStore,
    /** The manager's data key (every manager has the same one). */
    dataKey: () => SecretBox,
  ) {
    super(
      store,
      {
        kind: 'secret',
        table: 'secrets',
        field: 'sealed',
        notFound: 'E_SECRET_NOT_FOUND',
        refs: c => (c.Secrets ?? []).map(r => r.SecretID),
        view: r => r.secret as Secret,
      },
      (): Payload => dataKey(),
    )
  }
}
