import { spawn } from 'node:child_process'
import { SwarmdError } from '../types/errors.js'
import type { HealthConfig } from '../types/service.js'

/**
 * A process task's healthcheck, run as dockerd runs a container's
 * (daemon/health.go): the test command (CMD: a program and its arguments;
 * CMD-SHELL: one line for /bin/sh -c) in the task's environment and working
 * directory, every Interval (every StartInterval during the start period),
 * killed after Timeout. Exit 0 is healthy, anything else a failure; failures
 * within StartPeriod of the start do not count until the first success;
 * Retries failures in a row make the task unhealthy.
 */

/** Docker's defaults (daemon/health.go). */
export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, startIntervalMs: 5_000, retries: 3 }
/** What a probe's output is kept of, as Docker keeps 4 KiB of it. */
const MAX_OUTPUT = 4096

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy'

/** True when the config asks for a check: a test that is not ["NONE"]. */
export function healthcheckEnabled(hc: HealthConfig | undefined): hc is HealthConfig & { Test: string[] } {
  return !!hc?.Test?.length && hc.Test[0] !== 'NONE'
}

/** The probe's argv from a test, or the error dockerd gives a malformed one. */
export function probeArgv(test: string[]): [string, ...string[]] {
  const [kind, ...rest] = test
  if (kind === 'CMD' && rest[0]) return rest as [string, ...string[]]
  if (kind === 'CMD-SHELL' && rest.length === 1) return ['/bin/sh', '-c', rest[0]!]
  throw new SwarmdError('E_HEALTHCHECK', `unknown healthcheck type '${kind ?? ''}' (expected 'CMD' or 'CMD-SHELL' with a command)`)
}

const msOf = (ns: number | undefined, dflt: number): number => (ns && ns > 0 ? Math.max(1, Math.floor(ns / 1e6)) : dflt)

export interface ProbeResult {
  exitCode: number
  output: string
}

/** Runs one probe; a probe still running after `timeoutMs` is killed (with its process group) and fails. */
export function runProbe(argv: [string, ...string[]], o: { env: Record<string, string>; cwd?: string; timeoutMs: number }): Promise<ProbeResult> {
  return new Promise(resolve => {
    let output = ''
    const keep = (b: Buffer): void => {
      if (output.length < MAX_OUTPUT) output = (output + b.toString()).slice(0, MAX_OUTPUT)
    }
    const child = spawn(argv[0], argv.slice(1), { env: o.env, cwd: o.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }, o.timeoutMs)
    child.once('error', err => {
      clearTimeout(timer)
      resolve({ exitCode: -1, output: err.message })
    })
    child.once('close', code => {
      clearTimeout(timer)
      if (timedOut) resolve({ exitCode: -1, output: `Health check exceeded timeout (${o.timeoutMs / 1000}s)` })
      else resolve({ exitCode: code ?? -1, output })
    })
  })
}

/** Watches one task's health until stopped; `onChange` hears each change of status. */
export class HealthMonitor {
  private status: HealthStatus = 'starting'
  private streak = 0
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private readonly argv: [string, ...string[]]
  private readonly intervalMs: number
  private readonly timeoutMs: number
  private readonly startPeriodMs: number
  private readonly startIntervalMs: number
  private readonly retries: number
  private readonly startedAt: number

  constructor(
    config: HealthConfig & { Test: string[] },
    private readonly o: { env: Record<string, string>; cwd?: string; onChange: (status: 'healthy' | 'unhealthy', last: ProbeResult) => void },
  ) {
    this.argv = probeArgv(config.Test)
    this.intervalMs = msOf(config.Interval, HEALTH_DEFAULTS.intervalMs)
    this.timeoutMs = msOf(config.Timeout, HEALTH_DEFAULTS.timeoutMs)
    this.startPeriodMs = msOf(config.StartPeriod, HEALTH_DEFAULTS.startPeriodMs)
    this.startIntervalMs = msOf(config.StartInterval, HEALTH_DEFAULTS.startIntervalMs)
    this.retries = config.Retries && config.Retries > 0 ? config.Retries : HEALTH_DEFAULTS.retries
    this.startedAt = Date.now()
    this.schedule()
  }

  get current(): HealthStatus {
    return this.status
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private inStartPeriod(at: number): boolean {
    return this.status === 'starting' && at - this.startedAt < this.startPeriodMs
  }

  private schedule(): void {
    if (this.stopped) return
    const delay = this.inStartPeriod(Date.now()) ? this.startIntervalMs : this.intervalMs
    this.timer = setTimeout(() => void this.probe(), delay)
    this.timer.unref()
  }

  private async probe(): Promise<void> {
    const began = Date.now()
    const result = await runProbe(this.argv, { env: this.o.env, ...(this.o.cwd ? { cwd: this.o.cwd } : {}), timeoutMs: this.timeoutMs })
    if (this.stopped) return
    if (result.exitCode === 0) {
      this.streak = 0
      this.set('healthy', result)
    } else if (!this.inStartPeriod(began)) {
      this.streak++
      if (this.streak >= this.retries) this.set('unhealthy', result)
    }
    this.schedule()
  }

  private set(status: 'healthy' | 'unhealthy', last: ProbeResult): void {
    if (this.status === status) return
    this.status = status
    this.o.onChange(status, last)
  }
}
