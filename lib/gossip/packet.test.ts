import t, { type Test } from 'tap'
import fc from 'fast-check'
import { crc32 } from 'node:zlib'
import { SwarmdError } from '../types/errors.js'
import { makeCompound } from './compound.js'
import { Keyring } from './keyring.js'
import { encodeAlive, encodePing, MsgType } from './messages.js'
import {
  addCrc,
  addLabel,
  checkLabel,
  compressMessage,
  decompressMessage,
  encryptionEnabled,
  openPacket,
  PacketError,
  type DropReason,
  packetOverhead,
  removeLabel,
  sealPacket,
  type WireSecurity,
} from './packet.js'
import { decryptPayload, encryptPayload } from './security.js'
import { thrown, mutate, type Mutation } from '../test-helpers.test-helper.js'

function sec(o: Partial<WireSecurity> = {}): WireSecurity {
  return { label: '', keyring: undefined, encryptionVersion: 1, verifyIncoming: true, verifyOutgoing: true, skipInboundLabelCheck: false, ...o }
}

const key16 = Buffer.alloc(16, 0x11)
const key24 = Buffer.alloc(24, 0x24)
const key32 = Buffer.alloc(32, 0x32)
const otherKey = (n: number) => Buffer.alloc(n, 0x99)


function expectDrop(t: Test, fn: () => unknown, reason: DropReason, msg: string): void {
  const e = thrown(t, fn)
  t.ok(e instanceof PacketError, `${msg}: PacketError, got ${String(e)}`)
  t.equal((e as PacketError).reason, reason, msg)
  t.equal((e as PacketError).code, `E_PACKET_${reason.toUpperCase()}`)
}

/** Ten alives in a compound: LZW roughly halves it. */
const compressible = makeCompound(
  Array.from({ length: 10 }, (_, i) =>
    encodeAlive({ incarnation: 1, node: `node-${i}`, addr: `10.0.0.${i}`, port: 7946, meta: Buffer.alloc(0), vsn: [1, 5, 2, 0, 0, 0] }),
  ),
)
/** A short ping: LZW makes it longer. */
const small = encodePing({ seqNo: 7, node: 'go2' })

t.test('fixtures: one message compresses, the other does not', async t => {
  t.ok(compressMessage(compressible).length < compressible.length)
  t.ok(compressMessage(small).length >= small.length)
})

t.test('seal → open with every combination of compress / crc / keyring / label / encryption version', async t => {
  const keys: (Buffer | undefined)[] = [undefined, key16, key24, key32]
  let combos = 0
  for (const compress of [false, true]) {
    for (const crc of [false, true]) {
      for (const key of keys) {
        for (const label of ['', 'cluster-a', 'clüster']) {
          for (const version of key ? ([0, 1] as const) : ([1] as const)) {
            for (const msg of [compressible, small]) {
              combos++
              const what = `compress=${compress} crc=${crc} key=${key?.length ?? 0} label=${JSON.stringify(label)} v${version} msg=${msg.length}B`
              const s = sec({ label, keyring: key ? new Keyring([key]) : undefined, encryptionVersion: version })
              const sealed = sealPacket(msg, { compress, crc }, s)
              const expectCompressed = compress && msg === compressible

              // Peel the layers by hand, outermost first.
              let p = sealed
              if (label) {
                const lb = Buffer.from(label)
                t.equal(p[0], MsgType.hasLabel, `${what}: label header`)
                t.equal(p[1], lb.length)
                t.same(p.subarray(2, 2 + lb.length), lb)
                p = p.subarray(2 + lb.length)
              } else {
                t.not(p[0], MsgType.hasLabel, `${what}: no label header`)
              }
              if (key) {
                t.equal(p[0], version, `${what}: encryption version byte`)
                p = decryptPayload([key], p, label ? Buffer.from(label) : undefined)
              }
              if (crc) {
                t.equal(p[0], MsgType.hasCrc, `${what}: CRC header`)
                t.equal(p.readUInt32BE(1), crc32(p.subarray(5)), `${what}: CRC value`)
                p = p.subarray(5)
              } else {
                t.not(p[0], MsgType.hasCrc)
              }
              if (expectCompressed) {
                t.equal(p[0], MsgType.compress, `${what}: compressed`)
                t.same(decompressMessage(p.subarray(1)), msg)
              } else {
                t.same(p, msg, `${what}: not compressed`)
              }
              if (key && version === 1) {
                const inner = (expectCompressed ? compressMessage(msg).length : msg.length) + (crc ? 5 : 0)
                t.equal(sealed.length, (label ? 2 + Buffer.byteLength(label) : 0) + 29 + inner, `${what}: v1 adds exactly 29 bytes`)
              }

              // And openPacket does the same.
              const opened = openPacket(sealed, s)
              if (expectCompressed) t.same(decompressMessage(opened.subarray(1)), msg, `${what}: openPacket`)
              else t.same(opened, msg, `${what}: openPacket`)

              if (key) {
                expectDrop(t, () => openPacket(sealed, sec({ label, keyring: new Keyring([otherKey(key.length)]) })), 'decrypt', `${what}: wrong key`)
              }
            }
          }
        }
      }
    }
  }
  t.equal(combos, 2 * 2 * (3 + 3 * 3 * 2) * 2)
})

