import t from 'tap'
import { Keyring, KeyringError } from './keyring.js'
import { SwarmdError } from '../types/errors.js'

const k16 = Buffer.alloc(16, 1)
const k24 = Buffer.alloc(24, 2)
const k32 = Buffer.alloc(32, 3)

function keyringErrorCode(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    if (err instanceof KeyringError) return err.code
    throw err
  }
}

t.test('validateKey accepts AES-128/192/256 sizes only', async t => {
  for (const k of [k16, k24, k32]) t.doesNotThrow(() => Keyring.validateKey(k), `${k.length} bytes`)
  for (const n of [0, 1, 15, 17, 31, 33, 64]) {
    t.equal(keyringErrorCode(() => Keyring.validateKey(Buffer.alloc(n))), 'E_KEY_SIZE', `${n} bytes`)
  }
  t.ok(new KeyringError('E_X', 'x') instanceof SwarmdError)
})

t.test('constructor', async t => {
  const empty = new Keyring()
  t.same(empty.getKeys(), [])
  t.equal(empty.primaryKey(), undefined)

  const firstIsPrimary = new Keyring([k16, k24])
  t.same(firstIsPrimary.getKeys(), [k16, k24])

  const explicit = new Keyring([k16, k24, k32], k32)
  t.same(explicit.getKeys(), [k32, k16, k24], 'primary first, then the rest in order without duplicates')
  t.same(explicit.primaryKey(), k32)

  t.equal(keyringErrorCode(() => new Keyring([k16, Buffer.alloc(20)])), 'E_KEY_SIZE')
  t.equal(keyringErrorCode(() => new Keyring([], Buffer.alloc(8))), 'E_KEY_SIZE')
})

t.test('addKey installs last and ignores duplicates by bytes', async t => {
  const ring = new Keyring()
  ring.addKey(k16)
  t.same(ring.primaryKey(), k16, 'the first key installed becomes primary')
  ring.addKey(k32)
  ring.addKey(Buffer.from(k16)) // a different buffer with the same bytes
  t.same(ring.getKeys(), [k16, k32])
  t.equal(keyringErrorCode(() => ring.addKey(Buffer.alloc(10))), 'E_KEY_SIZE')
})

t.test('useKey switches the primary', async t => {
  const ring = new Keyring([k16, k24, k32])
  ring.useKey(Uint8Array.from(k24))
  t.same(ring.getKeys(), [k24, k16, k32])
  ring.useKey(k24)
  t.same(ring.getKeys(), [k24, k16, k32], 'using the primary again changes nothing')
  t.equal(keyringErrorCode(() => ring.useKey(Buffer.alloc(16, 9))), 'E_KEY_NOT_INSTALLED')
})

t.test('removeKey refuses the primary', async t => {
  const ring = new Keyring([k16, k24, k32])
  t.equal(keyringErrorCode(() => ring.removeKey(Buffer.from(k16))), 'E_KEY_PRIMARY')
  ring.removeKey(k24)
  t.same(ring.getKeys(), [k16, k32])
  ring.removeKey(Buffer.alloc(16, 9))
  t.same(ring.getKeys(), [k16, k32], 'removing an unknown key is a no-op')
  ring.useKey(k32)
  ring.removeKey(k16)
  t.same(ring.getKeys(), [k32], 'rotation: install, switch primary, remove the old one')
})

t.test('keys are copied in and out', async t => {
  const mine = Buffer.alloc(16, 5)
  const ring = new Keyring([mine])
  mine.fill(6)
  t.same(ring.primaryKey(), Buffer.alloc(16, 5), 'mutating the caller buffer does not change the ring')
  ring.getKeys()[0]!.fill(7)
  ring.primaryKey()!.fill(7)
  t.same(ring.getKeys(), [Buffer.alloc(16, 5)], 'mutating returned buffers does not change the ring')
})
