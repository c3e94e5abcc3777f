import type { Endpoint } from '../mesh/types.js'
import type { Routing } from '../types/session.js'
import type { DnsRecords, DnsView } from './dns-server.js'

type RoutedService = Routing['services'][number]
export type RoutedVip = RoutedService['vips'][number]

export interface RoutingViewOptions {
  /** The address a service's name answers with on a network: the VIP's loopback twin in the userspace data plane, its overlay address in the kernel one. */
  vipAddress: (vip: RoutedVip) => string | undefined
  /** Where a running task is reached: its overlay address in the kernel data plane; its node's address in the userspace one, where tasks share their host's network. */
  taskAddress: (e: Endpoint) => string | undefined
  /** The endpoint table's entries on a network (read at each query, so tasks.<name> follows the table). */
  endpoints: (network: string) => readonly Endpoint[]
  /** TTL of a VIP answer (Docker's 600 s is behind its stale-address complaints); task answers have 0. */
  vipTtl?: number
}

/** The VIP's TTL: short, since a service removed and created again gets another VIP. */
export const VIP_TTL = 5
const TASKS = 'tasks.'

/**
 * The DNS view of one routing (the manager's networks and services) and
 * the live endpoint table: per network, each service's name and aliases;
 * `<name>` is its VIP on that network (its tasks, in rotation, for dnsrr)
 * and `tasks.<name>` its running tasks. The ingress network has no names,
 * as in Docker. Names are case-insensitive and unique per network.
 */
export function routingView(r: Routing, o: RoutingViewOptions): DnsView {
  const ingress = new Set(r.networks.filter(n => n.ingress).map(n => n.id))
  const names = new Map<string, Map<string, RoutedService>>()
  const add = (network: string, name: string, s: RoutedService): void => {
    if (ingress.has(network)) return
    let m = names.get(network)
    if (!m) names.set(network, (m = new Map()))
    const key = name.toLowerCase()
    // A service's own name beats another's alias.
    if (!m.has(key) || name === s.name) m.set(key, s)
  }
  for (const s of r.services) {
    for (const network of new Set([...s.vips.map(v => v.network), ...(s.networks ?? [])])) {
      for (const alias of s.aliases?.[network] ?? []) add(network, alias, s)
      add(network, s.name, s)
    }
  }
  const turns = new Map<string, number>()
  /** The service's running tasks on the network, one address each, in a rotation that moves one step per answer. */
  const tasks = (network: string, s: RoutedService): string[] => {
    const byTask = new Map<string, string>()
    for (const e of o.endpoints(network)) {
      if (e.service !== s.id || byTask.has(e.task)) continue
      const addr = o.taskAddress(e)
      if (addr) byTask.set(e.task, addr)
    }
    const addrs = [...new Set([...byTask].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, addr]) => addr))]
    const k = `${network}/${s.id}`
    const turn = turns.get(k) ?? 0
    turns.set(k, turn + 1)
    const i = addrs.length ? turn % addrs.length : 0
    return [...addrs.slice(i), ...addrs.slice(0, i)]
  }
  const vipTtl = o.vipTtl ?? VIP_TTL
  return {
    lookup(network: string, name: string): DnsRecords | undefined {
      const m = names.get(network)
      if (!m) return undefined
      const direct = m.get(name)
      if (direct) {
        if (direct.mode === 'dnsrr') return { addrs: tasks(network, direct), ttl: 0 }
        const vip = direct.vips.find(v => v.network === network)
        const addr = vip && o.vipAddress(vip)
        return { addrs: addr ? [addr] : [], ttl: vipTtl }
      }
      const s = name.startsWith(TASKS) ? m.get(name.slice(TASKS.length)) : undefined
      return s ? { addrs: tasks(network, s), ttl: 0 } : undefined
    },
  }
}
