import t from 'tap'
import fc from 'fast-check'
import {
  SecurityError,
  decryptPayload,
  encryptOverhead,
  encryptPayload,
  encryptPayloadWithNonce,
} from './security.js'
import { KeyringError } from './keyring.js'

const keyOf = (n: number, fill: number): Buffer => Buffer.alloc(n, fill)
const keys = [keyOf(16, 1), keyOf(24, 2), keyOf(32, 3)]
const msg = Buffer.from('swarmd says hello to memberlist')

function securityErrorCode(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    if (err instanceof SecurityError) return err.code
    throw err
  }
}

t.test('overhead', async t => {
  t.equal(encryptOverhead(1), 29)
  t.equal(encryptOverhead(0), 45)
  for (const len of [0, 1, 15, 16, 17, 100]) {
    t.equal(encryptPayload(1, keys[0]!, Buffer.alloc(len), undefined).length, len + 29, `v1, ${len} bytes`)
    const v0 = encryptPayload(0, keys[0]!, Buffer.alloc(len), undefined).length
    t.equal(v0, 29 + (Math.floor(len / 16) + 1) * 16, `v0, ${len} bytes: always 1..16 bytes of padding`)
    t.ok(v0 <= len + encryptOverhead(0))
  }
})

t.test('round trips with every key size and both versions', async t => {
  const label = Buffer.from('cluster-a')
  for (const key of keys) {
    for (const version of [0, 1] as const) {
      for (const plaintext of [Buffer.alloc(0), msg, Buffer.alloc(32, 7)]) {
        for (const aad of [undefined, label]) {
          const blob = encryptPayload(version, key, plaintext, aad)
          t.equal(blob[0], version)
          t.same(decryptPayload([key], blob, aad), plaintext, `AES-${key.length * 8} v${version} ${plaintext.length}B aad=${aad !== undefined}`)
        }
      }
    }
  }
})

t.test('nonces are fresh', async t => {
  const a = encryptPayload(1, keys[0]!, msg, undefined)
  const b = encryptPayload(1, keys[0]!, msg, undefined)
  t.not(a.subarray(1, 13).toString('hex'), b.subarray(1, 13).toString('hex'))
})

t.test('AAD must match', async t => {
  const blob = encryptPayload(1, keys[2]!, msg, Buffer.from('label-a'))
  t.equal(securityErrorCode(() => decryptPayload([keys[2]!], blob, Buffer.from('label-b'))), 'E_CRYPT_NOKEY')
  t.equal(securityErrorCode(() => decryptPayload([keys[2]!], blob, undefined)), 'E_CRYPT_NOKEY')
  const plain = encryptPayload(1, keys[2]!, msg, undefined)
  t.same(decryptPayload([keys[2]!], plain, Buffer.alloc(0)), msg, 'empty AAD is the same as none')
})

t.test('any installed key may open a blob', async t => {
  const blob = encryptPayload(1, keys[1]!, msg, undefined)
  t.same(decryptPayload(keys, blob, undefined), msg, 'secondary key')
  t.same(decryptPayload([Buffer.alloc(5), ...keys], blob, undefined), msg, 'keys that are not AES keys are skipped')
})

t.test('wrong key', async t => {
  const blob = encryptPayload(1, keys[0]!, msg, undefined)
  const err = t.throws(() => decryptPayload([keyOf(16, 9), keys[2]!], blob, undefined), SecurityError)
  t.match(err, { code: 'E_CRYPT_NOKEY', message: 'No installed keys could decrypt the message' })
  t.equal(securityErrorCode(() => decryptPayload([], blob, undefined)), 'E_CRYPT_NOKEY', 'no keys at all')
})

t.test('malformed blobs', async t => {
  const v1 = encryptPayload(1, keys[0]!, Buffer.alloc(0), undefined)
  const v0 = encryptPayload(0, keys[0]!, Buffer.alloc(0), undefined)
  t.equal(v1.length, 29)
  t.equal(v0.length, 45)
  t.equal(securityErrorCode(() => decryptPayload(keys, Buffer.alloc(0), undefined)), 'E_CRYPT_SHORT')
  t.equal(securityErrorCode(() => decryptPayload(keys, v1.subarray(0, 28), undefined)), 'E_CRYPT_SHORT')
  t.equal(securityErrorCode(() => decryptPayload(keys, v0.subarray(0, 44), undefined)), 'E_CRYPT_SHORT')
  const v2 = Buffer.from(v1)
  v2[0] = 2
  t.equal(securityErrorCode(() => decryptPayload(keys, v2, undefined)), 'E_CRYPT_VERSION')
  // v0 blobs that authenticate but whose last plaintext byte is not a valid pad length.
  const nonce = Buffer.alloc(12)
  for (const last of [0, 17, 255]) {
    const bad = encryptPayloadWithNonce(1, keys[0]!, nonce, Buffer.alloc(16, last), undefined)
    bad[0] = 0
    t.equal(securityErrorCode(() => decryptPayload(keys, bad, undefined)), 'E_CRYPT_PAD', `pad byte ${last}`)
  }
})

