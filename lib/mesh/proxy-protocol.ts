import { isIPv4, isIPv6 } from 'node:net'
import { SwarmdError } from '../types/errors.js'

/**
 * The PROXY protocol (haproxy's doc/proxy-protocol.txt), versions 1 (text)
 * and 2 (binary): how the mesh hands a backend the client's real address,
 * the routing mesh's most requested missing feature (moby/moby#39465). The
 * mesh sends a header before the client's first byte on TCP, and before each
 * datagram on UDP (version 2 only). The decoder is for tests and for users'
 * backends; it is incremental, as a header may arrive in pieces.
 */

export type ProxyTransport = 'TCP4' | 'TCP6' | 'UDP4' | 'UDP6'

/** The original connection: the client (source) and the address it connected to (destination). */
export interface ProxyAddresses {
  transport: ProxyTransport
  sourceAddress: string
  destinationAddress: string
  sourcePort: number
  destinationPort: number
}

/** A version 2 Type-Length-Value extension (value at most 65535 bytes). */
export interface ProxyTlv {
  type: number
  value: Buffer
}

export interface ProxyHeader {
  version: 1 | 2
  /** LOCAL (version 2 only): the proxy's own connection, e.g. a health check; use the real endpoints. */
  command: 'PROXY' | 'LOCAL'
  /**
   * Absent for v1 UNKNOWN, for LOCAL, and for families the receiver may treat
   * as unspecified (AF_UNSPEC, AF_UNIX): then the real endpoints apply.
   */
  addresses?: ProxyAddresses
  /** Version 2 extensions after the addresses, in order; always empty without addresses. */
  tlvs: ProxyTlv[]
}

/** Registered TLV types (section 2.2). */
export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const

/** A header that is not, and cannot become, a valid PROXY protocol header. */
export class ProxyProtocolError extends SwarmdError {
  constructor(message: string) {
    super('E_PROXY_PROTOCOL', `PROXY protocol: ${message}`)
  }
}

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V1_PREFIX = Buffer.from('PROXY ', 'latin1')
/** Longest version 1 line, CRLF included. */
export const V1_MAX_LENGTH = 107

const FAMILY_BYTE: Record<ProxyTransport, number> = { TCP4: 0x11, UDP4: 0x12, TCP6: 0x21, UDP6: 0x22 }
const ADDRESS_BLOCK: Record<number, number> = { 0x1: 12, 0x2: 36, 0x3: 216 }

// ---------------------------------------------------------------- encoding

/** A version 1 line; without addresses, `PROXY UNKNOWN`. Version 1 carries TCP only. */
export function encodeProxyV1(addresses?: ProxyAddresses): Buffer {
  if (!addresses) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1')
  const a = checkAddresses(addresses)
  if (a.transport !== 'TCP4' && a.transport !== 'TCP6') throw new SwarmdError('E_PROXY_ENCODE', `PROXY protocol version 1 carries TCP only, not ${a.transport}`)
  return Buffer.from(`PROXY ${a.transport} ${a.sourceAddress} ${a.destinationAddress} ${a.sourcePort} ${a.destinationPort}\r\n`, 'latin1')
}

export interface ProxyV2Options {
  /** Default PROXY. LOCAL sends no addresses. */
  command?: 'PROXY' | 'LOCAL'
  /** Without them, a PROXY header says AF_UNSPEC. */
  addresses?: ProxyAddresses
  tlvs?: readonly ProxyTlv[]
  /** Appends a PP2_TYPE_CRC32C TLV with the header's checksum. */
  crc32c?: boolean
}

