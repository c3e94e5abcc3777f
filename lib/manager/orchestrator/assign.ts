import { isRunDesired, type Task } from '../../types/task.js'
import type { Planner } from '../placement.js'
import { isLive, iso, type NodeInfo, type Pass } from './pass.js'

/** Tasks held at `ready` (a restart delay) are placed too, so their node prepares them meanwhile; and jobs' tasks. */
const waiting = (t: Task): boolean => !t.NodeID && t.Status.State === 'pending' && isRunDesired(t.DesiredState)

/**
 * Placement of what waits for a node, one service at a time: tasks this pass
 * created and pending ones from before. The scheduler counts what the pass
 * changed too (replacements of tasks it just stopped, new global tasks).
 * A task that fits nowhere keeps the scheduler's reason in its Err.
 */
export function assignPending(p: Pass, planner: (nodes: NodeInfo[], live: Task[], services: Pass['services']) => Planner): void {
  const pendingBySvc = new Map<string, Task[]>()
  const add = (t: Task): void => void pendingBySvc.set(t.ServiceID, [...(pendingBySvc.get(t.ServiceID) ?? []), t])
  const written = p.written()
  for (const t of written) if (waiting(t)) add(t)
  for (const t of p.tasks) if (!p.changed(t) && waiting(t)) add(t)
  if (pendingBySvc.size === 0) return
  const placer = planner(p.nodes, [...p.tasks.filter(t => !p.changed(t)), ...written].filter(t => t.NodeID && isLive(t)), p.services)
  for (const [sid, pending] of pendingBySvc) {
    const svc = p.services.find(s => s.ID === sid)
    if (!svc) continue
    const placed = placer.place(svc, pending)
    for (const t of pending) {
      const r = placed.get(t.ID)
      if (r === undefined) continue
      if (typeof r === 'string') {
        p.put({ ...t, NodeID: r, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(p.now), Status: { Timestamp: iso(p.now), State: 'assigned', Message: 'scheduler assigned task to node' } })
      } else if (t.Status.Err !== r.error) {
        p.put({ ...t, Version: { Index: t.Version.Index + 1 }, UpdatedAt: iso(p.now), Status: { ...t.Status, Timestamp: iso(p.now), Err: r.error } })
      }
    }
  }
}
