import { type Endpoint, endpointKey, type Protocol } from './types.js'

/**
 * Chooses a backend for each new connection (or UDP flow) to a service port,
 * like IPVS's `rr` scheduler in Docker's load-balancer sandboxes, plus
 * least-connections, passive failure back-off and retry elsewhere.
 */

export type BalancingStrategy = 'round-robin' | 'least-connections'

/** What a client connects to: one service port on one network. */
export interface BalancerTarget {
  network: string
  service: string
  targetPort: number
  protocol: Protocol
}

export interface BalancerOptions {
  strategy?: BalancingStrategy
  /** Membership's view: endpoints on nodes for which this is false are never chosen. */
  nodeAlive?: (node: string) => boolean
  /** When set, endpoints on this node are chosen whenever one is usable. Off by default: the mesh balances evenly. */
  preferNode?: string
  /** First back-off after a backend refused, doubling on each further failure. */
  failureBackoffMs?: number
  maxFailureBackoffMs?: number
  now?: () => number
}

export const DEFAULT_FAILURE_BACKOFF_MS = 1000
export const DEFAULT_MAX_FAILURE_BACKOFF_MS = 30_000

interface Member {
  endpoint: Endpoint
  key: string
  connections: number
  failures: number
  /** Not chosen before this time (after a failure). */
  retryAt: number
}

interface Group {
  /** Sorted by key: the round-robin order. */
  members: Member[]
  /** Key of the last member chosen; the next pick starts after it, so additions and removals keep the rotation fair. */
  cursor?: string
}

type EndpointId = Pick<Endpoint, 'network' | 'service' | 'task' | 'protocol' | 'targetPort'>

/** A service's backends as the balancer saw them: failures since it started, and how many sit in their back-off now. */
export interface BackendHealth {
  failures: number
  backedOff: number
}

const serviceOf = (e: Endpoint): string => e.serviceName || e.service

export class Balancer {
  private readonly groups = new Map<string, Group>()
  /** Backend failures by service name, kept while the service has endpoints. */
  private readonly failures = new Map<string, number>()
  private readonly strategy: BalancingStrategy
  private readonly nodeAlive: (node: string) => boolean
  private readonly preferNode: string | undefined
  private readonly backoffMs: number
  private readonly maxBackoffMs: number
  private readonly now: () => number

  constructor(opts: BalancerOptions = {}) {
    this.strategy = opts.strategy ?? 'round-robin'
    this.nodeAlive = opts.nodeAlive ?? (() => true)
    this.preferNode = opts.preferNode
    this.backoffMs = opts.failureBackoffMs ?? DEFAULT_FAILURE_BACKOFF_MS
    this.maxBackoffMs = opts.maxFailureBackoffMs ?? DEFAULT_MAX_FAILURE_BACKOFF_MS
    this.now = opts.now ?? Date.now
  }

  /** Adds an endpoint, or replaces the one with its key (keeping its connection count; a new address clears its failures). */
  add(e: Endpoint): void {
    const gk = groupKey(e)
    let g = this.groups.get(gk)
    if (!g) this.groups.set(gk, (g = { members: [] }))
    const key = endpointKey(e)
    const i = lowerBound(g.members, key)
    const m = g.members[i]
    if (m?.key === key) {
      if (m.endpoint.host !== e.host || m.endpoint.port !== e.port) {
        m.failures = 0
        m.retryAt = 0
      }
      m.endpoint = { ...e }
      return
    }
    g.members.splice(i, 0, { endpoint: { ...e }, key, connections: 0, failures: 0, retryAt: 0 })
  }

  remove(e: EndpointId): void {
    const gk = groupKey(e)
    const g = this.groups.get(gk)
    if (!g) return
    const key = endpointKey(e)
    const i = lowerBound(g.members, key)
    if (g.members[i]?.key !== key) return
    const [gone] = g.members.splice(i, 1)
    if (g.members.length) return
    this.groups.delete(gk)
    const svc = serviceOf(gone!.endpoint)
    if (![...this.groups.values()].some(o => serviceOf(o.members[0]!.endpoint) === svc)) this.failures.delete(svc)
  }

