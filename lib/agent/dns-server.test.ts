import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect, createServer, type Server } from 'node:net'
import { decode, encode, TRUNCATED_RESPONSE, type DecodedPacket, type Packet, type RecordType } from 'dns-packet'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { parseResolvConf, type DnsUpstream } from './dns-forwarder.js'
import { DnsServer, type DnsListen, type DnsView } from './dns-server.js'
import { DnsFuzz, dnsCase } from '../../bench/fuzz/dns.js'

const HOST = '127.0.0.150'
const UPSTREAM = '127.0.0.151'
const OTHER = '127.0.0.152'

const view: DnsView = {
  lookup: (network, name) => {
    if (network === 'back' && name === 'api') return { addrs: ['10.0.1.2'], ttl: 5 }
    if (network === 'back' && name === 'tasks.api') return { addrs: ['10.0.1.7', '10.0.1.8'], ttl: 0 }
    if (network === 'back' && name === 'big') return { addrs: Array.from({ length: 60 }, (_, i) => `10.0.2.${i + 1}`), ttl: 0 }
    if (network === 'back' && name === 'empty') return { addrs: [], ttl: 0 }
    if (network === 'front' && name === 'web') return { addrs: ['10.0.3.2'], ttl: 5 }
    return undefined
  },
}

/** What dns-packet decodes and its types leave out: the rcode, and records' data. */
type Reply = Omit<DecodedPacket, 'answers'> & { rcode: string; answers: { data: unknown; ttl?: number; type: string }[] }
const read = (m: Buffer): Reply => decode(m) as unknown as Reply

let nextId = 1
const question = (name: string, type: RecordType = 'A', extra: Partial<Packet> = {}): Buffer =>
  encode({ type: 'query', id: nextId++, flags: 1 << 8, questions: [{ type, name, class: 'IN' }], ...extra })

/** One message over UDP and its answer (undefined after `waitMs` without one). */
function askUdp(addr: string, msg: Buffer, waitMs = 2_000): Promise<Reply | undefined> {
  const [host, port] = split(addr)
  return new Promise(resolve => {
    const s = createSocket('udp4')
    const timer = setTimeout(() => {
      s.close()
      resolve(undefined)
    }, waitMs)
    s.on('message', m => {
      clearTimeout(timer)
      s.close()
      resolve(read(m))
    })
    s.send(msg, port, host)
  })
}

/** Messages over one TCP connection, length-prefixed; resolves with the answers in arrival order when `count` came or the connection closed. */
function askTcp(addr: string, msgs: Buffer[], count = msgs.length, raw?: Buffer): Promise<Reply[]> {
  const [host, port] = split(addr)
  return new Promise(resolve => {
    const s = connect({ host, port })
    const got: Reply[] = []
    let buf = Buffer.alloc(0)
    s.on('data', d => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        got.push(read(buf.subarray(2, 2 + buf.readUInt16BE(0))))
        buf = buf.subarray(2 + buf.readUInt16BE(0))
      }
      if (got.length >= count) s.end()
    })
    s.on('close', () => resolve(got))
    s.on('error', () => undefined)
    s.write(raw ?? Buffer.concat(msgs.flatMap(m => [Buffer.from([m.length >> 8, m.length & 255]), m])))
  })
}

const split = (addr: string): [string, number] => {
  const i = addr.lastIndexOf(':')
  return [addr.slice(0, i), Number(addr.slice(i + 1))]
}
const addrsOf = (p: Reply | undefined): string[] => (p?.answers ?? []).map(a => a.data as string)

async function server(t: Test, upstreams: DnsUpstream[] = [], listen: Omit<DnsListen, 'port'>[] = [{ host: HOST, networks: ['back'] }], timeoutMs = 300): Promise<{ dns: DnsServer; addr: string[] }> {
  const dns = await DnsServer.create({ upstreams, timeoutMs })
  dns.update(view)
  await dns.listen(listen.map(l => ({ ...l, port: 0 })))
  t.teardown(() => dns.close())
  return { dns, addr: dns.addresses() }
}

interface FakeUpstream {
  addr: DnsUpstream
  asked: string[]
}

