import t, { type Test } from 'tap'
import { PassThrough } from 'node:stream'
import { Keyring } from './keyring.js'
import {
  decodePing,
  decodePushNodeState,
  decodePushPullHeader,
  decodeUserMsgHeader,
  encodePing,
  encodePushNodeState,
  encodePushPullHeader,
  encodeUserMsgHeader,
  MsgType,
  type PushNodeState,
  type PushPullHeader,
} from './messages.js'
import { compressMessage, decompressMessage, type DropReason, PacketError, type WireSecurity } from './packet.js'
import { decryptPayload } from './security.js'
import { encodeStreamFrame, MAX_ENCRYPTED_STREAM, StreamReader } from './stream.js'

function sec(o: Partial<WireSecurity> = {}): WireSecurity {
  return { label: '', keyring: undefined, encryptionVersion: 1, verifyIncoming: true, verifyOutgoing: true, skipInboundLabelCheck: false, ...o }
}
const key16 = Buffer.alloc(16, 0x16)
const key24 = Buffer.alloc(24, 0x24)
const key32 = Buffer.alloc(32, 0x32)
const keyed = (k: Buffer, o: Partial<WireSecurity> = {}) => sec({ keyring: new Keyring([k]), ...o })

// ---------------------------------------------------------------- the push/pull frame used throughout

const header: PushPullHeader = { nodes: 3, userStateLen: 10, join: true }
const nodes: PushNodeState[] = [
  { name: 'n1', addr: '10.0.0.1', port: 7946, meta: Buffer.alloc(0), incarnation: 1, state: 0, vsn: [1, 5, 2, 0, 0, 0] },
  { name: 'n2-with-a-longer-name-over-32-bytes', addr: '2001:db8::2', port: 17946, meta: Buffer.from([0xff, 0x80]), incarnation: 300, state: 1, vsn: [1, 5, 2, 2, 5, 4] },
  { name: 'n3', addr: '10.0.0.3', port: 1, meta: Buffer.from('m'.repeat(100)), incarnation: 70000, state: 3, vsn: [1, 5, 2, 0, 0, 0] },
]
const userState = Buffer.from('0123456789')
const pushPull = Buffer.concat([encodePushPullHeader(header), ...nodes.map(encodePushNodeState), userState])

interface Parsed {
  label: string
  type: number
  header: PushPullHeader
  nodes: PushNodeState[]
  user: Buffer
}

/** Reads a push/pull exchange as the listener does. */
async function readPushPull(r: StreamReader, s: WireSecurity, withLabel = true): Promise<Parsed> {
  const label = withLabel ? await r.readLabel(s) : s.label
  const type = await r.readFrameType(s, label)
  const h = decodePushPullHeader(await r.struct())
  const ns: PushNodeState[] = []
  for (let i = 0; i < h.nodes; i++) ns.push(decodePushNodeState(await r.struct()))
  const user = Buffer.from(await r.bytes(h.userStateLen))
  return { label, type, header: h, nodes: ns, user }
}

function checkParsed(t: Test, p: Parsed, label: string, what: string): void {
  t.equal(p.label, label, `${what}: label`)
  t.equal(p.type, MsgType.pushPull, `${what}: frame type`)
  t.same(p.header, header, `${what}: header`)
  t.same(p.nodes, nodes, `${what}: node states`)
  t.same(p.user, userState, `${what}: trailing user state`)
}

const tick = () => new Promise<void>(resolve => setImmediate(resolve))

/** Writes `buf` into a PassThrough `chunk` bytes at a time, letting the reader run between writes. */
async function feed(pt: PassThrough, buf: Buffer, chunk = 1, end = true): Promise<void> {
  for (let i = 0; i < buf.length; i += chunk) {
    pt.write(buf.subarray(i, i + chunk))
    await tick()
  }
  if (end) pt.end()
}

/** Tracks whether a promise has settled yet. */
function track<T>(p: Promise<T>): { readonly settled: boolean; p: Promise<T> } {
  const state = { settled: false, p }
  p.then(
    () => (state.settled = true),
    () => (state.settled = true),
  )
  return state
}

async function expectDrop(t: Test, p: Promise<unknown>, reason: DropReason, msg: string): Promise<void> {
  try {
    await p
    t.fail(`${msg}: expected a rejection`)
  } catch (e) {
    t.ok(e instanceof PacketError, `${msg}: PacketError, got ${String(e)}`)
    t.equal((e as PacketError).reason, reason, msg)
  }
}

