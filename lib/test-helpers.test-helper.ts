import { createServer } from 'node:net'
import type { Test } from 'tap'
import { SwarmError, type ErrorKind } from './types/errors.js'

/** What `fn` throws, for tests that inspect error classes and codes; a failed assertion if it does not throw. */
export function thrown(t: Test, fn: () => unknown): unknown {
  try {
    fn()
  } catch (e) {
    return e
  }
  t.fail('expected a throw')
  return undefined
}

/** Hex with spaces and quoted ASCII allowed: `a4"Node"` is `a4 4e6f6465`. */
export function hex(s: string): Buffer {
  const parts: Buffer[] = []
  const re = /"([^"]*)"|([0-9a-fA-F]{2})|(\s+)/gy
  let m: RegExpExecArray | null
  let last = 0
  while ((m = re.exec(s)) !== null) {
    if (m[1] !== undefined) parts.push(Buffer.from(m[1], 'utf8'))
    else if (m[2] !== undefined) parts.push(Buffer.from(m[2], 'hex'))
    last = re.lastIndex
  }
  if (last !== s.length) throw new Error(`bad hex literal at ${last}: ${s}`)
  return Buffer.concat(parts)
}

/** One edit of a fuzzed input: overwrite, insert or delete a byte, or cut the rest. */
export type Mutation = { op: 'set' | 'insert' | 'delete' | 'cut'; at: number; byte: number }

export function mutate(buf: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(buf)
  for (const m of muts) {
    if (b.length === 0) break
    const at = m.at % b.length
    if (m.op === 'set') b[at] = m.byte
    else if (m.op === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at)])
    else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)])
    else b = b.subarray(0, at)
  }
  return b
}

/** What a thrown SwarmError must match: its kind (the API answers each kind with one status) and message. */
export const swarmError = (kind: ErrorKind, message: string | RegExp): { constructor: typeof SwarmError; kind: ErrorKind; message: string | RegExp } => ({ constructor: SwarmError, kind, message })

/** A TCP port free on `host` right now (the OS picks it). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}
