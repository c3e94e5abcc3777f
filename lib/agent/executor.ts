import type { LogLine, LogOptions } from '../types/logs.js'
import type { PortStatus, TaskState } from '../types/task.js'
import type { TaskSpec } from '../types/service.js'
import type { TaskNetwork, TaskNetworking } from './task-netns.js'

/** A secret handed to the one task that uses it: the plaintext never leaves memory but as this file. */
export interface SecretFile {
  /** File name in the task's secrets directory (Docker: /run/secrets/<name>). */
  name: string
  data: Buffer
  /** File mode, 0o444 by default in Docker; swarmd writes 0o400 for process tasks. */
  mode?: number
}

/** A config handed to a task: not secret, a file of `mode` (Docker's 0o444 by default) at `target`. */
export interface ConfigFile {
  /** An absolute path, or one relative to the container's root, where Docker puts it (/<target>). */
  target: string
  data: Buffer
  mode: number
}

/** What an executor needs to run one task. */
export interface ExecutorTask {
  id: string
  serviceId: string
  serviceName: string
  /** The replica slot; 0 for a global service's task. */
  slot: number
  nodeId: string
  nodeHostname: string
  spec: TaskSpec
  /** Published ports whose target the task listens on. */
  ports: { TargetPort: number; Protocol: 'tcp' | 'udp' | 'sctp'; PublishMode: 'ingress' | 'host'; PublishedPort?: number }[]
  secrets: SecretFile[]
  /** In the kernel data plane: the task's place on each of its networks, for a network namespace of its own. */
  networks?: TaskNetwork[]
  configs?: ConfigFile[]
  /**
   * Set while the manager holds the task at desired `ready` (a restart
   * delay): the task is prepared and reported `ready`, and started only
   * once this resolves.
   */
  hold?: Promise<void>
}

/** A task's observed progress, as the executor reports it (states only move forward). */
export interface TaskEvent {
  state: Extract<TaskState, 'preparing' | 'ready' | 'starting' | 'running' | 'complete' | 'failed' | 'rejected' | 'shutdown'>
  message: string
  /** Swarm's Err, e.g. "task: non-zero exit (1)" or "No such image: x". */
  err?: string
  exitCode?: number
  pid?: number
  containerId?: string
  /** The host ports the task got for its targets. */
  ports?: PortStatus[]
}

/**
 * Runs tasks on this node. One executor instance serves every task of the
 * node; the agent drives it and relays its events to the manager.
 */
export interface Executor {
  readonly kind: 'process' | 'docker'
  /** Prepares and starts the task; reports each state through `emit` until a terminal one. */
  start(task: ExecutorTask, emit: (e: TaskEvent) => void): Promise<void>
  /** Stops the task: SIGTERM (or docker stop), then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(taskId: string, graceMs: number): Promise<void>
  /** Removes what is left of a stopped task (its secrets at once; logs are kept until `remove`). */
  remove(taskId: string): Promise<void>
  /**
   * Tasks this executor started in an earlier life of the daemon that still
   * run; the agent adopts those the manager still wants and stops the rest.
   */
  recover(): Promise<{ taskId: string; running: boolean }[]>
  /** Re-attaches to a recovered task so its exit is reported through `emit`. */
  adopt(taskId: string, emit: (e: TaskEvent) => void): Promise<void>
  /** From now on, tasks with `networks` run in namespaces of their own that `n` makes (the node runs the kernel data plane). */
  attachNetworking?(n: TaskNetworking): void
  /** The task's output, oldest first; with `follow`, until `signal` aborts or the task ends. */
  logs(taskId: string, opts: LogOptions, onLine: (l: LogLine) => void, signal: AbortSignal): Promise<void>
  close(): Promise<void>
}
