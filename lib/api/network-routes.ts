import { SwarmError } from '../types/errors.js'
import { ApiError } from './api-error.js'
import type { Networks } from '../manager/networks.js'
import type { NetworkRecord } from '../types/network.js'
import { networkObject } from './network-object.js'
import { acceptFilters, argsMatch, kvListMatch } from '../manager/filters.js'
import { parseFilters } from '../manager/services.js'
import type { ApiServer } from './http.js'

/** The filters GET /networks accepts (api/types/network acceptedFilters). */
const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type']
const PRUNE_FILTERS = ['label', 'label!', 'until']




/** Go's strconv.ParseBool, with its error text. */
function parseBool(v: string, what: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false
  throw new ApiError(400, `invalid value for ${what}: ${v}: strconv.ParseBool: parsing "${v}": invalid syntax`)
}

/** daemon/network FilterNetworks over swarm networks; `dangling` means no service uses it. */
export function filterNetworks(list: NetworkRecord[], f: Map<string, string[]>, inUse: (n: NetworkRecord) => boolean): NetworkRecord[] {
  acceptFilters(f, LIST_FILTERS)
  const get = (k: string): string[] => f.get(k) ?? []
  let out = list.filter(n => {
    if (f.has('driver') && !get('driver').includes('overlay')) return false
    if (f.has('name') && !argsMatch(get('name'), n.Name)) return false
    if (f.has('id') && !argsMatch(get('id'), n.ID)) return false
    if (f.has('label') && !kvListMatch(get('label'), n.Labels)) return false
    if (f.has('scope') && !get('scope').includes('swarm')) return false
    return true
  })
  const dangling = get('dangling')
  if (dangling.length > 1) throw new ApiError(400, 'got more than one value for filter key "dangling"')
  if (dangling.length) {
    const v = dangling[0]!
    if (!['0', 'false', '1', 'true'].includes(v)) throw new ApiError(400, `invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`)
    const only = v === '1' || v === 'true'
    out = out.filter(n => inUse(n) !== only)
  }
  if (f.has('type')) {
    const types = get('type')
    for (const t of types) if (t !== 'builtin' && t !== 'custom') throw new ApiError(500, `invalid filter: 'type'='${t}'`)
    // Swarm networks are all custom: none is predefined.
    out = types.includes('custom') ? out : []
  }
  return out
}

/** A prune `until`: a Go duration before now, unix seconds, or a date. */
function parseUntil(v: string, now: number): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 }
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) {
    let ms = 0
    for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * units[m[2]!]!
    return now - ms
  }
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new ApiError(400, `failed to parse value as time or duration: "${v}"`)
  return t
}

/** The network routes of the Docker Engine API over swarmd's overlay networks. */
export function mountNetworkRoutes(api: ApiServer, networks: () => Networks): void {
  api
    .route('POST', '/networks/create', req => networks().create(req.body))
    .route('GET', '/networks', req => {
      const n = networks()
      return filterNetworks(n.list(), parseFilters(req.query.get('filters')), x => n.users(x).length > 0).map(networkObject)
    })
    .route('GET', '/networks/:id', req => {
      const v = req.query.get('verbose')
      if (v) parseBool(v, 'verbose')
      const ref = req.params.id!
      const scope = req.query.get('scope')
      // Every network here is swarm-scoped: asked for another scope, there is none.
      if (scope && scope !== 'swarm') throw new ApiError(404, `network ${ref} not found`)
      return networkObject(networks().get(ref))
    })
    .route('DELETE', '/networks/:id', async req => {
      await networks().remove(req.params.id!)
    })
    .route('POST', '/networks/prune', async req => {
      const n = networks()
      const f = parseFilters(req.query.get('filters'))
      acceptFilters(f, PRUNE_FILTERS)
      const untilValues = f.get('until') ?? []
      if (untilValues.length > 1) throw new ApiError(400, 'more than one until filter specified')
      const until = untilValues[0] ? parseUntil(untilValues[0], Date.now()) : undefined
      const deleted: string[] = []
      for (const x of n.list()) {
        // The routing mesh's network goes only when asked for by name (dockerd's prune skips it).
        if (x.Ingress || n.users(x).length) continue
        if (until !== undefined && Date.parse(x.Created) > until) continue
        if (!kvListMatch(f.get('label') ?? [], x.Labels)) continue
        if (f.get('label!')?.length && kvListMatch(f.get('label!')!, x.Labels)) continue
        try {
          await n.remove(x.ID)
          deleted.push(x.Name)
        } catch (e) {
          // A live task still on it: prune leaves it, as dockerd ignores "is in use".
          if (!(e instanceof SwarmError && e.code === 'E_IN_USE')) throw e
        }
      }
      return { NetworksDeleted: deleted.length ? deleted : null }
    })
}
