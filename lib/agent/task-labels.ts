/**
 * The labels Docker Swarm puts on a task's container (moby's
 * daemon/cluster/executor/container labels()): the spec's own, then swarm's,
 * which win. The docker executor's containers carry them, and `docker ps`
 * on a node shows them on process tasks too.
 */
export const SWARM_LABELS = {
  task: 'com.docker.swarm.task',
  serviceId: 'com.docker.swarm.service.id',
  serviceName: 'com.docker.swarm.service.name',
  taskId: 'com.docker.swarm.task.id',
  taskName: 'com.docker.swarm.task.name',
  nodeId: 'com.docker.swarm.node.id',
} as const

export function swarmLabels(t: { id: string; name: string; serviceId: string; serviceName: string; nodeId: string }, specLabels: Record<string, string> = {}): Record<string, string> {
  return {
    ...specLabels,
    [SWARM_LABELS.task]: '',
    [SWARM_LABELS.taskId]: t.id,
    [SWARM_LABELS.taskName]: t.name,
    [SWARM_LABELS.nodeId]: t.nodeId,
    [SWARM_LABELS.serviceId]: t.serviceId,
    [SWARM_LABELS.serviceName]: t.serviceName,
  }
}
