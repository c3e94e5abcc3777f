/**
 * Fuzzing the node's DNS: a real DnsServer (UDP and TCP on 127.0.0.165 by
 * default, a free port) whose view knows a few names, with an upstream on
 * .166 that answers everything, fed one message at a time: raw bytes,
 * byte-edited valid queries, and valid queries for random names, types and
 * flags, over UDP or (length-framed) TCP.
 *
 * The verdict on each: an answer that decodes as a response with the
 * query's ID, or no answer and one of the server's drop counters moved
 * (malformed, a response sent to it, a TCP frame under a header's size).
 * No answer and no count, two answers, or an exception nobody caught is a
 * finding. The plane's drops are the server's counters.
 *
 * Shared by lib/agent/dns-server.test.ts and the fuzz bench, which loads `plane`.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect } from 'node:net'
import { decode, encode, type RecordType } from 'dns-packet'
import fc from 'fast-check'
import { DnsServer, type DnsCounters, type DnsView } from '../../lib/agent/dns-server.js'
import { lengthPrefix } from '../../lib/agent/dns-forwarder.js'
import { mutate } from '../../lib/test-helpers.test-helper.js'
import { byteEdit, feed } from './feed.js'
import type { FuzzOptions, FuzzResult } from './plane.js'

export interface DnsCase {
  bytes: Buffer
  tcp: boolean
}

const NAMES = ['api', 'tasks.api', 'db', 'big', 'example.org', 'x.example', '', 'tasks.', 'API.']
const TYPES: RecordType[] = ['A', 'AAAA', 'MX', 'TXT', 'SRV', 'PTR', 'ANY' as RecordType, 'OPT', 'SOA', 'CNAME']

const view: DnsView = {
  lookup: (_network, name) => {
    if (name === 'api') return { addrs: ['10.0.1.2'], ttl: 5 }
    if (name === 'tasks.api' || name === 'db') return { addrs: ['10.0.1.7', '10.0.1.8', '::1'], ttl: 0 }
    if (name === 'big') return { addrs: Array.from({ length: 80 }, (_, i) => `10.0.2.${i}`), ttl: 0 }
    return undefined
  },
}

const label = fc.stringMatching(/^[a-z0-9-]{1,20}$/)
const query = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffff }),
    // Mostly opcode QUERY (bits 11-14 clear), sometimes another; a tenth sent as responses.
    flags: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 0x7ff }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7fff }) }),
    response: fc.integer({ min: 0, max: 9 }).map(n => n === 0),
    name: fc.oneof(fc.constantFrom(...NAMES), fc.array(label, { minLength: 1, maxLength: 5 }).map(l => l.join('.'))),
    type: fc.constantFrom(...TYPES),
    edns: fc.option(fc.integer({ min: 0, max: 0xffff })),
  })
  .map(q =>
    encode({
      type: q.response ? 'response' : 'query',
      id: q.id,
      flags: q.flags,
      questions: [{ type: q.type, name: q.name, class: 'IN' }],
      additionals: q.edns === null ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: q.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    }),
  )

/** Raw bytes, byte-edited queries, and queries as they are; a fifth of them over TCP. */
export const dnsCase: fc.Arbitrary<DnsCase> = fc.record({
  bytes: fc.oneof(
    fc.uint8Array({ maxLength: 600 }).map(a => Buffer.from(a)),
    fc.tuple(query, fc.array(byteEdit, { minLength: 1, maxLength: 4 })).map(([q, edits]) => mutate(q, edits)),
    query,
  ),
  tcp: fc.integer({ min: 0, max: 4 }).map(n => n === 0),
})

const dropsOf = (s: DnsCounters): number => s.dropped.malformed + s.dropped.response + s.dropped.tcp + s.dropped.overload

export class DnsFuzz {
  private constructor(
    readonly server: DnsServer,
    private readonly upstream: UdpSocket,
    private readonly client: UdpSocket,
    readonly addr: { host: string; port: number },
  ) {}

