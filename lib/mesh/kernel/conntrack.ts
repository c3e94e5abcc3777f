import type { Logger } from 'pino'
import type { Ruleset } from './ruleset.js'
import type { Runner } from './runner.js'

/**
 * Which conntrack entries to delete after a ruleset change, as kube-proxy
 * deletes them. Conntrack keeps a UDP flow on the backend its first
 * datagram was translated to, and every datagram restarts its timeout
 * (30 s, 120 s once it saw replies): a client that keeps sending from one
 * port to a removed task would never reach another. So:
 * - a UDP path that left the ruleset (a VIP or a port to one backend)
 *   loses its entries, and the next datagram picks a live backend;
 * - a VIP or UDP port that gains its first backend loses the entries made
 *   while it had none: they were not translated, and never would be;
 * - a backend on a node that left the membership loses all its entries,
 *   TCP too: its connections cannot end by themselves, they would
 *   retransmit into the void for minutes (tcp_retries2) where the next
 *   segment, translated anew, is reset at once.
 * A stopped task's TCP connections stay, as kube-proxy leaves them: they
 * end with the task, or drain while it stops.
 *
 * Each flush is the argument list of one `conntrack -D`.
 */
export type Flush = readonly string[]

const UDP = ['-D', '-p', 'udp']

interface Path {
  /** The backend's address. */
  addr: string
  flush: Flush
}

/** UDP paths through the ruleset, by key, with what deletes their entries; and the frontends with a backend. */
function udpPaths(r: Ruleset): { paths: Map<string, Path>; fronts: Map<string, Flush> } {
  const paths = new Map<string, Path>()
  const fronts = new Map<string, Flush>()
  for (const v of r.vips) {
    if (!v.service.backends.length) continue
    // Untranslated, a flow to a VIP is answered by the VIP itself (an address of the bridge).
    fronts.set(`vip ${v.addr}`, [...UDP, '--orig-dst', v.addr, '--reply-src', v.addr])
    for (const b of v.service.backends) paths.set(`vip ${v.addr} ${b.addr}`, { addr: b.addr, flush: [...UDP, '--orig-dst', v.addr, '--reply-src', b.addr] })
  }
  const ports = [
    ...r.published.filter(p => p.protocol === 'udp').flatMap(p => p.service.backends.map(b => ({ port: p.port, addr: b.addr, to: b.port ?? p.port }))),
    ...r.hostPorts.filter(h => h.protocol === 'udp').map(h => ({ port: h.port, addr: h.backend.addr, to: h.backend.port })),
  ]
  for (const { port, addr, to } of ports) {
    // On whichever local address it came to. A flow translated to a backend on the same port matches too: it is new, and picks again.
    fronts.set(`port ${port}`, [...UDP, '--orig-port-dst', String(port), '--reply-port-src', String(port)])
    paths.set(`port ${port} ${addr}:${to}`, { addr, flush: [...UDP, '--orig-port-dst', String(port), '--reply-src', addr, '--reply-port-src', String(to)] })
  }
  return { paths, fronts }
}

/** Every backend address of the ruleset. */
export function backendAddrs(r: Ruleset): Set<string> {
  return new Set([...[...r.vips, ...r.published].flatMap(x => x.service.backends.map(b => b.addr)), ...r.hostPorts.map(h => h.backend.addr)])
}

/**
 * What to delete once `after` replaced `before` in the kernel. `deadNodes`
 * are the backend addresses of `before` that are gone with their node.
 */
export function conntrackFlushes(before: Ruleset, after: Ruleset, deadNodes: ReadonlySet<string>): Flush[] {
  const was = udpPaths(before)
  const now = udpPaths(after)
  const out: Flush[] = [...deadNodes].sort().map(addr => ['-D', '--reply-src', addr])
  for (const [key, p] of was.paths) if (!now.paths.has(key) && !deadNodes.has(p.addr)) out.push(p.flush)
  for (const [key, flush] of now.fronts) if (!was.fronts.has(key)) out.push(flush)
  return out
}

/** Runs the flushes; a failure is logged, and the entries it leaves expire by their timeout. */
export async function runFlushes(run: Runner, flushes: readonly Flush[], log: Logger): Promise<void> {
  for (const args of flushes) {
    const r = await run('conntrack', args)
    // Exit 1 with "0 flow entries have been deleted" only says none matched.
    if (r.code !== 0 && !/ 0 flow entries/.test(r.stderr)) log.warn({ args, code: r.code, stderr: r.stderr.trim() }, 'kernel data plane: conntrack -D failed; those flows keep their backend until they time out')
  }
}
