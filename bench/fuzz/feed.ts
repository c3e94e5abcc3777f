/**
 * The fast-check loop the api and gossip planes of the fuzz bench share
 * (a plane's run is plane.ts's contract).
 */
import fc from 'fast-check'
import type { Mutation } from '../../lib/test-helpers.test-helper.js'
import type { FuzzOptions, FuzzResult } from './plane.js'

/** Findings shown per plane (on stderr), so one can be reproduced. */
const SAMPLES = 5

/**
 * Feeds samples of `gen` to `each`, `batch` at a time, until `o.inputs` ran
 * or the deadline passed. `each` says what is wrong with the answer to an
 * input, or nothing. Exceptions and rejections nobody catches meanwhile are
 * findings too, counted instead of ending the process.
 */
export async function feed<T>(name: string, o: FuzzOptions, gen: fc.Arbitrary<T>, batch: number, each: (input: T) => Promise<string | undefined>): Promise<{ inputs: number; crashes: number }> {
  let crashes = 0
  let inputs = 0
  const finding = (why: string): void => {
    if (crashes++ < SAMPLES) process.stderr.write(`fuzz ${name}: ${why}\n`)
  }
  const onCrash = (e: unknown): void => finding(`nobody caught ${(e as Error)?.stack ?? String(e)}`)
  process.on('uncaughtException', onCrash)
  process.on('unhandledRejection', onCrash)
  try {
    while (inputs < o.inputs && Date.now() < o.deadlineMs) {
      for (const input of fc.sample(gen, { numRuns: Math.min(batch, o.inputs - inputs), ...(o.seed !== undefined ? { seed: o.seed + inputs } : {}) })) {
        if (Date.now() >= o.deadlineMs) break
        const why = await each(input)
        if (why !== undefined) finding(why)
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