/** A resolver on UDP and TCP that answers A queries with 192.0.2.7 (or an rcode, or nothing), recording the names asked. */
async function upstream(t: Test, host: string, behave: 'answer' | 'silent' | 'servfail' = 'answer'): Promise<FakeUpstream> {
  const asked: string[] = []
  const answer = (m: Buffer): Buffer | undefined => {
    const q = decode(m)
    asked.push(q.questions![0]!.name)
    if (behave === 'silent') return undefined
    return encode({
      type: 'response',
      id: q.id!,
      flags: behave === 'servfail' ? 2 : 0,
      questions: q.questions!,
      answers: behave === 'servfail' ? [] : [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.7' }],
    })
  }
  const udp: UdpSocket = createSocket('udp4')
  await new Promise<void>(r => udp.bind(0, host, () => r()))
  udp.on('message', (m, r) => {
    const a = answer(m)
    if (a) udp.send(a, r.port, r.address)
  })
  const tcp: Server = createServer(s => {
    s.on('error', () => undefined)
    s.on('data', d => {
      const a = answer(d.subarray(2))
      if (a) s.write(Buffer.concat([Buffer.from([a.length >> 8, a.length & 255]), a]))
    })
  })
  await new Promise<void>(r => tcp.listen(udp.address().port, host, () => r()))
  t.teardown(() => {
    udp.close()
    tcp.close()
  })
  return { addr: { host, port: udp.address().port }, asked }
}

t.test('a service name over UDP and TCP: its VIP, with the question echoed and the RD flag kept', async t => {
  const { addr } = await server(t)
  const q = question('api')
  const udp = await askUdp(addr[0]!, q)
  t.equal(udp?.rcode, 'NOERROR')
  t.equal(udp?.id, decode(q).id, 'the query ID')
  t.same(udp?.questions, [{ name: 'api', type: 'A', class: 'IN' }])
  t.same(addrsOf(udp), ['10.0.1.2'])
  t.equal(udp?.answers?.[0]?.ttl, 5)
  t.ok(udp?.flag_aa && udp.flag_rd && udp.flag_ra, 'authoritative, recursion desired and available')
  const tcp = await askTcp(addr[0]!, [question('API.'), question('tasks.api')])
  t.same(tcp.map(addrsOf).sort(), [['10.0.1.2'], ['10.0.1.7', '10.0.1.8']].sort(), 'two queries on one TCP connection, names case-insensitive')
})

t.test('a known name: AAAA and other types get NOERROR with no records, never a forward; so does a name with no address', async t => {
  const up = await upstream(t, UPSTREAM)
  const { addr, dns } = await server(t, [up.addr])
  for (const type of ['AAAA', 'MX', 'TXT'] as const) {
    const a = await askUdp(addr[0]!, question('api', type))
    t.equal(a?.rcode, 'NOERROR', type)
    t.same(a?.answers, [], `${type}: no records`)
  }
  const empty = await askUdp(addr[0]!, question('empty'))
  t.equal(empty?.rcode, 'NOERROR')
  t.same(empty?.answers, [])
  t.same(up.asked, [], 'nothing went upstream')
  t.equal(dns.stats().local, 4)
})

t.test('a listener answers the names of its networks only, chosen by address or by the client', async t => {
  const up = await upstream(t, UPSTREAM)
  const { addr } = await server(t, [up.addr], [
    { host: HOST, networks: ['back'] },
    { host: OTHER, networks: client => (client === '127.0.0.1' ? ['front', 'back'] : []) },
  ])
  t.same(addrsOf(await askUdp(addr[0]!, question('web'))), ['192.0.2.7'], 'another network\'s name is not ours here: forwarded')
  t.same(addrsOf(await askUdp(addr[1]!, question('web'))), ['10.0.3.2'], 'the client at 127.0.0.1 is on front and back')
  t.same(addrsOf(await askUdp(addr[1]!, question('api'))), ['10.0.1.2'])
})

t.test('other names go upstream, over UDP and TCP as the client asked', async t => {
  const up = await upstream(t, UPSTREAM)
  const { addr, dns } = await server(t, [up.addr])
  const a = await askUdp(addr[0]!, question('example.org'))
  t.equal(a?.rcode, 'NOERROR')
  t.same(addrsOf(a), ['192.0.2.7'])
  t.same(addrsOf((await askTcp(addr[0]!, [question('example.com')]))[0]), ['192.0.2.7'], 'over TCP')
  t.same(up.asked, ['example.org', 'example.com'])
  t.equal(dns.stats().forwarded, 2)
})

t.test('an upstream that times out or fails: the next one answers; with none left, SERVFAIL in good time', async t => {
  const silent = await upstream(t, UPSTREAM, 'silent')
  const failing = await upstream(t, UPSTREAM, 'servfail')
  const good = await upstream(t, UPSTREAM)
  const { addr } = await server(t, [silent.addr, failing.addr, good.addr])
  t.same(addrsOf(await askUdp(addr[0]!, question('example.org'))), ['192.0.2.7'], 'past a silent and a failing upstream')
  t.same([silent.asked, failing.asked, good.asked], [['example.org'], ['example.org'], ['example.org']], 'each asked in turn')

  const alone = await server(t, [silent.addr], [{ host: OTHER, networks: [] }])
  const t0 = performance.now()
  const a = await askUdp(alone.addr[0]!, question('example.net'))
  const took = performance.now() - t0
  t.equal(a?.rcode, 'SERVFAIL', 'SERVFAIL when no upstream answers')
  t.ok(took >= 250 && took < 1_500, `after the timeout (300 ms): ${took.toFixed(0)} ms`)
  t.same(a?.questions, [{ name: 'example.net', type: 'A', class: 'IN' }])
  t.equal(alone.dns.stats().servfail, 1)
  t.equal((await askTcp(alone.addr[0]!, [question('example.net')]))[0]?.rcode, 'SERVFAIL', 'over TCP too')
})

t.test('no upstream at all: SERVFAIL at once', async t => {
  const { addr } = await server(t, [])
  t.equal((await askUdp(addr[0]!, question('example.org')))?.rcode, 'SERVFAIL')
})

t.test('an answer too large for UDP is truncated (TC) to what the client takes; TCP gets it whole', async t => {
  const { addr } = await server(t)
  const plain = await askUdp(addr[0]!, question('big'))
  t.ok(plain && (plain.flags! & TRUNCATED_RESPONSE) !== 0, 'TC set')
  t.ok(addrsOf(plain).length > 0 && addrsOf(plain).length < 60, `${addrsOf(plain).length} of 60 records fit in 512 bytes`)
  t.ok(encode(plain as unknown as Packet).length <= 512)
  const edns = await askUdp(addr[0]!, question('big', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] }))
  t.equal(addrsOf(edns).length, 60, 'an EDNS client asking for 4096 bytes gets all')
  t.equal(edns?.additionals?.[0]?.type, 'OPT', 'with an OPT record back')
  t.equal(addrsOf((await askTcp(addr[0]!, [question('big')]))[0]).length, 60, 'over TCP: all 60')
})

