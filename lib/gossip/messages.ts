import { isIPv4, isIPv6 } from 'node:net'
import {
  type DecodedMap,
  EMPTY,
  fieldBool,
  fieldBytes,
  fieldString,
  fieldUint,
  MsgpackError,
  MsgpackWriter,
} from './msgpack.js'

/** The first byte of every memberlist message (append-only list, as in memberlist's net.go). */
export const MsgType = {
  ping: 0,
  indirectPing: 1,
  ack: 2,
  suspect: 3,
  alive: 4,
  dead: 5,
  pushPull: 6,
  compound: 7,
  user: 8,
  compress: 9,
  encrypt: 10,
  nack: 11,
  hasCrc: 12,
  err: 13,
  hasLabel: 244,
} as const

export const NodeStateType = { alive: 0, suspect: 1, dead: 2, left: 3 } as const
export type NodeStateName = 'alive' | 'suspect' | 'dead' | 'left'

/** [pmin, pmax, pcur, dmin, dmax, dcur] */
export type Vsn = readonly [number, number, number, number, number, number]

export interface Ping {
  seqNo: number
  /** Name of the intended target; empty means "whoever you are". */
  node: string
  sourceAddr?: string
  sourcePort?: number
  sourceNode?: string
}
export interface IndirectPingReq {
  seqNo: number
  target: string
  port: number
  node: string
  nack: boolean
  sourceAddr?: string
  sourcePort?: number
  sourceNode?: string
}
export interface AckResp {
  seqNo: number
  payload: Buffer
}
export interface NackResp {
  seqNo: number
}
export interface ErrResp {
  error: string
}
export interface Suspect {
  incarnation: number
  node: string
  from: string
}
export interface Alive {
  incarnation: number
  node: string
  addr: string
  port: number
  meta: Buffer
  vsn: Vsn
}
export interface Dead {
  incarnation: number
  node: string
  from: string
}
export interface PushPullHeader {
  nodes: number
  userStateLen: number
  join: boolean
}
export interface PushNodeState {
  name: string
  addr: string
  port: number
  meta: Buffer
  incarnation: number
  state: number
  vsn: Vsn
}
export interface Compress {
  algo: number
  buf: Buffer
}

/** Every ping and alive carries an address, and a node talks to few: parse each once. */
const ipCache = new Map<string, Buffer>()
const IP_CACHE_MAX = 8192

/** IP text to the raw bytes memberlist puts on the wire: 4 bytes for IPv4, 16 for IPv6. The result is shared: do not modify it. */
export function ipToBytes(ip: string): Buffer {
  let b = ipCache.get(ip)
  if (b) return b
  if (isIPv4(ip)) b = Buffer.from(ip.split('.').map(Number))
  else if (isIPv6(ip)) b = ipv6ToBytes(ip)
  else throw new MsgpackError('E_BAD_IP', `not an IP address: ${ip}`)
  if (ipCache.size >= IP_CACHE_MAX) ipCache.clear()
  ipCache.set(ip, b)
  return b
}

