import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { createServer, isIPv4, isIPv6, type Server, type Socket } from 'node:net'
import { AUTHORITATIVE_ANSWER, decode, encode, RECURSION_AVAILABLE, RECURSION_DESIRED, TRUNCATED_RESPONSE, type Answer, type DecodedPacket } from 'dns-packet'
import type { Logger } from 'pino'
import { DnsError, DNS_MAX_MESSAGE, forwardOnce, hostResolvers, lengthPrefix, type DnsUpstream } from './dns-forwarder.js'

/** The A records of one name: addresses in the order to answer them, and how long a client may keep them. */
export interface DnsRecords {
  addrs: readonly string[]
  ttl: number
}

/**
 * What the server knows: the names of one network (service names, aliases,
 * `tasks.<service>`). A name the view knows is answered here and never
 * forwarded, even with no address (NOERROR, no records); every other name
 * goes to the host's resolvers.
 */
export interface DnsView {
  lookup(network: string, name: string): DnsRecords | undefined
}

/**
 * An address the server answers on, and whose names it answers there: the
 * networks (in the order they are searched), fixed for the address or
 * chosen by the client's address (a task's source IP tells which task asks).
 */
export interface DnsListen {
  host: string
  port: number
  networks: readonly string[] | ((client: string) => readonly string[])
}

export interface DnsServerOptions {
  /** Where other names go; by default the nameservers of `resolvConf`, read once at start. */
  upstreams?: DnsUpstream[]
  /** The host namespace's resolv.conf (default /etc/resolv.conf). */
  resolvConf?: string
  /** How long one upstream has to answer before the next is asked (Docker: 4 s). */
  timeoutMs?: number
  /** Forwards in flight at most; queries beyond it get SERVFAIL at once (Docker: 1024). */
  maxForwards?: number
  /** TCP clients at once; a newcomer beyond it is closed. */
  maxTcpConnections?: number
  /** A TCP client silent this long is closed (RFC 7766 idle timeout). */
  tcpIdleMs?: number
  logger?: Logger
}

export interface DnsCounters {
  queries: number
  /** Answered from the view. */
  local: number
  /** Answered by an upstream. */
  forwarded: number
  /** SERVFAIL because no upstream answered (or there is none). */
  servfail: number
  /** Answered with FORMERR or NOTIMP: a well-formed message that is no question we take. */
  refused: number
  dropped: {
    /** Not a DNS message: counted, never answered. */
    malformed: number
    /** A response sent to the server. */
    response: number
    /** More forwards in flight than maxForwards (answered SERVFAIL). */
    overload: number
    /** A TCP length prefix under a header's size, or a client beyond maxTcpConnections. */
    tcp: number
  }
}

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NOTIMP: 4, REFUSED: 5 } as const
/** RFC 1035's UDP limit without EDNS, and the EDNS sizes honoured. */
const UDP_PLAIN = 512
const UDP_EDNS_MAX = 4096
const HEADER = 12

interface Listener {
  udp: UdpSocket
  tcp: Server
  networks: DnsListen['networks']
}

/**
 * The node's DNS server, as Docker's embedded resolver: service names (and
 * aliases) of the asking task's networks answered with the service's VIP,
 * `tasks.<service>` with its running tasks, dnsrr services with their tasks
 * in rotation (all from the injected view), and everything else forwarded
 * to the host's resolvers, over the transport the client used. Malformed
 * messages are counted and dropped; an upstream that times out gets the
 * next one, and when none answers the client gets SERVFAIL.
 */
export class DnsServer {
  private readonly listeners = new Map<string, Listener>()
  private readonly tcpClients = new Set<Socket>()
  private view: DnsView = { lookup: () => undefined }
  private inflight = 0
  private readonly counters: DnsCounters = { queries: 0, local: 0, forwarded: 0, servfail: 0, refused: 0, dropped: { malformed: 0, response: 0, overload: 0, tcp: 0 } }
  private readonly timeoutMs: number
  private readonly maxForwards: number
  private readonly maxTcp: number
  private readonly tcpIdleMs: number

  private constructor(
    readonly upstreams: readonly DnsUpstream[],
    private readonly o: DnsServerOptions,
  ) {
    this.timeoutMs = o.timeoutMs ?? 4_000
    this.maxForwards = o.maxForwards ?? 1024
    this.maxTcp = o.maxTcpConnections ?? 256
    this.tcpIdleMs = o.tcpIdleMs ?? 10_000
  }

