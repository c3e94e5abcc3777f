import type { Logger } from 'pino'
import type { Clock, TimerHandle } from '../../gossip/clock.js'
import { TASK_HISTORY } from '../../types/defaults.js'
import { isJob, type Service } from '../../types/service.js'
import { stateRank, type Task, type TaskStatus } from '../../types/task.js'
import type { Planner } from '../placement.js'
import type { StateStore } from '../state-store.js'
import type { Mutation } from '../store.js'
import { assignPending } from './assign.js'
import { allocateAttachments } from './attachments.js'
import { reconcileJob } from './jobs.js'
import { reapOrphans } from './orphans.js'
import { isLive, iso, Pass, type NodeInfo } from './pass.js'
import { reconcileSlots } from './slots.js'
import { advanceUpdate } from './update.js'

export type { NodeInfo } from './pass.js'

/**
 * The manager's reconciliation loop: it turns services into tasks and keeps
 * them so. Each pass reads the store and the node view, runs each concern
 * (orphans, slots with the restart policy, the rolling update, history,
 * placement, the overlay addresses) over one Pass, and writes the decisions back in one commit;
 * it never touches sockets. Its timers (restart delays, an update's delay
 * and monitor) go through the injected clock.
 */
export class Orchestrator {
  private running: Promise<void> | undefined
  private again = false
  private wake: TimerHandle | undefined
  private closed = false
  /** Passes and reports write the same tasks: one at a time, so neither loses the other's write (etcd compares every key). */
  private writing: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly d: {
      store: StateStore
      /** Wall time: tasks' and services' timestamps come from it. */
      clock: Clock
      nodes: () => NodeInfo[]
      /** The scheduler for one pass, loaded with the nodes and the tasks that hold them. */
      planner: (nodes: NodeInfo[], live: Task[], services: Service[]) => Planner
      /** Called after a pass committed changes (the dispatcher pushes assignments). */
      changed: () => void
      /** Ended tasks kept per slot (swarm's task history limit). */
      taskHistory?: () => number
      /** A task's first report of running, this long after it was created (by this clock). */
      taskRunning?: (msSinceCreated: number) => void
      log: Logger
    },
  ) {}

  /** Runs a pass now, or right after the one in progress. */
  kick(): Promise<void> {
    if (this.closed) return Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      try {
        do {
          this.again = false
          await this.exclusive(() => this.pass())
        } while (this.again && !this.closed)
      } catch (e) {
        this.d.log.error({ err: e }, 'orchestrator pass failed')
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  /** No more passes; resolves once the pass in flight (if any) has committed. */
  async close(): Promise<void> {
    this.closed = true
    if (this.wake) this.d.clock.clearTimeout(this.wake)
    this.wake = undefined
    await this.running
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn, fn)
    this.writing = run.catch(() => undefined)
    return run
  }

  /** Observed states from a node's agent: only that node's tasks, and only forward. */
  report(nodeId: string, updates: { id: string; status: TaskStatus }[]): Promise<void> {
    return this.exclusive(() => this.record(nodeId, updates))
  }

  private async record(nodeId: string, updates: { id: string; status: TaskStatus }[]): Promise<void> {
    const muts: Mutation[] = []
    /** The tasks these updates show running for the first time. */
    const running: Task[] = []
    for (const u of updates) {
      const t = this.d.store.get<Task>('tasks', u.id)
      if (!t || t.NodeID !== nodeId || !u.status || stateRank(u.status.State) < 0) continue
      if (stateRank(u.status.State) < stateRank(t.Status.State)) continue
      if (u.status.State === t.Status.State && JSON.stringify(u.status) === JSON.stringify(t.Status)) continue
      if (u.status.State === 'running' && t.Status.State !== 'running') running.push(t)
      muts.push({ op: 'put', table: 'tasks', id: t.ID, value: { ...t, Status: u.status, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(this.d.clock.now()) } })
    }
    if (muts.length === 0) return
    await this.d.store.commit(muts)
    const now = this.d.clock.now()
    for (const t of running) this.d.taskRunning?.(now - Date.parse(t.CreatedAt))
    void this.kick()
  }

  private at(when: number): void {
    if (this.closed) return
    const delay = Math.max(0, when - this.d.clock.now())
    if (this.wake) this.d.clock.clearTimeout(this.wake)
    this.wake = this.d.clock.setTimeout(() => {
      this.wake = undefined
      void this.kick()
    }, delay + 5)
  }

  private async pass(): Promise<void> {
    const nodes = this.d.nodes()
    const services = this.d.store.list<Service>('services')
    const tasks = this.d.store.list<Task>('tasks')
    const p = new Pass(this.d.clock.now(), nodes, services, tasks, this.d.planner(nodes, tasks.filter(t => t.NodeID && isLive(t)), services))
    const history = this.d.taskHistory?.() ?? TASK_HISTORY
    reapOrphans(p)
    for (const svc of services) {
      if (isJob(svc.Spec)) reconcileJob(p, svc, history)
      else advanceUpdate(p, svc, reconcileSlots(p, svc, history))
    }
    assignPending(p, this.d.planner)
    allocateAttachments(p, { networks: this.d.store.list('networks'), vips: this.d.store.list('vips'), nodes: this.d.store.list('attachments') })
    if (p.muts.size > 0) {
      await this.d.store.commit([...p.muts.values()])
      this.d.changed()
    }
    if (p.nextWake < Infinity) this.at(p.nextWake)
  }
}