// ---------------------------------------------------------------- plain frames

t.test('plain frame: structs and trailing raw bytes come back (in memory and 1 byte at a time)', async t => {
  const buf = encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: '' }, sec())
  t.same(buf, pushPull, 'no compression, no encryption, no label: the frame as is')
  checkParsed(t, await readPushPull(StreamReader.of(buf), sec()), '', 'of()')
  const pt = new PassThrough()
  const reading = readPushPull(new StreamReader(pt), sec())
  await feed(pt, buf)
  checkParsed(t, await reading, '', 'PassThrough, 1-byte chunks')
  for (const chunk of [2, 3, 7, 64]) {
    const p2 = new PassThrough()
    const r2 = readPushPull(new StreamReader(p2), sec())
    await feed(p2, buf, chunk)
    checkParsed(t, await r2, '', `PassThrough, ${chunk}-byte chunks`)
  }
})

t.test('incremental parsing: each struct resolves as soon as its last byte arrives, not before', async t => {
  const pt = new PassThrough()
  const r = new StreamReader(pt)
  const typeAndHeader = encodePushPullHeader(header)
  const first = track(
    (async () => {
      const type = await r.readFrameType(sec(), '')
      return { type, h: decodePushPullHeader(await r.struct()) }
    })(),
  )
  await feed(pt, typeAndHeader.subarray(0, typeAndHeader.length - 1), 1, false)
  t.notOk(first.settled, 'header incomplete: still waiting')
  pt.write(typeAndHeader.subarray(typeAndHeader.length - 1))
  await tick()
  t.ok(first.settled, 'header complete: resolved without any further byte')
  t.same(await first.p, { type: MsgType.pushPull, h: header })

  for (const n of nodes) {
    const enc = encodePushNodeState(n)
    const next = track(r.struct().then(decodePushNodeState))
    await feed(pt, enc.subarray(0, enc.length - 1), 1, false)
    t.notOk(next.settled, `${n.name}: waiting for the last byte`)
    pt.write(enc.subarray(enc.length - 1))
    await tick()
    t.ok(next.settled, `${n.name}: resolved on its last byte`)
    t.same(await next.p, n)
  }
  const user = track(r.bytes(10))
  await feed(pt, userState.subarray(0, 9), 1, false)
  t.notOk(user.settled, 'raw bytes: waiting for all 10')
  pt.write(userState.subarray(9))
  await tick()
  t.same(await user.p, userState)
  pt.end()
})

t.test('reader helpers: byte, peek, bytes', async t => {
  const r = StreamReader.of(Buffer.from([1, 2, 3, 4]))
  t.equal(await r.peek(), 1)
  t.equal(await r.peek(), 1, 'peek does not consume')
  t.equal(await r.byte(), 1)
  t.same(await r.bytes(2), Buffer.from([2, 3]))
  t.same(await r.bytes(0), Buffer.alloc(0))
  t.equal(await r.byte(), 4)
  await expectDrop(t, r.byte(), 'truncated', 'past the end')
})

// ---------------------------------------------------------------- labels

t.test('label header: read once at the start, then the frame', async t => {
  const s = sec({ label: 'cluster-a' })
  const buf = encodeStreamFrame(pushPull, { compress: false, withLabel: true, label: 'cluster-a' }, s)
  t.same(buf.subarray(0, 11), Buffer.concat([Buffer.from([244, 9]), Buffer.from('cluster-a')]))
  t.same(buf.subarray(11), pushPull)
  const r = StreamReader.of(buf)
  t.equal(await r.readLabel(s), 'cluster-a')
  t.equal(await r.peek(), MsgType.pushPull, 'exactly the label header was consumed')
  checkParsed(t, await readPushPull(r, s, false), 'cluster-a', 'after the label')

  const pt = new PassThrough()
  const reading = readPushPull(new StreamReader(pt), s)
  await feed(pt, buf)
  checkParsed(t, await reading, 'cluster-a', 'label, 1-byte chunks')

  // Replies carry no label header.
  const reply = encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: 'cluster-a' }, s)
  t.same(reply, pushPull)
})

