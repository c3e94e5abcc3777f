import { SwarmError } from '../types/errors.js'
import { acceptFilters, prefixMatch, TASK_FILTERS } from './filters.js'
import { newId } from './ids.js'
import { checkPortConflicts, validateServiceSpec } from './service-spec.js'
import { matchLabels } from './label-filter.js'
import { needsIngress, type Networks } from './networks.js'
import type { Configs } from './configs.js'
import { sameSpec } from './orchestrator/pass.js'
import type { Secrets } from './secrets.js'
import type { StateStore } from './state-store.js'
import { isJob, modeKind, type PortConfig, type Service, type ServiceSpec } from '../types/service.js'
import { TASK_STATES, type Task } from '../types/task.js'

/** Swarm's range for published ports the user left to the manager. */
const DYNAMIC_PORTS = { first: 30000, last: 32767 }

/** Docker's filters: `{"k":{"v":true}}`, or the older `{"k":["v"]}`. */
export function parseFilters(raw: string | null): Map<string, string[]> {
  const out = new Map<string, string[]>()
  if (!raw) return out
  let f: unknown
  try {
    f = JSON.parse(raw)
  } catch (e) {
    throw new SwarmError('E_INVALID_FILTER', `invalid filter: ${(e as Error).message}`)
  }
  if (!f || typeof f !== 'object' || Array.isArray(f)) throw new SwarmError('E_INVALID_FILTER', 'invalid filter: it must be a JSON object')
  for (const [k, v] of Object.entries(f)) {
    if (Array.isArray(v)) out.set(k, v.map(String))
    else if (v && typeof v === 'object') out.set(k, Object.keys(v).filter(x => (v as Record<string, unknown>)[x]))
    else throw new SwarmError('E_INVALID_FILTER', `invalid filter '${k}'`)
  }
  return out
}

/**
 * The control API of services (swarmkit's controlapi): validated specs in the
 * store, published ports allocated, versions checked on update, rollback to
 * the previous spec; the orchestrator takes it from there.
 */
export class Services {
  constructor(
    private readonly d: {
      store: StateStore
      secrets: Secrets
      configs: Configs
      networks: Networks
      /** Something changed: reconcile. */
      kick: () => void
    },
  ) {}

  list(): Service[] {
    return this.d.store.list<Service>('services')
  }

  /** By ID, name, or unique ID prefix, as the docker CLI allows. */
  find(ref: string): Service | undefined {
    const all = this.list()
    const exact = all.find(s => s.ID === ref) ?? all.find(s => s.Spec.Name === ref)
    if (exact) return exact
    const prefix = ref ? all.filter(s => s.ID.startsWith(ref)) : []
    if (prefix.length > 1) throw new SwarmError('E_AMBIGUOUS', `service ${ref} is ambiguous (${prefix.length} matches found)`)
    return prefix[0]
  }

  get(ref: string): Service {
    const s = this.find(ref)
    if (!s) throw new SwarmError('E_SERVICE_NOT_FOUND', `service ${ref} not found`)
    return s
  }

  private validate(body: unknown, self?: Service): ServiceSpec {
    const spec = validateServiceSpec(body, {
      secretByRef: r => this.d.secrets.find(r),
      configByRef: r => this.d.configs.find(r),
      networkByRef: r => this.d.networks.find(r),
    })
    for (const n of spec.TaskTemplate.Networks ?? []) {
      const net = this.d.networks.find(n.Target)
      if (net?.Ingress) throw new SwarmError('E_INVALID_SPEC', `rpc error: code = InvalidArgument desc = Service cannot be explicitly attached to the ingress network "${net.Name}"`)
    }
    checkPortConflicts(spec, this.list().filter(s => s.ID !== self?.ID))
    return spec
  }

  /** A VIP on each network the service is on (the ingress network when it publishes ports), as Docker's Endpoint.VirtualIPs. */
  private async virtualIps(svc: Service): Promise<Service['Endpoint']['VirtualIPs']> {
    if (svc.Spec.EndpointSpec?.Mode === 'dnsrr') {
      await this.d.networks.releaseVips(svc.ID)
      return undefined
    }
    const nets: string[] = []
    if (needsIngress(svc)) {
      const ingress = this.d.networks.ingress()
      if (!ingress) throw new SwarmError('E_NO_INGRESS', 'rpc error: code = FailedPrecondition desc = service needs ingress network, but no ingress network is present')
      nets.push(ingress.ID)
    }
    for (const n of svc.Spec.TaskTemplate.Networks ?? []) nets.push(this.d.networks.get(n.Target).ID)
    const vips = await this.d.networks.syncVips(svc.ID, nets)
    return vips.length ? vips.map(v => ({ NetworkID: v.NetworkID, Addr: v.Addr })) : undefined
  }

