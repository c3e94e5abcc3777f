import type { RestartPolicy, TaskSpec } from '../../types/service.js'
import { isTerminal, type Task } from '../../types/task.js'
import { ms, sameSpec, type Pass } from './pass.js'

/** How long a slot waits for its old task to stop on a live node before replacing it anyway (swarmkit's defaultOldTaskTimeout). */
export const OLD_TASK_TIMEOUT_MS = 60_000

/** Whether an empty slot gets a new task: now, never (the policy says no), or at a later time (the restart delay). */
export type RestartDecision = { now: true } | { never: true } | { at: number }

/**
 * Swarm's restart policy for a slot whose last task ended by itself:
 * condition (none, on-failure, any), max attempts within the window (the
 * slot's tasks of the current spec count as attempts), and the delay after
 * the task ended. A task that did not end by itself (it was stopped, its
 * node went down) is replaced at once.
 */
export function restartDecision(last: Task, slot: Task[], template: TaskSpec, rp: Required<RestartPolicy>, now: number): RestartDecision {
  if (!['failed', 'complete', 'rejected'].includes(last.Status.State)) return { now: true }
  if (rp.Condition === 'none' || (rp.Condition === 'on-failure' && last.Status.State === 'complete')) return { never: true }
  if (rp.MaxAttempts > 0) {
    const window = ms(rp.Window)
    const attempts = slot.filter(t => sameSpec(t.Spec, template) && (window === 0 || Date.parse(t.CreatedAt) >= now - window)).length
    if (attempts > rp.MaxAttempts) return { never: true }
  }
  const due = startAt(last, rp)
  return now < due ? { at: due } : { now: true }
}

/** When a replacement held at desired `ready` may start: the restart delay after its predecessor ended. */
export const startAt = (predecessor: Task, rp: Required<RestartPolicy>): number => Date.parse(predecessor.Status.Timestamp) + ms(rp.Delay)

/**
 * A replacement held at `ready` starts (as `running`, or `complete` for a
 * job's task) once its restart delay, counted from its predecessor's end, is over.
 */
export function holdOrStart(p: Pass, held: Task, slot: Task[], rp: Required<RestartPolicy>, start: 'running' | 'complete'): void {
  const predecessor = slot.filter(t => t !== held && isTerminal(t.Status.State) && t.CreatedAt < held.CreatedAt).at(-1)
  const due = predecessor ? startAt(predecessor, rp) : p.now
  if (p.now >= due) p.desire(held, start)
  else p.wakeAt(due)
}
