import t from 'tap'
import fc from 'fast-check'
import { hex, mutate, thrown, type Mutation } from '../test-helpers.test-helper.js'
import {
  crc32c,
  decodeProxyDatagram,
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  PP2_TYPE,
  type ProxyAddresses,
  ProxyProtocolError,
  proxyAddresses,
  type ProxyTransport,
  V1_MAX_LENGTH,
} from './proxy-protocol.js'

const tcp4: ProxyAddresses = { transport: 'TCP4', sourceAddress: '192.168.0.1', destinationAddress: '192.168.0.11', sourcePort: 56324, destinationPort: 443 }

t.test("version 1: the spec's example line before an HTTP request", t => {
  const wire = Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n', 'latin1')
  t.same(encodeProxyV1(tcp4), wire.subarray(0, 47))
  t.same(decodeProxyHeader(wire), { header: { version: 1, command: 'PROXY', addresses: tcp4, tlvs: [] }, length: 47 })
  t.end()
})

t.test("version 1: the spec's longest lines fit, UNKNOWN ignores the rest of its line", t => {
  const v4 = 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n'
  t.equal(v4.length, 56)
  t.match(decodeProxyHeader(Buffer.from(v4)), { length: 56, header: { addresses: { sourceAddress: '255.255.255.255', destinationPort: 65535 } } })
  const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'
  const v6 = `PROXY TCP6 ${f} ${f} 65535 65535\r\n`
  t.equal(v6.length, 104)
  const d6 = decodeProxyHeader(Buffer.from(v6))
  t.equal(d6?.length, 104)
  t.same(encodeProxyV1(d6!.header.addresses), Buffer.from(v6))
  t.same(encodeProxyV1(), Buffer.from('PROXY UNKNOWN\r\n'))
  t.same(decodeProxyHeader(Buffer.from('PROXY UNKNOWN\r\nx')), { header: { version: 1, command: 'PROXY', tlvs: [] }, length: 15 })
  const worst = `PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`
  t.equal(worst.length, V1_MAX_LENGTH)
  t.equal(decodeProxyHeader(Buffer.from(worst))?.length, 107)
  t.end()
})

t.test('version 1: IPv6 comes back in canonical form', t => {
  const d = decodeProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 1 2\r\n'))
  t.match(d?.header.addresses, { sourceAddress: '2001:db8::1', destinationAddress: '::1' })
  t.end()
})

t.test('version 1: anything that does not exactly match is rejected', t => {
  const bad = [
    'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n',
    'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX',
    'PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n',
    'PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n',
    'PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n',
    'PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n',
    'PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n',
    'PROXY TCP4 ::1 ::1 1 2\r\n',
    'PROXY TCP6 1.2.3.4 ::1 1 2\r\n',
    'PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n',
    'PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n',
    'PROXY UNKNOWNX\r\n',
    'PROXY TCP4 1.2.3.4 1.2.3.4 1 2\u0000\r\n',
    `PROXY UNKNOWN ${'x'.repeat(100)}`,
    `PROXY UNKNOWN ${'x'.repeat(92)}\r\n`,
    'GET / HTTP/1.1\r\n',
    'proxy TCP4',
  ]
  for (const s of bad) {
    const e = thrown(t, () => decodeProxyHeader(Buffer.from(s, 'latin1')))
    t.ok(e instanceof ProxyProtocolError && e.code === 'E_PROXY_PROTOCOL', JSON.stringify(s))
  }
  t.end()
})

t.test('version 2: a header as haproxy sends it (TCP4 172.19.0.1:42578 → 172.19.0.3:80)', t => {
  const wire = hex('0d0a0d0a 000d0a51 5549540a 21 11 000c ac130001 ac130003 a652 0050 "GET "')
  const addresses: ProxyAddresses = { transport: 'TCP4', sourceAddress: '172.19.0.1', destinationAddress: '172.19.0.3', sourcePort: 42578, destinationPort: 80 }
  t.same(decodeProxyHeader(wire), { header: { version: 2, command: 'PROXY', addresses, tlvs: [] }, length: 28 })
  t.same(encodeProxyV2({ addresses }), wire.subarray(0, 28))
  t.end()
})