  /** Ingress ports without a published port get one from swarm's dynamic range, kept across updates. */
  private endpointPorts(spec: ServiceSpec, prev?: Service): PortConfig[] {
    const taken = new Set(this.list().flatMap(s => (s.Endpoint.Ports ?? []).map(p => `${p.Protocol}/${p.PublishedPort}`)))
    return (spec.EndpointSpec?.Ports ?? []).map(p => {
      const q: PortConfig = { Protocol: p.Protocol ?? 'tcp', TargetPort: p.TargetPort, PublishedPort: p.PublishedPort ?? 0, PublishMode: p.PublishMode ?? 'ingress', ...(p.Name ? { Name: p.Name } : {}) }
      if (q.PublishMode !== 'ingress' || q.PublishedPort) return q
      const kept = prev?.Endpoint.Ports?.find(o => o.TargetPort === q.TargetPort && o.Protocol === q.Protocol && o.PublishMode === 'ingress')
      if (kept?.PublishedPort) return { ...q, PublishedPort: kept.PublishedPort }
      for (let port = DYNAMIC_PORTS.first; port <= DYNAMIC_PORTS.last; port++) {
        if (!taken.has(`${q.Protocol}/${port}`)) {
          taken.add(`${q.Protocol}/${port}`)
          return { ...q, PublishedPort: port }
        }
      }
      throw new SwarmError('E_PORTS_EXHAUSTED', 'no free published port left in 30000-32767')
    })
  }

  async create(body: unknown): Promise<string> {
    const spec = this.validate(body)
    // swarmkit's store indexes names in lower case: `Web` conflicts with `web`.
    if (this.list().some(s => s.Spec.Name.toLowerCase() === spec.Name.toLowerCase())) throw new SwarmError('E_NAME_CONFLICT', `rpc error: code = AlreadyExists desc = name conflicts with an existing object: service ${spec.Name} already exists`)
    const t = new Date().toISOString()
    const svc: Service = {
      ID: newId(),
      Version: { Index: 1 },
      CreatedAt: t,
      UpdatedAt: t,
      Spec: spec,
      Endpoint: { Spec: spec.EndpointSpec ?? { Mode: 'vip' }, Ports: this.endpointPorts(spec) },
      ...(isJob(spec) ? { JobStatus: { JobIteration: { Index: 0 }, LastExecution: t } } : {}),
    }
    const vips = await this.virtualIps(svc)
    if (vips) svc.Endpoint.VirtualIPs = vips
    await this.d.store.commit([{ op: 'put', table: 'services', id: svc.ID, value: svc }])
    this.d.kick()
    return svc.ID
  }

  /**
   * A new spec at the version the caller read. A changed task template starts
   * a rolling update; `rollback` puts the previous spec back instead.
   */
  async update(ref: string, version: number, body: unknown, rollback: boolean): Promise<void> {
    const cur = this.get(ref)
    if (version !== cur.Version.Index) throw new SwarmError('E_OUT_OF_SEQUENCE', 'rpc error: code = Unknown desc = update out of sequence')
    let spec: ServiceSpec
    if (rollback) {
      if (!cur.PreviousSpec) throw new SwarmError('E_NO_PREVIOUS_SPEC', `rpc error: code = FailedPrecondition desc = service ${cur.ID} does not have a previous spec`)
      spec = cur.PreviousSpec
    } else spec = this.validate(body, cur)
    if (spec.Name !== cur.Spec.Name) throw new SwarmError('E_UNSUPPORTED', 'rpc error: code = Unimplemented desc = renaming services is not supported')
    if (modeKind(spec) !== modeKind(cur.Spec)) throw new SwarmError('E_UNSUPPORTED', 'rpc error: code = Unimplemented desc = service mode change is not allowed')
    const t = new Date().toISOString()
    const templateChanged = JSON.stringify(spec.TaskTemplate) !== JSON.stringify(cur.Spec.TaskTemplate)
    const next: Service = {
      ...cur,
      Version: { Index: cur.Version.Index + 1 },
      UpdatedAt: t,
      Spec: spec,
      PreviousSpec: cur.Spec,
      Endpoint: { ...cur.Endpoint, Spec: spec.EndpointSpec ?? { Mode: 'vip' }, Ports: this.endpointPorts(spec, cur) },
    }
    const vips = await this.virtualIps(next)
    if (vips) next.Endpoint.VirtualIPs = vips
    else delete next.Endpoint.VirtualIPs
    // A job runs again with every update (swarmkit's JobIteration); it has no rolling update.
    if (cur.JobStatus) next.JobStatus = { JobIteration: { Index: cur.JobStatus.JobIteration.Index + 1 }, LastExecution: t }
    if (rollback) next.UpdateStatus = { State: 'rollback_started', StartedAt: t, Message: 'manually requested rollback' }
    else if (templateChanged && !cur.JobStatus) next.UpdateStatus = { State: 'updating', StartedAt: t, Message: 'update in progress' }
    // As swarmkit: any other update clears the last one's status, so `scale` is followed as a new convergence.
    else delete next.UpdateStatus
    await this.d.store.commit([{ op: 'put', table: 'services', id: next.ID, value: next }])
    this.d.kick()
  }

