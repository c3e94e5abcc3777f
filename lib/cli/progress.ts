import { SwarmdError } from '../types/errors.js'
import type { Service } from '../types/service.js'
import type { Task, TaskState } from '../types/task.js'
import { truncateID } from './service-format.js'

/**
 * Convergence progress for `service create|update|scale|rollback` without
 * --detach, as docker/cli's service/progress/progress.go computes it and
 * moby's jsonmessage draws it. The loop takes its API, clock and sleep from
 * the caller so frames can be checked against fake task lists.
 */

/** One WriteProgress of docker's: `<id>: <action>` with an optional bar, or a plain message line. */
export interface ProgressEvent {
  id: string
  action: string
  current?: number
  total?: number
  /** A status message (progress.Message): a plain line, never redrawn. */
  message?: boolean
}

export interface ProgressSink {
  write(e: ProgressEvent): void
}

const NUMBERED: Partial<Record<TaskState, number>> = {
  new: 1,
  allocated: 2,
  pending: 3,
  assigned: 4,
  accepted: 5,
  preparing: 6,
  ready: 7,
  starting: 8,
  running: 9,
  complete: 10,
  shutdown: 11,
  failed: 12,
  rejected: 13,
}
const num = (s: TaskState): number => NUMBERED[s] ?? 0
const terminal = (s: TaskState): boolean => num(s) > num('running')
/** Width of the longest state shown (`preparing`, `allocated`). */
const LONGEST_STATE = 9
const MAX_PROGRESS = 9
const MAX_PROGRESS_BARS = 20
/** A job's task bar goes one state further, to complete. */
const MAX_JOB_PROGRESS = 10

/** Errors on one line, at most 75 characters, so narrow terminals do not wrap. */
export function truncError(err: string): string {
  const one = err.replace(/\n/g, ' ')
  return one.length > 75 ? one.slice(0, 74) + '…' : one
}

function overall(sink: ProgressSink, n: number, of: number, rollback: boolean): void {
  sink.write({ id: 'overall progress', action: rollback ? `rolling back update: ${n} out of ${of} tasks` : `${n} out of ${of} tasks` })
}

function taskLine(sink: ProgressSink, id: string, t: Task): void {
  if (t.Status.Err) sink.write({ id, action: truncError(t.Status.Err) })
  else if (!terminal(t.DesiredState) && !terminal(t.Status.State)) {
    sink.write({ id, action: t.Status.State.padEnd(LONGEST_STATE), current: num(t.Status.State), total: MAX_PROGRESS })
  }
}

/**
 * Of several tasks for one slot (or node) the one with the lowest desired
 * state wins, the observed state breaking ties (start-first updates).
 */
function preferred(existing: Task | undefined, t: Task): boolean {
  if (!existing) return true
  if (num(existing.DesiredState) < num(t.DesiredState)) return false
  return !(num(existing.DesiredState) === num(t.DesiredState) && num(existing.Status.State) <= num(t.Status.State))
}

interface Updater {
  update(s: Service, tasks: Task[], activeNodes: Set<string>, rollback: boolean): boolean
}

class ReplicatedUpdater implements Updater {
  /** Slots mapped to 1..N so bars appear in order. */
  private readonly slotMap = new Map<number, number>()
  private initialized = false
  private done = false

  constructor(private readonly sink: ProgressSink) {}

  update(s: Service, tasks: Task[], activeNodes: Set<string>, rollback: boolean): boolean {
    const replicas = s.Spec.Mode.Replicated?.Replicas
    if (replicas === undefined) throw new SwarmdError('E_PROGRESS', 'no replica count')
    if (!this.initialized) {
      overall(this.sink, 0, replicas, rollback)
      if (replicas <= MAX_PROGRESS_BARS) for (let i = 1; i <= replicas; i++) this.sink.write({ id: `${i}/${replicas}`, action: ' ' })
      this.initialized = true
    }
    const bySlot = new Map<number, Task>()
    for (const t of tasks) {
      if (!num(t.DesiredState) || !num(t.Status.State)) continue
      const slot = t.Slot ?? 0
      if (!preferred(bySlot.get(slot), t)) continue
      if (t.NodeID && !activeNodes.has(t.NodeID)) continue
      bySlot.set(slot, t)
    }
    if (this.done && [...bySlot.values()].some(t => t.Status.State !== 'running')) this.done = false
    let running = 0
    for (const [slot, t] of [...bySlot].sort(([a], [b]) => a - b)) {
      let mapped = this.slotMap.get(slot)
      if (mapped === undefined) this.slotMap.set(slot, (mapped = this.slotMap.size + 1))
      if (!terminal(t.DesiredState) && t.Status.State === 'running') running++
      if (!this.done && replicas <= MAX_PROGRESS_BARS && mapped <= replicas) taskLine(this.sink, `${mapped}/${replicas}`, t)
    }
    if (!this.done) {
      overall(this.sink, running, replicas, rollback)
      if (running === replicas) this.done = true
    }
    return running === replicas
  }
}