t.test('version 2: families, LOCAL, UNSPEC, AF_UNIX, TLVs', t => {
  const v6: ProxyAddresses = { transport: 'UDP6', sourceAddress: '2001:db8::1', destinationAddress: 'fe80::2', sourcePort: 5353, destinationPort: 53 }
  const b6 = encodeProxyV2({ addresses: v6 })
  t.equal(b6[13], 0x22)
  t.equal(b6.length, 16 + 36)
  t.same(decodeProxyHeader(b6)?.header.addresses, v6)
  t.equal(encodeProxyV2({ addresses: { ...tcp4, transport: 'UDP4' } })[13], 0x12)
  t.equal(encodeProxyV2({ addresses: { ...v6, transport: 'TCP6' } })[13], 0x21)
  const local = encodeProxyV2({ command: 'LOCAL' })
  t.same(local, hex('0d0a0d0a000d0a515549540a 20 00 0000'))
  t.same(decodeProxyHeader(local), { header: { version: 2, command: 'LOCAL', tlvs: [] }, length: 16 })
  t.same(decodeProxyHeader(hex('0d0a0d0a000d0a515549540a 20 11 0003 010203')), { header: { version: 2, command: 'LOCAL', tlvs: [] }, length: 19 }, 'LOCAL skips whatever block it has')
  t.same(decodeProxyHeader(encodeProxyV2()), { header: { version: 2, command: 'PROXY', tlvs: [] }, length: 16 })
  const unix = Buffer.concat([hex('0d0a0d0a000d0a515549540a 21 31 00d8'), Buffer.alloc(216)])
  t.same(decodeProxyHeader(unix), { header: { version: 2, command: 'PROXY', tlvs: [] }, length: 232 }, 'AF_UNIX is taken as unspecified')
  const tlvs = [
    { type: PP2_TYPE.AUTHORITY, value: Buffer.from('example.com') },
    { type: PP2_TYPE.NOOP, value: Buffer.alloc(0) },
  ]
  const withTlvs = encodeProxyV2({ addresses: tcp4, tlvs })
  t.same(withTlvs.subarray(28), hex('02 000b "example.com" 04 0000'))
  t.same(decodeProxyHeader(withTlvs)?.header.tlvs, tlvs)
  t.end()
})

t.test('version 2: CRC32C is computed and checked', t => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283, 'the RFC 3720 check value')
  const b = encodeProxyV2({ addresses: tcp4, crc32c: true })
  const d = decodeProxyHeader(b)
  t.equal(d?.header.tlvs[0]?.type, PP2_TYPE.CRC32C)
  t.same(encodeProxyV2({ addresses: tcp4, tlvs: d!.header.tlvs }), b, 'the decoded TLV re-encodes as is')
  const bad = Buffer.from(b)
  bad[17]! ^= 1
  t.match(thrown(t, () => decodeProxyHeader(bad)), { code: 'E_PROXY_PROTOCOL', message: /CRC32C mismatch/ })
  const short = encodeProxyV2({ addresses: tcp4, tlvs: [{ type: PP2_TYPE.CRC32C, value: Buffer.alloc(2) }] })
  t.match(thrown(t, () => decodeProxyHeader(short)), { message: /CRC32C TLV of 2 bytes/ })
  t.end()
})

t.test('version 2: malformed headers are rejected', t => {
  const sig = '0d0a0d0a000d0a515549540a'
  const bad = [
    `${sig} 11 11 000c 00000000 00000000 0000 0000`,
    `${sig} 22 11 000c 00000000 00000000 0000 0000`,
    `${sig} 21 41 0000`,
    `${sig} 21 13 0000`,
    `${sig} 21 11 000b 00000000 00000000 0000 00`,
    `${sig} 21 21 000c 00000000 00000000 0000 0000`,
    `${sig} 21 31 0010 00000000 00000000 00000000 00000000`,
    `${sig} 21 11 000e 00000000 00000000 0000 0000 0100`,
    `${sig} 21 11 0010 00000000 00000000 0000 0000 01 0005 00`,
    '0d0a0d0a000d0a5155495400',
    '0d0a0d0b',
  ]
  for (const h of bad) t.ok(thrown(t, () => decodeProxyHeader(hex(h))) instanceof ProxyProtocolError, h)
  t.end()
})

t.test('the decoder asks for more bytes on every strict prefix of a header', t => {
  const headers = [encodeProxyV1(tcp4), encodeProxyV1(), encodeProxyV2({ addresses: tcp4, crc32c: true }), encodeProxyV2({ command: 'LOCAL' })]
  for (const h of headers) {
    for (let k = 0; k < h.length; k++) t.equal(decodeProxyHeader(h.subarray(0, k)), undefined, `${k} of ${h.length}`)
    t.equal(decodeProxyHeader(h)?.length, h.length)
  }
  t.end()
})

t.test('UDP: the header prepended to each datagram', t => {
  const header = encodeProxyV2({ addresses: { ...tcp4, transport: 'UDP4' } })
  const d = decodeProxyDatagram(Buffer.concat([header, Buffer.from('query')]))
  t.equal(d.header.addresses?.transport, 'UDP4')
  t.same(d.payload, Buffer.from('query'))
  t.same(decodeProxyDatagram(header).payload, Buffer.alloc(0))
  t.match(thrown(t, () => decodeProxyDatagram(header.subarray(0, 20))), { code: 'E_PROXY_PROTOCOL' })
  t.match(thrown(t, () => decodeProxyDatagram(encodeProxyV1(tcp4))), { code: 'E_PROXY_PROTOCOL' })
  t.end()
})

t.test('proxyAddresses: unmaps IPv4-mapped addresses, maps a mixed pair to IPv6', t => {
  t.same(proxyAddresses('tcp', { address: '::ffff:10.0.0.1', port: 1 }, { address: '10.0.0.2', port: 80 }), {
    transport: 'TCP4',
    sourceAddress: '10.0.0.1',
    destinationAddress: '10.0.0.2',
    sourcePort: 1,
    destinationPort: 80,
  })
  t.same(proxyAddresses('udp', { address: '10.0.0.1', port: 1 }, { address: '2001:DB8::2', port: 53 }), {
    transport: 'UDP6',
    sourceAddress: '::ffff:a00:1',
    destinationAddress: '2001:db8::2',
    sourcePort: 1,
    destinationPort: 53,
  })
  t.end()
})

