import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { base36 } from '../control/identity.js'
import { effective } from './service-spec.js'
import type { Planner } from './placement.js'
import type { SchedNode } from './scheduler.js'
import type { Mutation, Store } from './store.js'
import { isTerminal, stateRank, type Service, type Task, type TaskSpec, type TaskStatus, type UpdateConfig } from './types.js'

/** A node as the orchestrator sees it: the store's record joined with liveness (unknown: not heard from since the manager started). */
export type NodeInfo = SchedNode & { unknown?: boolean }

export interface Clock {
  now(): number
}

/** Swarm keeps five tasks of history per slot (TaskHistoryRetentionLimit). */
export const TASK_HISTORY = 5
/** How long a slot waits for its old task to stop on a live node before replacing it anyway (swarmkit's defaultOldTaskTimeout). */
const OLD_TASK_TIMEOUT_MS = 60_000

const ms = (ns: number | undefined): number => Math.floor((ns ?? 0) / 1e6)
const iso = (t: number): string => new Date(t).toISOString()
export const newId = (): string => base36(randomBytes(16), 25)
const sameSpec = (a: TaskSpec, b: TaskSpec): boolean => JSON.stringify(a) === JSON.stringify(b)
/** Desired running (or held ready) and not observed over: the task occupies its slot. */
const isLive = (t: Task): boolean => stateRank(t.DesiredState) <= stateRank('running') && !isTerminal(t.Status.State)
const byAge = (a: Task, b: Task): number => a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID)

/**
 * The manager's reconciliation loop: it turns services into tasks and keeps
 * them so. Replicated services own slots 1..N, global services one task per
 * eligible node; failed tasks restart per the restart policy; tasks on nodes
 * that are down or drained are replaced at once; rolling updates and
 * rollbacks go slot by slot; history is trimmed to five tasks per slot. It
 * reads the store and the node view, and writes its decisions back in one
 * commit per pass; it never touches sockets.
 */