function ipv6ToBytes(ip: string): Buffer {
  const out = Buffer.alloc(16)
  let text = ip
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (dotted?.[1]) {
    const b = ipToBytes(dotted[1])
    text = text.slice(0, -dotted[1].length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const h = head ? head.split(':') : []
  const tl = tail ? tail.split(':') : []
  const groups = [...h, ...new Array<string>(8 - h.length - tl.length).fill('0'), ...tl]
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

/** Raw IP bytes to text. 16-byte IPv4-mapped addresses (which Go may send) come back as IPv4. */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  if (b.length === 16) {
    let mapped = b[10] === 0xff && b[11] === 0xff
    for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false
    if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`
    const groups: string[] = []
    for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16))
    // The URL parser prints IPv6 canonically (RFC 5952: the longest zero run becomes ::), so equal addresses compare equal as text.
    return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
  }
  throw new MsgpackError('E_BAD_IP', `IP address of ${b.length} bytes`)
}

const U16 = 0xffff
const U32 = 0xffffffff

function vsnBytes(v: Vsn): Buffer {
  if (v.some(x => !Number.isInteger(x) || x < 0 || x > 255)) throw new MsgpackError('E_MSGPACK_RANGE', `Vsn values must be 0..255, got [${v.join(',')}]`)
  return Buffer.from(v)
}

function fieldVsn(m: DecodedMap): Vsn {
  const b = fieldBytes(m, 'Vsn')
  if (b.length === 0) return [0, 0, 0, 0, 0, 0]
  if (b.length < 6) throw new MsgpackError('E_BAD_VSN', `Vsn of ${b.length} bytes`)
  return [b[0]!, b[1]!, b[2]!, b[3]!, b[4]!, b[5]!]
}

function fieldIp(m: DecodedMap, name: string): string {
  const b = fieldBytes(m, name)
  return b.length === 0 ? '' : bytesToIp(b)
}

const writer = new MsgpackWriter(1500)

function begin(type: number, fields: number): MsgpackWriter {
  return writer.reset().byte(type).mapHeader(fields)
}

/** The omitempty Source* fields that ping and indirect ping share. */
interface SourceFields {
  sourceAddr?: string
  sourcePort?: number
  sourceNode?: string
}

function sourceFieldCount(p: SourceFields): number {
  return +!!p.sourceAddr + +!!p.sourcePort + +!!p.sourceNode
}

/** Written in Go's field order: SourceAddr, SourceNode, SourcePort. */
function writeSource(w: MsgpackWriter, p: SourceFields): void {
  if (p.sourceAddr) w.key('SourceAddr').raw(ipToBytes(p.sourceAddr))
  if (p.sourceNode) w.key('SourceNode').str(p.sourceNode)
  if (p.sourcePort) w.key('SourcePort').uint(p.sourcePort, U16)
}

function readSource<T extends SourceFields>(m: DecodedMap, p: T): T {
  const addr = fieldIp(m, 'SourceAddr')
  if (addr) p.sourceAddr = addr
  const port = fieldUint(m, 'SourcePort', U16)
  if (port) p.sourcePort = port
  const node = fieldString(m, 'SourceNode')
  if (node) p.sourceNode = node
  return p
}

export function encodePing(p: Ping): Buffer {
  const w = begin(MsgType.ping, 2 + sourceFieldCount(p))
  w.key('Node').str(p.node).key('SeqNo').uint(p.seqNo, U32)
  writeSource(w, p)
  return w.toBuffer()
}

export function decodePing(m: DecodedMap): Ping {
  return readSource<Ping>(m, { seqNo: fieldUint(m, 'SeqNo'), node: fieldString(m, 'Node') })
}

export function encodeIndirectPing(p: IndirectPingReq): Buffer {
  const w = begin(MsgType.indirectPing, 5 + sourceFieldCount(p))
  w.key('Nack').bool(p.nack).key('Node').str(p.node).key('Port').uint(p.port, U16).key('SeqNo').uint(p.seqNo, U32)
  writeSource(w, p)
  w.key('Target').raw(ipToBytes(p.target))
  return w.toBuffer()
}

export function decodeIndirectPing(m: DecodedMap): IndirectPingReq {
  return readSource<IndirectPingReq>(m, {
    seqNo: fieldUint(m, 'SeqNo'),
    target: fieldIp(m, 'Target'),
    port: fieldUint(m, 'Port', U16),
    node: fieldString(m, 'Node'),
    nack: fieldBool(m, 'Nack'),
  })
}

export function encodeAck(a: AckResp): Buffer {
  return begin(MsgType.ack, 2).key('Payload').raw(a.payload).key('SeqNo').uint(a.seqNo, U32).toBuffer()
}

export function decodeAck(m: DecodedMap): AckResp {
  return { seqNo: fieldUint(m, 'SeqNo'), payload: Buffer.from(fieldBytes(m, 'Payload')) }
}

export function encodeNack(n: NackResp): Buffer {
  return begin(MsgType.nack, 1).key('SeqNo').uint(n.seqNo, U32).toBuffer()
}

export function decodeNack(m: DecodedMap): NackResp {
  return { seqNo: fieldUint(m, 'SeqNo') }
}

export function encodeErr(e: ErrResp): Buffer {
  return begin(MsgType.err, 1).key('Error').str(e.error).toBuffer()
}

export function decodeErr(m: DecodedMap): ErrResp {
  return { error: fieldString(m, 'Error') }
}

export function encodeSuspect(s: Suspect): Buffer {
  return begin(MsgType.suspect, 3).key('From').str(s.from).key('Incarnation').uint(s.incarnation, U32).key('Node').str(s.node).toBuffer()
}

export function decodeSuspect(m: DecodedMap): Suspect {
  return { incarnation: fieldUint(m, 'Incarnation'), node: fieldString(m, 'Node'), from: fieldString(m, 'From') }
}

export function encodeDead(d: Dead): Buffer {
  return begin(MsgType.dead, 3).key('From').str(d.from).key('Incarnation').uint(d.incarnation, U32).key('Node').str(d.node).toBuffer()
}

export function decodeDead(m: DecodedMap): Dead {
  return { incarnation: fieldUint(m, 'Incarnation'), node: fieldString(m, 'Node'), from: fieldString(m, 'From') }
}

export function encodeAlive(a: Alive): Buffer {
  return begin(MsgType.alive, 6)
    .key('Addr')
    .raw(ipToBytes(a.addr))
    .key('Incarnation')
    .uint(a.incarnation, U32)
    .key('Meta')
    .raw(a.meta)
    .key('Node')
    .str(a.node)
    .key('Port')
    .uint(a.port, U16)
    .key('Vsn')
    .raw(vsnBytes(a.vsn))
    .toBuffer()
}

export function decodeAlive(m: DecodedMap): Alive {
  return {
    incarnation: fieldUint(m, 'Incarnation'),
    node: fieldString(m, 'Node'),
    addr: fieldIp(m, 'Addr'),
    port: fieldUint(m, 'Port', 0xffff),
    meta: Buffer.from(fieldBytes(m, 'Meta')),
    vsn: fieldVsn(m),
  }
}

/** The push/pull header, type byte first (streams only). */
export function encodePushPullHeader(h: PushPullHeader): Buffer {
  return begin(MsgType.pushPull, 3).key('Join').bool(h.join).key('Nodes').uint(h.nodes).key('UserStateLen').uint(h.userStateLen).toBuffer()
}

export function decodePushPullHeader(m: DecodedMap): PushPullHeader {
  return { nodes: fieldUint(m, 'Nodes'), userStateLen: fieldUint(m, 'UserStateLen'), join: fieldBool(m, 'Join') }
}

/** One node of a push/pull body: a bare map, no type byte. */
export function encodePushNodeState(s: PushNodeState): Buffer {
  return writer
    .reset()
    .mapHeader(7)
    .key('Addr')
    .raw(ipToBytes(s.addr))
    .key('Incarnation')
    .uint(s.incarnation, U32)
    .key('Meta')
    .raw(s.meta)
    .key('Name')
    .str(s.name)
    .key('Port')
    .uint(s.port, U16)
    .key('State')
    .uint(s.state, 3)
    .key('Vsn')
    .raw(vsnBytes(s.vsn))
    .toBuffer()
}

export function decodePushNodeState(m: DecodedMap): PushNodeState {
  return {
    name: fieldString(m, 'Name'),
    addr: fieldIp(m, 'Addr'),
    port: fieldUint(m, 'Port', 0xffff),
    meta: Buffer.from(fieldBytes(m, 'Meta')),
    incarnation: fieldUint(m, 'Incarnation'),
    state: fieldUint(m, 'State', 3),
    vsn: fieldVsn(m),
  }
}

/** Header of a reliable user message on a stream; the raw bytes follow. */
export function encodeUserMsgHeader(len: number): Buffer {
  return begin(MsgType.user, 1).key('UserMsgLen').uint(len).toBuffer()
}

export function decodeUserMsgHeader(m: DecodedMap): number {
  return fieldUint(m, 'UserMsgLen')
}

export function encodeCompress(c: Compress): Buffer {
  return begin(MsgType.compress, 2).key('Algo').uint(c.algo, 0xff).key('Buf').raw(c.buf).toBuffer()
}

export function decodeCompress(m: DecodedMap): Compress {
  return { algo: fieldUint(m, 'Algo', 0xff), buf: fieldBytes(m, 'Buf') }
}

/** A best-effort user message: type byte then the raw payload, no msgpack. */
export function encodeUser(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 1)
  out[0] = MsgType.user
  out.set(payload, 1)
  return out
}

export { EMPTY }