  async remove(ref: string): Promise<void> {
    const s = this.get(ref)
    await this.d.store.commit([{ op: 'delete', table: 'services', id: s.ID }])
    await this.d.networks.releaseVips(s.ID)
    this.d.kick()
  }

  /**
   * GET /tasks with Docker's filters: service and node (by ID or name, as
   * moby resolves them first), desired-state, id and name prefixes (a
   * task's name is `<service>.<slot or node>.<id>`), the service's labels.
   */
  tasks(filters: Map<string, string[]>, nodeRef: (ref: string) => string | undefined): Task[] {
    acceptFilters(filters, TASK_FILTERS)
    const get = (k: string): string[] => filters.get(k) ?? []
    const services = new Set(get('service').map(r => this.get(r).ID))
    const nodes = new Set(
      get('node').map(r => {
        const id = nodeRef(r)
        if (!id) throw new SwarmError('E_NODE_NOT_FOUND', `node ${r} not found`)
        return id
      }),
    )
    const desired = get('desired-state').filter(d => {
      if (d !== '' && !(TASK_STATES as readonly string[]).includes(d.toLowerCase())) throw new SwarmError('E_INVALID_FILTER', `Invalid desired-state filter: '${d}'`)
      return d !== ''
    })
    const runtimes = get('runtime')
    // The CLI's own, as moby passes it on: present with any value, the tasks of their service's current spec only (swarmkit's !IsTaskDirty).
    const upToDate = get('_up-to-date').length > 0
    const byId = new Map(this.list().map(s => [s.ID, s]))
    return this.d.store
      .list<Task>('tasks')
      .filter(t => {
        const svc = byId.get(t.ServiceID)
        return (
          (services.size === 0 || services.has(t.ServiceID)) &&
          (nodes.size === 0 || (!!t.NodeID && nodes.has(t.NodeID))) &&
          (desired.length === 0 || desired.some(d => d.toLowerCase() === t.DesiredState)) &&
          prefixMatch(get('id'), t.ID) &&
          prefixMatch(get('name'), `${svc?.Spec.Name ?? ''}.${t.Slot || t.NodeID}.${t.ID}`) &&
          matchLabels(get('label'), svc?.Spec.Labels ?? {}) &&
          (runtimes.length === 0 || runtimes.some(r => r === 'container' || r === '')) &&
          (!upToDate || (!!svc && sameSpec(t.Spec, svc.Spec.TaskTemplate)))
        )
      })
      .sort((a, b) => (a.Slot ?? 0) - (b.Slot ?? 0) || b.CreatedAt.localeCompare(a.CreatedAt))
  }

  /**
   * ServiceStatus (GET /services?status=true), as swarmkit's
   * ListServiceStatuses counts it: running and desired tasks, and for jobs
   * (their current iteration only) the completed ones; a replicated job
   * desires MaxConcurrent, a global one its tasks not yet complete.
   */
  status(svc: Service): { RunningTasks: number; DesiredTasks: number; CompletedTasks: number } {
    const iteration = svc.JobStatus?.JobIteration.Index
    const tasks = this.d.store.list<Task>('tasks').filter(t => t.ServiceID === svc.ID && (iteration === undefined || t.JobIteration?.Index === iteration))
    const mode = svc.Spec.Mode
    const running = tasks.filter(t => t.Status.State === 'running' && (t.DesiredState === 'running' || t.DesiredState === 'complete')).length
    const desired = mode.Replicated
      ? (mode.Replicated.Replicas ?? 1)
      : mode.ReplicatedJob
        ? (mode.ReplicatedJob.MaxConcurrent ?? 1)
        : tasks.filter(t => t.DesiredState === 'running' || (t.DesiredState === 'complete' && t.Status.State !== 'complete')).length
    return { RunningTasks: running, DesiredTasks: desired, CompletedTasks: iteration === undefined ? 0 : tasks.filter(t => t.Status.State === 'complete').length }
  }
}
