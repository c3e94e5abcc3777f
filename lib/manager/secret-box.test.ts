import { generateKeyPairSync } from 'node:crypto'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { SwarmdError } from '../types/errors.js'
import { E_SECRET_KEY_MISMATCH, E_SECRET_NODE_KEY, E_SECRET_TAMPERED, SecretBox } from './secret-box.js'

const nodeKey = () => generateKeyPairSync('ed25519').privateKey

function failsWith(t: Test, fn: () => unknown, code: string): void {
  try {
    fn()
    t.fail(`expected ${code}`)
  } catch (e) {
    t.ok(e instanceof SwarmdError && e.code === code, code, { found: e })
  }
}

t.test('round trip through a reopened data key', async t => {
  const key = nodeKey()
  const { box, sealedKey } = SecretBox.create(key)
  const reopened = SecretBox.open(key, sealedKey)
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), bytes => {
      const sealed = box.seal(Buffer.from(bytes))
      return reopened.open(sealed).equals(Buffer.from(bytes))
    }),
  )
  t.same(reopened.open(box.seal(Buffer.alloc(0))), Buffer.alloc(0))
})

t.test('every seal uses a fresh nonce', async t => {
  const { box } = SecretBox.create(nodeKey())
  const plain = Buffer.from('same')
  t.not(box.seal(plain), box.seal(plain))
})

t.test('any flipped bit, truncation or extension is detected', async t => {
  const { box } = SecretBox.create(nodeKey())
  const sealed = Buffer.from(box.seal(Buffer.from('s3cr3t password')), 'base64')
  for (let i = 0; i < sealed.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = Buffer.from(sealed)
      bad[i]! ^= bit
      failsWith(t, () => box.open(bad.toString('base64')), E_SECRET_TAMPERED)
    }
  }
  failsWith(t, () => box.open(sealed.subarray(0, sealed.length - 1).toString('base64')), E_SECRET_TAMPERED)
  failsWith(t, () => box.open(Buffer.concat([sealed, Buffer.of(0)]).toString('base64')), E_SECRET_TAMPERED)
  failsWith(t, () => box.open(sealed.subarray(0, 10).toString('base64')), E_SECRET_TAMPERED)
  failsWith(t, () => box.open(''), E_SECRET_TAMPERED)
  failsWith(t, () => box.open(`${sealed.toString('base64')}!`), E_SECRET_TAMPERED)
})

t.test('a secret sealed under another data key does not open', async t => {
  const key = nodeKey()
  const a = SecretBox.create(key).box
  const b = SecretBox.create(key).box
  failsWith(t, () => b.open(a.seal(Buffer.from('x'))), E_SECRET_TAMPERED)
})

t.test('the data key opens only with the node key that sealed it', async t => {
  const { sealedKey } = SecretBox.create(nodeKey())
  failsWith(t, () => SecretBox.open(nodeKey(), sealedKey), E_SECRET_KEY_MISMATCH)
  const raw = Buffer.from(sealedKey, 'base64')
  raw[raw.length - 1]! ^= 1
  failsWith(t, () => SecretBox.open(nodeKey(), raw.toString('base64')), E_SECRET_KEY_MISMATCH)
  failsWith(t, () => SecretBox.open(nodeKey(), 'AAAA'), E_SECRET_KEY_MISMATCH)
})

t.test('only an Ed25519 private key is accepted', async t => {
  const pair = generateKeyPairSync('ed25519')
  failsWith(t, () => SecretBox.create(pair.publicKey), E_SECRET_NODE_KEY)
  failsWith(t, () => SecretBox.create(generateKeyPairSync('x25519').privateKey), E_SECRET_NODE_KEY)
})

t.test('sealed output holds neither the plaintext nor the keys', async t => {
  const key = nodeKey()
  const { box, sealedKey } = SecretBox.create(key)
  const plain = Buffer.from('correct horse battery staple '.repeat(8))
  const sealed = box.seal(plain)
  const bytes = Buffer.from(sealed, 'base64')
  t.equal(bytes.length, 24 + 16 + plain.length, 'nonce + tag + ciphertext')
  t.equal(bytes.indexOf(plain.subarray(0, 8)), -1, 'no plaintext run in the raw bytes')
  t.notMatch(sealed, /correct|horse/, 'no plaintext in the text')
  t.notMatch(sealed, plain.toString('base64').slice(4, 16), 'no base64 of the plaintext')
  const der = key.export({ type: 'pkcs8', format: 'der' })
  const seed = der.subarray(der.length - 32)
  t.equal(Buffer.from(sealedKey, 'base64').indexOf(seed), -1, 'node key not in the sealed key')
  t.equal(Buffer.from(sealedKey, 'base64').length, 16 + 24 + 16 + 32, 'salt + nonce + tag + sealed DEK')
})