t.test('what is no question: malformed messages are dropped and counted, a response ignored, other opcodes NOTIMP, no question FORMERR', async t => {
  const { addr, dns } = await server(t)
  t.equal(await askUdp(addr[0]!, Buffer.from('not dns at all'), 300), undefined, 'garbage: no answer')
  t.equal(await askUdp(addr[0]!, Buffer.alloc(3), 300), undefined, 'three bytes: no answer')
  t.equal(await askUdp(addr[0]!, encode({ type: 'response', id: 9, questions: [{ type: 'A', name: 'api' }] }), 300), undefined, 'a response: no answer')
  const update = question('api')
  update.writeUInt16BE(update.readUInt16BE(2) | (5 << 11), 2)
  t.equal((await askUdp(addr[0]!, update))?.rcode, 'NOTIMP', 'an UPDATE (opcode 5)')
  t.equal((await askUdp(addr[0]!, encode({ type: 'query', id: 10, questions: [] })))?.rcode, 'FORMERR', 'no question')
  const s = dns.stats()
  t.equal(s.dropped.malformed, 2)
  t.equal(s.dropped.response, 1)
  t.equal(s.refused, 2)
  t.same(addrsOf(await askUdp(addr[0]!, question('api'))), ['10.0.1.2'], 'and still answers')
})

