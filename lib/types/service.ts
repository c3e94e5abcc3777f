/**
 * Services as the Docker Engine API shapes them (ServiceSpec and Service).
 * The manager stores them in these shapes, so the API returns what it stored
 * and the docker CLI reads it as it reads Docker's.
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
  Mode: {
    Replicated?: { Replicas?: number }
    Global?: Record<string, never>
    /** A job: TotalCompletions tasks run to completion, at most MaxConcurrent at once. */
    ReplicatedJob?: { MaxConcurrent?: number; TotalCompletions?: number }
    /** A job: one task per eligible node, run to completion. */
    GlobalJob?: Record<string, never>
  }
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
  /** Jobs only: each update runs the job again, as a new iteration. */
  JobStatus?: { JobIteration: Version; LastExecution?: string }
}

export const isJob = (spec: ServiceSpec): boolean => !!(spec.Mode.ReplicatedJob || spec.Mode.GlobalJob)
