import type { Service, ServiceSpec } from '../../types/service.js'
import type { Task, TaskState } from '../../types/task.js'
import { planner } from '../placement.js'
import { Pass, type NodeInfo } from './pass.js'

/** Fixtures for the orchestrator's concerns, each tested alone over a Pass. */

export const T0 = Date.parse('2026-01-01T00:00:00Z')
export const iso = (t: number): string => new Date(t).toISOString()

export function node(id: string, extra: Partial<NodeInfo> = {}): NodeInfo {
  return {
    id,
    hostname: `host-${id}`,
    role: 'worker',
    addr: '127.0.0.1',
    ready: true,
    availability: 'active',
    labels: {},
    engineLabels: {},
    platform: { os: 'linux', arch: 'x86_64' },
    resources: { nanoCPUs: 4e9, memoryBytes: 8 << 30 },
    ...extra,
  }
}

export function service(id: string, spec: Partial<ServiceSpec> = {}, extra: Partial<Service> = {}): Service {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: iso(T0),
    UpdatedAt: iso(T0),
    Spec: { Name: id, TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, Mode: { Replicated: { Replicas: 1 } }, ...spec },
    Endpoint: { Spec: {} },
    ...extra,
  }
}

let seq = 0
/** A task of `svc` in `slot` on `nodeId`, observed in `state` at `at`, created at `created`. */
export function task(svc: Service, o: { slot?: number; node?: string; state?: TaskState; desired?: TaskState; at?: number; created?: number; spec?: Service['Spec']['TaskTemplate'] } = {}): Task {
  const created = o.created ?? T0
  return {
    ID: `t${String(++seq).padStart(4, '0')}`,
    Version: { Index: 1 },
    CreatedAt: iso(created),
    UpdatedAt: iso(o.at ?? created),
    Labels: {},
    Spec: o.spec ?? svc.Spec.TaskTemplate,
    ServiceID: svc.ID,
    Slot: o.slot ?? 1,
    ...(o.node ? { NodeID: o.node } : {}),
    Status: { Timestamp: iso(o.at ?? created), State: o.state ?? 'running', Message: '' },
    DesiredState: o.desired ?? 'running',
  }
}

export function pass(now: number, nodes: NodeInfo[], services: Service[], tasks: Task[]): Pass {
  return new Pass(now, nodes, services, tasks, planner(nodes, tasks.filter(t => t.NodeID), services))
}

/** What the pass decided, by task ID: the desired state it wrote, or 'deleted'. */
export function decisions(p: Pass): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of p.muts.values()) {
    if (m.table !== 'tasks') continue
    out[m.id] = m.op === 'delete' ? 'deleted' : (m.value as Task).DesiredState
  }
  return out
}
