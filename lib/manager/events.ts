/**
 * The swarm's events as dockerd makes them from swarmkit's store changes
 * (moby's daemon/events.go, logClusterEvent and its callers): one event per
 * created, updated or removed service, node, secret, config or network,
 * scope "swarm", the object's ID and name, and for an update what changed
 * (`replicas.old`/`replicas.new` and so on). Pure: the manager feeds it the
 * rows its state changes.
 */

/** Docker's events.Message (the fields a swarm event has). */
export interface DockerEvent {
  Type: 'service' | 'node' | 'secret' | 'config' | 'network'
  Action: 'create' | 'update' | 'remove'
  Actor: { ID: string; Attributes: Record<string, string> }
  scope: 'swarm'
  /** Unix seconds. */
  time: number
  /** Unix nanoseconds: beyond a double's integers, hence a bigint. */
  timeNano: bigint
}

/** The Docker event type of each table the manager's state has events for. */
const TYPES: Record<string, DockerEvent['Type']> = { services: 'service', nodes: 'node', secrets: 'secret', configs: 'config', networks: 'network' }

type Row = Record<string, unknown>

const rec = (v: unknown): Row => (v && typeof v === 'object' ? (v as Row) : {})
const str = (v: unknown): string => (typeof v === 'string' ? v : '')

/** What an event needs of a row, whatever the table: ID, name, when created and last updated. */
interface Meta {
  id: string
  name: string
  created: string
  updated: string
}

function meta(type: DockerEvent['Type'], row: Row): Meta {
  if (type === 'node') {
    return { id: str(row.id), name: str(rec(row.spec).Name) || str(row.hostname), created: str(row.createdAt), updated: str(row.updatedAt) }
  }
  if (type === 'network') return { id: str(row.ID), name: str(row.Name), created: str(row.Created), updated: str(row.Created) }
  // Secrets (and configs) are stored beside their sealed data: the object is one field of the row.
  const o = row.Spec ? row : rec(row[type])
  return { id: str(o.ID), name: str(rec(o.Spec).Name), created: str(o.CreatedAt), updated: str(o.UpdatedAt) }
}

/** `k.old` and `k.new` when a value changed (lower case, as moby prints swarmkit's enums). */
function changed(attrs: Record<string, string>, key: string, before: unknown, after: unknown): void {
  if (before === after) return
  attrs[`${key}.old`] = String(before ?? '')
  attrs[`${key}.new`] = String(after ?? '')
}

/** What dockerd adds to an update's attributes: a service's image, replicas and update state; a node's availability, role and state. */
function updateAttributes(type: DockerEvent['Type'], before: Row, after: Row, attrs: Record<string, string>): void {
  if (type === 'service') {
    const image = (r: Row): unknown => rec(rec(rec(r.Spec).TaskTemplate).ContainerSpec).Image
    changed(attrs, 'image', image(before), image(after))
    const replicated = (r: Row): Row | undefined => rec(rec(r.Spec).Mode).Replicated as Row | undefined
    if (replicated(before) && replicated(after)) changed(attrs, 'replicas', replicated(before)!.Replicas ?? 1, replicated(after)!.Replicas ?? 1)
    const state = (r: Row): string | undefined => (r.UpdateStatus ? str(rec(r.UpdateStatus).State) : undefined)
    if (state(after) !== undefined) {
      if (state(before) === undefined) attrs['updatestate.new'] = state(after)!
      else changed(attrs, 'updatestate', state(before), state(after))
    }
  } else if (type === 'node') {
    changed(attrs, 'availability', rec(before.spec).Availability, rec(after.spec).Availability)
    changed(attrs, 'role', rec(before.spec).Role, rec(after.spec).Role)
    // A node the leader never wrote a state for was in swarm's first state, unknown.
    changed(attrs, 'state', rec(before.status).state ?? 'unknown', rec(after.status).state ?? 'unknown')
  }
}

/** An ISO time (or now, for none) in Docker's two fields. */
function stamp(iso: string, now: number): { time: number; timeNano: bigint } {
  const ms = iso ? Date.parse(iso) : NaN
  const at = Number.isFinite(ms) ? ms : now
  return { time: Math.floor(at / 1000), timeNano: BigInt(at) * 1_000_000n }
}

/** A network's keys rotate every 12 h; Docker's network object has none, and no event says so. */
const withoutKeys = (r: Row): string => JSON.stringify({ ...r, Keys: undefined })

/**
 * The event for one row of the manager's state going from `before` to
 * `after` (undefined: absent), or undefined for rows that have none (tasks,
 * the cluster, this node's own tables). The time is the object's creation
 * or update time, as swarmkit's Meta gives it; a removal's is now.
 */
export function clusterEvent(table: string, before: unknown, after: unknown, now: number): DockerEvent | undefined {
  const type = TYPES[table]
  if (!type || (before === undefined && after === undefined)) return undefined
  const action: DockerEvent['Action'] = before === undefined ? 'create' : after === undefined ? 'remove' : 'update'
  const cur = rec(after ?? before)
  if (action === 'update' && type === 'network' && withoutKeys(rec(before)) === withoutKeys(cur)) return undefined
  const m = meta(type, cur)
  const attrs: Record<string, string> = { name: m.name }
  if (action === 'update') updateAttributes(type, rec(before), cur, attrs)
  const prev = action === 'update' ? meta(type, rec(before)) : undefined
  const time = action === 'create' ? m.created : action === 'update' && m.updated !== prev?.updated ? m.updated : ''
  return { Type: type, Action: action, Actor: { ID: m.id, Attributes: attrs }, scope: 'swarm', ...stamp(time, now) }
}

/** One event as dockerd streams it: a line of JSON, timeNano as the integer it is. */
export function eventJson(e: DockerEvent): string {
  const { timeNano, ...rest } = e
  return `${JSON.stringify(rest).slice(0, -1)},"timeNano":${timeNano}}\n`
}
