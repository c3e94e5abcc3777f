import { newId } from '../ids.js'
import { effective } from '../service-spec.js'
import type { Service, UpdateConfig } from '../../types/service.js'
import { isTerminal, type Task } from '../../types/task.js'
import { trimHistory, historyKept } from './history.js'
import { byAge, isLive, iso, ms, sameSpec, type Pass } from './pass.js'
import { holdOrStart, OLD_TASK_TIMEOUT_MS, restartDecision } from './restart.js'

/** Where one service's rolling update stands after its slots were reconciled: what the updater works from. */
export interface UpdateProgress {
  /** Slots whose task runs an older spec, with their live tasks. */
  dirtySlots: { key: string; live: Task[] }[]
  /** Slots updated in this update that have not run for `delay` yet (or wait for a task): they count against parallelism. */
  inFlight: number
  /** Some slot updated in this update has not run for `monitor` yet. */
  notStable: boolean
  /** A task of this update that failed, or ended within the monitor period. */
  failure: Task | undefined
  cfg: Required<UpdateConfig>
  /** The number of slots (or eligible nodes). */
  total: number
  /** Starts a new task in a slot (the updater's start-first). */
  newTask: (key: string, desired?: 'running' | 'ready') => Task
}

/**
 * One service's slots (swarmkit's replicated and global orchestrators):
 * slots 1..N of a replicated service, or one per eligible node of a global
 * one. Each slot keeps exactly one live task: tasks that ended or whose node
 * went away stop, a slot never runs twice, an empty slot gets a new task
 * (per the restart policy when its task ended by itself), and scaled-down
 * slots go. Returns the update's progress for the updater.
 */
export function reconcileSlots(p: Pass, svc: Service, taskHistory: number): UpdateProgress {
  const eff = effective(svc.Spec)
  const global = !!svc.Spec.Mode.Global
  const groups = p.slots(svc, global)
  const wanted = new Set<string>()
  if (global) {
    for (const n of p.nodes) if (p.plan.eligible(svc, n.id) || (n.unknown && groups.has(n.id))) wanted.add(n.id)
  } else {
    for (let i = 1; i <= (svc.Spec.Mode.Replicated?.Replicas ?? 1); i++) wanted.add(String(i))
  }
  const template = svc.Spec.TaskTemplate
  const newTask = (key: string, desired: 'running' | 'ready' = 'running'): Task => {
    // Within a slot, creation times are unique and increasing, so the slot's newest task is always known.
    const newest = Math.max(0, ...(groups.get(key) ?? []).map(x => Date.parse(x.CreatedAt)))
    const t: Task = {
      ID: newId(),
      Version: { Index: 1 },
      CreatedAt: iso(Math.max(p.now, newest + 1)),
      UpdatedAt: iso(p.now),
      Labels: {},
      Spec: template,
      SpecVersion: { Index: svc.Version.Index },
      ServiceID: svc.ID,
      ...(global ? { NodeID: key, Slot: 0 } : { Slot: Number(key) }),
      Status: { Timestamp: iso(p.now), State: global ? 'assigned' : 'pending', Message: global ? 'scheduler assigned task to node' : 'pending task scheduling' },
      DesiredState: desired,
    }
    p.put(t)
    return t
  }
  const progress: UpdateProgress = {
    dirtySlots: [],
    inFlight: 0,
    notStable: false,
    failure: undefined,
    cfg: svc.UpdateStatus?.State === 'rollback_started' ? eff.rollback : eff.update,
    total: wanted.size,
    newTask,
  }
  const startedAt = svc.UpdateStatus?.StartedAt ? Date.parse(svc.UpdateStatus.StartedAt) : 0
  const monitorMs = ms(progress.cfg.Monitor)
  const delayMs = ms(progress.cfg.Delay)

  for (const [key, group] of groups) {
    group.sort(byAge)
    if (!wanted.has(key)) {
      // Scaled down, or a global service's node no longer eligible.
      for (const t of group) {
        if (global && !isTerminal(t.Status.State) && t.DesiredState === 'running') p.desire(t, 'shutdown')
        else if (!global) p.reapOrRemove(t)
      }
      continue
    }
    // Tasks that ended by themselves: no longer desired (the restart decision follows below).
    for (let i = 0; i < group.length; i++) {
      const t = group[i]!
      if ((t.DesiredState === 'running' || t.DesiredState === 'ready') && isTerminal(t.Status.State)) group[i] = p.desire(t, 'shutdown')
      else if (isLive(t) && p.invalidNode(t)) group[i] = p.desire(t, 'shutdown')
    }
    const live = group.filter(isLive)
    // One slot, one task: once a task of the current spec runs, any other live task of the slot stops
    // (start-first updates; a node back from a partition with the slot's old task).
    const current = live.find(t => t.Status.State === 'running' && sameSpec(t.Spec, template))
    if (current) {
      for (const t of live) if (t !== current) p.desire(t, 'shutdown')
    }
    const occupant = current ?? live.at(-1)
    if (occupant) {
      if (occupant.DesiredState === 'ready') holdOrStart(p, occupant, group, eff.restart, 'running')
      if (!sameSpec(occupant.Spec, template)) {
        progress.dirtySlots.push({ key, live })
      } else if (startedAt && Date.parse(occupant.CreatedAt) >= startedAt) {
        // Updated in this update: in flight until it has run for `delay`, unstable until `monitor`.
        const runningSince = occupant.Status.State === 'running' ? Date.parse(occupant.Status.Timestamp) : undefined
        if (runningSince === undefined || p.now < runningSince + delayMs) {
          progress.inFlight++
          p.wakeAt((runningSince ?? p.now) + delayMs)
        }
        if (runningSince === undefined || p.now < runningSince + monitorMs) {
          progress.notStable = true
          if (runningSince !== undefined) p.wakeAt(runningSince + monitorMs)
        }
      }
      continue
    }
    // The slot is empty: an update is not done while a slot waits, and the slot counts as one in flight.
    if (startedAt) {
      progress.notStable = true
      progress.inFlight++
    }
    const last = group.at(-1)
    if (last) {
      const node = last.NodeID ? p.nodeById.get(last.NodeID) : undefined
      const stopping = !isTerminal(last.Status.State) && node?.ready
      if (stopping && p.now < Date.parse(last.UpdatedAt) + OLD_TASK_TIMEOUT_MS) {
        p.wakeAt(Date.parse(last.UpdatedAt) + OLD_TASK_TIMEOUT_MS)
        continue
      }
      const endedByItself = ['failed', 'complete', 'rejected'].includes(last.Status.State)
      if (endedByItself && startedAt && sameSpec(last.Spec, template) && Date.parse(last.CreatedAt) >= startedAt) {
        // A task of this update that failed, or finished within the monitor period, counts against it.
        if (last.Status.State !== 'complete' || Date.parse(last.Status.Timestamp) - Date.parse(last.CreatedAt) < monitorMs) progress.failure ??= last
      }
      const decision = restartDecision(last, group, template, eff.restart, p.now)
      if ('never' in decision) continue
      if ('at' in decision) {
        // As swarmkit's restart supervisor: the replacement exists at once, held at desired `ready`
        // (placed and prepared on its node), and is started once the delay is over.
        newTask(key, 'ready')
        p.wakeAt(decision.at)
        continue
      }
    }
    newTask(key)
  }
  // Slots (or eligible nodes) that have no task at all yet.
  for (const key of wanted) if (!groups.has(key)) newTask(key)
  trimHistory(p, groups.values(), historyKept(taskHistory, eff.restart.MaxAttempts))
  return progress
}

