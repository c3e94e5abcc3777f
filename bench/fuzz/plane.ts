/**
 * The contract between `npm run fuzz` (bench/fuzz.ts) and the modules in
 * bench/fuzz/: each exports `plane`, which feeds generated inputs to one
 * plane of the system until it has used `inputs` or reached `deadlineMs`,
 * and says how many it fed, which it dropped and why, and how many crashed.
 */
import { SwarmdError } from '../../lib/types/errors.js'

export interface FuzzOptions {
  /** How many inputs to feed at most. */
  inputs: number
  /** When to stop at the latest, as a Date.now() timestamp. */
  deadlineMs: number
  /** The same seed gives the same inputs; each round of the runner gives another. */
  seed?: number
}

export interface FuzzResult {
  inputs: number
  /** Inputs refused as they should be, by `target: error code`. */
  drops: Record<string, number>
  /** Inputs that threw anything but a SwarmdError, or hung. */
  crashes: number
}

export interface FuzzPlane {
  name: string
  run(o: FuzzOptions): Promise<FuzzResult>
}

/** Crash samples printed per plane (stderr), so a crash can be reproduced. */
const SAMPLES = 5

/** A plane's counts while it runs. */
export class Tally {
  inputs = 0
  crashes = 0
  readonly drops: Record<string, number> = {}
  private samples = 0

  constructor(private readonly plane: string) {}

  drop(target: string, reason: string): void {
    const k = `${target}: ${reason}`
    this.drops[k] = (this.drops[k] ?? 0) + 1
  }

  crash(target: string, e: unknown, input?: Uint8Array | string): void {
    this.crashes++
    if (this.samples++ >= SAMPLES) return
    const what = input === undefined ? '' : ` on ${typeof input === 'string' ? JSON.stringify(input.slice(0, 300)) : Buffer.from(input).toString('hex').slice(0, 600)}`
    process.stderr.write(`fuzz ${this.plane}: ${target} crashed${what}: ${(e as Error)?.stack ?? String(e)}\n`)
  }

  /** What an input's refusal says: a SwarmdError is a drop by its code, anything else a crash. */
  refused(target: string, e: unknown, input?: Uint8Array | string): void {
    if (e instanceof SwarmdError) this.drop(target, e.code)
    else this.crash(target, e, input)
  }

  /** One input through a decoder (awaited when it returns a promise). */
  async feed(target: string, input: Uint8Array, decode: () => unknown): Promise<void> {
    this.inputs++
    try {
      const r = decode()
      if (r instanceof Promise) await r
    } catch (e) {
      this.refused(target, e, input)
    }
  }

  result(): FuzzResult {
    const drops = Object.fromEntries(Object.entries(this.drops).sort(([a], [b]) => (a < b ? -1 : 1)))
    return { inputs: this.inputs, drops, crashes: this.crashes }
  }
}
