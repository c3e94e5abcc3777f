import { parseConstraints } from './constraint.js'
import type { SchedNode } from './sched-node.js'
import { Scheduler, type HostPort, type TaskGroupSpec } from './scheduler.js'
import type { Service } from '../types/service.js'
import type { Task } from '../types/task.js'

/** One orchestrator pass's view for placement: the scheduler loaded with the nodes and the tasks they hold. */
export interface Planner {
  /** Node per pending task of the service, or swarm's "no suitable node (...)" text. */
  place(service: Service, pending: Task[]): Map<string, string | { error: string }>
  /** Whether a global service's task belongs on this node. */
  eligible(service: Service, nodeId: string): boolean
}

function hostPorts(svc: Service | undefined): HostPort[] {
  return (svc?.Endpoint.Ports ?? []).filter(p => p.PublishMode === 'host' && p.PublishedPort).map(p => ({ protocol: p.Protocol ?? 'tcp', port: p.PublishedPort! }))
}

function groupSpec(svc: Service): TaskGroupSpec {
  const tpl = svc.Spec.TaskTemplate
  const r = tpl.Resources?.Reservations
  return {
    serviceId: svc.ID,
    constraints: parseConstraints(tpl.Placement?.Constraints ?? []),
    preferences: (tpl.Placement?.Preferences ?? []).map(p => p.Spread.SpreadDescriptor),
    reservations: { nanoCPUs: r?.NanoCPUs ?? 0, memoryBytes: r?.MemoryBytes ?? 0 },
    hostPorts: hostPorts(svc),
    maxReplicas: tpl.Placement?.MaxReplicas ?? 0,
  }
}

/** Builds the pass's scheduler from the nodes and the live tasks, each accounted with its service's reservations and host ports. */
export function planner(nodes: SchedNode[], live: Task[], services: Service[]): Planner {
  const s = new Scheduler()
  for (const n of nodes) s.upsertNode(n)
  const byId = new Map(services.map(x => [x.ID, x]))
  const add = (t: Task): void => {
    if (!t.NodeID) return
    const r = t.Spec.Resources?.Reservations
    s.addTask({ id: t.ID, nodeId: t.NodeID, serviceId: t.ServiceID, reservations: { nanoCPUs: r?.NanoCPUs ?? 0, memoryBytes: r?.MemoryBytes ?? 0 }, hostPorts: hostPorts(byId.get(t.ServiceID)) })
  }
  for (const t of live) add(t)
  return {
    place(svc, pending) {
      const res = s.schedule({ ...groupSpec(svc), taskIds: pending.map(t => t.ID) })
      const out = new Map<string, string | { error: string }>()
      pending.forEach((t, i) => {
        const node = res.nodeIds[i]
        out.set(t.ID, node ?? { error: res.error ?? 'no suitable node' })
      })
      return out
    },
    eligible(svc, nodeId) {
      return s.eligible(nodeId, groupSpec(svc)) === true
    },
  }
}