class GlobalUpdater implements Updater {
  private initialized = false
  private done = false

  constructor(private readonly sink: ProgressSink) {}

  update(_s: Service, tasks: Task[], activeNodes: Set<string>, rollback: boolean): boolean {
    const byNode = new Map<string, Task>()
    for (const t of tasks) {
      if (!num(t.DesiredState) || !num(t.Status.State)) continue
      const node = t.NodeID ?? ''
      if (preferred(byNode.get(node), t)) byNode.set(node, t)
    }
    const nodeCount = byNode.size
    if (!this.initialized) {
      // Either the orchestrator has not created the tasks yet or no node fits; wait either way.
      if (nodeCount === 0) {
        this.sink.write({ id: 'overall progress', action: 'waiting for new tasks' })
        return false
      }
      overall(this.sink, 0, nodeCount, rollback)
      this.initialized = true
    }
    if (this.done && [...byNode.values()].some(t => t.Status.State !== 'running')) this.done = false
    let running = 0
    for (const [node, t] of [...byNode].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!activeNodes.has(node)) continue
      if (!terminal(t.DesiredState) && t.Status.State === 'running') running++
      if (!this.done && nodeCount <= MAX_PROGRESS_BARS) taskLine(this.sink, truncateID(node), t)
    }
    if (!this.done) {
      overall(this.sink, running, nodeCount, rollback)
      if (running === nodeCount) this.done = true
    }
    return running === nodeCount
  }
}

/** Go's %*d: right-aligned to `width`. */
const padNum = (n: number, width: number): string => String(n).padStart(width)

/** A job's task line: its error, or its state with a bar up to complete. */
function jobTaskLine(sink: ProgressSink, id: string, t: Task): void {
  if (t.Status.Err) sink.write({ id, action: truncError(t.Status.Err) })
  else sink.write({ id, action: t.Status.State.padEnd(LONGEST_STATE), current: num(t.Status.State), total: MAX_JOB_PROGRESS })
}

/** Of a job's tasks for one slot (or node), the one in the lowest state, of the service's iteration only. */
function jobTasksBy(tasks: Task[], iteration: number, key: (t: Task) => string | number): Map<string | number, Task> {
  const by = new Map<string | number, Task>()
  for (const t of tasks) {
    if (t.JobIteration?.Index !== iteration || !num(t.DesiredState) || !num(t.Status.State)) continue
    const existing = by.get(key(t))
    if (!existing || num(existing.Status.State) > num(t.Status.State)) by.set(key(t), t)
  }
  return by
}

/**
 * docker/cli's replicatedJobProgressUpdater: completed out of
 * TotalCompletions, and the tasks active out of those that may run now.
 */
class ReplicatedJobUpdater implements Updater {
  private initialized = false
  private readonly concurrent: number
  private readonly total: number
  private readonly iteration: number

  constructor(
    s: Service,
    private readonly sink: ProgressSink,
  ) {
    this.concurrent = s.Spec.Mode.ReplicatedJob?.MaxConcurrent ?? 1
    this.total = s.Spec.Mode.ReplicatedJob?.TotalCompletions ?? 1
    this.iteration = s.JobStatus?.JobIteration.Index ?? 0
  }