  /** A server with no address yet: `listen` gives it some. Reads the host's resolvers unless `upstreams` are given. */
  static async create(o: DnsServerOptions = {}): Promise<DnsServer> {
    const upstreams = o.upstreams ?? (await hostResolvers(o.resolvConf))
    if (!upstreams.length) o.logger?.warn({ resolvConf: o.resolvConf ?? '/etc/resolv.conf' }, 'dns: no upstream resolvers; names outside the swarm get SERVFAIL')
    return new DnsServer(upstreams, o)
  }

  /** Replaces what the server answers from (a change of routing); queries in flight finish with the view they started with. */
  update(view: DnsView): void {
    this.view = view
  }

  /**
   * Answers on exactly these addresses (UDP and TCP each): new ones are
   * opened, those no longer listed closed, and the networks of those kept
   * replaced. An address that cannot be bound is skipped; once every other
   * one is done, E_DNS_LISTEN says which failed and why.
   */
  async listen(addrs: readonly DnsListen[]): Promise<void> {
    const want = new Map(addrs.map(a => [`${a.host}:${a.port}`, a]))
    for (const [key, l] of this.listeners) if (!want.has(key)) await this.closeListener(key, l)
    const failed: string[] = []
    let cause: unknown
    for (const [key, a] of want) {
      const have = this.listeners.get(key)
      if (have) {
        have.networks = a.networks
        continue
      }
      try {
        this.listeners.set(key, await this.open(a))
      } catch (e) {
        failed.push(`${key}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
        cause ??= e
      }
    }
    if (failed.length) throw new DnsError('E_DNS_LISTEN', `dns: cannot listen on ${failed.join(', ')}`, { kind: 'unavailable', cause })
  }

  /** The addresses answered on, as `host:port` (the port bound, where port 0 was asked for). */
  addresses(): string[] {
    return [...this.listeners.values()].map(l => {
      const a = l.udp.address()
      return `${a.address}:${a.port}`
    })
  }

  stats(): DnsCounters {
    return { ...this.counters, dropped: { ...this.counters.dropped } }
  }

  async close(): Promise<void> {
    for (const [key, l] of this.listeners) await this.closeListener(key, l)
    for (const s of this.tcpClients) s.destroy()
  }

  private async open(a: DnsListen): Promise<Listener> {
    if (!isIPv4(a.host) && !isIPv6(a.host)) throw new DnsError('E_DNS_BAD_ADDRESS', `dns: ${a.host} is not an IP address`, { kind: 'invalid_argument' })
    const udp = createSocket({ type: isIPv6(a.host) ? 'udp6' : 'udp4' })
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind(a.port, a.host, () => {
        udp.off('error', reject)
        resolve()
      })
    })
    const tcp = createServer(s => this.tcpClient(s, l))
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject)
        // Port 0 (tests): TCP takes the port UDP got, so both answer on one address.
        tcp.listen({ host: a.host, port: udp.address().port }, () => {
          tcp.off('error', reject)
          resolve()
        })
      })
    } catch (e) {
      udp.close()
      throw e
    }
    // A failed send (the client went away) must never take the server down.
    udp.on('error', err => this.o.logger?.debug({ err }, 'dns: udp error'))
    tcp.on('error', err => this.o.logger?.warn({ err }, 'dns: tcp listener error'))
    const l: Listener = { udp, tcp, networks: a.networks }
    udp.on('message', (msg, r) => {
      void this.handle(msg, scope(l, r.address), udpLimit).then(answer => {
        if (answer) udp.send(answer, r.port, r.address)
      })
    })
    return l
  }

  private async closeListener(key: string, l: Listener): Promise<void> {
    this.listeners.delete(key)
    await Promise.all([new Promise<void>(r => l.udp.close(() => r())), new Promise<void>(r => l.tcp.close(() => r()))])
  }

  /** One TCP client: length-prefixed messages, answered as they complete (possibly out of order, RFC 7766). */
  private tcpClient(s: Socket, l: Listener): void {
    if (this.tcpClients.size >= this.maxTcp) {
      this.counters.dropped.tcp++
      s.destroy()
      return
    }
    this.tcpClients.add(s)
    s.on('close', () => this.tcpClients.delete(s))
    s.on('error', () => s.destroy())
    s.setTimeout(this.tcpIdleMs, () => s.destroy())
    const networks = scope(l, s.remoteAddress ?? '')
    let buf = Buffer.alloc(0)
    s.on('data', d => {
      buf = buf.length ? Buffer.concat([buf, d]) : d
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0)
        if (n < HEADER) {
          this.counters.dropped.tcp++
          s.destroy()
          return
        }
        if (buf.length < 2 + n) return
        const msg = buf.subarray(2, 2 + n)
        buf = buf.subarray(2 + n)
        void this.handle(msg, networks, () => DNS_MAX_MESSAGE, true).then(answer => {
          if (answer && !s.destroyed) s.write(Buffer.concat([lengthPrefix(answer.length), answer]))
        })
      }
    })
  }

  /** The answer to one message, or undefined to drop it. Never throws. */
  private async handle(msg: Buffer, networks: readonly string[], limit: (q: DecodedPacket) => number, tcp = false): Promise<Buffer | undefined> {
    this.counters.queries++
    let q: DecodedPacket
    try {
      q = decode(msg)
    } catch {
      this.counters.dropped.malformed++
      return undefined
    }
    if (q.type !== 'query') {
      this.counters.dropped.response++
      return undefined
    }
    try {
      if (((q.flags ?? 0) >> 11) & 0xf) return this.refuse(q, RCODE.NOTIMP)
      const questions = q.questions ?? []
      const question = questions[0]
      if (!question || questions.length !== 1 || typeof question.name !== 'string') return this.refuse(q, RCODE.FORMERR)
      const records = question.class === 'IN' ? this.lookup(networks, question.name.toLowerCase().replace(/\.$/, '')) : undefined
      if (!records) return await this.forward(msg, q, tcp)
      // Our names have IPv4 addresses only: AAAA and other types get NOERROR with no records, never a forward.
      const answers: Answer[] = question.type === 'A' ? records.addrs.filter(a => isIPv4(a)).map(data => ({ type: 'A', class: 'IN', name: question.name, ttl: records.ttl, data })) : []
      const out = reply(q, RCODE.NOERROR, answers, limit(q))
      this.counters.local++
      return out
    } catch {
      // A decodable message that dns-packet cannot encode an answer for (a name it decoded but cannot write back).
      this.counters.dropped.malformed++
      return undefined
    }
  }

  private refuse(q: DecodedPacket, rcode: number): Buffer {
    this.counters.refused++
    return reply({ ...q, questions: [] }, rcode, [], UDP_PLAIN)
  }

  private lookup(networks: readonly string[], name: string): DnsRecords | undefined {
    for (const n of networks) {
      const r = this.view.lookup(n, name)
      if (r) return r
    }
    return undefined
  }

  /** Relays the query to the upstreams in turn: a timeout, failure, SERVFAIL or REFUSED moves on to the next; the last answer stands. */
  private async forward(msg: Buffer, q: DecodedPacket, tcp: boolean): Promise<Buffer> {
    if (this.inflight >= this.maxForwards) {
      this.counters.dropped.overload++
      return reply(q, RCODE.SERVFAIL, [], UDP_PLAIN)
    }
    this.inflight++
    try {
      let last: Buffer | undefined
      for (const up of this.upstreams) {
        try {
          last = await forwardOnce(msg, up, tcp, this.timeoutMs)
        } catch (err) {
          this.o.logger?.debug({ err }, 'dns: upstream failed')
          continue
        }
        const rcode = last[3]! & 0xf
        if (rcode !== RCODE.SERVFAIL && rcode !== RCODE.REFUSED) break
      }
      if (last) {
        this.counters.forwarded++
        return last
      }
      this.counters.servfail++
      return reply(q, RCODE.SERVFAIL, [], UDP_PLAIN)
    } finally {
      this.inflight--
    }
  }
}

function scope(l: Listener, client: string): readonly string[] {
  return typeof l.networks === 'function' ? l.networks(client) : l.networks
}

/** What a UDP client can take: its EDNS payload size (512-4096), else 512. */
function udpLimit(q: DecodedPacket): number {
  const opt = q.additionals?.find(a => a.type === 'OPT') as { udpPayloadSize?: number } | undefined
  return opt?.udpPayloadSize ? Math.min(UDP_EDNS_MAX, Math.max(UDP_PLAIN, opt.udpPayloadSize)) : UDP_PLAIN
}

/** A response to `q` with the question echoed, cut to `limit` bytes by dropping answers (with TC set, so the client asks again over TCP). */
function reply(q: DecodedPacket, rcode: number, answers: Answer[], limit: number): Buffer {
  const edns = q.additionals?.some(a => a.type === 'OPT')
  const packet = {
    id: q.id ?? 0,
    type: 'response' as const,
    flags: ((q.flags ?? 0) & RECURSION_DESIRED) | RECURSION_AVAILABLE | (rcode === RCODE.NOERROR ? AUTHORITATIVE_ANSWER : 0) | rcode,
    questions: q.questions ?? [],
    answers,
    additionals: edns ? [{ type: 'OPT' as const, name: '.', udpPayloadSize: UDP_EDNS_MAX, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  }
  let out = encode(packet)
  while (out.length > limit && packet.answers.length) {
    packet.answers = packet.answers.slice(0, -1)
    packet.flags |= TRUNCATED_RESPONSE
    out = encode(packet)
  }
  return out
}
