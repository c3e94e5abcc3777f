import { SwarmError } from '../types/errors.js'
import { newId } from './ids.js'
import type { SecretBox } from './secret-box.js'
import { validateSecretSpec } from './secret-spec.js'
import type { StateStore } from './state-store.js'
import type { Secret } from '../types/secret.js'
import type { Service } from '../types/service.js'

interface SecretRecord {
  secret: Secret
  /** The value, sealed with the data key; never stored in plaintext. */
  sealed: string
}

/**
 * Secrets: stored sealed (NaCl secretbox) under the managers' data key,
 * which each manager keeps only sealed with a key derived from its own node
 * key, so the state never holds a usable key beside the ciphertext. Values are never returned by the
 * API; the dispatcher unseals them only for the nodes whose tasks use them.
 */
export class Secrets {
  constructor(
    private readonly store: StateStore,
    /** The manager's data key (every manager has the same one). */
    private readonly dataKey: () => SecretBox,
  ) {}

  list(): Secret[] {
    return this.store.list<SecretRecord>('secrets').map(r => r.secret)
  }

  /** By ID, unique ID prefix, or name. */
  find(ref: string): Secret | undefined {
    const all = this.list()
    return all.find(s => s.ID === ref) ?? all.find(s => s.Spec.Name === ref) ?? (ref.length > 0 ? one(all.filter(s => s.ID.startsWith(ref))) : undefined)
  }

  get(ref: string): Secret {
    const s = this.find(ref)
    if (!s) throw new SwarmError('E_SECRET_NOT_FOUND', `secret ${ref} not found`)
    return s
  }

  async create(body: unknown): Promise<string> {
    const spec = validateSecretSpec(body)
    if (this.list().some(s => s.Spec.Name === spec.Name)) {
      throw new SwarmError('E_NAME_CONFLICT', `rpc error: code = AlreadyExists desc = secret ${spec.Name} already exists`)
    }
    const box = this.dataKey()
    const t = new Date().toISOString()
    const secret: Secret = { ID: newId(), Version: { Index: 1 }, CreatedAt: t, UpdatedAt: t, Spec: { Name: spec.Name, Labels: spec.Labels } }
    await this.store.commit([{ op: 'put', table: 'secrets', id: secret.ID, value: { secret, sealed: box.seal(spec.Data) } satisfies SecretRecord }])
    return secret.ID
  }

  async remove(ref: string): Promise<void> {
    const s = this.get(ref)
    const users = this.store
      .list<Service>('services')
      .filter(svc => svc.Spec.TaskTemplate.ContainerSpec.Secrets?.some(r => r.SecretID === s.ID))
      .map(svc => svc.Spec.Name)
    if (users.length) {
      throw new SwarmError('E_IN_USE', `rpc error: code = InvalidArgument desc = secret '${s.Spec.Name}' is in use by the following service${users.length > 1 ? 's' : ''}: ${users.join(', ')}`)
    }
    await this.store.commit([{ op: 'delete', table: 'secrets', id: s.ID }])
  }

  /** Plaintext values (base64) for the dispatcher, for the IDs a node's tasks use. */
  values(ids: string[]): Record<string, string> {
    const out: Record<string, string> = {}
    if (ids.length === 0) return out
    const box = this.dataKey()
    for (const id of ids) {
      const r = this.store.get<SecretRecord>('secrets', id)
      if (r) out[id] = box.open(r.sealed).toString('base64')
    }
    return out
  }
}

function one<T>(l: T[]): T | undefined {
  return l.length === 1 ? l[0] : undefined
}