/** A version 2 header; prepend it to the stream (TCP) or to every datagram (UDP). */
export function encodeProxyV2(opts: ProxyV2Options = {}): Buffer {
  const command = opts.command ?? 'PROXY'
  const tlvs = [...(opts.tlvs ?? [])]
  if (opts.crc32c) tlvs.push({ type: PP2_TYPE.CRC32C, value: Buffer.alloc(4) })
  if (tlvs.length && (command === 'LOCAL' || !opts.addresses)) throw new SwarmdError('E_PROXY_ENCODE', 'PROXY protocol TLVs need a PROXY command with addresses')
  if (command === 'LOCAL' && opts.addresses) throw new SwarmdError('E_PROXY_ENCODE', 'a LOCAL PROXY protocol header has no addresses')
  const parts: Buffer[] = []
  let family = 0
  if (opts.addresses) {
    const a = checkAddresses(opts.addresses)
    family = FAMILY_BYTE[a.transport]
    const v6 = a.transport.endsWith('6')
    const ports = Buffer.alloc(4)
    ports.writeUInt16BE(a.sourcePort, 0)
    ports.writeUInt16BE(a.destinationPort, 2)
    parts.push(ipBytes(a.sourceAddress, v6), ipBytes(a.destinationAddress, v6), ports)
  }
  for (const t of tlvs) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 255 || t.value.length > 0xffff) throw new SwarmdError('E_PROXY_ENCODE', `bad PROXY protocol TLV type ${t.type} of ${t.value.length} bytes`)
    const h = Buffer.alloc(3)
    h[0] = t.type
    h.writeUInt16BE(t.value.length, 1)
    parts.push(h, Buffer.from(t.value))
  }
  const body = Buffer.concat(parts)
  if (body.length > 0xffff) throw new SwarmdError('E_PROXY_ENCODE', `PROXY protocol header of ${body.length} bytes after its first 16`)
  const head = Buffer.alloc(16)
  V2_SIGNATURE.copy(head)
  head[12] = command === 'LOCAL' ? 0x20 : 0x21
  head[13] = family
  head.writeUInt16BE(body.length, 14)
  const out = Buffer.concat([head, body])
  if (opts.crc32c) out.writeUInt32BE(crc32c(out), out.length - 4)
  return out
}

/**
 * Addresses as the mesh sees a connection: Node reports IPv4 clients of a
 * dual-stack socket as ::ffff:a.b.c.d, which go out as TCP4/UDP4; an IPv4
 * and an IPv6 end together go out as IPv6 (the IPv4 one mapped).
 */
export function proxyAddresses(protocol: 'tcp' | 'udp', source: { address: string; port: number }, destination: { address: string; port: number }): ProxyAddresses {
  const unmap = (a: string): string => (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a)
  let src = unmap(source.address)
  let dst = unmap(destination.address)
  const v4 = isIPv4(src) && isIPv4(dst)
  if (!v4) {
    if (isIPv4(src)) src = `::ffff:${src}`
    if (isIPv4(dst)) dst = `::ffff:${dst}`
  }
  const transport = `${protocol.toUpperCase()}${v4 ? 4 : 6}` as ProxyTransport
  return checkAddresses({ transport, sourceAddress: src, destinationAddress: dst, sourcePort: source.port, destinationPort: destination.port })
}

/** Validates and canonicalises addresses (IPv6 in RFC 5952 form). */
function checkAddresses(a: ProxyAddresses): ProxyAddresses {
  const v6 = a.transport.endsWith('6')
  const ok = v6 ? isIPv6 : isIPv4
  if (!(a.transport in FAMILY_BYTE)) throw new SwarmdError('E_PROXY_ENCODE', `unknown PROXY protocol transport ${String(a.transport)}`)
  for (const ip of [a.sourceAddress, a.destinationAddress]) if (!ok(ip)) throw new SwarmdError('E_PROXY_ENCODE', `${ip} is not an IPv${v6 ? 6 : 4} address (${a.transport})`)
  for (const p of [a.sourcePort, a.destinationPort]) if (!Number.isInteger(p) || p < 0 || p > 0xffff) throw new SwarmdError('E_PROXY_ENCODE', `port ${p} is not 0..65535`)
  const canon = v6 ? (ip: string) => ipText(ipBytes(ip, true)) : (ip: string) => ip
  return { ...a, sourceAddress: canon(a.sourceAddress), destinationAddress: canon(a.destinationAddress) }
}