t.test('label checks on streams', async t => {
  const labelled = encodeStreamFrame(pushPull, { compress: false, withLabel: true, label: 'A' }, sec({ label: 'A' }))
  await expectDrop(t, StreamReader.of(labelled).readLabel(sec({ label: 'B' })), 'label', 'A vs B')
  await expectDrop(t, StreamReader.of(labelled).readLabel(sec()), 'label', 'labelled stream to an unlabelled node')
  await expectDrop(t, StreamReader.of(pushPull).readLabel(sec({ label: 'A' })), 'label', 'unlabelled stream to a labelled node')
  t.equal(await StreamReader.of(pushPull).readLabel(sec()), '', 'no label on either side')
  await expectDrop(t, StreamReader.of(Buffer.from([244, 0, 6])).readLabel(sec()), 'label', 'empty label header')
  await expectDrop(t, StreamReader.of(Buffer.from([244, 3, 0x41])).readLabel(sec()), 'truncated', 'label cut short')
  // Migration: no check, the configured label is used as AAD, and a label header is unexpected.
  t.equal(await StreamReader.of(pushPull).readLabel(sec({ label: 'C', skipInboundLabelCheck: true })), 'C')
  await expectDrop(t, StreamReader.of(labelled).readLabel(sec({ label: 'C', skipInboundLabelCheck: true })), 'label', 'double label header')
})

// ---------------------------------------------------------------- compression

t.test('compress: true always compresses stream frames, even when larger', async t => {
  const ping = encodePing({ seqNo: 9, node: 'n1' })
  const frame = encodeStreamFrame(ping, { compress: true, withLabel: false, label: '' }, sec())
  t.equal(frame[0], MsgType.compress)
  t.ok(frame.length > ping.length, `no size check: ${frame.length} > ${ping.length}`)
  t.same(frame, compressMessage(ping))
  t.same(decompressMessage(frame.subarray(1)), ping)
  const r = StreamReader.of(frame)
  t.equal(await r.readFrameType(sec(), ''), MsgType.ping)
  t.same(decodePing(await r.struct()), { seqNo: 9, node: 'n1' })
})

t.test('compressed push/pull frame parses back (in memory and 1 byte at a time)', async t => {
  const buf = encodeStreamFrame(pushPull, { compress: true, withLabel: false, label: '' }, sec())
  t.equal(buf[0], MsgType.compress)
  checkParsed(t, await readPushPull(StreamReader.of(buf), sec()), '', 'compressed, of()')
  const pt = new PassThrough()
  const reading = readPushPull(new StreamReader(pt), sec())
  await feed(pt, buf)
  checkParsed(t, await reading, '', 'compressed, 1-byte chunks')
})

t.test('bad compression in a stream', async t => {
  // Algo 1 is unknown.
  const bad = Buffer.concat([Buffer.from([9]), Buffer.from('82a4416c676f01a3427566a10a', 'hex')])
  await expectDrop(t, StreamReader.of(bad).readFrameType(sec(), ''), 'compress', 'unknown algorithm')
  const garbage = Buffer.concat([Buffer.from([9]), Buffer.from('82a4416c676f00a3427566a3ffffff', 'hex')])
  await expectDrop(t, StreamReader.of(garbage).readFrameType(sec(), ''), 'compress', 'undecodable LZW')
  await expectDrop(t, StreamReader.of(Buffer.from([9, 0xc1])).readFrameType(sec(), ''), 'decode', 'bad msgpack in the compress header')
})

// ---------------------------------------------------------------- encryption

