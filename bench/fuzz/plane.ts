/**
 * What a plane of the fuzz bench is (each other module of bench/fuzz/
 * exports one as `plane`), and the loop they share.
 */
import fc from 'fast-check'
import type { Mutation } from '../../lib/test-helpers.test-helper.js'

export interface PlaneOptions {
  inputs: number
  /** A Date.now() time; a smaller number is taken as a budget from the call. */
  deadlineMs: number
  /** The same seed gives the same inputs. */
  seed?: number
}

export interface PlaneResult {
  inputs: number
  /** Inputs refused, by reason (a status, a drop counter's name). */
  drops: Record<string, number>
  /** Findings: an input `each` judged wrong, or an exception or rejection that nobody caught. */
  crashes: number
}

/**
 * Feeds samples of `gen` to `each`, `batch` at a time, until `o.inputs` ran
 * or the deadline passed. Exceptions and rejections nobody catches
 * meanwhile are counted instead of ending the process.
 */
export async function feed<T>(o: PlaneOptions, gen: fc.Arbitrary<T>, batch: number, each: (input: T) => Promise<boolean>): Promise<{ inputs: number; crashes: number }> {
  const deadline = o.deadlineMs < 1e12 ? Date.now() + o.deadlineMs : o.deadlineMs
  let crashes = 0
  let inputs = 0
  const onCrash = (): void => void crashes++
  process.on('uncaughtException', onCrash)
  process.on('unhandledRejection', onCrash)
  try {
    while (inputs < o.inputs && Date.now() < deadline) {
      for (const input of fc.sample(gen, { numRuns: Math.min(batch, o.inputs - inputs), ...(o.seed !== undefined ? { seed: o.seed + inputs } : {}) })) {
        if (Date.now() >= deadline) break
        if (!(await each(input))) crashes++
        inputs++
      }
    }
  } finally {
    process.off('uncaughtException', onCrash)
    process.off('unhandledRejection', onCrash)
  }
  return { inputs, crashes }
}

/** One byte-level edit of a valid input (lib/test-helpers' mutate applies it): overwrite, insert, delete, or cut the rest. */
export const byteEdit: fc.Arbitrary<Mutation> = fc.record({ op: fc.constantFrom('set', 'insert', 'delete', 'cut'), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) })
