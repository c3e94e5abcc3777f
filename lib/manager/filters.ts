import { SwarmError } from '../types/errors.js'
import type { NodeRecord } from '../types/node.js'
import { modeKind, type Service } from '../types/service.js'
import { matchLabels } from './label-filter.js'

/**
 * The list filters of the swarm's objects, as moby's daemon/cluster/filters.go
 * checks them and swarmkit's controlapi applies them: unknown keys are
 * refused with Docker 20.10's text, names and IDs match by prefix, labels by
 * swarmkit's rule (every `key` present, `key=value` equal).
 */

/** Filters as parsed from the query: key, then its values. */
export type Filters = Map<string, string[]>

export const NODE_FILTERS = ['name', 'id', 'label', 'role', 'membership', 'node.label'] as const
export const SERVICE_FILTERS = ['name', 'id', 'label', 'mode', 'runtime'] as const
/** `_up-to-date` is the CLI's own, for the progress of an update. */
export const TASK_FILTERS = ['name', 'id', 'label', 'service', 'node', 'desired-state', '_up-to-date', 'runtime'] as const

/** filters.Args.Validate: the first key not accepted is the error. */
export function acceptFilters(f: Filters, accepted: readonly string[]): void {
  for (const k of f.keys()) if (!accepted.includes(k)) throw new SwarmError('E_INVALID_FILTER', `Invalid filter '${k}'`)
}

const values = (f: Filters, k: string): string[] => f.get(k) ?? []

/** swarmkit's filterContainsPrefix: no values match everything. */
export const prefixMatch = (candidates: string[], s: string): boolean => candidates.length === 0 || candidates.some(c => s.startsWith(c))

/** filters.Args.Match: an exact value, or a Go regexp found anywhere in the string. */
export function argsMatch(candidates: string[], s: string): boolean {
  return candidates.some(v => {
    if (v === s) return true
    try {
      return new RegExp(v).test(s)
    } catch {
      return false
    }
  })
}

/** filters.Args.MatchKVList (Docker's own objects and events): every `key` or `key=value` is among the labels. */
export function kvListMatch(candidates: string[], labels: Record<string, string>): boolean {
  if (!candidates.length) return true
  if (!Object.keys(labels).length) return false
  return candidates.every(v => {
    const i = v.indexOf('=')
    const k = i < 0 ? v : v.slice(0, i)
    return k in labels && (i < 0 || labels[k] === v.slice(i + 1))
  })
}

/** One of an enum's values, matched without case as moby's `..._value[strings.ToUpper(v)]`; empty values are skipped. */
function enumValues(f: Filters, key: string, allowed: readonly string[], what: string): string[] {
  const out: string[] = []
  for (const v of values(f, key)) {
    if (allowed.includes(v.toLowerCase())) out.push(v.toLowerCase())
    else if (v !== '') throw new SwarmError('E_INVALID_FILTER', `Invalid ${what} filter: '${v}'`)
  }
  return out
}

/** GET /nodes: name (a prefix of the hostname, which swarmkit matches last), id prefix, label (engine labels), node.label, role, membership. */
export function filterNodes(nodes: NodeRecord[], f: Filters, engineLabels: (n: NodeRecord) => Record<string, string>): NodeRecord[] {
  acceptFilters(f, NODE_FILTERS)
  const roles = enumValues(f, 'role', ['worker', 'manager'], 'role')
  // Every node swarmd lists was admitted by a token: accepted, never pending.
  const memberships = enumValues(f, 'membership', ['pending', 'accepted'], 'membership')
  return nodes.filter(
    n =>
      prefixMatch(values(f, 'name'), n.hostname) &&
      prefixMatch(values(f, 'id'), n.id) &&
      matchLabels(values(f, 'label'), engineLabels(n)) &&
      matchLabels(values(f, 'node.label'), n.spec.Labels) &&
      (roles.length === 0 || roles.includes(n.spec.Role)) &&
      (memberships.length === 0 || memberships.includes('accepted')),
  )
}

/** GET /services: name and id prefixes, labels, mode, runtime (every swarmd service runs containers' specs). */
export function filterServices(services: Service[], f: Filters): Service[] {
  acceptFilters(f, SERVICE_FILTERS)
  const runtimes = values(f, 'runtime')
  return services.filter(
    s =>
      prefixMatch(values(f, 'name'), s.Spec.Name) &&
      prefixMatch(values(f, 'id'), s.ID) &&
      matchLabels(values(f, 'label'), s.Spec.Labels ?? {}) &&
      (values(f, 'mode').length === 0 || values(f, 'mode').includes(modeKind(s.Spec))) &&
      (runtimes.length === 0 || runtimes.includes('container')),
  )
}

export const SECRET_FILTERS = ['names', 'name', 'id', 'label'] as const
export const CONFIG_FILTERS = ['name', 'id', 'label'] as const

/** GET /secrets and /configs: `names` exact, `name` and `id` prefixes, labels. */
export function filterNamed<T extends { ID: string; Spec: { Name: string; Labels?: Record<string, string> } }>(list: T[], f: Filters, accepted: readonly string[]): T[] {
  acceptFilters(f, accepted)
  const names = values(f, 'names')
  return list.filter(
    x =>
      (names.length === 0 || names.includes(x.Spec.Name)) &&
      prefixMatch(values(f, 'name'), x.Spec.Name) &&
      prefixMatch(values(f, 'id'), x.ID) &&
      matchLabels(values(f, 'label'), x.Spec.Labels ?? {}),
  )
}