function ipBytes(ip: string, v6: boolean): Buffer {
  if (!v6) return Buffer.from(ip.split('.').map(Number))
  let text = ip
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const h = head ? head.split(':') : []
  const tl = tail ? tail.split(':') : []
  const groups = [...h, ...new Array<string>(8 - h.length - tl.length).fill('0'), ...tl]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

function ipText(b: Uint8Array): string {
  if (b.length === 4) return b.join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((b[i]! << 8) | b[i + 1]!) >>> 0).toString(16))
  // The WHATWG URL serialiser prints IPv6 canonically (lower case, longest zero run as ::).
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
}

// ---------------------------------------------------------------- decoding

export interface ProxyDecoded {
  header: ProxyHeader
  /** Bytes the header took: the client's data starts here. */
  length: number
}

/**
 * Decodes a header at the start of `buf` (either version). Returns undefined
 * while more bytes are needed; throws ProxyProtocolError as soon as the
 * bytes cannot start a valid header.
 */
export function decodeProxyHeader(buf: Uint8Array): ProxyDecoded | undefined {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.length === 0) return undefined
  if (b[0] === V2_SIGNATURE[0]) {
    const n = Math.min(b.length, V2_SIGNATURE.length)
    if (!b.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) throw new ProxyProtocolError('bad version 2 signature')
    return decodeV2(b)
  }
  const n = Math.min(b.length, V1_PREFIX.length)
  if (!b.subarray(0, n).equals(V1_PREFIX.subarray(0, n))) throw new ProxyProtocolError('no PROXY protocol signature')
  return decodeV1(b)
}

/** A whole UDP datagram: its version 2 header and the payload after it. */
export function decodeProxyDatagram(buf: Uint8Array): { header: ProxyHeader; payload: Buffer } {
  const d = decodeProxyHeader(buf)
  if (!d) throw new ProxyProtocolError('datagram ends inside its header')
  if (d.header.version !== 2) throw new ProxyProtocolError('a datagram needs a version 2 header')
  return { header: d.header, payload: Buffer.from(buf.buffer, buf.byteOffset + d.length, buf.byteLength - d.length) }
}

function decodeV1(b: Buffer): ProxyDecoded | undefined {
  const limit = Math.min(b.length, V1_MAX_LENGTH)
  let cr = -1
  for (let i = 0; i < limit; i++) {
    const c = b[i]!
    if (c === 0x0d) {
      cr = i
      break
    }
    if (c < 0x20 || c > 0x7e) throw new ProxyProtocolError(`byte 0x${c.toString(16)} in a version 1 line`)
  }
  if (cr < 0 || cr + 1 >= b.length) {
    if (b.length >= V1_MAX_LENGTH) throw new ProxyProtocolError(`no CRLF in the first ${V1_MAX_LENGTH} bytes`)
    return undefined
  }
  if (cr + 1 >= V1_MAX_LENGTH || b[cr + 1] !== 0x0a) throw new ProxyProtocolError('a version 1 line must end with CRLF')
  const line = b.toString('latin1', 0, cr)
  const length = cr + 2
  const f = line.split(' ')
  if (f[1] === 'UNKNOWN') return { header: { version: 1, command: 'PROXY', tlvs: [] }, length }
  if (f[1] !== 'TCP4' && f[1] !== 'TCP6') throw new ProxyProtocolError(`unknown version 1 protocol ${JSON.stringify(f[1] ?? '')}`)
  if (f.length !== 6) throw new ProxyProtocolError('a version 1 line has 6 fields separated by single spaces')
  const [, transport, src, dst, sport, dport] = f as [string, 'TCP4' | 'TCP6', string, string, string, string]
  const ip = (s: string): string => {
    if (transport === 'TCP4' ? !/^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/.test(s) || !isIPv4(s) : !/^[0-9a-fA-F:]+$/.test(s) || !isIPv6(s)) {
      throw new ProxyProtocolError(`${JSON.stringify(s)} is not an ${transport} address`)
    }
    return transport === 'TCP4' ? s : ipText(ipBytes(s, true))
  }
  const port = (s: string): number => {
    if (!/^(0|[1-9]\d{0,4})$/.test(s) || Number(s) > 0xffff) throw new ProxyProtocolError(`${JSON.stringify(s)} is not a port`)
    return Number(s)
  }
  const addresses: ProxyAddresses = { transport, sourceAddress: ip(src), destinationAddress: ip(dst), sourcePort: port(sport), destinationPort: port(dport) }
  return { header: { version: 1, command: 'PROXY', addresses, tlvs: [] }, length }
}

