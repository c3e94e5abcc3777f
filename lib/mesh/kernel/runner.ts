import { spawn } from 'node:child_process'
import { SwarmdError } from '../../types/errors.js'

/** A kernel programming command failed: which one, and what it said. */
export class KernelError extends SwarmdError {
  constructor(code: 'E_KERNEL_COMMAND' | 'E_KERNEL_UNSUPPORTED', message: string, options?: { cause?: unknown }) {
    super(code, message, { ...options, kind: 'unavailable' })
  }
}

export interface CommandResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * Runs a program with `input` on its stdin; how the kernel is programmed
 * (`ip -batch -`, `bridge -batch -`, `nft -f -`), and what tests replace.
 */
export type Runner = (program: string, args: readonly string[], input?: string) => Promise<CommandResult>

const TIMEOUT_MS = 30_000

/** Spawns the program (no shell); a program that does not exist resolves with code 127. */
export const spawnRunner: Runner = (program, args, input) =>
  new Promise(resolve => {
    const p = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: TIMEOUT_MS, killSignal: 'SIGKILL' })
    let stdout = ''
    let stderr = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    p.once('error', e => resolve({ code: 127, stdout, stderr: stderr + e.message }))
    p.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }))
    // A program that exits before reading its input closes the pipe: that is its answer, not ours to throw.
    p.stdin.on('error', () => undefined)
    p.stdin.end(input ?? '')
  })

/** Runs the program and returns its stdout, or throws KernelError with its stderr. */
export async function runOk(run: Runner, program: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(program, args, input)
  if (r.code !== 0) throw new KernelError('E_KERNEL_COMMAND', `${program} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
  return r.stdout
}

/** A batch for `ip -batch -` or `bridge -batch -`: nothing to run when it is empty. */
export async function runBatch(run: Runner, program: 'ip' | 'bridge', lines: readonly string[], prefix: readonly string[] = []): Promise<void> {
  if (lines.length === 0) return
  await runOk(run, program, [...prefix, '-batch', '-'], lines.join('\n') + '\n')
}

/** JSON output of `ip -j ...` / `bridge -j ...` (empty output is an empty list). */
export async function readJson<T>(run: Runner, program: 'ip' | 'bridge' | 'nft', args: readonly string[]): Promise<T[]> {
  const out = (await runOk(run, program, args)).trim()
  if (!out) return []
  try {
    return JSON.parse(out) as T[]
  } catch (e) {
    throw new KernelError('E_KERNEL_COMMAND', `${program} ${args.join(' ')} printed no JSON: ${out.slice(0, 200)}`, { cause: e })
  }
}
