import t from 'tap'
import { randomBytes } from 'node:crypto'
import { thrown } from '../test-helpers.test-helper.js'
import { SealError, SealKeyring, Sealer, openFrame } from './seal.js'
import { FrameFlag, FrameType, decodeFrame, type Frame } from './tunnel-frame.js'

const k1 = randomBytes(32)
const k2 = randomBytes(32)
const plain = Buffer.from('SECRET-PAYLOAD-MARKER')

function sealOne(s: Sealer, ring: SealKeyring, body = plain, streamId = 3): Buffer {
  return Buffer.concat(s.seal(ring, { vni: 4096, type: FrameType.DATA, streamId }, body))
}

t.test('seals with the primary, opens and authenticates', async (t) => {
  const ring = new SealKeyring([{ id: 1, key: k1 }], 1)
  const wire = sealOne(new Sealer(), ring)
  t.equal(wire.indexOf(plain), -1, 'no plaintext on the wire')
  const f = decodeFrame(wire)
  t.equal(f.flags & FrameFlag.SEALED, FrameFlag.SEALED)
  t.equal(f.keyId, 1)
  t.equal(f.length, plain.length + 28)
  const out = openFrame(ring, f, true)
  t.ok(Buffer.isBuffer(out) && out.equals(plain))
  const empty = decodeFrame(sealOne(new Sealer(), ring, Buffer.alloc(0)))
  t.equal((openFrame(ring, empty, true) as Buffer).length, 0, 'empty bodies (FIN) seal too')
})

t.test('tampering with any byte, header included, fails authentication', async (t) => {
  const ring = new SealKeyring([{ id: 1, key: k1 }], 1)
  const wire = sealOne(new Sealer(), ring)
  const failures = new Set<string>()
  for (const i of [4, 6, 9, 12, 15, 20, 25, 32, 40, wire.length - 1]) {
    const b = Buffer.from(wire)
    b[i]! ^= 0x01
    let f: Frame
    try {
      f = decodeFrame(b)
    } catch {
      continue // a header that no longer parses never reaches openFrame
    }
    failures.add(`${i}:${String(openFrame(ring, f, true))}`)
  }
  t.same([...failures].every((s) => s.endsWith(':decrypt')), true, [...failures].join(' '))
  t.ok(failures.size >= 8)
})

t.test('replays are refused: strictly increasing on TCP, a window on UDP', async (t) => {
  const ring = new SealKeyring([{ id: 1, key: k1 }], 1)
  const s = new Sealer()
  const a = decodeFrame(sealOne(s, ring))
  const b = decodeFrame(sealOne(s, ring))
  t.ok(Buffer.isBuffer(openFrame(ring, a, true)))
  t.equal(openFrame(ring, a, true), 'replay')
  t.ok(Buffer.isBuffer(openFrame(ring, b, true)))
  t.equal(openFrame(ring, b, false), 'replay')

  const u = new Sealer()
  const x = decodeFrame(sealOne(u, ring))
  const y = decodeFrame(sealOne(u, ring))
  t.ok(Buffer.isBuffer(openFrame(ring, y, false)), 'newer first')
  t.ok(Buffer.isBuffer(openFrame(ring, x, false)), 'older within the window is fine on UDP')
  t.equal(openFrame(ring, x, false), 'replay')
})

t.test('a forged frame does not advance the replay state', async (t) => {
  const ring = new SealKeyring([{ id: 1, key: k1 }], 1)
  const s = new Sealer()
  const good = sealOne(s, ring)
  const forged = Buffer.from(good)
  forged.writeUInt32BE(forged.readUInt32BE(28) + 1000, 28) // bump the counter; the tag no longer matches
  t.equal(openFrame(ring, decodeFrame(forged), true), 'decrypt')
  t.ok(Buffer.isBuffer(openFrame(ring, decodeFrame(good), true)))
})

t.test('wrong key and unknown key id', async (t) => {
  const mine = new SealKeyring([{ id: 1, key: k1 }], 1)
  const theirs = new SealKeyring([{ id: 1, key: k2 }], 1)
  const f = decodeFrame(sealOne(new Sealer(), theirs))
  t.equal(openFrame(mine, f, true), 'decrypt')
  const other = new SealKeyring([{ id: 9, key: k1 }], 9)
  t.equal(openFrame(mine, decodeFrame(sealOne(new Sealer(), other)), true), 'decrypt')
})

t.test('rotation: receive under any installed key, send under the primary', async (t) => {
  const sender = new SealKeyring([{ id: 1, key: k1 }], 1)
  const receiver = new SealKeyring([{ id: 1, key: k1 }], 1)
  const s = new Sealer()
  t.ok(Buffer.isBuffer(openFrame(receiver, decodeFrame(sealOne(s, sender)), true)))
  // the new key is installed everywhere before anyone sends with it
  receiver.install(2, k2)
  sender.install(2, k2)
  sender.usePrimary(2)
  const f2 = decodeFrame(sealOne(s, sender))
  t.equal(f2.keyId, 2)
  t.ok(Buffer.isBuffer(openFrame(receiver, f2, true)))
  t.ok(Buffer.isBuffer(openFrame(receiver, decodeFrame(sealOne(s, new SealKeyring([{ id: 1, key: k1 }], 1))), true)), 'the old key still opens')
  receiver.usePrimary(2)
  receiver.remove(1)
  t.equal(openFrame(receiver, decodeFrame(sealOne(s, new SealKeyring([{ id: 1, key: k1 }], 1))), true), 'decrypt', 'the removed key no longer opens')
  t.same(receiver.ids(), [2])
  t.equal(receiver.primaryId, 2)
})

t.test('keyring validation', async (t) => {
  const code = (fn: () => unknown): string => (thrown(t, fn) as SealError).code
  t.equal(code(() => new SealKeyring([{ id: 1, key: k1 }], 2)), 'E_SEAL_PRIMARY')
  t.equal(code(() => new SealKeyring([{ id: 0, key: k1 }], 0)), 'E_SEAL_KEY')
  t.equal(code(() => new SealKeyring([{ id: 256, key: k1 }], 256)), 'E_SEAL_KEY')
  t.equal(code(() => new SealKeyring([{ id: 1, key: Buffer.alloc(16) }], 1)), 'E_SEAL_KEY')
  const r = new SealKeyring([{ id: 1, key: k1 }], 1)
  t.equal(code(() => r.remove(1)), 'E_SEAL_PRIMARY')
  t.equal(code(() => r.usePrimary(3)), 'E_SEAL_PRIMARY')
  r.install(1, k2)
  const f = decodeFrame(sealOne(new Sealer(), new SealKeyring([{ id: 1, key: k2 }], 1)))
  t.ok(Buffer.isBuffer(openFrame(r, f, true)), 'reinstalling an id replaces the key, primary included')
})

t.test('nonces never repeat within a sender; salts differ between senders', async (t) => {
  const ring = new SealKeyring([{ id: 1, key: k1 }], 1)
  const s = new Sealer()
  const nonces = new Set<string>()
  for (let i = 0; i < 1000; i++) nonces.add(sealOne(s, ring).subarray(20, 32).toString('hex'))
  t.equal(nonces.size, 1000)
  t.not(new Sealer().salt, new Sealer().salt)
})
