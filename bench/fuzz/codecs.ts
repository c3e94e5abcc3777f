/**
 * The existing decoders, fed mutants of valid encodings and random bytes:
 * gossip (msgpack, every message, compound, UDP packets plain and sealed,
 * push/pull streams, LZW) and mesh (tunnel frames and their bodies, VXLAN,
 * PROXY protocol). Each decoder either decodes or throws a SwarmdError.
 */
import { makeCompound, parseCompound } from '../../lib/gossip/compound.js'
import { Keyring } from '../../lib/gossip/keyring.js'
import { lzwDecode, lzwEncode } from '../../lib/gossip/lzw.js'
import * as m from '../../lib/gossip/messages.js'
import { type DecodedMap, MsgpackReader } from '../../lib/gossip/msgpack.js'
import { decompressMessage, openPacket, sealPacket, type WireSecurity } from '../../lib/gossip/packet.js'
import { encodeStreamFrame, StreamReader } from '../../lib/gossip/stream.js'
import { decodeProxyDatagram, decodeProxyHeader, encodeProxyV1, encodeProxyV2 } from '../../lib/mesh/proxy-protocol.js'
import {
  decodeDgramBody,
  decodeOpenBody,
  decodeTextBody,
  decodeU32Body,
  encodeDgramPrefix,
  encodeFrame,
  encodeOpenBody,
  encodeTextBody,
  encodeU32Body,
  type Frame,
  FrameDecoder,
  FrameType,
} from '../../lib/mesh/tunnel-frame.js'
import { decodeVxlanHeader, encodeVxlanHeader } from '../../lib/mesh/vxlan.js'
import { Inputs } from './inputs.js'
import { type FuzzPlane, Tally } from './plane.js'

interface Target {
  name: string
  seeds: Buffer[]
  decode(b: Buffer): unknown
}

const vsn = [1, 5, 2, 0, 0, 0] as const
const alive = { incarnation: 7, node: 'node-0042', addr: '10.0.0.7', port: 7946, meta: Buffer.from('role=worker'), vsn }
const messages: Buffer[] = [
  m.encodePing({ seqNo: 1234, node: 'node-0042', sourceAddr: '127.0.0.1', sourcePort: 7946, sourceNode: 'node-0001' }),
  m.encodeIndirectPing({ seqNo: 9, target: '10.0.0.9', port: 7946, node: 'node-9', nack: true, sourceAddr: '10.0.0.1', sourcePort: 7946, sourceNode: 'node-1' }),
  m.encodeAck({ seqNo: 77, payload: Buffer.from('pong') }),
  m.encodeNack({ seqNo: 78 }),
  m.encodeErr({ error: 'no such node' }),
  m.encodeSuspect({ incarnation: 3, node: 'node-3', from: 'node-1' }),
  m.encodeDead({ incarnation: 4, node: 'node-4', from: 'node-1' }),
  m.encodeAlive(alive),
  m.encodeCompress({ algo: 0, buf: lzwEncode(m.encodeAlive(alive)) }),
]
const decoders: [string, (d: DecodedMap) => unknown][] = [
  ['ping', m.decodePing],
  ['indirect ping', m.decodeIndirectPing],
  ['ack', m.decodeAck],
  ['nack', m.decodeNack],
  ['err', m.decodeErr],
  ['suspect', m.decodeSuspect],
  ['dead', m.decodeDead],
  ['alive', m.decodeAlive],
  ['push/pull header', m.decodePushPullHeader],
  ['push node state', m.decodePushNodeState],
  ['user message header', m.decodeUserMsgHeader],
  ['compress', m.decodeCompress],
]

const security = (keyring?: Keyring, label = ''): WireSecurity => ({ label, keyring, encryptionVersion: 1, verifyIncoming: true, verifyOutgoing: true, skipInboundLabelCheck: false })
const securities = [security(), security(new Keyring([Buffer.alloc(16, 0x16)])), security(new Keyring([Buffer.alloc(32, 0x32)]), 'fuzz-label')]

// The header carries the frame's type byte.
const pushPull = Buffer.concat([
  m.encodePushPullHeader({ nodes: 2, userStateLen: 4, join: false }),
  m.encodePushNodeState({ name: 'n1', addr: '10.0.0.1', port: 7946, meta: Buffer.alloc(0), incarnation: 1, state: 0, vsn }),
  m.encodePushNodeState({ name: 'n2', addr: '2001:db8::2', port: 17946, meta: Buffer.from([0xff]), incarnation: 300, state: 1, vsn }),
  Buffer.from('user'),
])

/** A push/pull exchange read as the listener reads it. */
async function readPushPull(b: Buffer, sec: WireSecurity): Promise<void> {
  const r = StreamReader.of(b)
  const label = await r.readLabel(sec)
  await r.readFrameType(sec, label)
  const h = m.decodePushPullHeader(await r.struct())
  for (let i = 0; i < Math.min(h.nodes, 64); i++) m.decodePushNodeState(await r.struct())
  await r.bytes(h.userStateLen)
}

