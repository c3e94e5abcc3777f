/**
 * Child-process plumbing shared by the integration peers (Go memberlist peer,
 * serf agent): spawning with a stdout line reader, waiting for lines or
 * conditions, running one-shot commands, and making sure nothing we start
 * outlives the test process.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

export interface ExitStatus {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface SpawnOptions {
  /** Name used in error messages. */
  label?: string
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Keep a writable stdin pipe (default false: stdin is /dev/null). */
  stdin?: boolean
  /** Treat stderr like stdout (its lines go to `lines`). Default false. */
  mergeStderr?: boolean
  /** Keep at most this many characters of stderr for diagnostics (default 64 KiB). */
  stderrLimit?: number
  /**
   * Have the kernel SIGKILL the child when this process dies, however it dies
   * (via `setpriv --pdeathsig KILL`, which execs the command, so the pid is
   * the command's own). Default true; silently skipped without setpriv.
   */
  killWithParent?: boolean
}

export interface ManagedProcess {
  readonly label: string
  readonly child: ChildProcess
  readonly pid: number
  /** Every stdout line so far (without the newline). */
  readonly lines: readonly string[]
  /** Set once the process has exited. */
  readonly exitStatus: ExitStatus | undefined
  /** Resolves when the process exits (never rejects). */
  readonly exited: Promise<ExitStatus>
  /** The last part of stderr (or of stdout too when merged), for diagnostics. */
  stderrTail(chars?: number): string
  /** Subscribe to new stdout lines; returns an unsubscribe function. */
  onLine(cb: (line: string, index: number) => void): () => void
  /**
   * The first line at index >= `from` matching `pred` (already received or
   * arriving within `timeoutMs`). Rejects on timeout or when the process exits.
   */
  waitForLine(pred: (line: string) => boolean, timeoutMs: number, what?: string, from?: number): Promise<string>
  /** Write one line to stdin. */
  writeLine(line: string): void
  /** Send a signal (no-op once exited). */
  kill(signal?: NodeJS.Signals): void
  /**
   * Ask politely (signal, default SIGTERM; or nothing when `signal` is null),
   * then SIGKILL after `graceMs` (default 3000). Resolves on exit.
   */
  stop(opts?: { signal?: NodeJS.Signals | null; graceMs?: number }): Promise<ExitStatus>
}

// ---------------------------------------------------------------------------
// Reaping: whatever is still running when this process ends gets SIGKILL.

const live = new Set<ChildProcess>()
let reaperInstalled = false

function killAllNow(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  live.clear()
}

function installReaper(): void {
  if (reaperInstalled) return
  reaperInstalled = true
  process.on('exit', killAllNow)
  // SIGALRM: tap's timeout signal, followed by SIGKILL half a second later.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'] as const) {
    const onSignal = (): void => {
      killAllNow()
      process.removeListener(sig, onSignal)
      // If nobody else handles this signal, restore the default behaviour.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig)
    }
    process.on(sig, onSignal)
  }
}

/** SIGKILL every process started through this module that is still running. */
export function killAllChildren(): void {
  killAllNow()
}

let setprivCache: string | null | undefined

function setprivPath(): string | undefined {
  if (setprivCache === undefined) setprivCache = process.platform === 'linux' ? (which('setpriv') ?? null) : null
  return setprivCache ?? undefined
}

// ---------------------------------------------------------------------------

