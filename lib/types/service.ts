/**
 * Services as the Docker Engine API shapes them (ServiceSpec and Service).
 * The manager stores them in these shapes, so the API returns what it stored
 * and the docker CLI reads it as it reads Docker's.
 */

/** Go durations travel as nanoseconds in the API. */
export type Nanos = number

/** Where a secret or config appears in the task: a file name (secrets) or path (configs), its owner and mode. */
export interface FileTarget {
  Name: string
  UID?: string
  GID?: string
  Mode?: number
}

export interface SecretReference {
  File?: FileTarget
  SecretID: string
  SecretName: string
}

export interface ConfigReference {
  File?: FileTarget
  ConfigID: string
  ConfigName: string
}

/** Docker's container.HealthConfig: Test is ["NONE"], ["CMD", args...] or ["CMD-SHELL", command]. */
export interface HealthConfig {
  Test?: string[]
  Interval?: Nanos
  Timeout?: Nanos
  StartPeriod?: Nanos
  StartInterval?: Nanos
  Retries?: number
}

export type MountType = 'bind' | 'volume' | 'tmpfs' | 'npipe' | 'cluster'

export interface Mount {
  Type?: MountType
  Source?: string
  Target?: string
  ReadOnly?: boolean
  Consistency?: string
  BindOptions?: { Propagation?: string; NonRecursive?: boolean; CreateMountpoint?: boolean }
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string>; Subpath?: string; DriverConfig?: { Name?: string; Options?: Record<string, string> } }
  TmpfsOptions?: { SizeBytes?: number; Mode?: number }
}

export interface Ulimit {
  Name: string
  Soft: number
  Hard: number
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
  Groups?: string[]
  StopSignal?: string
  StopGracePeriod?: Nanos
  Secrets?: SecretReference[]
  Configs?: ConfigReference[]
  Init?: boolean
  Healthcheck?: HealthConfig
  Mounts?: Mount[]
  ReadOnly?: boolean
  TTY?: boolean
  OpenStdin?: boolean
  CapabilityAdd?: string[]
  CapabilityDrop?: string[]
  DNSConfig?: { Nameservers?: string[]; Search?: string[]; Options?: string[] }
  /** "IP host [alias...]" lines for /etc/hosts. */
  Hosts?: string[]
  Sysctls?: Record<string, string>
  Ulimits?: Ulimit[]
  OomScoreAdj?: number
  Isolation?: string
}

export interface Resources {
  NanoCPUs?: number
  MemoryBytes?: number
  /** Limits only: the most processes the task may have. */
  Pids?: number
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
  LogDriver?: { Name?: string; Options?: Record<string, string> }
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

/** Which of swarm's four modes a spec is in (a mode cannot change). */
export function modeKind(spec: ServiceSpec): 'replicated' | 'global' | 'replicated-job' | 'global-job' {
  const m = spec.Mode
  return m.Global ? 'global' : m.ReplicatedJob ? 'replicated-job' : m.GlobalJob ? 'global-job' : 'replicated'
}
