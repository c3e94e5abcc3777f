import type { Registry } from 'prom-client'
import type { Agent } from '../../agent/agent.js'
import { byLabel, counterFrom } from './read.js'

/** The executor's families, read from this node's agent (none on a node that runs no tasks). */
export function executorMetrics(registry: Registry, agent: () => Agent | undefined): void {
  const c = () => agent()?.counters
  counterFrom(registry, { name: 'swarmd_executor_task_starts_total', help: 'Tasks this node started' }, () => c()?.starts)
  counterFrom(registry, { name: 'swarmd_executor_task_restarts_total', help: "Tasks started in a slot whose previous task on this node exited by itself (the restart policy at work)" }, () => c()?.restarts)
  counterFrom(registry, { name: 'swarmd_executor_task_exits_total', help: 'Tasks that ended with an exit code, by code', labelNames: ['code'] }, () => byLabel('code', c()?.exits))
}