t.test('encrypting with a key of the wrong size', async t => {
  t.throws(() => encryptPayload(1, Buffer.alloc(20), msg, undefined), KeyringError)
})

t.test('opens blobs sealed by Go crypto/cipher GCM', async t => {
  // Produced by Go 1.19 (aes.NewCipher, cipher.NewGCM, Seal) in memberlist's
  // layout. Key k = bytes 1..k, nonce a0..ab; v1 uses AAD "cluster-a", v0
  // pads the 31-byte message with a single 0x01 and has no AAD.
  const nonce = Buffer.from('a0a1a2a3a4a5a6a7a8a9aaab', 'hex')
  const vectors: Array<[number, 0 | 1, string]> = [
    [16, 1, '01a0a1a2a3a4a5a6a7a8a9aaab7174f6d40bc921e55602bd499b40bbe8d15a932e5fda4683cab5a42ddfcaad00043c12ac7c923f48dc3b739bf7c246'],
    [16, 0, '00a0a1a2a3a4a5a6a7a8a9aaab7174f6d40bc921e55602bd499b40bbe8d15a932e5fda4683cab5a42ddfcaade5eb6994a3741b326e7ce9b68984e8c751'],
    [24, 1, '01a0a1a2a3a4a5a6a7a8a9aaab554cf7ab8ff23d6d9fd1361f4d9a35bc2af074d1e536f64c6052e3e9eff908fd9e6de11481d894fdd0a18d2c5287e5'],
    [24, 0, '00a0a1a2a3a4a5a6a7a8a9aaab554cf7ab8ff23d6d9fd1361f4d9a35bc2af074d1e536f64c6052e3e9eff90888e1359905ffd5067a2f53ecab6e695e54'],
    [32, 1, '01a0a1a2a3a4a5a6a7a8a9aaabcaa65c1490d17a771e77d14b99e04ce838f7c476780505e9453ea7913b3dacd09dc72def43a1207ff60cbff7fc1e0b'],
    [32, 0, '00a0a1a2a3a4a5a6a7a8a9aaabcaa65c1490d17a771e77d14b99e04ce838f7c476780505e9453ea7913b3dac34ab38eb81639e290e99a0a87b58743a7d'],
  ]
  for (const [size, version, hex] of vectors) {
    const key = Buffer.from(Array.from({ length: size }, (_, i) => i + 1))
    const aad = version === 1 ? Buffer.from('cluster-a') : undefined
    const name = `AES-${size * 8} v${version}`
    t.same(decryptPayload([keyOf(32, 0), key], Buffer.from(hex, 'hex'), aad), msg, `open ${name}`)
    t.equal(encryptPayloadWithNonce(version, key, nonce, msg, aad).toString('hex'), hex, `seal ${name}`)
  }
})

const decryptOrSecurityError = (blob: Uint8Array): boolean => {
  try {
    return Buffer.isBuffer(decryptPayload(keys, blob, undefined))
  } catch (err) {
    return err instanceof SecurityError
  }
}

t.test('fuzz: random blobs only ever throw SecurityError', async t => {
  const blob = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    // Mostly valid-looking headers so the GCM path is exercised.
    fc.tuple(fc.integer({ min: 0, max: 2 }), fc.uint8Array({ minLength: 28, maxLength: 200 }))
      .map(([v, rest]) => Buffer.concat([Buffer.from([v]), rest])),
  )
  fc.assert(fc.property(blob, decryptOrSecurityError), { numRuns: 500 })
  t.pass('500 runs')
})

t.test('fuzz: bit-flipped blobs only ever throw SecurityError', async t => {
  const flipped = fc.tuple(
    fc.constantFrom(...keys),
    fc.constantFrom(0 as const, 1 as const),
    fc.uint8Array({ maxLength: 100 }),
    fc.nat(),
    fc.integer({ min: 0, max: 7 }),
  )
  fc.assert(
    fc.property(flipped, ([key, version, plaintext, at, bit]) => {
      const blob = encryptPayload(version, key, plaintext, undefined)
      const i = at % blob.length
      blob[i]! ^= 1 << bit
      try {
        decryptPayload(keys, blob, undefined)
        // The version byte is outside what GCM authenticates (as in
        // memberlist), so flipping 0 <-> 1 can still open; any other flip must not.
        return i === 0
      } catch (err) {
        return err instanceof SecurityError
      }
    }),
    { numRuns: 1000 },
  )
  t.pass('1000 runs')
})

t.test('the version byte is not authenticated', async t => {
  const v0 = encryptPayload(0, keys[0]!, msg, undefined)
  v0[0] = 1
  t.same(decryptPayload(keys, v0, undefined), Buffer.concat([msg, Buffer.from([1])]), 'v0 read as v1 keeps its padding')
})
