import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { SwarmdError } from '../types/errors.js'
import type { PortStatus } from '../types/task.js'

/** What a later life of the daemon needs to find a task's process again. */
export interface TaskRecord {
  id: string
  /** The wrapper shell: the task's process group leader. */
  pid: number
  /** Field 22 of /proc/<pid>/stat, so a reused pid is not mistaken for the task. */
  startTime: string
  ports: PortStatus[]
  createdAt: string
  /** ContainerSpec.StopSignal, when not SIGTERM: what a later life of the daemon stops it with too. */
  stopSignal?: NodeJS.Signals
}

/** The files of one task under the executor's directory. */
export interface TaskPaths {
  dir: string
  record: string
  /** Written by the wrapper with the command's exit status. */
  exit: string
  stdout: string
  stderr: string
  log: string
}

const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** Task IDs name directories, so only plain names pass. */
export function checkTaskId(id: string): void {
  if (!TASK_ID.test(id)) throw new SwarmdError('E_BAD_TASK_ID', `invalid task ID ${JSON.stringify(id)}`)
}

export function taskPaths(root: string, id: string): TaskPaths {
  checkTaskId(id)
  const dir = path.join(root, id)
  return {
    dir,
    record: path.join(dir, 'task.json'),
    exit: path.join(dir, 'exit'),
    stdout: path.join(dir, 'stdout.fifo'),
    stderr: path.join(dir, 'stderr.fifo'),
    log: path.join(dir, 'output.log'),
  }
}

export function writeRecord(p: TaskPaths, rec: TaskRecord): void {
  const tmp = `${p.record}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 })
  fs.renameSync(tmp, p.record)
}

export function readRecord(p: TaskPaths): TaskRecord | undefined {
  let text: string
  try {
    text = fs.readFileSync(p.record, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  const rec = JSON.parse(text) as TaskRecord
  if (typeof rec.pid !== 'number' || typeof rec.startTime !== 'string') throw new SwarmdError('E_TASK_RECORD', `corrupt task record ${p.record}`)
  return rec
}

/** The exit status the wrapper wrote, or undefined while there is none (yet). */
export function readExitStatus(p: TaskPaths): number | undefined {
  try {
    const text = fs.readFileSync(p.exit, 'utf8').trim()
    return /^\d+$/.test(text) ? Number(text) : undefined
  } catch {
    return undefined
  }
}

export async function makeFifo(file: string): Promise<void> {
  // Node has no mkfifo(3); coreutils' is everywhere a shell is.
  await promisify(execFile)('mkfifo', ['-m', '600', file])
}

/** The process' start time, and whether it has exited (a zombie) though not yet been reaped. */
export function processStat(pid: number): { startTime: string; zombie: boolean } | undefined {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return undefined
  }
  // The command name (field 2) may hold spaces and parentheses: count from its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const state = fields[0]
  const startTime = fields[19]
  if (state === undefined || startTime === undefined) return undefined
  return { startTime, zombie: state === 'Z' || state === 'X' }
}

/** True while the recorded process still runs (not a reused pid, not a zombie). */
export function isAlive(rec: Pick<TaskRecord, 'pid' | 'startTime'>): boolean {
  const st = processStat(rec.pid)
  return st !== undefined && !st.zombie && st.startTime === rec.startTime
}

/** The pids of a process' children (from the kernel's list, else by scanning /proc). */
export function childrenOf(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1')
      .split(' ')
      .filter(Boolean)
      .map(Number)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync(`/proc/${pid}`)) return []
  }
  return procStats()
    .filter(p => p.ppid === pid)
    .map(p => p.pid)
}

/** The process' argv as the kernel holds it, or undefined once it is gone. */
export function cmdline(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1')
  } catch {
    return undefined
  }
}

/** Every process' pid, parent, group and state, from /proc. */
function procStats(): { pid: number; ppid: number; pgrp: number; state: string }[] {
  const out: { pid: number; ppid: number; pgrp: number; state: string }[] = []
  let names: string[]
  try {
    names = fs.readdirSync('/proc')
  } catch {
    return out
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1')
    } catch {
      continue
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    out.push({ pid: Number(name), state: f[0] ?? '', ppid: Number(f[1]), pgrp: Number(f[2]) })
  }
  return out
}

/**
 * True while a process of the group still runs. Zombies do not count: a
 * killed member whose new parent (init) has not reaped it yet holds nothing.
 */
export function groupAlive(pgid: number): boolean {
  return procStats().some(p => p.pgrp === pgid && p.state !== 'Z' && p.state !== 'X')
}

/**
 * Signals the task's process group. A pgid is not reused while its group has
 * members; the leader's start time guards the case where the group emptied
 * and a new process took the number.
 */
export function signalGroup(rec: Pick<TaskRecord, 'pid' | 'startTime'>, signal: NodeJS.Signals): void {
  const st = processStat(rec.pid)
  if (st !== undefined && st.startTime !== rec.startTime) return
  try {
    process.kill(-rec.pid, signal)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e
  }
}