  update(_s: Service, tasks: Task[]): boolean {
    if (!this.initialized) {
      this.overall(0, 0)
      if (this.total <= MAX_PROGRESS_BARS) for (let i = 1; i <= this.total; i++) this.sink.write({ id: `${i}/${this.total}`, action: ' ' })
      this.initialized = true
    }
    const bySlot = jobTasksBy(tasks, this.iteration, t => t.Slot ?? 0)
    let active = 0
    let complete = 0
    for (const [slot, t] of [...bySlot].sort(([a], [b]) => Number(a) - Number(b))) {
      if (this.total <= MAX_PROGRESS_BARS) jobTaskLine(this.sink, `${Number(slot) + 1}/${this.total}`, t)
      if (num(t.Status.State) < num('complete')) active++
      if (t.Status.State === 'complete') complete++
    }
    this.overall(active, complete)
    return complete === this.total
  }

  private overall(active: number, complete: number): void {
    const digits = String(this.total).length
    this.sink.write({ id: 'job progress', action: `${padNum(complete, digits)} out of ${this.total} complete`, current: complete, total: this.total })
    const width = String(this.concurrent).length
    const desired = Math.min(this.total - complete, this.concurrent)
    this.sink.write({ id: 'active tasks', action: `${padNum(active, width)} out of ${padNum(desired, width)} tasks` })
  }
}

/** docker/cli's globalJobProgressUpdater: the nodes that had a task at the start, completed out of all. */
class GlobalJobUpdater implements Updater {
  private nodes: Set<string> | undefined
  private total = 0

  constructor(private readonly sink: ProgressSink) {}

  update(s: Service, tasks: Task[], activeNodes: Set<string>): boolean {
    const iteration = s.JobStatus?.JobIteration.Index ?? 0
    if (!this.nodes) {
      if (tasks.length === 0 && activeNodes.size !== 0) {
        this.sink.write({ id: 'job progress', action: 'waiting for tasks' })
        return false
      }
      this.nodes = new Set(tasks.filter(t => t.JobIteration?.Index === iteration).map(t => t.NodeID ?? ''))
      this.total = this.nodes.size
      this.overall(0)
    }
    const byNode = jobTasksBy(
      tasks.filter(t => this.nodes!.has(t.NodeID ?? '')),
      iteration,
      t => t.NodeID ?? '',
    )
    let complete = 0
    for (const [node, t] of byNode) {
      if (this.total <= MAX_PROGRESS_BARS) jobTaskLine(this.sink, String(node), t)
      if (t.Status.State === 'complete') complete++
    }
    this.overall(complete)
    return complete === this.total
  }

  private overall(complete: number): void {
    this.sink.write({ id: 'job progress', action: `${padNum(complete, String(this.total).length)} out of ${this.total} complete`, current: complete, total: this.total })
  }
}

/** What the progress loop reads from the daemon. */
export interface ProgressApi {
  service(ref: string): Promise<Service>
  /** The service's up-to-date tasks. */
  tasks(serviceID: string): Promise<Task[]>
  /** IDs of nodes that are not down. */
  activeNodes(): Promise<Set<string>>
}

export interface ProgressOptions {
  intervalMs?: number
  now?: () => number
  sleep?: (ms: number) => Promise<void>
  /** Ctrl-C: stop watching; the operation continues on the daemon. */
  signal?: AbortSignal
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    if (signal?.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done)
  })
}

/**
 * Polls the service and its tasks until every task runs and stays running
 * for the update monitor period (5 s by default), writing docker's frames.
 * Throws `service update paused: ...` / `service rollback paused: ...`.
 */