export function spawnManaged(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
  installReaper()
  const label = opts.label ?? cmd
  const setpriv = opts.killWithParent === false ? undefined : setprivPath()
  const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, [...args]]
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  })
  live.add(child)

  const lines: string[] = []
  const listeners = new Set<(line: string, index: number) => void>()
  const exitListeners = new Set<(st: ExitStatus) => void>()
  let exitStatus: ExitStatus | undefined
  let spawnError: Error | undefined
  const stderrLimit = opts.stderrLimit ?? 64 * 1024
  let stderr = ''

  const keepStderr = (s: string): void => {
    stderr += s
    if (stderr.length > stderrLimit * 2) stderr = stderr.slice(-stderrLimit)
  }

  const pushLine = (line: string): void => {
    const idx = lines.push(line) - 1
    for (const cb of [...listeners]) cb(line, idx)
  }

  const lineSplitter = (also?: (s: string) => void) => {
    let buf = ''
    return {
      data(chunk: string): void {
        also?.(chunk)
        buf += chunk
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          pushLine(buf.slice(0, nl).replace(/\r$/, ''))
          buf = buf.slice(nl + 1)
        }
      },
      end(): void {
        if (buf) pushLine(buf)
        buf = ''
      },
    }
  }

  const out = lineSplitter(opts.mergeStderr ? keepStderr : undefined)
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', out.data)
  child.stdout!.on('end', out.end)
  child.stderr!.setEncoding('utf8')
  if (opts.mergeStderr) {
    const err = lineSplitter(keepStderr)
    child.stderr!.on('data', err.data)
    child.stderr!.on('end', err.end)
  } else {
    child.stderr!.on('data', keepStderr)
  }
  // Writing to a child that died must not crash the test process.
  child.stdin?.on('error', () => {})

  const exited = new Promise<ExitStatus>(resolve => {
    const finish = (st: ExitStatus): void => {
      if (exitStatus) return
      exitStatus = st
      live.delete(child)
      for (const cb of [...exitListeners]) cb(st)
      resolve(st)
    }
    child.on('error', err => {
      spawnError = err
      // 'exit' does not follow a failed spawn.
      if (child.pid === undefined) finish({ code: null, signal: null })
    })
    child.on('exit', (code, signal) => finish({ code, signal }))
  })

  const describeExit = (): string => {
    if (spawnError) return `${label}: ${spawnError.message}`
    const st = exitStatus!
    const how = st.signal ? `signal ${st.signal}` : `code ${st.code}`
    return `${label} exited (${how})\n--- stderr tail ---\n${stderrTail()}`
  }

  function stderrTail(chars = 4000): string {
    return stderr.slice(-chars)
  }

  const proc: ManagedProcess = {
    label,
    child,
    pid: child.pid ?? -1,
    lines,
    get exitStatus() {
      return exitStatus
    },
    exited,
    stderrTail,
    onLine(cb) {
      listeners.add(cb)
      return () => listeners.delete(cb)
    },
    waitForLine(pred, timeoutMs, what = 'a matching line', from = 0) {
      for (let i = from; i < lines.length; i++) {
        if (pred(lines[i]!)) return Promise.resolve(lines[i]!)
      }
      if (exitStatus) return Promise.reject(new Error(`waiting for ${what}: ${describeExit()}`))
      return new Promise<string>((resolve, reject) => {
        const cleanup = (): void => {
          clearTimeout(timer)
          listeners.delete(onLine)
          exitListeners.delete(onExit)
        }
        const onLine = (line: string, idx: number): void => {
          if (idx >= from && pred(line)) {
            cleanup()
            resolve(line)
          }
        }
        const onExit = (): void => {
          cleanup()
          reject(new Error(`waiting for ${what}: ${describeExit()}`))
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`${label}: timed out after ${timeoutMs} ms waiting for ${what}\n--- stderr tail ---\n${stderrTail()}`))
        }, timeoutMs)
        listeners.add(onLine)
        exitListeners.add(onExit)
      })
    },
    writeLine(line) {
      if (!child.stdin) throw new Error(`${label}: spawned without stdin`)
      if (exitStatus) throw new Error(describeExit())
      child.stdin.write(line + '\n')
    },
    kill(signal = 'SIGTERM') {
      if (exitStatus || child.pid === undefined) return
      try {
        child.kill(signal)
      } catch {
        // raced with exit
      }
    },
    async stop({ signal = 'SIGTERM', graceMs = 3000 } = {}) {
      if (exitStatus) return exitStatus
      if (signal) proc.kill(signal)
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
      try {
        return await exited
      } finally {
        clearTimeout(timer)
      }
    },
  }
  return proc
}

export interface RunResult extends ExitStatus {
  stdout: string
  stderr: string
}

/** Run a command to completion (killed with SIGKILL after `timeoutMs`, default 30 s). */
export async function run(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const p = spawnManaged(cmd, args, { label: [cmd, ...args].join(' '), env: opts.env, cwd: opts.cwd })
  const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
  let stdout = ''
  p.child.stdout!.on('data', (s: string) => {
    stdout += s
  })
  try {
    const st = await p.exited
    return { ...st, stdout, stderr: p.stderrTail(Infinity) }
  } finally {
    clearTimeout(timer)
  }
}

/** Like {@link run} but throws unless the command exits with code 0. */
export async function runOk(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) {
    const how = r.signal ? `signal ${r.signal}` : `code ${r.code}`
    throw new Error(`${[cmd, ...args].join(' ')} failed (${how})\n${r.stderr || r.stdout}`)
  }
  return r
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/**
 * Poll `check` every `intervalMs` (default 200) until it returns something
 * other than undefined/false, and return that. Errors thrown by `check` count
 * as "not yet"; the last one is reported on timeout. Use `giveUp` to stop
 * early (e.g. when the process being polled has exited).
 */
export async function waitUntil<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: {
    timeoutMs: number
    intervalMs?: number
    what?: string
    /** Checked before every attempt: a returned Error ends the wait at once with it. */
    giveUp?: () => Error | undefined
  },
): Promise<T> {
  const deadline = performance.now() + opts.timeoutMs
  let lastError: unknown
  for (;;) {
    const fatal = opts.giveUp?.()
    if (fatal) throw fatal
    try {
      const v = await check()
      if (v !== undefined && v !== false) return v
    } catch (err) {
      lastError = err
    }
    if (performance.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : ''
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what ?? 'condition'}${why}`)
    }
    await sleep(opts.intervalMs ?? 200)
  }
}

/** Absolute path of an executable found on PATH (or among `extra` paths), else undefined. */
export function which(name: string, extra: readonly string[] = []): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  for (const p of [...dirs.map(d => join(d, name)), ...extra]) {
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // keep looking
    }
  }
  return undefined
}
