import type { Test } from 'tap'

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