t.test('encoders refuse what the protocol cannot carry', t => {
  const cases: Array<() => unknown> = [
    () => encodeProxyV1({ ...tcp4, transport: 'UDP4' }),
    () => encodeProxyV1({ ...tcp4, sourceAddress: '::1' }),
    () => encodeProxyV1({ ...tcp4, sourcePort: 70000 }),
    () => encodeProxyV2({ addresses: { ...tcp4, transport: 'SCTP4' as ProxyTransport } }),
    () => encodeProxyV2({ command: 'LOCAL', addresses: tcp4 }),
    () => encodeProxyV2({ tlvs: [{ type: 1, value: Buffer.alloc(1) }] }),
    () => encodeProxyV2({ addresses: tcp4, tlvs: [{ type: 256, value: Buffer.alloc(1) }] }),
    () => encodeProxyV2({ addresses: tcp4, tlvs: [{ type: 1, value: Buffer.alloc(40000) }, { type: 1, value: Buffer.alloc(40000) }] }),
  ]
  for (const c of cases) t.match(thrown(t, c), { code: 'E_PROXY_ENCODE' })
  t.end()
})

// ---------------------------------------------------------------- properties

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map(b => b.join('.'))
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(b => {
  const g: string[] = []
  for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16))
  return new URL(`http://[${g.join(':')}]/`).hostname.slice(1, -1)
})
const port = fc.integer({ min: 0, max: 65535 })
const addressesArb = (transports: ProxyTransport[]): fc.Arbitrary<ProxyAddresses> =>
  fc.constantFrom(...transports).chain(transport => {
    const ip = transport.endsWith('6') ? v6 : v4
    return fc.record({ transport: fc.constant(transport), sourceAddress: ip, destinationAddress: ip, sourcePort: port, destinationPort: port })
  })
const tlvArb = fc.record({ type: fc.integer({ min: 0, max: 255 }).filter(x => x !== PP2_TYPE.CRC32C), value: fc.uint8Array({ maxLength: 40 }).map(b => Buffer.from(b)) })

t.test('decode∘encode is the identity, with the client bytes left after the header', t => {
  fc.assert(
    fc.property(addressesArb(['TCP4', 'TCP6']), fc.uint8Array({ maxLength: 20 }), (a, rest) => {
      const b = encodeProxyV1(a)
      t.same(decodeProxyHeader(Buffer.concat([b, rest])), { header: { version: 1, command: 'PROXY', addresses: a, tlvs: [] }, length: b.length })
    }),
    { numRuns: 300 },
  )
  fc.assert(
    fc.property(addressesArb(['TCP4', 'TCP6', 'UDP4', 'UDP6']), fc.array(tlvArb, { maxLength: 4 }), fc.uint8Array({ maxLength: 20 }), (a, tlvs, rest) => {
      const b = encodeProxyV2({ addresses: a, tlvs })
      t.same(decodeProxyHeader(Buffer.concat([b, rest])), { header: { version: 2, command: 'PROXY', addresses: a, tlvs }, length: b.length })
    }),
    { numRuns: 300 },
  )
  t.end()
})

t.test('fuzz: the decoder throws nothing but ProxyProtocolError, and is consistent on prefixes', t => {
  const check = (b: Buffer): void => {
    let d
    try {
      d = decodeProxyHeader(b)
    } catch (e) {
      if (!(e instanceof ProxyProtocolError)) throw e
      return
    }
    if (!d) return
    if (d.length > b.length) throw new Error('header longer than the input')
    // The header alone decodes the same; nothing after it matters.
    t.same(decodeProxyHeader(b.subarray(0, d.length)), d)
    for (let k = 0; k < d.length; k++) if (decodeProxyHeader(b.subarray(0, k)) !== undefined) throw new Error(`prefix of ${k} bytes decoded`)
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), b => check(Buffer.from(b))), { numRuns: 2000 })
  const starts = [
    encodeProxyV1(tcp4),
    encodeProxyV1({ ...tcp4, transport: 'TCP6', sourceAddress: '::1', destinationAddress: '2001:db8::7' }),
    encodeProxyV2({ addresses: tcp4, tlvs: [{ type: 2, value: Buffer.from('a.example') }], crc32c: true }),
    encodeProxyV2({ addresses: { ...tcp4, transport: 'UDP6', sourceAddress: '::1', destinationAddress: '::2' } }),
  ]
  const mutation = fc.record({ op: fc.constantFrom<Mutation['op']>('set', 'insert', 'delete', 'cut'), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) })
  fc.assert(fc.property(fc.constantFrom(...starts), fc.array(mutation, { minLength: 1, maxLength: 4 }), (b, muts) => check(mutate(b, muts))), { numRuns: 3000 })
  t.end()
})
