import type { LocalTask } from '../agent/agent.js'
import { humanDuration } from '../types/human-duration.js'
import { isTerminal } from '../types/task.js'

/**
 * A task this node runs as Docker's container objects, so `docker ps`,
 * `docker inspect` and `docker logs` against swarmd list process tasks as
 * they list a swarm node's task containers: named `<service>.<slot>.<task
 * id>`, with swarm's labels. A process task has no container: its ID is
 * the task's, its network the host's, its command the spec's.
 */

/** Go's zero time, which dockerd shows for a container that never started or never finished. */
const ZERO_TIME = '0001-01-01T00:00:00Z'

export const containerId = (lt: LocalTask): string => lt.task.Status.ContainerStatus?.ContainerID ?? lt.task.ID

type DockerState = 'created' | 'running' | 'exited'

/** Running; ended (exited); or not started yet, or refused before it started (created). */
export function containerState(lt: LocalTask): DockerState {
  const s = lt.task.Status.State
  if (s === 'running') return 'running'
  return isTerminal(s) && lt.startedAt ? 'exited' : 'created'
}

const exitCode = (lt: LocalTask): number => lt.task.Status.ContainerStatus?.ExitCode ?? 0

/** dockerd's State.String(): `Up 5 minutes`, `Exited (0) 2 seconds ago`, `Created`. */
function statusText(lt: LocalTask, now: number): string {
  const state = containerState(lt)
  if (state === 'running') return `Up ${humanDuration(now - Date.parse(lt.startedAt ?? lt.task.Status.Timestamp))}`
  if (state === 'exited') return `Exited (${exitCode(lt)}) ${humanDuration(now - Date.parse(lt.task.Status.Timestamp))} ago`
  return 'Created'
}

/** The command line: swarm's Command replaces the entrypoint, Args the command. */
function commandLine(lt: LocalTask): string[] {
  const c = lt.task.Spec.ContainerSpec
  return [...(c.Command ?? []), ...(c.Args ?? [])]
}

/** The host ports the process was given for its targets, as Docker's port mappings. */
function ports(lt: LocalTask): { IP: string; PrivatePort: number; PublicPort: number; Type: string }[] {
  return lt.ports.filter(p => p.PublishedPort > 0).map(p => ({ IP: '0.0.0.0', PrivatePort: p.TargetPort, PublicPort: p.PublishedPort, Type: p.Protocol }))
}

/** An entry of GET /containers/json. */
export function containerSummary(lt: LocalTask, now: number): Record<string, unknown> {
  return {
    Id: containerId(lt),
    Names: [`/${lt.name}`],
    Image: lt.task.Spec.ContainerSpec.Image,
    ImageID: '',
    Command: commandLine(lt).join(' '),
    Created: Math.floor(Date.parse(lt.task.CreatedAt) / 1000),
    Ports: ports(lt),
    Labels: lt.labels,
    State: containerState(lt),
    Status: statusText(lt, now),
    HostConfig: { NetworkMode: 'host' },
    NetworkSettings: { Networks: {} },
    Mounts: [],
  }
}

/** GET /containers/{id}/json. */
export function containerInspect(lt: LocalTask): Record<string, unknown> {
  const c = lt.task.Spec.ContainerSpec
  const st = lt.task.Status
  const state = containerState(lt)
  const [path = '', ...args] = commandLine(lt)
  return {
    Id: containerId(lt),
    Created: lt.task.CreatedAt,
    Path: path,
    Args: args,
    State: {
      Status: state,
      Running: state === 'running',
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: state === 'running' ? (st.ContainerStatus?.PID ?? 0) : 0,
      ExitCode: state === 'exited' ? exitCode(lt) : 0,
      Error: st.Err ?? '',
      StartedAt: lt.startedAt ?? ZERO_TIME,
      FinishedAt: state === 'exited' ? st.Timestamp : ZERO_TIME,
    },
    Image: c.Image,
    Name: `/${lt.name}`,
    RestartCount: 0,
    Driver: 'swarmd',
    Platform: 'linux',
    HostConfig: { NetworkMode: 'host' },
    Mounts: [],
    Config: {
      Hostname: c.Hostname ?? '',
      User: c.User ?? '',
      Tty: false,
      Env: c.Env ?? [],
      Cmd: c.Args ?? null,
      Image: c.Image,
      WorkingDir: c.Dir ?? '',
      Entrypoint: c.Command ?? null,
      Labels: lt.labels,
    },
    NetworkSettings: { Ports: Object.fromEntries(ports(lt).map(p => [`${p.PrivatePort}/${p.Type}`, [{ HostIp: p.IP, HostPort: String(p.PublicPort) }]])), Networks: {} },
  }
}

/** Newest first, as dockerd lists containers. */
export const byNewest = (a: LocalTask, b: LocalTask): number => b.task.CreatedAt.localeCompare(a.task.CreatedAt)