function decodeV2(b: Buffer): ProxyDecoded | undefined {
  if (b.length < 13) return undefined
  const verCmd = b[12]!
  if (verCmd >> 4 !== 2) throw new ProxyProtocolError(`version ${verCmd >> 4}, not 2`)
  const cmd = verCmd & 0xf
  if (cmd > 1) throw new ProxyProtocolError(`unknown command ${cmd}`)
  if (b.length < 14) return undefined
  const fam = b[13]!
  if (fam >> 4 > 3 || (fam & 0xf) > 2) throw new ProxyProtocolError(`unknown family and protocol 0x${fam.toString(16).padStart(2, '0')}`)
  if (b.length < 16) return undefined
  const length = 16 + b.readUInt16BE(14)
  // LOCAL discards the whole block, family included.
  const need = cmd === 0 ? 0 : (ADDRESS_BLOCK[fam >> 4] ?? 0)
  if (length - 16 < need) throw new ProxyProtocolError(`address block of ${length - 16} bytes for family 0x${fam.toString(16).padStart(2, '0')}`)
  if (b.length < length) return undefined
  const transport = (Object.keys(FAMILY_BYTE) as ProxyTransport[]).find(k => FAMILY_BYTE[k] === fam)
  if (cmd === 0 || !transport) return { header: { version: 2, command: cmd === 0 ? 'LOCAL' : 'PROXY', tlvs: [] }, length }
  const alen = transport.endsWith('6') ? 16 : 4
  const addresses: ProxyAddresses = {
    transport,
    sourceAddress: ipText(b.subarray(16, 16 + alen)),
    destinationAddress: ipText(b.subarray(16 + alen, 16 + 2 * alen)),
    sourcePort: b.readUInt16BE(16 + 2 * alen),
    destinationPort: b.readUInt16BE(18 + 2 * alen),
  }
  const tlvs: ProxyTlv[] = []
  for (let p = 16 + need; p < length; ) {
    if (p + 3 > length) throw new ProxyProtocolError('truncated TLV')
    const type = b[p]!
    const len = b.readUInt16BE(p + 1)
    if (p + 3 + len > length) throw new ProxyProtocolError(`TLV 0x${type.toString(16)} of ${len} bytes overruns the header`)
    const value = Buffer.from(b.subarray(p + 3, p + 3 + len))
    if (type === PP2_TYPE.CRC32C) checkCrc(b.subarray(0, length), p + 3, value)
    tlvs.push({ type, value })
    p += 3 + len
  }
  return { header: { version: 2, command: 'PROXY', addresses, tlvs }, length }
}

function checkCrc(header: Buffer, at: number, value: Buffer): void {
  if (value.length !== 4) throw new ProxyProtocolError(`CRC32C TLV of ${value.length} bytes`)
  const copy = Buffer.from(header)
  copy.fill(0, at, at + 4)
  if (crc32c(copy) !== value.readUInt32BE(0)) throw new ProxyProtocolError('CRC32C mismatch')
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[i] = c >>> 0
  }
  return t
})()

/** CRC-32C (Castagnoli, RFC 4960 appendix B). */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff
  for (const byte of data) c = CRC32C_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
