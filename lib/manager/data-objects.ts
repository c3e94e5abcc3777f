import { SwarmError } from '../types/errors.js'
import type { ContainerSpec, Service, Version } from '../types/service.js'
import { newId } from './ids.js'
import { CONFIG_FILTERS, filterNamed, SECRET_FILTERS } from './filters.js'
import { decodeDataSpec, validateDataSpec, type DataKind } from './secret-spec.js'
import type { StateStore } from './state-store.js'

/** What secrets and configs have in common as the API shows them. */
export interface DataObject {
  ID: string
  Version: Version
  CreatedAt: string
  UpdatedAt: string
  Spec: { Name: string; Labels?: Record<string, string> }
}

/** How a kind keeps its data in the store: sealed (secrets) or as it is (configs). */
export interface Payload {
  seal(data: Buffer): string
  open(stored: string): Buffer
}

export interface DataObjectKind {
  kind: DataKind
  table: 'secrets' | 'configs'
  /** The field of the stored record that holds the data as `Payload.seal` made it. */
  field: 'sealed' | 'data'
  notFound: 'E_SECRET_NOT_FOUND' | 'E_CONFIG_NOT_FOUND'
  /** The IDs of this kind a container spec refers to. */
  refs(c: ContainerSpec): string[]
  /** The object as the API returns it, given its record (configs show their data). */
  view(record: Record<string, unknown>): DataObject
}

/** dockerd's accepted filters for secret and config lists (daemon/cluster/filters.go). */
const LIST_FILTERS = { secrets: SECRET_FILTERS, configs: CONFIG_FILTERS }

/**
 * Swarm's named, immutable data objects (swarmkit's controlapi for secrets
 * and configs): created once, refused for removal while a service refers to
 * one, updated in their labels only, their data handed only to the
 * dispatcher for the nodes whose tasks use them.
 */
export class DataObjects<T extends DataObject> {
  constructor(
    protected readonly store: StateStore,
    private readonly k: DataObjectKind,
    private readonly payload: () => Payload,
  ) {}

  private records(): Record<string, unknown>[] {
    return this.store.list<Record<string, unknown>>(this.k.table)
  }

  /** Every object, or those the API's filters (names, name prefix, ID prefix, label) let through. */
  list(filters: Map<string, string[]> = new Map()): T[] {
    return filterNamed(this.records().map(r => this.k.view(r) as T), filters, LIST_FILTERS[this.k.table])
  }

  /** By ID, then name, then unique ID prefix, as dockerd looks one up. */
  find(ref: string): T | undefined {
    const all = this.list()
    const exact = all.find(s => s.ID === ref) ?? all.find(s => s.Spec.Name === ref)
    if (exact || !ref) return exact
    const prefix = all.filter(s => s.ID.startsWith(ref))
    if (prefix.length > 1) throw new SwarmError('E_AMBIGUOUS', `${this.k.kind} ${ref} is ambiguous (${prefix.length} matches found)`)
    return prefix[0]
  }

  get(ref: string): T {
    const s = this.find(ref)
    if (!s) throw new SwarmError(this.k.notFound, `${this.k.kind} ${ref} not found`)
    return s
  }

  async create(body: unknown): Promise<string> {
    const spec = validateDataSpec(body, this.k.kind)
    if (this.list().some(s => s.Spec.Name === spec.Name)) {
      throw new SwarmError('E_NAME_CONFLICT', `rpc error: code = AlreadyExists desc = ${this.k.kind} ${spec.Name} already exists`)
    }
    const t = new Date().toISOString()
    const object: DataObject = { ID: newId(), Version: { Index: 1 }, CreatedAt: t, UpdatedAt: t, Spec: { Name: spec.Name, Labels: spec.Labels } }
    await this.put(object, this.payload().seal(spec.Data))
    return object.ID
  }

  /** swarmkit's Update{Secret,Config}: at the version read, the same name and data; only the labels change. */
  async update(ref: string, version: number, body: unknown): Promise<void> {
    const cur = this.get(ref)
    const spec = decodeDataSpec(body, this.k.kind)
    const rec = this.store.get<Record<string, unknown>>(this.k.table, cur.ID)!
    if (spec.Name !== cur.Spec.Name || (spec.Data !== undefined && !spec.Data.equals(this.payload().open(rec[this.k.field] as string)))) {
      throw new SwarmError('E_INVALID_ARGUMENT', 'rpc error: code = InvalidArgument desc = only updates to Labels are allowed')
    }
    if (version !== cur.Version.Index) throw new SwarmError('E_OUT_OF_SEQUENCE', 'rpc error: code = Unknown desc = update out of sequence')
    const { Spec, ID, CreatedAt } = rec[this.k.kind] as DataObject
    await this.put({ ID, CreatedAt, Version: { Index: version + 1 }, UpdatedAt: new Date().toISOString(), Spec: { ...Spec, Labels: spec.Labels } }, rec[this.k.field] as string)
  }

  private async put(object: DataObject, stored: string): Promise<void> {
    await this.store.commit([{ op: 'put', table: this.k.table, id: object.ID, value: { [this.k.kind]: object, [this.k.field]: stored } }])
  }

  async remove(ref: string): Promise<void> {
    const s = this.get(ref)
    const users = this.store
      .list<Service>('services')
      .filter(svc => this.k.refs(svc.Spec.TaskTemplate.ContainerSpec).includes(s.ID))
      .map(svc => svc.Spec.Name)
    if (users.length) {
      throw new SwarmError('E_IN_USE', `rpc error: code = InvalidArgument desc = ${this.k.kind} '${s.Spec.Name}' is in use by the following service${users.length > 1 ? 's' : ''}: ${users.join(', ')}`)
    }
    await this.store.commit([{ op: 'delete', table: this.k.table, id: s.ID }])
  }

  /** The data (base64) for the dispatcher, for the IDs a node's tasks use. */
  values(ids: string[]): Record<string, string> {
    const out: Record<string, string> = {}
    if (ids.length === 0) return out
    const payload = this.payload()
    for (const id of ids) {
      const r = this.store.get<Record<string, unknown>>(this.k.table, id)
      if (r) out[id] = payload.open(r[this.k.field] as string).toString('base64')
    }
    return out
  }
}