t.test('TCP: a length under a header\'s size closes the connection (counted); a silent client is closed', async t => {
  const dns = await DnsServer.create({ upstreams: [], tcpIdleMs: 200 })
  dns.update(view)
  await dns.listen([{ host: HOST, port: 0, networks: ['back'] }])
  t.teardown(() => dns.close())
  const addr = dns.addresses()[0]!
  t.same(await askTcp(addr, [], 1, Buffer.from([0, 3, 1, 2, 3])), [], 'closed without an answer')
  t.equal(dns.stats().dropped.tcp, 1)
  const t0 = performance.now()
  t.same(await askTcp(addr, [], 1, Buffer.alloc(0)), [])
  t.ok(performance.now() - t0 < 1_500, 'the idle client was closed')
})

t.test('fuzzed messages never crash the server: each is answered, or counted as dropped, and it keeps answering', async t => {
  const fz = await DnsFuzz.start('127.0.0.153', '127.0.0.154')
  t.teardown(() => fz.close())
  await fc.assert(
    fc.asyncProperty(dnsCase, async c => {
      const why = await fz.run(c)
      if (why) throw new Error(why)
    }),
    { numRuns: 1_500, seed: 14 },
  )
  const s = fz.server.stats()
  t.ok(s.dropped.malformed > 0 && s.dropped.response > 0 && s.local > 0 && s.forwarded > 0 && s.refused > 0, `answered locally, forwarded, refused and dropped: ${JSON.stringify(s)}`)
  t.equal(s.queries, s.local + s.forwarded + s.servfail + s.refused + s.dropped.malformed + s.dropped.response + s.dropped.overload, 'every message one of those (TCP frames too short are no message)')
  const [host, port] = split(fz.server.addresses()[0]!)
  t.same(addrsOf(await askUdp(`${host}:${port}`, question('api'))), ['10.0.1.2'], 'still answering')
})

t.test('listen() keeps to the addresses given: old ones close, a taken one is refused with E_DNS_LISTEN, networks are replaced in place', async t => {
  const dns = await DnsServer.create({ upstreams: [] })
  dns.update(view)
  t.teardown(() => dns.close())
  const squat = createSocket('udp4')
  await new Promise<void>(r => squat.bind(0, OTHER, () => r()))
  t.teardown(() => squat.close())
  await t.rejects(dns.listen([{ host: HOST, port: 0, networks: ['front'] }, { host: OTHER, port: squat.address().port, networks: [] }]), { code: 'E_DNS_LISTEN', message: new RegExp(`${OTHER}:${squat.address().port}: EADDRINUSE`) })
  t.equal(dns.addresses().length, 1, 'the free address is taken')
  const [addr] = dns.addresses()
  t.same(addrsOf(await askUdp(addr!, question('web'))), ['10.0.3.2'])
  await dns.listen([{ host: HOST, port: 0, networks: ['back'] }])
  t.same(dns.addresses(), [addr], 'the same socket')
  t.same(addrsOf(await askUdp(addr!, question('api'))), ['10.0.1.2'], 'now answering back\'s names')
  await dns.listen([])
  t.same(dns.addresses(), [])
  t.equal(await askUdp(addr!, question('api'), 300), undefined, 'closed')
  await t.rejects(dns.listen([{ host: 'localhost', port: 0, networks: [] }]), { code: 'E_DNS_LISTEN', message: /localhost:0: E_DNS_BAD_ADDRESS|not an IP/ })
})

t.test('resolv.conf: nameservers in order, at most three, comments and other lines ignored', async t => {
  t.same(parseResolvConf('# a comment\nsearch example.org\nnameserver 127.0.0.53\nnameserver   10.0.0.1 # trailing\noptions ndots:0\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 1.1.1.1\n'), [
    { host: '127.0.0.53', port: 53 },
    { host: '10.0.0.1', port: 53 },
    { host: 'fe80::1%eth0', port: 53 },
  ])
  t.same(parseResolvConf(''), [])
})
