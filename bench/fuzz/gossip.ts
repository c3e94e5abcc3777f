/**
 * Fuzzing the gossip plane: memberlist's decoders on random msgpack, and a
 * real Membership (UDP and TCP on 127.0.0.175, joined to a second one so
 * there is a cluster to disturb) fed datagrams: raw bytes, byte-mutated real
 * messages (plain, compound, compressed, CRC-wrapped), and messages whose
 * fields hold values of any msgpack type. The member sends only to
 * loopback: what a fuzzed alive makes it probe elsewhere is swallowed.
 *
 * A finding (`crashes`): a decoder throwing anything but its own errors, an
 * exception or rejection nobody caught, or the member no longer working
 * afterwards. `drops` are the member's own counters.
 */
import fc from 'fast-check'
import { createSocket } from 'node:dgram'
import { Membership } from '../../lib/gossip/membership.js'
import {
  decodeAck,
  decodeAlive,
  decodeCompress,
  decodeDead,
  decodeIndirectPing,
  decodeNack,
  decodePing,
  decodePushNodeState,
  decodePushPullHeader,
  decodeSuspect,
  encodeAck,
  encodeAlive,
  encodeDead,
  encodeIndirectPing,
  encodeNack,
  encodePing,
  encodeSuspect,
  encodeUser,
  MsgType,
} from '../../lib/gossip/messages.js'
import { makeCompound } from '../../lib/gossip/compound.js'
import { MsgpackReader, MsgpackWriter } from '../../lib/gossip/msgpack.js'
import { NetTransport } from '../../lib/gossip/net-transport.js'
import { sealPacket, type WireSecurity } from '../../lib/gossip/packet.js'
import type { Address, Transport } from '../../lib/gossip/transport.js'
import { SwarmdError } from '../../lib/types/errors.js'
import { mutate } from '../../lib/test-helpers.test-helper.js'
import { byteEdit, feed } from './feed.js'
import type { FuzzOptions, FuzzResult } from './plane.js'

const IP = '127.0.0.175'

/** A transport that reaches loopback only: fuzzed alives name any address, and nothing may go there. */
function loopbackOnly(t: Transport): Transport {
  const local = (a: Address): boolean => a.ip.startsWith('127.')
  return {
    localAddress: t.localAddress,
    sendPacket: (p, to) => (local(to) ? t.sendPacket(p, to) : Promise.resolve()),
    dialStream: (to, ms) => (local(to) ? t.dialStream(to, ms) : Promise.reject(new Error(`not dialing ${to.ip} from the fuzz`))),
    setHandlers: (p, s) => t.setHandlers(p, s),
    shutdown: () => t.shutdown(),
  }
}

/** The field names memberlist's messages carry, by type byte. */
const FIELDS: Record<number, string[]> = {
  [MsgType.ping]: ['Node', 'SeqNo', 'SourceAddr', 'SourceNode', 'SourcePort'],
  [MsgType.indirectPing]: ['Nack', 'Node', 'Port', 'SeqNo', 'SourceAddr', 'SourceNode', 'SourcePort', 'Target'],
  [MsgType.ack]: ['Payload', 'SeqNo'],
  [MsgType.nack]: ['SeqNo'],
  [MsgType.suspect]: ['From', 'Incarnation', 'Node'],
  [MsgType.alive]: ['Addr', 'Incarnation', 'Meta', 'Node', 'Port', 'Vsn'],
  [MsgType.dead]: ['From', 'Incarnation', 'Node'],
  [MsgType.compress]: ['Algo', 'Buf'],
}

type Value = number | string | boolean | null | Uint8Array | Value[]

const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>(tie => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 + 5 }),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 20 }),
    fc.constantFrom(new Uint8Array([127, 0, 0, 1]), new Uint8Array([1, 5, 2, 0, 0, 0]), new Uint8Array(16), new Uint8Array([97, 98, 99, 100, 101, 102])),
    fc.array(tie('v'), { maxLength: 4 }),
  ),
})).v

function write(w: MsgpackWriter, v: Value): void {
  if (v === null) w.nil()
  else if (typeof v === 'boolean') w.bool(v)
  else if (typeof v === 'string') w.str(v)
  else if (v instanceof Uint8Array) w.raw(v)
  else if (Array.isArray(v)) {
    w.byte(0x90 | v.length)
    for (const x of v) write(w, x)
  } else if (Number.isSafeInteger(v) && v >= 0) w.uint(v)
  else {
    // Negative integers and floats as a float64: the decoders must refuse both for their unsigned fields.
    const b = Buffer.alloc(8)
    b.writeDoubleBE(v)
    w.byte(0xcb)
    for (const x of b) w.byte(x)
  }
}

/** A message of a real type whose fields (a random subset, maybe a stray one) hold values of any type. */
const anyFields: fc.Arbitrary<Buffer> = fc
  .tuple(fc.constantFrom(...Object.keys(FIELDS).map(Number)), fc.array(fc.tuple(fc.nat(), value), { maxLength: 8 }), fc.option(fc.string({ maxLength: 8 })))
  .map(([type, pairs, stray]) => {
    const names = FIELDS[type]!
    const fields = new Map<string, Value>()
    for (const [i, v] of pairs) fields.set(names[i % names.length]!, v)
    if (stray !== null) fields.set(stray, 1)
    const w = new MsgpackWriter(4096).byte(type).mapHeader(fields.size)
    for (const [k, v] of fields) write(w.key(k), v)
    return w.toBuffer()
  })