const frame = (type: number, body: Buffer, flags = 0): Buffer => encodeFrame({ vni: 4096, type: type as FrameType, flags, keyId: 0, streamId: 7 }, body)
const tunnelStream = Buffer.concat([
  frame(FrameType.HELLO, encodeTextBody('10.0.0.1:4789')),
  frame(FrameType.OPEN, encodeOpenBody({ window: 262_144, endpointKey: 'task1/tcp/80', preamble: encodeProxyV1() })),
  frame(FrameType.OPEN_OK, encodeU32Body(262_144)),
  frame(FrameType.DATA, Buffer.from('GET / HTTP/1.1\r\n\r\n')),
  frame(FrameType.WINDOW, encodeU32Body(4096)),
  frame(FrameType.DGRAM, Buffer.concat([encodeDgramPrefix('task2/udp/53'), Buffer.from('query')])),
  frame(FrameType.FIN, Buffer.alloc(0)),
  frame(FrameType.RST, encodeTextBody('ECONNRESET')),
])

/** A tunnel byte stream cut in up to three chunks, every frame's body decoded as the tunnel would. */
function readTunnel(b: Buffer, cut: number): void {
  const bodies: Record<number, (f: Frame) => unknown> = {
    [FrameType.OPEN]: f => decodeOpenBody(f.body),
    [FrameType.OPEN_OK]: f => decodeU32Body(f.body),
    [FrameType.WINDOW]: f => decodeU32Body(f.body),
    [FrameType.OPEN_FAIL]: f => decodeTextBody(f.body),
    [FrameType.RST]: f => decodeTextBody(f.body),
    [FrameType.HELLO]: f => decodeTextBody(f.body),
    [FrameType.DGRAM]: f => decodeDgramBody(f.body),
  }
  const d = new FrameDecoder()
  const at = [cut % (b.length + 1), (cut * 7) % (b.length + 1)].sort((x, y) => x - y) as [number, number]
  for (const chunk of [b.subarray(0, at[0]), b.subarray(at[0], at[1]), b.subarray(at[1])]) d.push(chunk, f => bodies[f.type]?.(f))
}

const addresses = { transport: 'TCP4', sourceAddress: '192.0.2.10', destinationAddress: '10.0.0.2', sourcePort: 51234, destinationPort: 8080 } as const

export const plane: FuzzPlane = {
  name: 'codecs',
  async run(o) {
    const input = new Inputs(0xc0dec5 + (o.seed ?? 0))
    const tally = new Tally('codecs')
    let cut = 0
    const targets: Target[] = [
      { name: 'msgpack', seeds: messages.map(b => b.subarray(1)), decode: b => new MsgpackReader(b).value() },
      ...decoders.map(([name, decode]): Target => ({ name: `messages ${name}`, seeds: messages, decode: b => decode(new MsgpackReader(b, 1).struct()) })),
      { name: 'compound', seeds: [makeCompound(messages.slice(0, 4)), makeCompound(messages)].map(b => b.subarray(1)), decode: parseCompound },
      ...securities.map(
        (sec, i): Target => ({
          name: `packet ${['plain', 'AES-128', 'AES-256 + label'][i]}`,
          seeds: [sealPacket(messages[7]!, { compress: false, crc: true }, sec), sealPacket(makeCompound(messages), { compress: true, crc: false }, sec)],
          decode: b => {
            const msg = openPacket(b, sec)
            if (msg[0] === m.MsgType.compress) decompressMessage(msg.subarray(1))
            else if (msg[0] === m.MsgType.compound) parseCompound(msg.subarray(1))
          },
        }),
      ),
      ...securities.map(
        (sec, i): Target => ({
          name: `stream ${['plain', 'AES-128', 'AES-256 + label'][i]}`,
          seeds: [false, true].map(compress => encodeStreamFrame(pushPull, { compress, withLabel: true, label: sec.label }, sec)),
          decode: b => readPushPull(b, sec),
        }),
      ),
      { name: 'lzw', seeds: [lzwEncode(pushPull), lzwEncode(Buffer.from('hello hello hello hello world'))], decode: b => lzwDecode(b, 1 << 20) },
      { name: 'tunnel frames', seeds: [tunnelStream, frame(FrameType.DATA, Buffer.alloc(300, 0x61), 1)], decode: b => readTunnel(b, cut++) },
      { name: 'vxlan', seeds: [encodeVxlanHeader(4096), encodeVxlanHeader(0xffffff)], decode: b => decodeVxlanHeader(b) },
      {
        name: 'proxy protocol',
        seeds: [encodeProxyV1(addresses), encodeProxyV1(), encodeProxyV2({ addresses, tlvs: [{ type: 0x04, value: Buffer.from('x') }], crc32c: true }), encodeProxyV2({ command: 'LOCAL' })],
        decode: b => decodeProxyHeader(b),
      },
      {
        name: 'proxy datagram',
        seeds: [Buffer.concat([encodeProxyV2({ addresses: { ...addresses, transport: 'UDP4' } }), Buffer.from('payload')])],
        decode: b => decodeProxyDatagram(b),
      },
    ]
    // Mutants are only as good as their seeds: each must decode as it is.
    for (const target of targets) {
      for (const [i, seed] of target.seeds.entries()) {
        try {
          await target.decode(seed)
        } catch (e) {
          throw new Error(`seed ${i} of ${target.name} does not decode: ${(e as Error).message}`, { cause: e })
        }
      }
    }
    for (let i = 0; i < o.inputs; i++) {
      if ((i & 255) === 0 && Date.now() >= o.deadlineMs) break
      const target = targets[i % targets.length]!
      const b = input.around(input.pick(target.seeds), 96)
      await tally.feed(target.name, b, () => target.decode(b))
    }
    return tally.result()
  },
}
