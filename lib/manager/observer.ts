import type { RpcOutcome } from '../control/rpc.js'
import type { Planner } from './placement.js'

/** How the scheduler decided on one pending task: a node for it, or none that suits it. */
export type SchedulingOutcome = 'assigned' | 'unschedulable'

/**
 * What a manager tells whoever watches it (the node's metrics), as it
 * happens. Every hook is optional; none may throw.
 */
export interface ManagerObserver {
  /** An RPC this manager served on the control plane. */
  rpc?(method: string, outcome: RpcOutcome, ms: number): void
  /** The leader's scheduler decided on a pending task (a task still pending is decided on again at each pass). */
  scheduled?(outcome: SchedulingOutcome): void
  /** A task was reported running for the first time, this long after the leader created it. */
  taskRunning?(msSinceCreated: number): void
  /** The elected leader changed, as this manager saw it (several managers only). */
  leaderChanged?(leader: string | undefined): void
}

/** The planner, telling `scheduled` what it decided for each pending task. */
export function observedPlanner<A extends unknown[]>(make: (...args: A) => Planner, scheduled: (o: SchedulingOutcome) => void): (...args: A) => Planner {
  return (...args) => {
    const p = make(...args)
    return {
      eligible: (svc, nodeId) => p.eligible(svc, nodeId),
      place(svc, pending) {
        const out = p.place(svc, pending)
        for (const r of out.values()) scheduled(typeof r === 'string' ? 'assigned' : 'unschedulable')
        return out
      },
    }
  }
}
