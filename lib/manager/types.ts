/**
 * The swarm objects as the Docker Engine API shapes them (ServiceSpec, Task,
 * Secret). The manager stores them in these shapes, so the API returns what
 * it stored and the docker CLI reads it as it reads Docker's.
 */

/** Go durations travel as nanoseconds in the API. */
export type Nanos = number

export interface SecretReference {
  File?: { Name: string; UID?: string; GID?: string; Mode?: number }
  SecretID: string
  SecretName: string
}

export interface ContainerSpec {
  Image: string
  Labels?: Record<string, string>
  Command?: string[]
  Args?: string[]
  Hostname?: string
  Env?: string[]
  Dir?: string
  User?: string
  StopGracePeriod?: Nanos
  Secrets?: SecretReference[]
  Init?: boolean
}

export interface Resources {
  NanoCPUs?: number
  MemoryBytes?: number
}

export interface RestartPolicy {
  Condition?: 'none' | 'on-failure' | 'any'
  Delay?: Nanos
  MaxAttempts?: number
  Window?: Nanos
}

export interface Placement {
  Constraints?: string[]
  Preferences?: { Spread: { SpreadDescriptor: string } }[]
  MaxReplicas?: number
}

export interface NetworkAttachmentConfig {
  Target: string
  Aliases?: string[]
}

export interface TaskSpec {
  ContainerSpec: ContainerSpec
  Resources?: { Limits?: Resources; Reservations?: Resources }
  RestartPolicy?: RestartPolicy
  Placement?: Placement
  Networks?: NetworkAttachmentConfig[]
  ForceUpdate?: number
  Runtime?: string
}

export interface UpdateConfig {
  Parallelism?: number
  Delay?: Nanos
  FailureAction?: 'pause' | 'continue' | 'rollback'
  Monitor?: Nanos
  MaxFailureRatio?: number
  Order?: 'stop-first' | 'start-first'
}

export interface PortConfig {
  Name?: string
  Protocol?: 'tcp' | 'udp' | 'sctp'
  TargetPort: number
  PublishedPort?: number
  PublishMode?: 'ingress' | 'host'
}

export interface EndpointSpec {
  Mode?: 'vip' | 'dnsrr'
  Ports?: PortConfig[]
}

export interface ServiceSpec {
  Name: string
  Labels?: Record<string, string>
  TaskTemplate: TaskSpec
  Mode: { Replicated?: { Replicas?: number }; Global?: Record<string, never> }
  UpdateConfig?: UpdateConfig
  RollbackConfig?: UpdateConfig
  EndpointSpec?: EndpointSpec
}

export interface Version {
  Index: number
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed'

export interface Service {
  ID: string
  Version: Version
  CreatedAt: string
  UpdatedAt: string
  Spec: ServiceSpec
  PreviousSpec?: ServiceSpec
  Endpoint: { Spec: EndpointSpec; Ports?: PortConfig[]; VirtualIPs?: { NetworkID: string; Addr: string }[] }
  UpdateStatus?: { State: UpdateState; StartedAt?: string; CompletedAt?: string; Message: string }
}

/** Swarm's task states; their order is the numeric one of api/types.proto (a state only moves forward). */
export const TASK_STATES = ['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running', 'complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned'] as const
export type TaskState = (typeof TASK_STATES)[number]

export const stateRank = (s: TaskState): number => TASK_STATES.indexOf(s)
/** A task past running: it will not run again. */
export const isTerminal = (s: TaskState): boolean => stateRank(s) > stateRank('running')

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
  Status: TaskStatus
  DesiredState: TaskState
}

export interface Secret {
  ID: string
  Version: Version
  CreatedAt: string
  UpdatedAt: string
  Spec: { Name: string; Labels?: Record<string, string> }
}
