import type { LogLine, LogOptions } from '../agent/executor.js'
import type { PortConfig, Task, TaskStatus } from './types.js'

/**
 * What travels over a node's session with the manager. Down: the node's
 * assignments (every task placed on it that is not yet known to be over,
 * with the secrets they use) and log requests. Up: task status and log lines.
 */
export type DownMessage =
  | { t: 'assign'; tasks: { task: Task; serviceName: string; ports: PortConfig[] }[]; secrets: Record<string, string> }
  | { t: 'logs'; req: number; taskIds: string[]; opts: LogOptions }
  | { t: 'logs-cancel'; req: number }

export type UpMessage =
  | { t: 'status'; updates: { id: string; status: TaskStatus }[] }
  | { t: 'log'; req: number; lines: { task: string; line: LogLine }[] }
  | { t: 'logs-end'; req: number; error?: string }
