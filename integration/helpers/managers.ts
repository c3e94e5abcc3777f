/** Swarms with several managers on hosts in network namespaces (hosts.ts), and what their tests measure. */
import type { Host, Hosts } from './hosts.js'
import { waitUntil } from './procs.js'

export const NO_LEADER = "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online."

/**
 * `swarm init` on the first manager, the other managers join with the
 * manager token one by one, the workers with the worker token; waits until
 * every node is Ready and every manager Leader or Reachable, and learns the
 * node IDs.
 */
export async function formManagers(c: Hosts, managers: Host[], workers: Host[]): Promise<void> {
  const [first, ...others] = managers as [Host, ...Host[]]
  await c.ctlOk(first, 'swarm', 'init', '--advertise-addr', first.ip)
  const mtoken = (await c.ctlOk(first, 'swarm', 'join-token', '-q', 'manager')).trim()
  const wtoken = (await c.ctlOk(first, 'swarm', 'join-token', '-q', 'worker')).trim()
  for (const m of others) {
    const out = await c.ctlOk(m, 'swarm', 'join', '--token', mtoken, '--advertise-addr', m.ip, `${first.ip}:2377`)
    if (!out.includes('as a manager')) throw new Error(`${m.name} did not join as a manager: ${out}`)
  }
  for (const w of workers) await c.ctlOk(w, 'swarm', 'join', '--token', wtoken, '--advertise-addr', w.ip, `${first.ip}:2377`)
  await waitManagers(c, first, managers.length, 60_000)
  await waitUntil(async () => (await c.nodes(first)).filter(r => r.status === 'Ready').length === managers.length + workers.length, { timeoutMs: 60_000, intervalMs: 250, what: 'every node Ready' })
  for (const r of await c.nodes(first)) {
    const h = c.hosts.find(x => x.name === r.hostname)
    if (h) h.id = r.id
  }
}

interface NodeObject {
  Description: { Hostname: string }
  ManagerStatus?: { Leader: boolean; Reachability: string }
}

/** MANAGER STATUS by hostname as `via` shows it (Leader, Reachable, Unreachable), read from its API (cheaper than `node ls`, for tight polling). */
export async function managerStatus(c: Hosts, via: Host): Promise<Record<string, string>> {
  const nodes = await c.api<NodeObject[]>(via, '/nodes')
  const title = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)
  return Object.fromEntries(nodes.filter(n => n.ManagerStatus).map(n => [n.Description.Hostname, n.ManagerStatus!.Leader ? 'Leader' : title(n.ManagerStatus!.Reachability)]))
}

/** Until `via` shows `n` managers, one Leader and the rest Reachable; the leader's host name. */
export async function waitManagers(c: Hosts, via: Host, n: number, timeoutMs = 30_000): Promise<string> {
  let leader = ''
  await waitUntil(
    async () => {
      const s = Object.entries(await managerStatus(c, via))
      leader = s.find(([, v]) => v === 'Leader')?.[0] ?? ''
      return s.length === n && !!leader && s.filter(([, v]) => v === 'Reachable').length === n - 1
    },
    { timeoutMs, intervalMs: 250, what: `${n} managers on ${via.name}: one Leader, the others Reachable` },
  )
  return leader
}

/** Until `via` shows a Leader other than `not`; its host name. */
export async function waitNewLeader(c: Hosts, via: Host, not: string, timeoutMs = 30_000): Promise<string> {
  let leader = ''
  await waitUntil(
    async () => {
      leader = Object.entries(await managerStatus(c, via).catch(() => ({}) as Record<string, string>)).find(([, v]) => v === 'Leader')?.[0] ?? ''
      return !!leader && leader !== not
    },
    { timeoutMs, intervalMs: 100, what: `a new leader on ${via.name}` },
  )
  return leader
}

/** The host that leads, as `via` sees it. */
export async function leaderOf(c: Hosts, via: Host): Promise<Host> {
  const name = Object.entries(await managerStatus(c, via)).find(([, v]) => v === 'Leader')?.[0]
  const h = c.hosts.find(x => x.name === name)
  if (!h) throw new Error(`no leader in ${via.name}'s view`)
  return h
}