  /** Applies an endpoint table update (its added, updated and removed endpoints). */
  update(u: { added: readonly Endpoint[]; updated: readonly Endpoint[]; removed: readonly Endpoint[] }): void {
    for (const e of u.removed) this.remove(e)
    for (const e of [...u.added, ...u.updated]) this.add(e)
  }

  /** Every endpoint of a target, usable or not, in key order. */
  endpoints(target: BalancerTarget): Endpoint[] {
    return (this.groups.get(groupKey(target))?.members ?? []).map(m => ({ ...m.endpoint }))
  }

  /**
   * The endpoint for a new connection, or undefined when none is usable:
   * none on a live node, outside its failure back-off and not in `exclude`
   * (the endpoints the caller already tried for this connection).
   */
  pick(target: BalancerTarget, exclude: readonly EndpointId[] = []): Endpoint | undefined {
    const g = this.groups.get(groupKey(target))
    if (!g) return undefined
    const skip = new Set(exclude.map(e => endpointKey(e)))
    const now = this.now()
    let usable = g.members.filter(m => !skip.has(m.key) && m.retryAt <= now && this.nodeAlive(m.endpoint.node))
    if (this.preferNode !== undefined) {
      const local = usable.filter(m => m.endpoint.node === this.preferNode)
      if (local.length) usable = local
    }
    if (!usable.length) return undefined
    // Rotation order: the members after the cursor first.
    const start = g.cursor === undefined ? 0 : upperBound(usable, g.cursor)
    let best: Member | undefined
    for (let k = 0; k < usable.length; k++) {
      const m = usable[(start + k) % usable.length]!
      if (this.strategy === 'round-robin') {
        best = m
        break
      }
      if (!best || m.connections < best.connections) best = m
    }
    g.cursor = best!.key
    return { ...best!.endpoint }
  }

  /** A connection to `e` opened (least-connections counts them). */
  acquire(e: EndpointId): void {
    const m = this.member(e)
    if (m) m.connections++
  }

  /** A connection to `e` closed. Extra releases, or releases after removal, are ignored. */
  release(e: EndpointId): void {
    const m = this.member(e)
    if (m && m.connections > 0) m.connections--
  }

  connections(e: EndpointId): number {
    return this.member(e)?.connections ?? 0
  }

  /** `e` refused or failed to connect: skip it for a back-off that doubles with each failure in a row, then try it again. */
  markFailed(e: EndpointId): void {
    const m = this.member(e)
    if (!m) return
    m.failures++
    const svc = serviceOf(m.endpoint)
    this.failures.set(svc, (this.failures.get(svc) ?? 0) + 1)
    const delay = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.min(m.failures - 1, 30))
    m.retryAt = this.now() + delay
  }

  /** `e` accepted a connection: its failures are forgotten. */
  markOk(e: EndpointId): void {
    const m = this.member(e)
    if (!m) return
    m.failures = 0
    m.retryAt = 0
  }

  /** Each service's backend failures and back-offs, by service name: what the metrics show. */
  health(): Map<string, BackendHealth> {
    const now = this.now()
    const out = new Map<string, BackendHealth>()
    for (const [svc, failures] of this.failures) out.set(svc, { failures, backedOff: 0 })
    for (const g of this.groups.values()) {
      for (const m of g.members) {
        if (m.retryAt <= now) continue
        const h = out.get(serviceOf(m.endpoint))
        if (h) h.backedOff++
      }
    }
    return out
  }

  private member(e: EndpointId): Member | undefined {
    const g = this.groups.get(groupKey(e))
    if (!g) return undefined
    const key = endpointKey(e)
    const m = g.members[lowerBound(g.members, key)]
    return m?.key === key ? m : undefined
  }
}

function groupKey(t: Pick<Endpoint, 'network' | 'service' | 'protocol' | 'targetPort'>): string {
  return `${t.network}\0${t.service}\0${t.protocol}\0${t.targetPort}`
}

/** Index of the first member whose key is >= key. */
function lowerBound(ms: readonly Member[], key: string): number {
  let lo = 0
  let hi = ms.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ms[mid]!.key < key) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Index of the first member whose key is > key. */
function upperBound(ms: readonly Member[], key: string): number {
  let lo = 0
  let hi = ms.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ms[mid]!.key <= key) lo = mid + 1
    else hi = mid
  }
  return lo
}
