import { SwarmError } from '../../types/errors.js'
import { OPT_VXLANID_LIST, type NetworkRecord, type NodeAttachmentRecord, type VipRecord } from '../../types/network.js'
import { isRunDesired, isTerminal, type NetworkAttachment, type Task } from '../../types/task.js'
import { nodeAttachmentId, pickAddress } from '../network-allocator.js'
import { needsIngress } from '../networks.js'
import { iso, type Pass } from './pass.js'

/** What the allocation reads beside the pass: the networks and what already holds their addresses. */
export interface AddressBook {
  networks: NetworkRecord[]
  vips: VipRecord[]
  nodes: NodeAttachmentRecord[]
}

/** An address without its prefix length. */
const bare = (addr: string): string => addr.split('/')[0]!

/** The network as swarmkit embeds it in a task's attachment. */
function attachment(n: NetworkRecord, addr: string): NetworkAttachment {
  return {
    Network: {
      ID: n.ID,
      Spec: { Name: n.Name, Labels: n.Labels, DriverConfiguration: { Name: 'overlay', ...(Object.keys(n.Options).length ? { Options: n.Options } : {}) }, ...(n.Ingress ? { Ingress: true } : {}), Scope: 'swarm' },
      DriverState: { Name: 'overlay', Options: { [OPT_VXLANID_LIST]: String(n.Vni) } },
      IPAMOptions: { Driver: { Name: 'default' }, Configs: [{ Subnet: n.Subnet, Gateway: n.Gateway }] },
    },
    Addresses: [addr],
  }
}

/**
 * Addresses on the overlays, as swarmkit's allocator gives them: a task
 * assigned to a node gets one on each of its networks (the ingress network
 * when its service publishes a port, and those of its spec), shown as
 * Docker shows them in Task.NetworksAttachments; a node gets one on the
 * ingress network and on every network one of its live tasks is on (its
 * identity there in the kernel data plane), and loses it with the last of
 * them. An address is held until its task is observed over. A task whose
 * network has no address left is rejected with the reason, and its restart
 * policy tries again later.
 */
export function allocateAttachments(p: Pass, book: AddressBook): void {
  const nets = new Map(book.networks.map(n => [n.ID, n]))
  const ingress = book.networks.find(n => n.Ingress)
  const used = new Map<string, Set<string>>(book.networks.map(n => [n.ID, new Set<string>()]))
  const take = (network: string, addr: string): void => void used.get(network)?.add(bare(addr))
  for (const v of book.vips) take(v.NetworkID, v.Addr)
  for (const a of book.nodes) take(a.NetworkID, a.Addr)

  const tasks = new Map<string, Task>()
  for (const t of p.tasks) if (p.muts.get(`tasks/${t.ID}`)?.op !== 'delete') tasks.set(t.ID, p.current(t))
  for (const t of p.written()) tasks.set(t.ID, t)
  const holds = (t: Task): boolean => !!t.NetworksAttachments && !isTerminal(t.Status.State)
  for (const t of tasks.values()) if (holds(t)) for (const a of t.NetworksAttachments!) for (const addr of a.Addresses) take(a.Network.ID, addr)

  for (const t of tasks.values()) {
    // A task held at ready (a restart delay) and a job's (desired complete) too: the node prepares it, and its namespace, before it runs.
    if (!t.NodeID || t.NetworksAttachments || isTerminal(t.Status.State) || !isRunDesired(t.DesiredState)) continue
    const svc = p.services.find(s => s.ID === t.ServiceID)
    if (!svc) continue
    const wanted = [...(needsIngress(svc) && ingress ? [ingress.ID] : []), ...(t.Spec.Networks ?? []).map(n => n.Target)]
    const out: NetworkAttachment[] = []
    try {
      for (const id of new Set(wanted)) {
        const n = nets.get(id)
        if (!n) continue
        const addr = pickAddress(n, used.get(id)!)
        take(id, addr)
        out.push(attachment(n, addr))
      }
    } catch (e) {
      if (!(e instanceof SwarmError)) throw e
      p.put({ ...t, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(p.now), Status: { Timestamp: iso(p.now), State: 'rejected', Message: 'allocating the network attachments', Err: e.message } })
      continue
    }
    const next: Task = { ...t, NetworksAttachments: out, UpdatedAt: iso(p.now), Version: p.changed(t) ? t.Version : { Index: t.Version.Index + 1 } }
    tasks.set(t.ID, next)
    p.put(next)
  }

  const need = new Set<string>()
  for (const n of p.nodes) if (ingress) need.add(nodeAttachmentId(n.id, ingress.ID))
  for (const t of tasks.values()) if (t.NodeID && holds(t)) for (const a of t.NetworksAttachments!) if (nets.has(a.Network.ID)) need.add(nodeAttachmentId(t.NodeID, a.Network.ID))
  const have = new Set<string>()
  for (const a of book.nodes) {
    const id = nodeAttachmentId(a.NodeID, a.NetworkID)
    if (need.has(id)) have.add(id)
    else p.muts.set(`attachments/${id}`, { op: 'delete', table: 'attachments', id })
  }
  for (const id of need) {
    if (have.has(id)) continue
    const [nodeId, networkId] = id.split('/') as [string, string]
    let addr: string
    try {
      addr = pickAddress(nets.get(networkId)!, used.get(networkId)!)
    } catch (e) {
      // The node goes without an address there until one is free: its tasks on that network stay local.
      if (e instanceof SwarmError) continue
      throw e
    }
    take(networkId, addr)
    const value: NodeAttachmentRecord = { NodeID: nodeId, NetworkID: networkId, Addr: addr }
    p.muts.set(`attachments/${id}`, { op: 'put', table: 'attachments', id, value })
  }
}
