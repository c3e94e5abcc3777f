import type { Service, TaskSpec } from '../../types/service.js'
import { isTerminal, stateRank, type Task } from '../../types/task.js'
import type { Planner } from '../placement.js'
import type { SchedNode } from '../sched-node.js'
import type { Mutation } from '../store.js'

/** A node as the orchestrator sees it: the store's record joined with liveness (unknown: not heard from since the manager started). */
export type NodeInfo = SchedNode & { unknown?: boolean }

export const ms = (ns: number | undefined): number => Math.floor((ns ?? 0) / 1e6)
export const iso = (t: number): string => new Date(t).toISOString()
export const sameSpec = (a: TaskSpec, b: TaskSpec): boolean => JSON.stringify(a) === JSON.stringify(b)
/** Desired running (or held ready, or a job's task to run to completion) and not observed over: the task occupies its slot. */
export const isLive = (t: Task): boolean => (stateRank(t.DesiredState) <= stateRank('running') || t.DesiredState === 'complete') && !isTerminal(t.Status.State)
export const byAge = (a: Task, b: Task): number => a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID)

/**
 * One reconciliation pass's view and its decisions: what the store held
 * when the pass began, the nodes as they stand, and the writes the pass
 * will commit together. Every concern of the pass (orphans, slots, restart,
 * update, history, placement) reads and writes through it.
 */
export class Pass {
  readonly nodeById: Map<string, NodeInfo>
  readonly byService = new Map<string, Task[]>()
  readonly muts = new Map<string, Mutation>()
  /** The earliest time a later pass has something to do (a restart delay, an update's delay or monitor). */
  nextWake = Infinity

  constructor(
    readonly now: number,
    readonly nodes: NodeInfo[],
    readonly services: Service[],
    readonly tasks: Task[],
    readonly plan: Planner,
  ) {
    this.nodeById = new Map(nodes.map(n => [n.id, n]))
    for (const t of tasks) {
      let l = this.byService.get(t.ServiceID)
      if (!l) this.byService.set(t.ServiceID, (l = []))
      l.push(t)
    }
  }

  put(t: Task): void {
    this.muts.set(`tasks/${t.ID}`, { op: 'put', table: 'tasks', id: t.ID, value: t })
  }

  del(t: Task): void {
    this.muts.set(`tasks/${t.ID}`, { op: 'delete', table: 'tasks', id: t.ID })
  }

  putService(s: Service): void {
    this.muts.set(`services/${s.ID}`, { op: 'put', table: 'services', id: s.ID, value: s })
  }

  /** The task as this pass has it: with the change the pass made to it, if any. */
  current(t: Task): Task {
    const m = this.muts.get(`tasks/${t.ID}`)
    return m?.op === 'put' ? (m.value as Task) : t
  }

  /** A service's tasks as this pass has them, by slot: the slot number, or the node for a global service. */
  slots(svc: Service, global: boolean): Map<string, Task[]> {
    const groups = new Map<string, Task[]>()
    for (const t of (this.byService.get(svc.ID) ?? []).map(x => this.current(x))) {
      const key = global ? (t.NodeID ?? '') : String(t.Slot ?? 0)
      let g = groups.get(key)
      if (!g) groups.set(key, (g = []))
      g.push(t)
    }
    return groups
  }

  changed(t: Task): boolean {
    return this.muts.has(`tasks/${t.ID}`)
  }

  /** The task is no longer wanted running: it is to stop, or (`remove`) to stop and be forgotten; or a held one (`ready`) may start. */
  desire(t: Task, state: 'shutdown' | 'remove' | 'running' | 'complete'): Task {
    const n = { ...t, DesiredState: state, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(this.now) }
    this.put(n)
    return n
  }

  wakeAt(t: number): void {
    this.nextWake = Math.min(this.nextWake, t)
  }

  /** Stops a task that is still running somewhere reachable; forgets one that is over or whose node is gone. */
  reapOrRemove(t: Task): void {
    const node = t.NodeID ? this.nodeById.get(t.NodeID) : undefined
    if (isTerminal(t.Status.State) || !node?.ready || !t.NodeID) this.del(t)
    else if (t.DesiredState !== 'remove') this.desire(t, 'remove')
  }

  /** The task's node can no longer run it: gone, down (not merely unknown), or drained. */
  invalidNode(t: Task): boolean {
    if (!t.NodeID) return false
    const n = this.nodeById.get(t.NodeID)
    return !n || (!n.ready && !n.unknown) || n.availability === 'drain'
  }

  /** Tasks this pass wrote (new ones and changed ones). */
  written(): Task[] {
    return [...this.muts.values()].filter(m => m.op === 'put' && m.table === 'tasks').map(m => (m as { value: Task }).value)
  }
}