export async function serviceProgress(api: ProgressApi, ref: string, sink: ProgressSink, o: ProgressOptions = {}): Promise<void> {
  const now = o.now ?? Date.now
  const interval = o.intervalMs ?? 200
  const sleep = o.sleep ?? ((ms: number) => sleepUnlessAborted(ms, o.signal))
  let updater: Updater | undefined
  let converged = false
  let convergedAt: number | undefined
  let monitorMs = 5000
  let rollback = false
  let message: ProgressEvent | undefined
  for (;;) {
    const s = await api.service(ref)
    if (s.Spec.UpdateConfig?.Monitor) monitorMs = s.Spec.UpdateConfig.Monitor / 1e6
    if (!updater) {
      if (s.Spec.Mode.Replicated && s.Spec.Mode.Replicated.Replicas !== undefined) updater = new ReplicatedUpdater(sink)
      else if (s.Spec.Mode.Global) updater = new GlobalUpdater(sink)
      else if (s.Spec.Mode.ReplicatedJob) updater = new ReplicatedJobUpdater(s, sink)
      else if (s.Spec.Mode.GlobalJob) updater = new GlobalJobUpdater(sink)
      else throw new SwarmdError('E_PROGRESS', 'unrecognized service mode')
    }
    const status = s.UpdateStatus
    switch (status?.State) {
      case 'updating':
        rollback = false
        break
      case 'completed':
        if (!converged) return
        break
      case 'paused':
        throw new SwarmdError('E_PAUSED', `service update paused: ${status.Message}`)
      case 'rollback_started':
        if (!rollback && status.Message) sink.write({ id: 'rollback', action: status.Message })
        rollback = true
        break
      case 'rollback_paused':
        throw new SwarmdError('E_PAUSED', `service rollback paused: ${status.Message}`)
      case 'rollback_completed':
        if (!converged) message = { id: 'rollback', action: status.Message, message: true }
        rollback = true
        break
    }
    if (converged && convergedAt !== undefined && now() - convergedAt >= monitorMs) {
      sink.write({ id: 'verify', action: 'Service converged' })
      if (message) sink.write(message)
      return
    }
    const [tasks, active] = await Promise.all([api.tasks(s.ID), api.activeNodes()])
    converged = updater.update(s, tasks, active, rollback)
    if (converged && s.JobStatus) {
      // A job that is done stays done: nothing to verify.
      sink.write({ id: '', action: 'job complete', message: true })
      return
    }
    if (converged) {
      convergedAt ??= now()
      const wait = monitorMs - (now() - convergedAt)
      // Docker's wait/time.Second+1 on a clock that has always moved on a little since convergedAt.
      if (wait >= 0) sink.write({ id: 'verify', action: `Waiting ${Math.max(1, Math.ceil(wait / 1000))} seconds to verify that tasks are stable...` })
    } else {
      if (convergedAt !== undefined) sink.write({ id: 'verify', action: 'Detected task failure' })
      convergedAt = undefined
    }
    await sleep(interval)
    if (o.signal?.aborted) {
      if (!converged) {
        sink.write({ id: '', action: 'Operation continuing in background.', message: true })
        sink.write({ id: '', action: `Use \`swarmctl service ps ${ref}\` to check progress.`, message: true })
      }
      return
    }
  }
}

/** jsonmessage's bar: `[====>    ] ` (counts hidden), drawn only on terminals wider than 110 columns. */
export function progressBar(current: number, total: number, width: number): string {
  if (current <= 0 && total <= 0) return ''
  const pct = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2))
  return width > 110 ? `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}] ` : ''
}

const hasBar = (e: ProgressEvent): boolean => (e.current ?? 0) > 0 || (e.total ?? 0) > 0
const line = (e: ProgressEvent): string => (e.id ? `${e.id}: ${e.action}` : e.action)

/**
 * Off a terminal: no bars, and a line only when its text for that ID
 * changed (docker would repeat every line on every poll).
 */
export class PlainRenderer implements ProgressSink {
  private readonly last = new Map<string, string>()

  constructor(private readonly out: (s: string) => void) {}

  write(e: ProgressEvent): void {
    if (e.message) {
      this.last.clear()
      this.out(line(e) + '\n')
      return
    }
    if (hasBar(e)) return
    const text = line(e)
    if (this.last.get(e.id) === text) return
    this.last.set(e.id, text)
    this.out(text + '\n')
  }
}

/** On a terminal: jsonmessage's in-place redraw, one line per ID, with ANSI cursor moves. */
export class TerminalRenderer implements ProgressSink {
  private ids = new Map<string, number>()

  constructor(
    private readonly out: (s: string) => void,
    private readonly columns: () => number,
  ) {}

  write(e: ProgressEvent): void {
    if (e.message || !e.id) {
      this.ids = new Map()
      this.out(line(e) + '\n')
      return
    }
    let row = this.ids.get(e.id)
    let s = ''
    if (row === undefined) {
      row = this.ids.size
      this.ids.set(e.id, row)
      s += '\n'
    }
    const diff = this.ids.size - row
    s += `\x1b[${diff}A\x1b[2K\r${e.id}: ${e.action} ${progressBar(e.current ?? 0, e.total ?? 0, this.columns())}\r\x1b[${diff}B`
    this.out(s)
  }
}
