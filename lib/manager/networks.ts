import { SwarmError } from '../types/errors.js'
import type { NetworkKey, NetworkRecord, NodeAttachmentRecord, VipRecord } from '../types/network.js'
import type { Service } from '../types/service.js'
import { isTerminal, stateRank, type Task } from '../types/task.js'
import { allocateNetwork, nextRing, nodeAttachmentId, pickVip } from './network-allocator.js'
import { rpc, validateCreate } from './network-spec.js'
import type { StateStore } from './state-store.js'
import type { Mutation } from './store.js'

/** swarmkit's IsIngressNetworkNeeded: the service publishes a port in ingress mode. */
export const needsIngress = (s: Service): boolean => (s.Spec.EndpointSpec?.Ports ?? []).some(p => (p.PublishMode ?? 'ingress') === 'ingress')

const usesNetwork = (networks: { Target: string }[] | undefined, id: string): boolean => (networks ?? []).some(n => n.Target === id)

/**
 * The manager's overlay networks over the store: tables `networks` and
 * `vips`; it reads `services` and `tasks` to refuse removing a network in
 * use, as swarmkit does in the same transaction.
 */
export class Networks {
  /** Allocations read the store, then commit: one at a time, or two could take the same VNI. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly store: StateStore) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  list(): NetworkRecord[] {
    return this.store.list<NetworkRecord>('networks').sort((a, b) => a.Name.localeCompare(b.Name) || a.ID.localeCompare(b.ID))
  }

  /** By full ID, then name, then unique ID prefix, as dockerd resolves a network. */
  find(ref: string): NetworkRecord | undefined {
    if (!ref) return undefined
    const all = this.list()
    const byId = all.find(n => n.ID === ref)
    if (byId) return byId
    // Names are unique: create refuses a second one.
    const byName = all.find(n => n.Name === ref)
    if (byName) return byName
    const byPrefix = all.filter(n => n.ID.startsWith(ref))
    if (byPrefix.length > 1) throw new SwarmError('E_AMBIGUOUS', `network ${ref} is ambiguous (${byPrefix.length} matches found based on ID prefix)`)
    return byPrefix[0]
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref)
    if (!n) throw new SwarmError('E_NETWORK_NOT_FOUND', `network ${ref} not found`)
    return n
  }

  ingress(): NetworkRecord | undefined {
    return this.list().find(n => n.Ingress)
  }

  /** POST /networks/create: dockerd's checks, then swarmkit's, then swarmd's limits, then allocation. */
  create(body: unknown): Promise<{ Id: string; Warning: string }> {
    return this.serial(async () => {
      const n = allocateNetwork(validateCreate(body, this.list()), this.list())
      await this.store.commit([{ op: 'put', table: 'networks', id: n.ID, value: n }])
      return { Id: n.ID, Warning: '' }
    })
  }

  /** The routing mesh's network, as swarmkit creates it at bootstrap (10.0.0.0/24 and VNI 4096 on a new swarm). */
  ensureIngress(): Promise<NetworkRecord> {
    return this.serial(async () => {
      const existing = this.ingress() ?? this.list().find(n => n.Name === 'ingress')
      if (existing) return existing
      const n = allocateNetwork({ Name: 'ingress', Ingress: true }, this.list())
      await this.store.commit([{ op: 'put', table: 'networks', id: n.ID, value: n }])
      return n
    })
  }

  /**
   * DELETE /networks/{id}: refused while a service or a live task uses it
   * (the ingress network: while a service publishes a port), with
   * swarmkit's texts. The network's VNI, subnet and any VIPs left on it go.
   */
  remove(ref: string): Promise<void> {
    return this.serial(async () => {
      const n = this.get(ref)
      const services = this.store.list<Service>('services')
      if (n.Ingress) {
        const dep = services.find(needsIngress)
        if (dep) throw new SwarmError('E_IN_USE', rpc('FailedPrecondition', `ingress network cannot be removed because service ${dep.ID} depends on it`))
      } else {
        const svc = services.find(s => usesNetwork(s.Spec.TaskTemplate.Networks, n.ID))
        if (svc) throw new SwarmError('E_IN_USE', rpc('FailedPrecondition', `network ${n.ID} is in use by service ${svc.ID}`))
        const running = stateRank('running')
        const task = this.store
          .list<Task>('tasks')
          .find(t => usesNetwork(t.Spec.Networks, n.ID) && stateRank(t.DesiredState) <= running && stateRank(t.Status.State) <= running)
        if (task) throw new SwarmError('E_IN_USE', rpc('FailedPrecondition', `network ${n.ID} is in use by task ${task.ID}`))
      }
      const vips = this.store.list<VipRecord>('vips').filter(v => v.NetworkID === n.ID)
      const nodes = this.store.list<NodeAttachmentRecord>('attachments').filter(a => a.NetworkID === n.ID)
      await this.store.commit([
        { op: 'delete', table: 'networks', id: n.ID },
        ...vips.map((v): Mutation => ({ op: 'delete', table: 'vips', id: vipId(v.ServiceID, v.NetworkID) })),
        ...nodes.map((a): Mutation => ({ op: 'delete', table: 'attachments', id: nodeAttachmentId(a.NodeID, a.NetworkID) })),
      ])
    })
  }

  /** Services that keep a network from being removed: those attached, or for ingress those publishing ports. */
  users(n: NetworkRecord): Service[] {
    const services = this.store.list<Service>('services')
    return n.Ingress ? services.filter(needsIngress) : services.filter(s => usesNetwork(s.Spec.TaskTemplate.Networks, n.ID))
  }

  // ---- VIPs ----------------------------------------------------------------------------------

  vips(serviceId: string): VipRecord[] {
    return this.store.list<VipRecord>('vips').filter(v => v.ServiceID === serviceId)
  }

  /** Every node's addresses on the networks (table `attachments`). */
  nodeAttachments(): NodeAttachmentRecord[] {
    return this.store.list<NodeAttachmentRecord>('attachments')
  }

  /** The service's VIP on the network: the one it has, or the lowest free host address. */
  allocateVip(serviceId: string, networkRef: string): Promise<VipRecord> {
    return this.serial(async () => {
      const { vip, mutation } = this.vipOn(serviceId, this.get(networkRef), new Set())
      if (mutation) await this.store.commit([mutation])
      return vip
    })
  }

  /**
   * Makes the service's VIPs exactly one per given network, keeping those it
   * has: what a service create or update needs. Returns them in order.
   */
  syncVips(serviceId: string, networkRefs: string[]): Promise<VipRecord[]> {
    return this.serial(async () => {
      const nets = networkRefs.map(r => this.get(r))
      const ids = new Set(nets.map(n => n.ID))
      const mutations: Mutation[] = this.vips(serviceId)
        .filter(v => !ids.has(v.NetworkID))
        .map(v => ({ op: 'delete', table: 'vips', id: vipId(serviceId, v.NetworkID) }))
      const picked = new Set<string>()
      const out: VipRecord[] = []
      for (const n of nets) {
        const { vip, mutation } = this.vipOn(serviceId, n, picked)
        picked.add(vip.Addr)
        if (mutation) mutations.push(mutation)
        out.push(vip)
      }
      if (mutations.length) await this.store.commit(mutations)
      return out
    })
  }

  /** Frees the service's VIPs (the service is gone). */
  releaseVips(serviceId: string): Promise<void> {
    return this.serial(async () => {
      const vips = this.vips(serviceId)
      if (vips.length) await this.store.commit(vips.map(v => ({ op: 'delete', table: 'vips', id: vipId(serviceId, v.NetworkID) })))
    })
  }

  /** The addresses tasks and nodes hold on a network (with their prefix length), which no VIP may take. */
  private attachedAddrs(networkId: string): string[] {
    const tasks = this.store.list<Task>('tasks').flatMap(t => (isTerminal(t.Status.State) ? [] : (t.NetworksAttachments ?? []).filter(a => a.Network.ID === networkId).flatMap(a => a.Addresses)))
    const nodes = this.store.list<NodeAttachmentRecord>('attachments').filter(a => a.NetworkID === networkId).map(a => a.Addr)
    return [...tasks, ...nodes]
  }

  /** The service's VIP on the network: the one it has, or a new one (with the mutation that stores it). */
  private vipOn(serviceId: string, n: NetworkRecord, pending: Set<string>): { vip: VipRecord; mutation?: Mutation } {
    const have = this.store.get<VipRecord>('vips', vipId(serviceId, n.ID))
    if (have) return { vip: have }
    const used = new Set([...pending, ...this.store.list<VipRecord>('vips').filter(v => v.NetworkID === n.ID).map(v => v.Addr), ...this.attachedAddrs(n.ID)])
    const vip = pickVip(serviceId, n, used)
    return { vip, mutation: { op: 'put', table: 'vips', id: vipId(serviceId, n.ID), value: vip } }
  }

  // ---- keys of encrypted networks --------------------------------------------------------------

  /** The ring of an encrypted network, oldest first; the middle key encrypts, all three decrypt. Undefined for others. */
  keys(networkRef: string): { keys: NetworkKey[]; primary: NetworkKey } | undefined {
    const k = this.get(networkRef).Keys
    return k?.length ? { keys: k, primary: k[1]! } : undefined
  }

  /**
   * Swarm's rotation for every encrypted network (or those of `only`): drop
   * the oldest key, add a newer one. The new key only decrypts until the
   * next rotation makes it primary, so every node has it before anyone
   * sends with it.
   */
  rotateKeys(store: StateStore = this.store, only?: ReadonlySet<string>): Promise<number> {
    return this.serial(async () => {
      const rotated = this.list()
        .filter(n => n.Keys?.length && (!only || only.has(n.ID)))
        .map(n => ({ ...n, Keys: nextRing(n.Keys!) }))
      if (rotated.length) await store.commit(rotated.map(n => ({ op: 'put', table: 'networks', id: n.ID, value: n })))
      return rotated.length
    })
  }
}

const vipId = (serviceId: string, networkId: string): string => `${serviceId}/${networkId}`
