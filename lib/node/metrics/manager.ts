import { Counter, Histogram, type Registry } from 'prom-client'
import type { ManagerObserver } from '../../manager/observer.js'
import { modeKind } from '../../types/service.js'
import { TASK_STATES } from '../../types/task.js'
import type { NodeObserver, NodeParts } from '../node.js'
import { gaugeFrom } from './read.js'

const NODE_STATES = ['ready', 'down', 'unknown'] as const
/** Every mode, so each has its series (0 when none). */
const MODES: ReturnType<typeof modeKind>[] = ['replicated', 'global', 'replicated-job', 'global-job']

/** A commit is an fsync (one manager) or an etcd round (several): milliseconds, seconds when etcd lacks a quorum. */
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
/** From creation to running: scheduling, the session, the executor's start (an image pull for containers). */
const RUNNING_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

type ManagerHooks = Required<Pick<ManagerObserver, 'scheduled' | 'taskRunning' | 'leaderChanged'>> & Pick<Required<NodeObserver>, 'commit'>

/**
 * The manager's families: the swarm's nodes, services and tasks as this
 * manager's copy of the state holds them (read when scraped; none on a
 * worker), and, through hooks, the leader's scheduling, tasks reaching
 * running, leader changes and commits to the stores.
 */
export function managerMetrics(registry: Registry, parts: () => NodeParts): ManagerHooks {
  const manager = () => parts().manager
  gaugeFrom(registry, { name: 'swarmd_manager_is_leader', help: 'Whether this node is the leader (1) or not (0)' }, () => (manager()?.isLeader ? 1 : 0))
  gaugeFrom(registry, { name: 'swarmd_manager_nodes', help: "The swarm's nodes by state, as this manager sees them", labelNames: ['state'] }, () => {
    const m = manager()
    if (!m) return undefined
    const states = m.nodes.list().map(n => m.nodeState(n))
    return NODE_STATES.map(state => [{ state }, states.filter(s => s === state).length] as const)
  })
  gaugeFrom(registry, { name: 'swarmd_manager_services', help: "The swarm's services by mode", labelNames: ['mode'] }, () => {
    const m = manager()
    if (!m) return undefined
    const counts = new Map<string, number>(MODES.map(mode => [mode, 0]))
    for (const s of m.services.list()) {
      const mode = modeKind(s.Spec)
      counts.set(mode, counts.get(mode)! + 1)
    }
    return [...counts].map(([mode, n]) => [{ mode }, n] as const)
  })
  gaugeFrom(registry, { name: 'swarmd_manager_tasks', help: "The swarm's tasks (history included) by observed state", labelNames: ['state'] }, () => {
    const m = manager()
    if (!m) return undefined
    const counts = new Map<string, number>(TASK_STATES.map(s => [s, 0]))
    for (const t of m.services.tasks(new Map(), () => undefined)) counts.set(t.Status.State, (counts.get(t.Status.State) ?? 0) + 1)
    return [...counts].map(([state, n]) => [{ state }, n] as const)
  })
  const leaderChanges = new Counter({
    name: 'swarmd_manager_leader_changes_seen_total',
    help: "Leaders this manager saw elected (several managers; the first it sees counts, as etcd's leader_changes_seen)",
    registers: [registry],
  })
  const decisions = new Counter({ name: 'swarmd_manager_scheduling_decisions_total', help: "The leader's scheduler on a pending task: assigned to a node, or no node suits it (retried at each pass)", labelNames: ['outcome'], registers: [registry] })
  const toRunning = new Histogram({ name: 'swarmd_manager_task_create_to_running_seconds', help: "Time from a task's creation to its first report of running, on the leader", buckets: RUNNING_BUCKETS, registers: [registry] })
  const commits = new Histogram({
    name: 'swarmd_manager_store_commit_duration_seconds',
    help: "Commits to this node's store (local) and to the swarm's state in etcd, until durable and acknowledged, by outcome",
    labelNames: ['store', 'outcome'],
    buckets: COMMIT_BUCKETS,
    registers: [registry],
  })
  return {
    scheduled: outcome => decisions.inc({ outcome }),
    taskRunning: ms => toRunning.observe(ms / 1000),
    leaderChanged: leader => leader && leaderChanges.inc(),
    commit: (store, ms, ok) => commits.observe({ store, outcome: ok ? 'ok' : 'error' }, ms / 1000),
  }
}
