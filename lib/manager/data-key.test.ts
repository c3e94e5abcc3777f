import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { generateKeyPair } from '../control/identity.js'
import { swarmError } from '../test-helpers.test-helper.js'
import { dataKeyLocked, newDataKey, openDataKey } from './data-key.js'
import { newUnlockKey } from './unlock-key.js'
import { Store } from './store.js'

t.test('the data key sealed under the node key, then under the unlock key too (autolock)', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-data-key-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = await Store.open(dir)
  t.teardown(() => store.close())
  const nodeKey = generateKeyPair().privateKey
  t.equal(openDataKey(store, { nodeKey }), undefined, 'none yet')
  const { box, mutation } = newDataKey({ nodeKey })
  await store.commit([mutation])
  t.notOk(dataKeyLocked(store))
  const sealed = box.seal(Buffer.from('the CA key'))
  t.equal(openDataKey(store, { nodeKey })!.open(sealed).toString(), 'the CA key')

  const unlockKey = newUnlockKey()
  await store.commit([newDataKey({ nodeKey, unlockKey }, box.exportKey()).mutation])
  await store.snapshot()
  t.ok(dataKeyLocked(store), 'locked')
  t.throws(() => openDataKey(store, { nodeKey }), swarmError('unavailable', 'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.'), 'the node key alone no longer opens it')
  t.throws(() => openDataKey(store, { nodeKey, unlockKey: newUnlockKey() }), { code: 'E_SECRET_KEY_MISMATCH' }, 'nor another unlock key')
  t.throws(() => openDataKey(store, { nodeKey: generateKeyPair().privateKey, unlockKey }), { code: 'E_SECRET_KEY_MISMATCH' }, "nor the unlock key with another node's key")
  t.equal(openDataKey(store, { nodeKey, unlockKey })!.open(sealed).toString(), 'the CA key', 'the same data key, with both')

  // After the snapshot, no file of the store holds the data key as the node key alone sealed it.
  const files = readdirSync(dir).map(f => readFileSync(join(dir, f), 'latin1')).join('')
  t.notOk(files.includes(mutation.op === 'put' ? String(mutation.value) : '?'), 'the old sealed form is gone from disk')

  await store.commit([newDataKey({ nodeKey }, box.exportKey()).mutation])
  t.notOk(dataKeyLocked(store), 'autolock off: under the node key again')
  t.equal(openDataKey(store, { nodeKey })!.open(sealed).toString(), 'the CA key')
})