t.test('decryption tries every installed key; the primary encrypts', async t => {
  const sender = sec({ keyring: new Keyring([key24, key16]) })
  t.same(sender.keyring!.primaryKey(), key24)
  const sealed = sealPacket(small, { compress: false, crc: false }, sender)
  t.same(decryptPayload([key24], sealed, undefined), small, 'sealed with the primary')
  t.same(openPacket(sealed, sec({ keyring: new Keyring([key32, key16, key24]) })), small, 'the receiver has it as its third key')
  expectDrop(t, () => openPacket(sealed, sec({ keyring: new Keyring([key16, key32]) })), 'decrypt', 'receiver lacks the key')
})

t.test('label mismatch → reason label', async t => {
  const a = sealPacket(small, { compress: false, crc: false }, sec({ label: 'A' }))
  const plain = sealPacket(small, { compress: false, crc: false }, sec())
  expectDrop(t, () => openPacket(a, sec({ label: 'B' })), 'label', 'A vs B')
  expectDrop(t, () => openPacket(a, sec()), 'label', 'labelled packet to an unlabelled node')
  expectDrop(t, () => openPacket(plain, sec({ label: 'A' })), 'label', 'unlabelled packet to a labelled node')
  expectDrop(t, () => openPacket(a, sec({ label: 'AA' })), 'label', 'prefix is not a match')
  t.same(openPacket(a, sec({ label: 'A' })), small)
  // Same with encryption on both sides: the label is checked first.
  const ak = sealPacket(small, { compress: false, crc: false }, sec({ label: 'A', keyring: new Keyring([key16]) }))
  expectDrop(t, () => openPacket(ak, sec({ label: 'B', keyring: new Keyring([key16]) })), 'label', 'encrypted, A vs B')
})

t.test('skipInboundLabelCheck accepts any label (migration)', async t => {
  const a = sealPacket(small, { compress: false, crc: false }, sec({ label: 'A' }))
  t.same(openPacket(a, sec({ skipInboundLabelCheck: true })), small)
  t.same(openPacket(small, sec({ label: 'B', skipInboundLabelCheck: true })), small)
  t.doesNotThrow(() => checkLabel('whatever', sec({ label: 'x', skipInboundLabelCheck: true })))
})

t.test('label framing', async t => {
  t.same(addLabel(Buffer.from([1, 2]), 'ab'), Buffer.from([244, 2, 0x61, 0x62, 1, 2]))
  t.same(addLabel(Buffer.from([1, 2]), ''), Buffer.from([1, 2]), 'no label, no header')
  const l255 = 'x'.repeat(255)
  const framed = addLabel(Buffer.from([9]), l255)
  t.equal(framed[1], 255)
  t.same(removeLabel(framed), { label: l255, rest: Buffer.from([9]) })
  expectDrop(t, () => addLabel(Buffer.from([1]), 'x'.repeat(256)), 'label', '256-byte label')
  expectDrop(t, () => addLabel(Buffer.from([1]), 'é'.repeat(128)), 'label', '256 bytes of UTF-8 in 128 characters')
  t.same(removeLabel(Buffer.from([4, 1])), { label: '', rest: Buffer.from([4, 1]) }, 'no header: empty label')
  t.same(removeLabel(Buffer.alloc(0)), { label: '', rest: Buffer.alloc(0) })
  expectDrop(t, () => removeLabel(Buffer.from([244])), 'label', 'header without a length')
  expectDrop(t, () => removeLabel(Buffer.from([244, 0, 4])), 'label', 'empty label is an error')
  expectDrop(t, () => removeLabel(Buffer.from([244, 5, 0x61, 0x62])), 'label', 'label cut short')
  t.same(removeLabel(Buffer.from([244, 2, 0x61, 0x62])), { label: 'ab', rest: Buffer.alloc(0) }, 'label with nothing after')
})