t.test('encrypted frame: [10][u32 length][blob], AAD = header + label', async t => {
  for (const key of [key16, key24, key32]) {
    for (const version of [0, 1] as const) {
      for (const label of ['', 'cluster-a']) {
        const what = `AES-${key.length * 8} v${version} label=${JSON.stringify(label)}`
        const s = keyed(key, { label, encryptionVersion: version })
        const buf = encodeStreamFrame(pushPull, { compress: false, withLabel: true, label }, s)
        const lb = label ? 2 + label.length : 0
        const body = buf.subarray(lb)
        t.equal(body[0], MsgType.encrypt, `${what}: encrypt type byte`)
        const len = body.readUInt32BE(1)
        t.equal(body.length, 5 + len, `${what}: length field is the blob length`)
        const expected = version === 1 ? 1 + 12 + pushPull.length + 16 : 1 + 12 + pushPull.length + (16 - (pushPull.length % 16)) + 16
        t.equal(len, expected, `${what}: sealed size`)
        const aad = Buffer.concat([body.subarray(0, 5), Buffer.from(label)])
        t.same(decryptPayload([key], body.subarray(5), aad), pushPull, `${what}: AAD is the 5 header bytes then the label`)
        checkParsed(t, await readPushPull(StreamReader.of(buf), s), label, `${what}: of()`)
      }
    }
  }
  const s = keyed(key32, { label: 'L' })
  const buf = encodeStreamFrame(pushPull, { compress: false, withLabel: true, label: 'L' }, s)
  const pt = new PassThrough()
  const reading = readPushPull(new StreamReader(pt), s)
  await feed(pt, buf)
  checkParsed(t, await reading, 'L', 'encrypted + label, 1-byte chunks')
  t.equal(pt.listenerCount('data'), 0, 'after the encrypted frame the reader reads its plaintext, not the socket')
})

t.test('encrypted + compressed frame', async t => {
  const s = keyed(key16, { label: 'lbl' })
  const buf = encodeStreamFrame(pushPull, { compress: true, withLabel: true, label: 'lbl' }, s)
  const body = buf.subarray(5)
  t.equal(body[0], MsgType.encrypt)
  const plain = decryptPayload([key16], body.subarray(5), Buffer.concat([body.subarray(0, 5), Buffer.from('lbl')]))
  t.equal(plain[0], MsgType.compress, 'compressed inside the encryption')
  t.same(decompressMessage(plain.subarray(1)), pushPull)
  checkParsed(t, await readPushPull(StreamReader.of(buf), s), 'lbl', 'of()')
  const pt = new PassThrough()
  const reading = readPushPull(new StreamReader(pt), s)
  await feed(pt, buf)
  checkParsed(t, await reading, 'lbl', '1-byte chunks')
})

t.test('reply frames: no label header, but the label is still the AAD', async t => {
  const s = keyed(key24, { label: 'L' })
  const reply = encodeStreamFrame(pushPull, { compress: true, withLabel: false, label: 'L' }, s)
  t.equal(reply[0], MsgType.encrypt, 'starts with the encrypt type, no label header')
  checkParsed(t, await readPushPull(StreamReader.of(reply), s, false), 'L', 'read with label L')
  const r = StreamReader.of(reply)
  await expectDrop(t, r.readFrameType(s, ''), 'decrypt', 'read with no label: AAD differs')
})

t.test('a relabelled encrypted stream fails to decrypt', async t => {
  const sA = keyed(key16, { label: 'A' })
  const buf = encodeStreamFrame(pushPull, { compress: false, withLabel: true, label: 'A' }, sA)
  const relabelled = Buffer.concat([Buffer.from([244, 1]), Buffer.from('B'), buf.subarray(3)])
  await expectDrop(t, readPushPull(StreamReader.of(relabelled), keyed(key16, { label: 'B' })), 'decrypt', 'A → B')
  checkParsed(t, await readPushPull(StreamReader.of(buf), sA), 'A', 'control: A')
})

t.test('a tampered length header fails authentication', async t => {
  const s = keyed(key16)
  const buf = Buffer.from(encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: '' }, s))
  // Claim one byte less and drop the last byte: the blob is still well-formed, but the AAD changed.
  buf.writeUInt32BE(buf.readUInt32BE(1) - 1, 1)
  await expectDrop(t, StreamReader.of(buf.subarray(0, buf.length - 1)).readFrameType(s, ''), 'decrypt', 'length changed')
  const flipped = Buffer.from(encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: '' }, s))
  flipped[20]! ^= 1
  await expectDrop(t, StreamReader.of(flipped).readFrameType(s, ''), 'decrypt', 'ciphertext bit flipped')
})

