import { modeKind } from '../types/service.js'
import type { SwarmNode } from '../node/node.js'
import { isJob } from '../types/service.js'
import { isTerminal, type Task } from '../types/task.js'

/** The swarm as the cluster page draws it: plain data, the same for every viewer, recomputed as it changes. */
export interface ClusterView {
  /** The manager answering, and who leads. */
  self: { nodeId: string; leader: string | undefined }
  nodes: {
    id: string
    hostname: string
    role: 'manager' | 'worker'
    state: 'ready' | 'down' | 'unknown'
    availability: 'active' | 'pause' | 'drain'
    /** Docker's MANAGER STATUS: Leader, Reachable or Unreachable (managers only). */
    managerStatus?: 'leader' | 'reachable' | 'unreachable'
    addr: string
  }[]
  services: {
    id: string
    name: string
    image: string
    mode: ReturnType<typeof modeKind>
    running: number
    desired: number
    /** Jobs: the tasks of this iteration that completed, of how many (as `service ls`). */
    completed?: { done: number; of: number }
    ports: string[]
  }[]
  tasks: { id: string; name: string; service: string; node?: string; state: Task['Status']['State']; desired: Task['DesiredState']; err?: string }[]
}

/**
 * A task is drawn while it is, or may still be, alive: not yet past
 * running (a task on a node that went Down still shows there), or ended
 * while the orchestrator still wants it (failed, awaiting its restart).
 */
const shown = (t: Task): boolean => !isTerminal(t.Status.State) || t.DesiredState === 'running'

/** The page's view from this manager's copy of the state; throws Docker's errors on a node that is no manager. */
export function clusterView(node: SwarmNode): ClusterView {
  const m = node.manager()
  const services = m.services.list()
  const names = new Map(services.map(s => [s.ID, s.Spec.Name]))
  const nodes = m.nodes
    .list()
    .map(n => {
      const ms = m.managerStatus(n)
      return {
        id: n.id,
        hostname: n.hostname,
        role: n.spec.Role,
        state: m.nodeState(n),
        availability: n.spec.Availability,
        ...(ms ? { managerStatus: ms.Leader ? ('leader' as const) : ms.Reachability } : {}),
        addr: n.addr,
      }
    })
    .sort((a, b) => Number(b.role === 'manager') - Number(a.role === 'manager') || a.hostname.localeCompare(b.hostname))
  return {
    self: { nodeId: node.nodeId, leader: m.leaderId },
    nodes,
    services: services
      .map(s => {
        const st = m.services.status(s)
        return {
          id: s.ID,
          name: s.Spec.Name,
          image: s.Spec.TaskTemplate.ContainerSpec.Image,
          mode: modeKind(s.Spec),
          running: st.RunningTasks,
          desired: st.DesiredTasks,
          ...(isJob(s.Spec) ? { completed: { done: st.CompletedTasks, of: s.Spec.Mode.ReplicatedJob ? (s.Spec.Mode.ReplicatedJob.TotalCompletions ?? 0) : st.DesiredTasks + st.CompletedTasks } } : {}),
          ports: (s.Endpoint.Ports ?? []).map(p => `${p.PublishedPort ?? ''}:${p.TargetPort}/${p.Protocol ?? 'tcp'}${p.PublishMode === 'host' ? ' (host)' : ''}`),
        }
      })
      .sort((a, b) => a.name.localeCompare(b.name)),
    tasks: m.services
      .tasks(new Map(), () => undefined)
      .filter(shown)
      .map(t => ({
        id: t.ID,
        name: `${names.get(t.ServiceID) ?? t.ServiceID}.${t.Slot || t.NodeID}`,
        service: names.get(t.ServiceID) ?? t.ServiceID,
        ...(t.NodeID ? { node: t.NodeID } : {}),
        state: t.Status.State,
        desired: t.DesiredState,
        ...(t.Status.Err ? { err: t.Status.Err } : {}),
      }))
      .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true })),
  }
}
