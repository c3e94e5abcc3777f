import { isTerminal, type Task } from '../../types/task.js'
import { byAge, isLive, type Pass } from './pass.js'

/** How many ended tasks a slot keeps: swarm's history limit, or more when the restart policy needs them to count attempts. */
export const historyKept = (limit: number, maxAttempts: number): number => Math.max(limit, maxAttempts + 1)

/** History: the newest few ended tasks of each slot stay for `service ps`; older ones are forgotten. */
export function trimHistory(p: Pass, slots: Iterable<Task[]>, keep: number): void {
  for (const slot of slots) {
    const over = slot.filter(t => !isLive(t) && isTerminal(t.Status.State)).sort(byAge)
    for (const t of over.slice(0, Math.max(0, over.length - keep))) p.del(t)
  }
}
