import { newId } from '../ids.js'
import { effective } from '../service-spec.js'
import type { RestartPolicy, Service } from '../../types/service.js'
import { isRunDesired, isTerminal, type Task } from '../../types/task.js'
import { historyKept, trimHistory } from './history.js'
import { byAge, iso, type Pass } from './pass.js'
import { holdOrStart, OLD_TASK_TIMEOUT_MS, restartDecision } from './restart.js'

/**
 * Job services (swarmkit's orchestrator/jobs): tasks that run to completion
 * rather than forever. A replicated job runs TotalCompletions tasks, slots 0
 * to N-1, at most MaxConcurrent at once; a global job one task per eligible
 * node. Every task belongs to the service's JobIteration: an update starts a
 * new iteration, whose tasks run afresh while the last one's still running
 * are removed. A task that fails is replaced in its slot as the restart
 * policy says (`any` acts as `on-failure`: a completed task is done); unlike
 * swarmkit, a slot whose policy gives up stays failed rather than being
 * filled again, so max attempts and condition none hold for jobs too.
 */
export function reconcileJob(p: Pass, svc: Service, taskHistory: number): void {
  const iteration = svc.JobStatus?.JobIteration.Index ?? 0
  const global = !!svc.Spec.Mode.GlobalJob
  const restart = jobRestart(effective(svc.Spec).restart)
  const groups = p.slots(svc, global)
  const wanted: string[] = []
  if (global) {
    for (const n of p.nodes) if (p.plan.eligible(svc, n.id)) wanted.push(n.id)
  } else {
    for (let i = 0; i < (svc.Spec.Mode.ReplicatedJob?.TotalCompletions ?? 1); i++) wanted.push(String(i))
  }
  const maxConcurrent = global ? Infinity : (svc.Spec.Mode.ReplicatedJob?.MaxConcurrent ?? 1)
  const newTask = (key: string, desired: 'complete' | 'ready'): void => {
    const newest = Math.max(0, ...(groups.get(key) ?? []).map(x => Date.parse(x.CreatedAt)))
    p.put({
      ID: newId(),
      Version: { Index: 1 },
      CreatedAt: iso(Math.max(p.now, newest + 1)),
      UpdatedAt: iso(p.now),
      Labels: {},
      Spec: svc.Spec.TaskTemplate,
      SpecVersion: { Index: svc.Version.Index },
      ServiceID: svc.ID,
      ...(global ? { NodeID: key, Slot: 0 } : { Slot: Number(key) }),
      JobIteration: { Index: iteration },
      Status: { Timestamp: iso(p.now), State: global ? 'assigned' : 'pending', Message: global ? 'scheduler assigned task to node' : 'pending task scheduling' },
      DesiredState: desired,
    })
  }

  let active = 0
  const free: string[] = []
  for (const key of wanted) {
    const group = (groups.get(key) ?? []).filter(t => t.JobIteration?.Index === iteration).sort(byAge)
    if (group.some(t => t.Status.State === 'complete')) continue
    for (let i = 0; i < group.length; i++) {
      const t = group[i]!
      // Ended by itself (failed, rejected), or its node can no longer run it.
      if (isRunDesired(t.DesiredState) && (isTerminal(t.Status.State) || p.invalidNode(t))) group[i] = p.desire(t, 'shutdown')
    }
    const live = group.filter(t => isRunDesired(t.DesiredState) && !isTerminal(t.Status.State))
    const held = live.find(t => t.DesiredState === 'ready')
    if (held) holdOrStart(p, held, group, restart, 'complete')
    if (live.length) {
      active++
      continue
    }
    const last = group.at(-1)
    if (!last) {
      free.push(key)
      continue
    }
    const node = last.NodeID ? p.nodeById.get(last.NodeID) : undefined
    if (!isTerminal(last.Status.State) && node?.ready && p.now < Date.parse(last.UpdatedAt) + OLD_TASK_TIMEOUT_MS) {
      // Still stopping on a live node: its replacement waits for it, as in a service's slot.
      p.wakeAt(Date.parse(last.UpdatedAt) + OLD_TASK_TIMEOUT_MS)
      active++
      continue
    }
    const decision = restartDecision(last, group, svc.Spec.TaskTemplate, restart, p.now)
    if ('never' in decision) continue
    active++
    if ('at' in decision) {
      newTask(key, 'ready')
      p.wakeAt(decision.at)
    } else newTask(key, 'complete')
  }
  for (const key of free.slice(0, Math.max(0, maxConcurrent - active))) newTask(key, 'complete')

  // The last iteration's tasks that still run are removed, the ended ones stay as history; a node no
  // longer eligible stops its task, and slots past TotalCompletions (scaled down) go.
  const keys = new Set(wanted)
  for (const [key, group] of groups) {
    for (const t of group) {
      if (t.JobIteration?.Index === iteration && keys.has(key)) continue
      if (t.JobIteration?.Index === iteration && global) {
        if (isRunDesired(t.DesiredState) && !isTerminal(t.Status.State)) p.desire(t, 'shutdown')
      } else if (isTerminal(t.Status.State) && t.DesiredState === 'remove') p.del(t)
      else if (!isTerminal(t.Status.State) && t.DesiredState !== 'remove') p.reapOrRemove(t)
    }
  }
  trimHistory(p, groups.values(), historyKept(taskHistory, restart.MaxAttempts))
}

/** Swarm's restart policy for jobs: `any` restarts failures only, since a completed task is the goal. */
function jobRestart(rp: Required<RestartPolicy>): Required<RestartPolicy> {
  return rp.Condition === 'any' ? { ...rp, Condition: 'on-failure' } : rp
}