t.test('a node with a keyring refuses plaintext → reason decrypt', async t => {
  const plain = sealPacket(compressible, { compress: true, crc: true }, sec())
  for (const key of [key16, key24, key32]) {
    expectDrop(t, () => openPacket(plain, sec({ keyring: new Keyring([key]) })), 'decrypt', `plaintext to AES-${key.length * 8}`)
    const opened = openPacket(plain, sec({ keyring: new Keyring([key]), verifyIncoming: false }))
    t.same(decompressMessage(opened.subarray(1)), compressible, 'accepted as plaintext when verifyIncoming is off')
  }
  // Encrypted traffic still opens with verifyIncoming off.
  const enc = sealPacket(small, { compress: false, crc: false }, sec({ keyring: new Keyring([key16]) }))
  t.same(openPacket(enc, sec({ keyring: new Keyring([key16]), verifyIncoming: false })), small)
  // A node without a keyring gets the ciphertext as is (and will fail to parse it later).
  t.same(openPacket(enc, sec()), enc)
})

t.test('verifyOutgoing off sends plaintext even with a keyring', async t => {
  const s = sec({ keyring: new Keyring([key16]), verifyOutgoing: false })
  t.same(sealPacket(small, { compress: false, crc: false }, s), small)
  t.equal(packetOverhead(s), 0)
})

t.test('CRC mismatch → reason crc', async t => {
  const sealed = sealPacket(compressible, { compress: false, crc: true }, sec())
  t.equal(sealed[0], MsgType.hasCrc)
  const flippedBody = Buffer.from(sealed)
  flippedBody[flippedBody.length - 1]! ^= 0x01
  expectDrop(t, () => openPacket(flippedBody, sec()), 'crc', 'payload bit flipped')
  const flippedCrc = Buffer.from(sealed)
  flippedCrc[2]! ^= 0x80
  expectDrop(t, () => openPacket(flippedCrc, sec()), 'crc', 'CRC bit flipped')
  expectDrop(t, () => openPacket(sealed.subarray(0, sealed.length - 1), sec()), 'crc', 'payload cut short')
  t.same(openPacket(sealed, sec()), compressible)
  t.same(openPacket(addCrc(Buffer.alloc(0)), sec()), Buffer.alloc(0), 'CRC of nothing: an empty message (handleCommand drops it)')
  // Shorter than 5 bytes: not treated as a CRC header (Go checks len >= 5).
  t.same(openPacket(Buffer.from([12, 1, 2, 3]), sec()), Buffer.from([12, 1, 2, 3]))
  // Inside encryption the CRC is still checked.
  const s = sec({ keyring: new Keyring([key32]) })
  const inner = Buffer.from(addCrc(small))
  inner[inner.length - 1]! ^= 0xff
  const forged = encryptPayload(1, key32, inner, undefined)
  expectDrop(t, () => openPacket(forged, s), 'crc', 'CRC mismatch inside a valid encryption')
})

t.test('the label is the GCM additional data', async t => {
  const key = key16
  const sealedA = sealPacket(small, { compress: false, crc: false }, sec({ label: 'A', keyring: new Keyring([key]) }))
  t.same(openPacket(sealedA, sec({ label: 'A', keyring: new Keyring([key]) })), small, 'control: label A opens')
  const relabelled = addLabel(removeLabel(sealedA).rest, 'B')
  expectDrop(t, () => openPacket(relabelled, sec({ label: 'B', keyring: new Keyring([key]) })), 'decrypt', 'relabelled A → B fails authentication')
  const stripped = removeLabel(sealedA).rest
  expectDrop(t, () => openPacket(stripped, sec({ keyring: new Keyring([key]) })), 'decrypt', 'label stripped: empty AAD does not match')
  t.same(decryptPayload([key], stripped, Buffer.from('A')), small, 'the ciphertext authenticates with AAD = label bytes')
  // No label: empty AAD, as memberlist 0.2.2 (compatible).
  const unlabelled = sealPacket(small, { compress: false, crc: false }, sec({ keyring: new Keyring([key]) }))
  t.same(decryptPayload([key], unlabelled, undefined), small)
})

t.test('compression is used only when it makes the packet smaller', async t => {
  const big = sealPacket(compressible, { compress: true, crc: false }, sec())
  t.equal(big[0], MsgType.compress)
  t.ok(big.length < compressible.length, `${big.length} < ${compressible.length}`)
  const tiny = sealPacket(small, { compress: true, crc: false }, sec())
  t.same(tiny, small, 'a ping stays as it is')
  const random = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 151 + 7) % 256))
  t.same(sealPacket(random, { compress: true, crc: false }, sec()), random, 'incompressible bytes stay')
  t.same(sealPacket(compressible, { compress: false, crc: false }, sec()), compressible, 'compress off')
})

