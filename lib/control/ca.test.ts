import fc from 'fast-check'
import t from 'tap'
import { ClusterCA, needsRenewal, verifyCertificate, type NodeCertificate } from './ca.js'
import { exportPrivateKey, generateKeyPair, importPrivateKey, nodeIdFor, rawPublicKey, publicKeyFromRaw } from './identity.js'

const HOUR = 3_600_000

t.test('a certificate binds a node key to its ID and role', async t => {
  const ca = ClusterCA.create()
  t.match(ca.digest, /^[0-9a-z]{50}$/)
  const node = generateKeyPair()
  const cert = ca.issue({ nodePublicKey: node.publicKey, role: 'worker', now: 1000, ttlMs: HOUR })
  const body = verifyCertificate(cert, { caPublicKey: ca.publicKey, now: 2000, peerKey: node.publicKey })
  t.equal(body.nodeId, nodeIdFor(node.publicKey))
  t.match(body.nodeId, /^[0-9a-z]{25}$/)
  t.equal(body.role, 'worker')
  // It survives the wire (JSON) with its fields in any order.
  const shuffled = JSON.parse(JSON.stringify({ signature: cert.signature, body: { ...cert.body } }))
  const reordered = { signature: shuffled.signature, body: Object.fromEntries(Object.entries(shuffled.body).reverse()) }
  t.equal(verifyCertificate(reordered, { caPublicKey: ca.publicKey, now: 2000 }).nodeId, body.nodeId)
})

t.test('forged, foreign, expired and mismatched certificates are refused', async t => {
  const ca = ClusterCA.create()
  const other = ClusterCA.create()
  const node = generateKeyPair()
  const cert = ca.issue({ nodePublicKey: node.publicKey, role: 'worker', now: 1000, ttlMs: HOUR })
  const check = (c: unknown, now = 2000, peerKey = node.publicKey) => () => verifyCertificate(c, { caPublicKey: ca.publicKey, now, peerKey })
  t.throws(check({ ...cert, body: { ...cert.body, role: 'manager' } }), { code: 'E_CERT_SIGNATURE' }, 'a worker cannot promote itself')
  t.throws(check({ ...cert, body: { ...cert.body, notAfter: cert.body.notAfter + HOUR } }), { code: 'E_CERT_SIGNATURE' })
  t.throws(check(other.issue({ nodePublicKey: node.publicKey, role: 'manager', now: 1000, ttlMs: HOUR })), { code: 'E_CERT_CA' })
  t.throws(check(cert, 1000 + HOUR), { code: 'E_CERT_EXPIRED' })
  t.throws(check(cert, 999), { code: 'E_CERT_NOT_YET' })
  t.throws(check(cert, 2000, generateKeyPair().publicKey), { code: 'E_CERT_KEY' }, 'a stolen certificate is useless without its key')
  // Signed by the right CA, but naming an ID that does not belong to the key.
  const evil = generateKeyPair()
  const mine = ca.issue({ nodePublicKey: evil.publicKey, role: 'worker', now: 1000, ttlMs: HOUR })
  t.throws(check({ ...mine, body: { ...mine.body, nodeId: cert.body.nodeId } }, 2000, evil.publicKey), { code: 'E_CERT_SIGNATURE' })
  for (const bad of [null, 1, 'x', {}, { body: {}, signature: '' }, { body: { ...cert.body, v: 2 }, signature: cert.signature }]) {
    t.throws(check(bad), { code: 'E_CERT_FORMAT' })
  }
})

t.test('fuzz: any mutation of a certificate is refused', async t => {
  const ca = ClusterCA.create()
  const node = generateKeyPair()
  const cert = ca.issue({ nodePublicKey: node.publicKey, role: 'worker', now: 0, ttlMs: HOUR })
  const keys = Object.keys(cert.body) as (keyof NodeCertificate['body'])[]
  fc.assert(
    fc.property(fc.constantFrom(...keys), fc.oneof(fc.string(), fc.integer(), fc.constant(null)), (k, v) => {
      if (cert.body[k] === v) return true
      try {
        verifyCertificate({ ...cert, body: { ...cert.body, [k]: v } }, { caPublicKey: ca.publicKey, now: 1 })
        return false
      } catch (e) {
        return /^E_CERT_/.test((e as { code: string }).code)
      }
    }),
    { numRuns: 300 },
  )
})

t.test('renewal comes before expiry', async t => {
  const ca = ClusterCA.create()
  const body = ca.issue({ nodePublicKey: generateKeyPair().publicKey, role: 'manager', now: 0, ttlMs: 90 * HOUR }).body
  t.notOk(needsRenewal(body, 59 * HOUR))
  t.ok(needsRenewal(body, 60 * HOUR))
})

t.test('the CA and node keys survive a restart', async t => {
  const ca = ClusterCA.create()
  const again = ClusterCA.load(ca.export())
  t.equal(again.digest, ca.digest)
  const node = generateKeyPair()
  const back = importPrivateKey(exportPrivateKey(node.privateKey))
  t.same(rawPublicKey(back.publicKey), rawPublicKey(node.publicKey))
  t.same(rawPublicKey(publicKeyFromRaw(rawPublicKey(node.publicKey))), rawPublicKey(node.publicKey))
  t.throws(() => importPrivateKey('not a key'), { code: 'E_KEY' })
  t.throws(() => publicKeyFromRaw(Buffer.alloc(31)), { code: 'E_KEY' })
})