const plain: WireSecurity = { label: '', keyring: undefined, encryptionVersion: 1, verifyIncoming: true, verifyOutgoing: true, skipInboundLabelCheck: false }

/** Real messages to a member called `target` (alive ones on loopback addresses), in every wrapping memberlist uses. */
function corpus(target: Address): Buffer[] {
  const vsn = [1, 5, 2, 0, 0, 0] as const
  const msgs = [
    encodePing({ seqNo: 1, node: 'target', sourceAddr: '127.0.0.176', sourcePort: 9, sourceNode: 'fuzz' }),
    encodeIndirectPing({ seqNo: 2, target: '127.0.0.177', port: 9, node: 'x', nack: true, sourceAddr: '127.0.0.176', sourcePort: 9, sourceNode: 'fuzz' }),
    encodeAck({ seqNo: 3, payload: Buffer.from('p') }),
    encodeNack({ seqNo: 4 }),
    encodeSuspect({ incarnation: 1, node: 'peer', from: 'fuzz' }),
    encodeAlive({ incarnation: 5, node: 'fuzz-a', addr: '127.0.0.178', port: 9, meta: Buffer.from('m'), vsn }),
    encodeAlive({ incarnation: 9, node: 'target', addr: target.ip, port: target.port, meta: Buffer.alloc(0), vsn }),
    encodeDead({ incarnation: 1, node: 'fuzz-a', from: 'fuzz' }),
    encodeUser(Buffer.from('hello')),
  ]
  const compound = makeCompound(msgs.slice(0, 6))
  return [...msgs, compound, sealPacket(compound, { compress: true, crc: false }, plain), sealPacket(msgs[5]!, { compress: false, crc: true }, plain)]
}

/** Datagrams for a member at `target`: a third each raw bytes, mutated real messages, and any-typed fields. */
export function datagrams(target: Address): fc.Arbitrary<Buffer> {
  const real = corpus(target)
  return fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map(b => Buffer.from(b)),
    fc.tuple(fc.constantFrom(...real), fc.array(byteEdit, { minLength: 1, maxLength: 6 })).map(([b, e]) => mutate(b, e)),
    anyFields,
  )
}

const DECODERS = [decodePing, decodeIndirectPing, decodeAck, decodeNack, decodeSuspect, decodeAlive, decodeDead, decodeCompress, decodePushPullHeader, decodePushNodeState]

/** Runs every decoder on the map in `bytes` (after its type byte): what one threw that is not its own error, if any. */
export function decodeAll(bytes: Uint8Array): string | undefined {
  const foreign = (e: unknown): string | undefined => (e instanceof SwarmdError ? undefined : `a decoder threw ${(e as Error)?.stack ?? String(e)}`)
  let map
  try {
    map = new MsgpackReader(Buffer.from(bytes), 1).struct()
  } catch (e) {
    return foreign(e)
  }
  for (const d of DECODERS) {
    try {
      d(map)
    } catch (e) {
      const why = foreign(e)
      if (why) return why
    }
  }
  return undefined
}

/** The fuzz bench's plane: each datagram also goes through every decoder. */
export const plane = {
  name: 'gossip',
  async run(o: FuzzOptions): Promise<FuzzResult> {
    const mk = async (name: string): Promise<Membership> =>
      Membership.create({ name, transport: loopbackOnly(await NetTransport.listen({ ip: IP, port: 0 })), profile: 'local' })
    const target = await mk('target')
    const peer = await mk('peer')
    const sock = createSocket('udp4')
    try {
      await peer.join([`${target.address.ip}:${target.address.port}`])
      let sent = 0
      const r = await feed('gossip', o, datagrams(target.address), 200, async d => {
        const why = decodeAll(d)
        await new Promise<void>(resolve => sock.send(d, target.address.port, target.address.ip, () => resolve()))
        // Let the member take it before the next: the socket buffer would drop a burst.
        if (++sent % 16 === 0) await new Promise(r => setImmediate(r))
        return why && `${why}, on ${d.toString('hex').slice(0, 600)}`
      })
      // Still a working member: it holds itself alive and answers a push/pull. (Whether the two see each
      // other at once is no test: a valid fuzzed suspect or dead about one is applied, as memberlist
      // applies it, and the accused may learn of it only at the next push/pull, which this is.)
      const broken = await peer.join([`${target.address.ip}:${target.address.port}`]).then(
        () => (target.members().some(m => m.name === 'target' && m.state === 'alive') ? undefined : 'the member no longer holds itself alive'),
        (e: Error) => `the member no longer answers a push/pull: ${e.message}`,
      )
      if (broken) process.stderr.write(`fuzz gossip: ${broken}\n`)
      return { inputs: r.inputs, drops: { ...target.counters.dropped }, crashes: r.crashes + (broken ? 1 : 0) }
    } finally {
      sock.close()
      await peer.shutdown()
      await target.shutdown()
    }
  },
}