export class Orchestrator {
  private running: Promise<void> | undefined
  private again = false
  private wake: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly d: {
      store: Store
      clock: Clock
      nodes: () => NodeInfo[]
      /** The scheduler for one pass, loaded with the nodes and the tasks that hold them. */
      planner: (nodes: NodeInfo[], live: Task[], services: Service[]) => Planner
      /** Called after a pass committed changes (the dispatcher pushes assignments). */
      changed: () => void
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
          await this.pass()
        } while (this.again && !this.closed)
      } catch (e) {
        this.d.log.error({ err: e }, 'orchestrator pass failed')
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  close(): void {
    this.closed = true
    if (this.wake) clearTimeout(this.wake)
  }

  /** Observed states from a node's agent: only that node's tasks, and only forward. */
  async report(nodeId: string, updates: { id: string; status: TaskStatus }[]): Promise<void> {
    const muts: Mutation[] = []
    for (const u of updates) {
      const t = this.d.store.get<Task>('tasks', u.id)
      if (!t || t.NodeID !== nodeId || !u.status || stateRank(u.status.State) < 0) continue
      if (stateRank(u.status.State) < stateRank(t.Status.State)) continue
      if (u.status.State === t.Status.State && JSON.stringify(u.status) === JSON.stringify(t.Status)) continue
      muts.push({ op: 'put', table: 'tasks', id: t.ID, value: { ...t, Status: u.status, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(this.d.clock.now()) } })
    }
    if (muts.length === 0) return
    await this.d.store.commit(muts)
    void this.kick()
  }

  private at(when: number): void {
    const delay = Math.max(0, when - this.d.clock.now())
    if (this.wake) clearTimeout(this.wake)
    this.wake = setTimeout(() => {
      this.wake = undefined
      void this.kick()
    }, delay + 5)
    this.wake.unref()
  }

  private async pass(): Promise<void> {
    const now = this.d.clock.now()
    const nodes = this.d.nodes()
    const nodeById = new Map(nodes.map(n => [n.id, n]))
    const services = this.d.store.list<Service>('services')
    const tasks = this.d.store.list<Task>('tasks')
    const plan = this.d.planner(nodes, tasks.filter(t => t.NodeID && isLive(t)), services)
    const byService = new Map<string, Task[]>()
    for (const t of tasks) {
      let l = byService.get(t.ServiceID)
      if (!l) byService.set(t.ServiceID, (l = []))
      l.push(t)
    }
    const muts = new Map<string, Mutation>()
    const put = (t: Task): void => void muts.set(`tasks/${t.ID}`, { op: 'put', table: 'tasks', id: t.ID, value: t })
    const del = (t: Task): void => void muts.set(`tasks/${t.ID}`, { op: 'delete', table: 'tasks', id: t.ID })
    const desire = (t: Task, state: 'shutdown' | 'remove'): Task => {
      const n = { ...t, DesiredState: state, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(now) }
      put(n)
      return n
    }
    let nextWake = Infinity
    const wakeAt = (t: number): void => void (nextWake = Math.min(nextWake, t))

    // Tasks whose service is gone: stop them, then forget them.
    const serviceIds = new Set(services.map(s => s.ID))
    for (const [sid, list] of byService) {
      if (serviceIds.has(sid)) continue
      for (const t of list) reapOrRemove(t)
    }
    function reapOrRemove(t: Task): void {
      const node = t.NodeID ? nodeById.get(t.NodeID) : undefined
      if (isTerminal(t.Status.State) || !node?.ready || !t.NodeID) del(t)
      else if (t.DesiredState !== 'remove') desire(t, 'remove')
    }

    const invalidNode = (t: Task): boolean => {
      if (!t.NodeID) return false
      const n = nodeById.get(t.NodeID)
      return !n || (!n.ready && !n.unknown) || n.availability === 'drain'
    }

    for (const svc of services) {
      const eff = effective(svc.Spec)
      const list = (byService.get(svc.ID) ?? []).map(t => (muts.has(`tasks/${t.ID}`) ? ((muts.get(`tasks/${t.ID}`) as { value: Task }).value ?? t) : t))
      const global = !!svc.Spec.Mode.Global
      const groups = new Map<string, Task[]>()
      for (const t of list) {
        const key = global ? (t.NodeID ?? '') : String(t.Slot ?? 0)
        let g = groups.get(key)
        if (!g) groups.set(key, (g = []))
        g.push(t)
      }
      const wanted = new Set<string>()
      if (global) {
        for (const n of nodes) if (plan.eligible(svc, n.id) || (n.unknown && groups.has(n.id))) wanted.add(n.id)
      } else {
        for (let i = 1; i <= (svc.Spec.Mode.Replicated?.Replicas ?? 1); i++) wanted.add(String(i))
      }
      const updating = svc.UpdateStatus && (svc.UpdateStatus.State === 'updating' || svc.UpdateStatus.State === 'rollback_started')
      const paused = svc.UpdateStatus && (svc.UpdateStatus.State === 'paused' || svc.UpdateStatus.State === 'rollback_paused')
      const template = svc.Spec.TaskTemplate
      const newTask = (key: string, desired: 'running' = 'running'): Task => {
        // Within a slot, creation times are unique and increasing, so the slot's newest task is always known.
        const newest = Math.max(0, ...(groups.get(key) ?? []).map(x => Date.parse(x.CreatedAt)))
        const t: Task = {
          ID: newId(),
          Version: { Index: 1 },
          CreatedAt: iso(Math.max(now, newest + 1)),
          UpdatedAt: iso(now),
          Labels: {},
          Spec: template,
          SpecVersion: { Index: svc.Version.Index },
          ServiceID: svc.ID,
          ...(global ? { NodeID: key, Slot: 0 } : { Slot: Number(key) }),
          Status: { Timestamp: iso(now), State: global ? 'assigned' : 'pending', Message: global ? 'scheduler assigned task to node' : 'pending task scheduling' },
          DesiredState: desired,
        }
        put(t)
        return t
      }
      let dirtyLeft = 0
      let inFlight = 0
      let failure: Task | undefined
      let notStable = false
      const startedAt = svc.UpdateStatus?.StartedAt ? Date.parse(svc.UpdateStatus.StartedAt) : 0
      const cfg: Required<UpdateConfig> = svc.UpdateStatus?.State === 'rollback_started' ? eff.rollback : eff.update
      const monitorMs = ms(cfg.Monitor)
      const delayMs = ms(cfg.Delay)
      const dirtySlots: { key: string; live: Task[] }[] = []

      for (const [key, group0] of groups) {
        const group = group0.sort(byAge)
        if (!wanted.has(key)) {
          // Scaled down, or a global service's node no longer eligible.
          for (const t of group) {
            if (global && !isTerminal(t.Status.State) && t.DesiredState === 'running') desire(t, 'shutdown')
            else if (!global) reapOrRemove(t)
          }
          continue
        }
        // Tasks that ended by themselves: no longer desired (the restart decision follows below).
        for (let i = 0; i < group.length; i++) {
          const t = group[i]!
          if (t.DesiredState === 'running' && isTerminal(t.Status.State)) group[i] = desire(t, 'shutdown')
          else if (isLive(t) && invalidNode(t)) group[i] = desire(t, 'shutdown')
        }
        const live = group.filter(isLive)
        // One slot, one task: once a task of the current spec runs, any other live task of the slot stops
        // (start-first updates; a node back from a partition with the slot's old task).
        const current = live.find(t => t.Status.State === 'running' && sameSpec(t.Spec, template))
        if (current) {
          for (const t of live) if (t !== current) desire(t, 'shutdown')
        }
        const occupant = current ?? live.at(-1)
        if (occupant) {
          if (!sameSpec(occupant.Spec, template)) {
            dirtySlots.push({ key, live })
            dirtyLeft++
          } else if (startedAt && Date.parse(occupant.CreatedAt) >= startedAt) {
            // Updated in this update: in flight until it has run for `delay`, unstable until `monitor`.
            const runningSince = occupant.Status.State === 'running' ? Date.parse(occupant.Status.Timestamp) : undefined
            if (runningSince === undefined || now < runningSince + delayMs) {
              inFlight++
              wakeAt((runningSince ?? now) + delayMs)
            }
            if (runningSince === undefined || now < runningSince + monitorMs) {
              notStable = true
              if (runningSince !== undefined) wakeAt(runningSince + monitorMs)
            }
          }
          continue
        }
        // The slot is empty: replace its task, per the restart policy when it ended by itself.
        // An update is not done while a slot waits, and the slot counts as one in flight.
        if (startedAt) {
          notStable = true
          inFlight++
        }
        const last = group.at(-1)
        if (last) {
          const node = last.NodeID ? nodeById.get(last.NodeID) : undefined
          const stopping = !isTerminal(last.Status.State) && node?.ready
          if (stopping && now < Date.parse(last.UpdatedAt) + OLD_TASK_TIMEOUT_MS) {
            wakeAt(Date.parse(last.UpdatedAt) + OLD_TASK_TIMEOUT_MS)
            continue
          }
          const endedByItself = ['failed', 'complete', 'rejected'].includes(last.Status.State)
          if (endedByItself) {
            if (startedAt && sameSpec(last.Spec, template) && Date.parse(last.CreatedAt) >= startedAt) {
              // A task of this update that failed, or finished within the monitor period, counts against it.
              if (last.Status.State !== 'complete' || Date.parse(last.Status.Timestamp) - Date.parse(last.CreatedAt) < monitorMs) failure ??= last
            }
            const rp = eff.restart
            if (rp.Condition === 'none' || (rp.Condition === 'on-failure' && last.Status.State === 'complete')) continue
            if (rp.MaxAttempts > 0) {
              const window = ms(rp.Window)
              const attempts = group.filter(t => sameSpec(t.Spec, template) && (window === 0 || Date.parse(t.CreatedAt) >= now - window)).length
              if (attempts > rp.MaxAttempts) continue
            }
            const due = Date.parse(last.Status.Timestamp) + ms(rp.Delay)
            if (now < due) {
              wakeAt(due)
              continue
            }
          }
        }
        newTask(key)
      }
      // Slots (or eligible nodes) that have no task at all yet.
      for (const key of wanted) if (!groups.has(key)) newTask(key)

      // The rolling update: start as many dirty slots as parallelism allows.
      if (updating && !paused) {
        const parallelism = cfg.Parallelism === 0 ? Infinity : cfg.Parallelism
        dirtySlots.sort((a, b) => Number(a.key) - Number(b.key) || a.key.localeCompare(b.key))
        for (const { key, live } of dirtySlots) {
          if (inFlight >= parallelism) break
          if (cfg.Order === 'start-first') newTask(key)
          else for (const t of live) desire(t, 'shutdown')
          inFlight++
        }
        const update = await this.updateState(svc, { dirtyLeft, inFlight, notStable, failure, cfg, now, total: wanted.size })
        if (update) muts.set(`services/${svc.ID}`, { op: 'put', table: 'services', id: svc.ID, value: update })
      }
      // History: the newest few ended tasks of each slot stay for `service ps`.
      const keep = Math.max(TASK_HISTORY, eff.restart.MaxAttempts + 1)
      for (const group of groups.values()) {
        const over = group.filter(t => !isLive(t) && isTerminal(t.Status.State)).sort(byAge)
        for (const t of over.slice(0, Math.max(0, over.length - keep))) del(t)
      }
    }

    // Placement of what waits for a node, one service at a time.
    const pendingBySvc = new Map<string, Task[]>()
    for (const m of muts.values()) {
      if (m.op !== 'put' || m.table !== 'tasks') continue
      const t = m.value as Task
      if (!t.NodeID && t.Status.State === 'pending' && t.DesiredState === 'running') pendingBySvc.set(t.ServiceID, [...(pendingBySvc.get(t.ServiceID) ?? []), t])
    }
    for (const t of tasks) {
      if (muts.has(`tasks/${t.ID}`)) continue
      if (!t.NodeID && t.Status.State === 'pending' && t.DesiredState === 'running') pendingBySvc.set(t.ServiceID, [...(pendingBySvc.get(t.ServiceID) ?? []), t])
    }
    if (pendingBySvc.size > 0) {
      // The scheduler counts what this pass changed too (replacements of tasks it just stopped, new global tasks).
      const changed = [...muts.values()].filter(m => m.op === 'put' && m.table === 'tasks').map(m => (m as { value: Task }).value)
      const placer = this.d.planner(nodes, [...tasks.filter(t => !muts.has(`tasks/${t.ID}`)), ...changed].filter(t => t.NodeID && isLive(t)), services)
      for (const [sid, pending] of pendingBySvc) {
        const svc = services.find(s => s.ID === sid)
        if (!svc) continue
        const placed = placer.place(svc, pending)
        for (const t of pending) {
          const r = placed.get(t.ID)
          if (r === undefined) continue
          if (typeof r === 'string') {
            const n: Task = { ...t, NodeID: r, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(now), Status: { Timestamp: iso(now), State: 'assigned', Message: 'scheduler assigned task to node' } }
            put(n)
          } else if (t.Status.Err !== r.error) {
            put({ ...t, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(now), Status: { ...t.Status, Timestamp: iso(now), Err: r.error } })
          }
        }
      }
    }
    if (muts.size > 0) {
      await this.d.store.commit([...muts.values()])
      this.d.changed()
    }
    if (nextWake < Infinity) this.at(nextWake)
  }

  /** The update's next state: paused, rolled back or completed, as swarm's updater decides. */
  private async updateState(
    svc: Service,
    o: { dirtyLeft: number; inFlight: number; notStable: boolean; failure: Task | undefined; cfg: Required<UpdateConfig>; now: number; total: number },
  ): Promise<Service | undefined> {
    const rollingBack = svc.UpdateStatus?.State === 'rollback_started'
    const bump = (s: Partial<Service>): Service => ({ ...svc, ...s, Version: { Index: svc.Version.Index + 1 }, UpdatedAt: iso(o.now) })
    if (o.failure && o.cfg.FailureAction !== 'continue') {
      const failed = this.failures(svc)
      if (failed / Math.max(1, o.total) > o.cfg.MaxFailureRatio) {
        const why = `update ${rollingBack ? 'rollback ' : ''}paused due to failure or early termination of task ${o.failure.ID}`
        if (rollingBack || o.cfg.FailureAction === 'pause') {
          return bump({ UpdateStatus: { ...svc.UpdateStatus!, State: rollingBack ? 'rollback_paused' : 'paused', Message: why } })
        }
        if (svc.PreviousSpec) {
          return bump({
            Spec: svc.PreviousSpec,
            PreviousSpec: svc.Spec,
            UpdateStatus: { State: 'rollback_started', StartedAt: iso(o.now), Message: `update rolled back due to failure or early termination of task ${o.failure.ID}` },
          })
        }
      }
    }
    if (o.dirtyLeft === 0 && o.inFlight === 0 && !o.notStable) {
      return bump({
        UpdateStatus: { State: rollingBack ? 'rollback_completed' : 'completed', StartedAt: svc.UpdateStatus!.StartedAt, CompletedAt: iso(o.now), Message: rollingBack ? 'rollback completed' : 'update completed' },
      })
    }
    return undefined
  }

  /** Tasks of the current update that failed: ended by themselves, or within the monitor period. */
  private failures(svc: Service): number {
    const startedAt = Date.parse(svc.UpdateStatus?.StartedAt ?? '') || 0
    return this.d.store
      .list<Task>('tasks')
      .filter(t => t.ServiceID === svc.ID && Date.parse(t.CreatedAt) >= startedAt && ['failed', 'rejected'].includes(t.Status.State) && sameSpec(t.Spec, svc.Spec.TaskTemplate)).length
  }
}
