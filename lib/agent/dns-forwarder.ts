import { createSocket } from 'node:dgram'
import { readFile } from 'node:fs/promises'
import { connect, isIP } from 'node:net'
import { SwarmdError } from '../types/errors.js'

export class DnsError extends SwarmdError {}

/** A resolver the node's DNS forwards other names to. */
export interface DnsUpstream {
  host: string
  port: number
}

/** glibc reads at most three nameservers (MAXNS); Docker forwards to as many. */
const MAX_UPSTREAMS = 3
/** The largest DNS message, over TCP (a 16-bit length). */
export const DNS_MAX_MESSAGE = 65_535

/** The nameservers of a resolv.conf text, at most three, in order; a scoped IPv6 address (fe80::1%eth0) keeps its zone. */
export function parseResolvConf(text: string): DnsUpstream[] {
  const out: DnsUpstream[] = []
  for (const line of text.split('\n')) {
    const [key, addr] = line.replace(/[#;].*/, '').trim().split(/\s+/)
    if (key !== 'nameserver' || !addr || !isIP(addr.split('%')[0]!)) continue
    out.push({ host: addr, port: 53 })
    if (out.length === MAX_UPSTREAMS) break
  }
  return out
}

/** The host's resolvers: the nameservers of its resolv.conf (none when it cannot be read). */
export async function hostResolvers(path = '/etc/resolv.conf'): Promise<DnsUpstream[]> {
  const text = await readFile(path, 'utf8').catch(() => '')
  return parseResolvConf(text)
}

/**
 * One query to one upstream, over the transport the client used: UDP from a
 * fresh socket connected to the upstream (so only its answers are read, and
 * each forward has its own source port), or one TCP connection. Resolves
 * with the upstream's answer (its ID checked against the query's), rejects
 * with E_DNS_UPSTREAM on a timeout or failure.
 */
export function forwardOnce(query: Buffer, to: DnsUpstream, tcp: boolean, timeoutMs: number): Promise<Buffer> {
  return tcp ? forwardTcp(query, to, timeoutMs) : forwardUdp(query, to, timeoutMs)
}

const upstreamError = (to: DnsUpstream, why: string, cause?: unknown): DnsError =>
  new DnsError('E_DNS_UPSTREAM', `upstream ${to.host}:${to.port}: ${why}`, { kind: 'unavailable', ...(cause ? { cause } : {}) })

type Done = (err: Error | undefined, answer?: Buffer) => void

/** One exchange with an upstream: `start` begins it and returns what closes it; the first answer, error or the timeout ends it. */
function exchange(to: DnsUpstream, timeoutMs: number, start: (done: Done) => () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let close = (): void => undefined
    const done: Done = (err, answer) => {
      clearTimeout(timer)
      close()
      if (err) reject(err)
      else resolve(answer!)
    }
    const timer = setTimeout(() => done(upstreamError(to, `no answer within ${timeoutMs} ms`)), timeoutMs)
    close = start(done)
  })
}

function forwardUdp(query: Buffer, to: DnsUpstream, timeoutMs: number): Promise<Buffer> {
  return exchange(to, timeoutMs, done => {
    const sock = createSocket(isIP(to.host.split('%')[0]!) === 6 ? 'udp6' : 'udp4')
    sock.on('error', e => done(upstreamError(to, e.message, e)))
    sock.on('message', m => {
      // Not the answer to this query (a stray or spoofed datagram): keep waiting.
      if (m.length >= 12 && m.readUInt16BE(0) === query.readUInt16BE(0)) done(undefined, m)
    })
    sock.connect(to.port, to.host, () => sock.send(query))
    return () => sock.close()
  })
}

function forwardTcp(query: Buffer, to: DnsUpstream, timeoutMs: number): Promise<Buffer> {
  return exchange(to, timeoutMs, done => {
    const s = connect({ host: to.host, port: to.port })
    let buf = Buffer.alloc(0)
    s.on('error', e => done(upstreamError(to, e.message, e)))
    s.on('connect', () => s.write(Buffer.concat([lengthPrefix(query.length), query])))
    s.on('data', d => {
      buf = Buffer.concat([buf, d])
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(undefined, buf.subarray(2, 2 + buf.readUInt16BE(0)))
    })
    s.on('end', () => done(upstreamError(to, 'closed before answering')))
    return () => s.destroy()
  })
}

export function lengthPrefix(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}
