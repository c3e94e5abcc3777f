import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ClusterCA } from './ca.js'
import { checkJoinProof, joinProof, newJoinToken, parseJoinToken } from './join-token.js'

t.test('tokens carry the CA digest and a fresh secret', async t => {
  const ca = ClusterCA.create()
  const a = newJoinToken(ca.digest)
  const b = newJoinToken(ca.digest)
  t.match(a, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/)
  t.not(a, b, 'rotation gives another secret')
  t.equal(parseJoinToken(a).caDigest, ca.digest)
  t.equal(parseJoinToken(`  ${a}\n`).secret, a.slice(-25))
})

t.test('malformed tokens are refused with Docker\'s message', async t => {
  const ca = ClusterCA.create()
  const good = newJoinToken(ca.digest)
  for (const bad of ['', 'SWMTKN-1-abc-def', good.replace('SWMTKN-1', 'SWMTKN-2'), good.slice(0, -1), good.toUpperCase(), `${good}x`]) {
    t.throws(() => parseJoinToken(bad), { code: 'E_TOKEN_FORMAT', message: 'invalid join token' })
  }
  t.throws(() => newJoinToken('short'), { code: 'E_TOKEN_DIGEST' })
})

t.test('the join proof shows the secret without revealing it, bound to a challenge and a key', async t => {
  const { secret } = parseJoinToken(newJoinToken(ClusterCA.create().digest))
  const challenge = randomBytes(32)
  const key = randomBytes(32)
  const proof = joinProof(secret, challenge, key)
  t.notOk(proof.toString('latin1').includes(secret))
  t.ok(checkJoinProof(secret, challenge, key, proof))
  t.notOk(checkJoinProof(secret, randomBytes(32), key, proof), 'replayed on another session')
  t.notOk(checkJoinProof(secret, challenge, randomBytes(32), proof), 'replayed for another key')
  t.notOk(checkJoinProof('0'.repeat(25), challenge, key, proof), 'a rotated secret')
  t.notOk(checkJoinProof(secret, challenge, key, proof.subarray(1)))
})
