/** Tasks as the Docker Engine API shapes them. */
import type { TaskSpec, Version } from './service.js'

/** Swarm's task states; their order is the numeric one of api/types.proto (a state only moves forward). */
export const TASK_STATES = ['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running', 'complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned'] as const
export type TaskState = (typeof TASK_STATES)[number]

export const stateRank = (s: TaskState): number => TASK_STATES.indexOf(s)
/** A task past running: it will not run again. */
export const isTerminal = (s: TaskState): boolean => stateRank(s) > stateRank('running')

/**
 * A desired state that means "run it": `running`; `ready` (held until a
 * restart delay is over: prepared, not yet started); `complete` (a job's
 * task, run until it exits).
 */
export const isRunDesired = (s: TaskState): boolean => s === 'running' || s === 'ready' || s === 'complete'

export interface PortStatus {
  Protocol: 'tcp' | 'udp' | 'sctp'
  TargetPort: number
  PublishedPort: number
  PublishMode: 'ingress' | 'host'
}

export interface TaskStatus {
  Timestamp: string
  State: TaskState
  Message: string
  Err?: string
  ContainerStatus?: { ContainerID?: string; PID?: number; ExitCode?: number }
  PortStatus?: { Ports?: PortStatus[] }
}

/**
 * A task's place on one overlay network, as Docker shows it
 * (Task.NetworksAttachments): the network, as swarmkit embeds it, and the
 * address the manager allocated the task there ("10.0.1.5/24").
 */
export interface NetworkAttachment {
  Network: {
    ID: string
    Spec: { Name: string; Labels: Record<string, string>; DriverConfiguration: { Name: 'overlay'; Options?: Record<string, string> }; Ingress?: boolean; Scope: 'swarm' }
    DriverState: { Name: 'overlay'; Options: Record<string, string> }
    IPAMOptions: { Driver: { Name: 'default' }; Configs: { Subnet: string; Gateway: string }[] }
  }
  Addresses: string[]
}

export interface Task {
  ID: string
  Version: Version
  CreatedAt: string
  UpdatedAt: string
  Labels: Record<string, string>
  Spec: TaskSpec
  /** Which service spec version the task runs (detects dirty slots in an update). */
  SpecVersion?: Version
  ServiceID: string
  /** Replicated services number their tasks 1..N; global ones have no slot. */
  Slot?: number
  NodeID?: string
  /** A job's task: the service's JobIteration it runs for. */
  JobIteration?: Version
  Status: TaskStatus
  DesiredState: TaskState
  /** The task's address on each of its networks, allocated when it is assigned to a node. */
  NetworksAttachments?: NetworkAttachment[]
}
