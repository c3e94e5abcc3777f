import t from 'tap'
import { swarmError } from '../test-helpers.test-helper.js'
import { humanUnlockKey, newUnlockKey, parseUnlockKey } from './unlock-key.js'

t.test("the unlock key as swarmkit shows it: SWMKEY-1- and unpadded base64", async t => {
  const key = newUnlockKey()
  t.equal(key.length, 32)
  const text = humanUnlockKey(key)
  t.match(text, /^SWMKEY-1-[A-Za-z0-9+/]{43}$/)
  t.same(parseUnlockKey(text), key)
  t.not(humanUnlockKey(newUnlockKey()), text, 'a fresh key each time')
  for (const bad of ['', `SWMKEY-2-${text.slice(9)}`, text + '=', text.slice(0, -1) + '*', ` ${text}`]) {
    t.throws(() => parseUnlockKey(bad), swarmError('invalid_argument', 'invalid key string'), JSON.stringify(bad))
  }
})
