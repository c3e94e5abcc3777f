import type { Pass } from './pass.js'

/** Tasks whose service is gone (swarmkit's task reaper): stopped, then forgotten. */
export function reapOrphans(p: Pass): void {
  const serviceIds = new Set(p.services.map(s => s.ID))
  for (const [sid, list] of p.byService) {
    if (serviceIds.has(sid)) continue
    for (const t of list) p.reapOrRemove(t)
  }
}
