import type { DockerEvent } from './events.js'
import { kvListMatch, type Filters } from './filters.js'

/**
 * `docker events --filter`, as moby's daemon/events/filter.go includes an
 * event: type, event (the action) and scope exactly; an object type's key
 * (service, node, secret, config, network, container, ...) by the actor's ID
 * or name, either exactly or as a prefix, and, as in moby, whatever the
 * event's type; image by ID or image attribute; label among the attributes.
 * Keys it does not know filter nothing, as dockerd's.
 */

/** filters.Args.ExactMatch: no values for the key match everything. */
function exact(f: Filters, key: string, s: string): boolean {
  const v = f.get(key)
  return !v?.length || v.includes(s)
}

/** filters.Args.FuzzyMatch: exactly, or as a prefix. */
const fuzzy = (f: Filters, key: string, s: string): boolean => exact(f, key, s) || f.get(key)!.some(p => s.startsWith(p))

const byName = (f: Filters, key: string, e: DockerEvent): boolean => fuzzy(f, key, e.Actor.ID) || fuzzy(f, key, e.Actor.Attributes.name ?? '')

/** moby matches these actions by prefix (`exec_start: ...`, `health_status: ...`). */
const PREFIXED_ACTIONS = ['health_status', 'exec_create', 'exec_start']

export function eventMatches(f: Filters, e: DockerEvent): boolean {
  const action = (f.get('event') ?? []).some(v => PREFIXED_ACTIONS.includes(v)) ? fuzzy(f, 'event', e.Action) : exact(f, 'event', e.Action)
  const image = exact(f, 'image', e.Actor.ID) || exact(f, 'image', e.Actor.Attributes.image ?? '')
  return (
    action &&
    exact(f, 'type', e.Type) &&
    exact(f, 'scope', e.scope) &&
    ['daemon', 'container', 'plugin', 'volume', 'network', 'node', 'service', 'secret', 'config'].every(k => byName(f, k, e)) &&
    image &&
    (!f.has('label') || kvListMatch(f.get('label')!, e.Actor.Attributes))
  )
}