t.test('empty and odd packets', async t => {
  expectDrop(t, () => openPacket(Buffer.alloc(0), sec()), 'truncated', 'empty packet')
  expectDrop(t, () => openPacket(Buffer.from([244, 1, 0x41]), sec({ label: 'A' })), 'truncated', 'a label and nothing else')
  expectDrop(t, () => openPacket(Buffer.alloc(0), sec({ keyring: new Keyring([key16]) })), 'decrypt', 'empty packet to an encrypted node')
  expectDrop(t, () => openPacket(Buffer.alloc(28, 1), sec({ keyring: new Keyring([key16]) })), 'decrypt', 'shorter than the v1 overhead')
  expectDrop(t, () => openPacket(Buffer.concat([Buffer.from([2]), Buffer.alloc(40)]), sec({ keyring: new Keyring([key16]) })), 'decrypt', 'unknown encryption version')
})

t.test('packetOverhead: label and encryption', async t => {
  t.equal(packetOverhead(sec()), 0)
  t.equal(packetOverhead(sec({ label: 'abc' })), 5)
  t.equal(packetOverhead(sec({ label: 'é' })), 4, 'label length in bytes')
  t.equal(packetOverhead(sec({ keyring: new Keyring([key16]) })), 29)
  t.equal(packetOverhead(sec({ keyring: new Keyring([key16]), encryptionVersion: 0 })), 45)
  t.equal(packetOverhead(sec({ keyring: new Keyring([key16]), label: 'abc' })), 34)
  t.equal(packetOverhead(sec({ keyring: new Keyring([]) })), 0, 'an empty keyring means no encryption')
  t.equal(encryptionEnabled(sec({ keyring: new Keyring([]) })), false)
  t.equal(encryptionEnabled(sec({ keyring: new Keyring([key32]) })), true)
  // The overhead is an upper bound of what sealing adds (v0 pads 1..16 bytes).
  for (const version of [0, 1] as const) {
    for (const len of [1, 15, 16, 17, 100]) {
      const s = sec({ keyring: new Keyring([key16]), label: 'lbl', encryptionVersion: version })
      const sealed = sealPacket(Buffer.alloc(len, 1), { compress: false, crc: false }, s)
      t.ok(sealed.length - len <= packetOverhead(s), `v${version} ${len}B: ${sealed.length - len} <= ${packetOverhead(s)}`)
      if (version === 1) t.equal(sealed.length - len, packetOverhead(s))
    }
  }
})

// ---------------------------------------------------------------- fuzz

const secs: [string, WireSecurity][] = [
  ['plain', sec()],
  ['label', sec({ label: 'cluster-a' })],
  ['key', sec({ keyring: new Keyring([key16]) })],
  ['key+label', sec({ label: 'cluster-a', keyring: new Keyring([key32, key24]) })],
  ['key v0', sec({ keyring: new Keyring([key24]), encryptionVersion: 0 })],
  ['key, lenient', sec({ keyring: new Keyring([key16]), verifyIncoming: false })],
  ['skip label check', sec({ label: 'x', skipInboundLabelCheck: true })],
]

function openOnlyPacketErrors(buf: Buffer, s: WireSecurity): Buffer | undefined {
  try {
    return openPacket(buf, s)
  } catch (e) {
    if (e instanceof PacketError && e instanceof SwarmdError) return undefined
    throw e
  }
}

t.test('fuzz: random packets into openPacket only throw PacketError', async t => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        // Plausible prefixes: label header, CRC header, encryption versions.
        fc.tuple(fc.constantFrom(244, 12, 0, 1, 9, 7), fc.uint8Array({ maxLength: 300 })).map(([b, rest]) => Uint8Array.from([b, ...rest])),
      ),
      raw => {
        for (const [, s] of secs) openOnlyPacketErrors(Buffer.from(raw), s)
      },
    ),
    { numRuns: 2000 },
  )
  t.pass()
})

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('set' as const, 'insert' as const, 'delete' as const, 'cut' as const),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
})


t.test('fuzz: mutated sealed packets only throw PacketError; encrypted ones never open altered', async t => {
  let rejected = 0
  fc.assert(
    fc.property(
      fc.constantFrom(...secs),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom(compressible, small),
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
      ([, s], compress, crc, msg, muts) => {
        const sealed = sealPacket(msg, { compress, crc }, s)
        const bad = mutate(sealed, muts)
        const opened = openOnlyPacketErrors(bad, s)
        if (opened === undefined) rejected++
        // With a strict keyring, anything that opens must be the packet that was sealed.
        if (opened !== undefined && encryptionEnabled(s) && s.verifyIncoming) return bad.equals(sealed)
        return true
      },
    ),
    { numRuns: 2000 },
  )
  t.ok(rejected > 1000, `most mutants are dropped (${rejected})`)
})
