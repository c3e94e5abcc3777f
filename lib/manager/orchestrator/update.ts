import type { Service } from '../../types/service.js'
import type { Task } from '../../types/task.js'
import { iso, sameSpec, type Pass } from './pass.js'
import type { UpdateProgress } from './slots.js'

export const isUpdating = (s: Service): boolean => s.UpdateStatus?.State === 'updating' || s.UpdateStatus?.State === 'rollback_started'
const isPaused = (s: Service): boolean => s.UpdateStatus?.State === 'paused' || s.UpdateStatus?.State === 'rollback_paused'

/**
 * The rolling update (swarmkit's updater): start as many dirty slots as
 * parallelism allows, stop-first or start-first, then decide the update's
 * next state.
 */
export function advanceUpdate(p: Pass, svc: Service, u: UpdateProgress): void {
  if (!isUpdating(svc) || isPaused(svc)) return
  const parallelism = u.cfg.Parallelism === 0 ? Infinity : u.cfg.Parallelism
  const dirty = [...u.dirtySlots].sort((a, b) => Number(a.key) - Number(b.key) || a.key.localeCompare(b.key))
  let inFlight = u.inFlight
  for (const { key, live } of dirty) {
    if (inFlight >= parallelism) break
    if (u.cfg.Order === 'start-first') u.newTask(key)
    else for (const t of live) p.desire(t, 'shutdown')
    inFlight++
  }
  const next = updateState(svc, { ...u, inFlight, dirtyLeft: u.dirtySlots.length, failed: failures(p.tasks, svc) }, p.now)
  if (next) p.putService(next)
}

/** Tasks of the current update that failed: ended by themselves, as failed or rejected. */
function failures(tasks: Task[], svc: Service): number {
  const startedAt = Date.parse(svc.UpdateStatus?.StartedAt ?? '') || 0
  return tasks.filter(t => t.ServiceID === svc.ID && Date.parse(t.CreatedAt) >= startedAt && ['failed', 'rejected'].includes(t.Status.State) && sameSpec(t.Spec, svc.Spec.TaskTemplate)).length
}

/** The update's next state: paused, rolled back or completed, as swarm's updater decides; undefined while it goes on. */
export function updateState(
  svc: Service,
  o: Pick<UpdateProgress, 'inFlight' | 'notStable' | 'failure' | 'cfg' | 'total'> & { dirtyLeft: number; failed: number },
  now: number,
): Service | undefined {
  const rollingBack = svc.UpdateStatus?.State === 'rollback_started'
  const bump = (s: Partial<Service>): Service => ({ ...svc, ...s, Version: { Index: svc.Version.Index + 1 }, UpdatedAt: iso(now) })
  if (o.failure && o.cfg.FailureAction !== 'continue' && o.failed / Math.max(1, o.total) > o.cfg.MaxFailureRatio) {
    const why = `update ${rollingBack ? 'rollback ' : ''}paused due to failure or early termination of task ${o.failure.ID}`
    if (rollingBack || o.cfg.FailureAction === 'pause') {
      return bump({ UpdateStatus: { ...svc.UpdateStatus!, State: rollingBack ? 'rollback_paused' : 'paused', Message: why } })
    }
    if (svc.PreviousSpec) {
      return bump({
        Spec: svc.PreviousSpec,
        PreviousSpec: svc.Spec,
        UpdateStatus: { State: 'rollback_started', StartedAt: iso(now), Message: `update rolled back due to failure or early termination of task ${o.failure.ID}` },
      })
    }
  }
  if (o.dirtyLeft === 0 && o.inFlight === 0 && !o.notStable) {
    return bump({
      UpdateStatus: { State: rollingBack ? 'rollback_completed' : 'completed', StartedAt: svc.UpdateStatus!.StartedAt, CompletedAt: iso(now), Message: rollingBack ? 'rollback completed' : 'update completed' },
    })
  }
  return undefined
}