t.test('plaintext refused when a keyring is configured', async t => {
  for (const compress of [false, true]) {
    const plain = encodeStreamFrame(pushPull, { compress, withLabel: false, label: '' }, sec())
    await expectDrop(t, readPushPull(StreamReader.of(plain), keyed(key32)), 'decrypt', `compress=${compress}`)
    checkParsed(t, await readPushPull(StreamReader.of(plain), keyed(key32, { verifyIncoming: false })), '', `compress=${compress}, verifyIncoming off`)
  }
  const enc = encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: '' }, keyed(key16))
  await expectDrop(t, readPushPull(StreamReader.of(enc), sec()), 'decrypt', 'encrypted stream, no keyring here')
  await expectDrop(t, readPushPull(StreamReader.of(enc), keyed(key24)), 'decrypt', 'wrong key')
  t.same(
    encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: '' }, keyed(key16, { verifyOutgoing: false })),
    pushPull,
    'verifyOutgoing off: sent in the clear',
  )
})

t.test('oversize encrypted length is refused before reading it', async t => {
  const hdr = Buffer.alloc(5)
  hdr[0] = MsgType.encrypt
  hdr.writeUInt32BE(MAX_ENCRYPTED_STREAM + 1, 1)
  await expectDrop(t, StreamReader.of(hdr).readFrameType(keyed(key16), ''), 'oversize', '20 MiB + 1')
  hdr.writeUInt32BE(0, 1)
  await expectDrop(t, StreamReader.of(hdr).readFrameType(keyed(key16), ''), 'decrypt', 'zero-length blob')
})

// ---------------------------------------------------------------- truncation and errors

t.test('truncated stream → PacketError truncated, at every cut', async t => {
  const variants: [string, WireSecurity, Buffer][] = [
    ['plain', sec(), encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: '' }, sec())],
    ['label', sec({ label: 'L' }), encodeStreamFrame(pushPull, { compress: false, withLabel: true, label: 'L' }, sec({ label: 'L' }))],
    ['compressed', sec(), encodeStreamFrame(pushPull, { compress: true, withLabel: false, label: '' }, sec())],
    ['encrypted', keyed(key16), encodeStreamFrame(pushPull, { compress: false, withLabel: false, label: '' }, keyed(key16))],
    ['encrypted+compressed+label', keyed(key32, { label: 'L' }), encodeStreamFrame(pushPull, { compress: true, withLabel: true, label: 'L' }, keyed(key32, { label: 'L' }))],
  ]
  for (const [what, s, buf] of variants) {
    let bad = 0
    for (let cut = 0; cut < buf.length; cut++) {
      try {
        await readPushPull(StreamReader.of(buf.subarray(0, cut)), s)
        bad++
        t.fail(`${what}: cut at ${cut} parsed`)
      } catch (e) {
        if (!(e instanceof PacketError) || e.reason !== 'truncated') {
          bad++
          t.fail(`${what}: cut at ${cut}: ${String(e)}`)
        }
      }
    }
    t.equal(bad, 0, `${what}: all ${buf.length} cuts are 'truncated'`)
  }
  // A socket that ends early.
  const pt = new PassThrough()
  const reading = readPushPull(new StreamReader(pt), sec())
  await feed(pt, pushPull.subarray(0, pushPull.length - 3))
  await expectDrop(t, reading, 'truncated', 'socket ended 3 bytes early')
})

t.test('the user message stream header', async t => {
  const payload = Buffer.from('reliable user message')
  const buf = encodeStreamFrame(Buffer.concat([encodeUserMsgHeader(payload.length), payload]), { compress: true, withLabel: false, label: '' }, sec())
  const r = StreamReader.of(buf)
  t.equal(await r.readFrameType(sec(), ''), MsgType.user)
  const len = decodeUserMsgHeader(await r.struct())
  t.equal(len, payload.length)
  t.same(await r.bytes(len), payload)
})

t.test('bad msgpack in a stream → decode; socket errors propagate', async t => {
  const r = StreamReader.of(Buffer.from([MsgType.pushPull, 0xc1]))
  t.equal(await r.readFrameType(sec(), ''), MsgType.pushPull)
  await expectDrop(t, r.struct(), 'decode', 'c1 is not msgpack')
  await expectDrop(t, StreamReader.of(Buffer.from([0x91, 0x01])).struct(), 'decode', 'an array is not a struct')

  const pt = new PassThrough()
  const reading = new StreamReader(pt).struct()
  pt.write(Buffer.from([0x81]))
  await tick()
  const boom = new Error('connection reset')
  pt.destroy(boom)
  try {
    await reading
    t.fail('expected the socket error')
  } catch (e) {
    t.equal(e, boom, 'the socket error itself')
  }
})