  /** The server on `host`, an upstream on `upstreamHost` that echoes each query back as its answer. */
  static async start(host = '127.0.0.165', upstreamHost = '127.0.0.166'): Promise<DnsFuzz> {
    const upstream = createSocket('udp4')
    await new Promise<void>(r => upstream.bind(0, upstreamHost, () => r()))
    upstream.on('message', (m, r) => {
      const a = Buffer.from(m)
      a[2] = a[2]! | 0x80
      upstream.send(a, r.port, r.address)
    })
    const server = await DnsServer.create({ upstreams: [{ host: upstreamHost, port: upstream.address().port }], timeoutMs: 200 })
    server.update(view)
    await server.listen([{ host, port: 0, networks: ['n'] }])
    const client = createSocket('udp4')
    await new Promise<void>(r => client.bind(0, '127.0.0.1', () => r()))
    const [h, p] = server.addresses()[0]!.split(':')
    return new DnsFuzz(server, upstream, client, { host: h!, port: Number(p) })
  }

  /** One case; what is wrong with how it was handled, or undefined. */
  async run(c: DnsCase): Promise<string | undefined> {
    const before = this.server.stats()
    const answers = c.tcp ? await this.overTcp(c.bytes, before) : await this.overUdp(c.bytes, before)
    const after = this.server.stats()
    const dropped = dropsOf(after) > dropsOf(before)
    const what = `${c.tcp ? 'tcp' : 'udp'} ${c.bytes.toString('hex').slice(0, 200)}`
    if (answers.length > 1) return `two answers to one message: ${what}`
    if (!answers.length) return dropped ? undefined : `neither answered nor counted as dropped: ${what}`
    try {
      const a = decode(answers[0]!)
      if (a.type !== 'response') return `an answer that is no response: ${what}`
      if (c.bytes.length >= 2 && a.id !== c.bytes.readUInt16BE(0)) return `an answer with another ID: ${what}`
    } catch (e) {
      return `an answer that does not decode (${(e as Error).message}): ${what}`
    }
    return undefined
  }

  /** Waits until the server answered the message or counted it as dropped, then a little more for a second answer. */
  private async settle(before: DnsCounters, answers: Buffer[]): Promise<void> {
    const t0 = Date.now()
    while (Date.now() - t0 < 2_000) {
      const s = this.server.stats()
      if (answers.length || dropsOf(s) > dropsOf(before)) break
      await new Promise(r => setImmediate(r))
    }
    await new Promise(r => setTimeout(r, 1))
  }

  private async overUdp(bytes: Buffer, before: DnsCounters): Promise<Buffer[]> {
    const answers: Buffer[] = []
    const onMessage = (m: Buffer): void => void answers.push(m)
    this.client.on('message', onMessage)
    this.client.send(bytes, this.addr.port, this.addr.host)
    await this.settle(before, answers)
    this.client.off('message', onMessage)
    return answers
  }

  private async overTcp(bytes: Buffer, before: DnsCounters): Promise<Buffer[]> {
    const msg = bytes.subarray(0, 0xffff)
    const s = connect(this.addr)
    const answers: Buffer[] = []
    let buf = Buffer.alloc(0)
    s.on('error', () => undefined)
    s.on('data', d => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        answers.push(buf.subarray(2, 2 + buf.readUInt16BE(0)))
        buf = buf.subarray(2 + buf.readUInt16BE(0))
      }
    })
    s.write(Buffer.concat([lengthPrefix(msg.length), msg]))
    await this.settle(before, answers)
    s.destroy()
    return answers
  }

  drops(): Record<string, number> {
    const s = this.server.stats()
    return { 'dns: malformed': s.dropped.malformed, 'dns: response': s.dropped.response, 'dns: tcp framing': s.dropped.tcp, 'dns: overload': s.dropped.overload, 'dns: FORMERR or NOTIMP': s.refused }
  }

  async close(): Promise<void> {
    await this.server.close()
    this.upstream.close()
    this.client.close()
  }
}

export const plane = {
  name: 'dns',
  run: async (o: FuzzOptions): Promise<FuzzResult> => {
    const fz = await DnsFuzz.start()
    try {
      const r = await feed('dns', o, dnsCase, 100, c => fz.run(c))
      const probe = await fz.run({ bytes: encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'api' }] }), tcp: false })
      return { inputs: r.inputs, crashes: r.crashes + (probe === undefined ? 0 : 1), drops: fz.drops() }
    } finally {
      await fz.close()
    }
  },
}
