import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { SwarmNode } from '../node/node.js'
import { MANAGER_STARTING, SwarmdError } from '../types/errors.js'
import { clusterView } from './cluster-view.js'
import { uiFiles } from './ui-files.js'

export class MetricsServerError extends SwarmdError {}

/** Event streams one server keeps open at most: each costs a socket and a write per change. */
const MAX_STREAMS = 64
/** A comment on an idle stream this often keeps proxies from closing it. */
const KEEPALIVE_MS = 15_000

export interface MetricsServerOptions {
  /** What /metrics serves: the node's registry. */
  metrics: { text(): Promise<string>; contentType: string }
  /** The node the page shows; undefined while it opens. */
  node: () => SwarmNode | undefined
  log: Logger
  /** How often the page's view is recomputed while a page is open (default 1 s). */
  refreshMs?: number
}

const SECURITY = {
  'X-Content-Type-Options': 'nosniff',
  // The page loads its own files and talks to this server only.
  'Content-Security-Policy': "default-src 'self'; frame-ancestors 'none'",
  'Cache-Control': 'no-store',
}

/**
 * `--metrics-addr`: a plain-HTTP TCP listener (Docker's metrics address)
 * serving Prometheus's /metrics and, on managers, the cluster page at / with
 * its data (/ui/state once, /ui/events as server-sent events on every
 * change). Read-only: it answers GET and HEAD, nothing else.
 */
export class MetricsServer {
  private server: Server | undefined
  private readonly files = uiFiles()
  private readonly streams = new Set<ServerResponse>()
  private timer: NodeJS.Timeout | undefined
  private last = ''
  private quiet = 0

  constructor(private readonly o: MetricsServerOptions) {
    if (!this.files) throw new MetricsServerError('E_UI_MISSING', 'the cluster page (lib/api/ui/) is missing from this installation')
  }

  /** Listens on `host`:`port`; a clear error when the address cannot be had. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => void this.serve(req, res))
    server.on('clientError', (_e, sock: Socket) => sock.destroy())
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'the port is in use' : e.code === 'EADDRNOTAVAIL' ? 'no interface of this host has that address' : e.code === 'EACCES' ? 'permission denied' : e.message
        reject(new MetricsServerError('E_METRICS_LISTEN', `cannot serve metrics on ${host}:${port}: ${why}`, { cause: e, kind: 'invalid_argument' }))
      })
      server.listen({ host, port }, () => resolve())
    })
    server.on('error', e => this.o.log.warn({ err: e }, 'metrics server error'))
    this.server = server
    const a = server.address() as { address: string; port: number }
    return { host: a.address, port: a.port }
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.reply(res, req, 405, 'text/plain', 'only GET and HEAD are served here\n', { Allow: 'GET, HEAD' })
      const path = (req.url ?? '/').replace(/[?#].*$/, '')
      if (path === '/metrics') return this.reply(res, req, 200, this.o.metrics.contentType, await this.o.metrics.text())
      if (path === '/' || path === '/ui' || path === '/ui/') return this.file(res, req, 'index.html')
      const name = path.startsWith('/ui/') ? path.slice('/ui/'.length) : ''
      if (name !== 'index.html' && this.files!.has(name)) return this.file(res, req, name)
      if (path === '/ui/state') {
        const v = this.view()
        return this.reply(res, req, 'error' in v ? 503 : 200, 'application/json', JSON.stringify(v) + '\n')
      }
      if (path === '/ui/events') return this.stream(req, res)
      this.reply(res, req, 404, 'text/plain', 'not found: /metrics, and the cluster page at /\n')
    } catch (e) {
      this.o.log.error({ err: e }, 'metrics request failed')
      if (!res.headersSent) this.reply(res, req, 500, 'text/plain', 'internal error\n')
      else res.destroy()
    }
  }

  private reply(res: ServerResponse, req: IncomingMessage, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
    res.writeHead(status, { ...SECURITY, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  private file(res: ServerResponse, req: IncomingMessage, name: string): void {
    const f = this.files!.get(name)!
    this.reply(res, req, 200, f.type, f.body)
  }

  /** The page's data, or why this node has none (a worker, a node in no swarm, a manager still starting). */
  private view(): object {
    const node = this.o.node()
    if (!node) return { error: MANAGER_STARTING }
    try {
      return clusterView(node)
    } catch (e) {
      if (e instanceof SwarmdError) return { error: e.message }
      throw e
    }
  }

  /** Server-sent events: the view now, then again each time it changes. */
  private stream(req: IncomingMessage, res: ServerResponse): void {
    if (this.streams.size >= MAX_STREAMS) return this.reply(res, req, 503, 'text/plain', 'too many open pages\n')
    this.last ||= JSON.stringify(this.view())
    res.writeHead(200, { ...SECURITY, 'Content-Type': 'text/event-stream' })
    res.write(`retry: 2000\n\ndata: ${this.last}\n\n`)
    this.streams.add(res)
    res.on('close', () => {
      this.streams.delete(res)
      if (this.streams.size === 0) this.stopTimer()
    })
    this.timer ??= setInterval(() => this.tick(), this.o.refreshMs ?? 1_000)
  }

  private tick(): void {
    let text: string
    try {
      text = JSON.stringify(this.view())
    } catch (e) {
      this.o.log.warn({ err: e }, 'cluster page: the view failed')
      return
    }
    const changed = text !== this.last
    this.last = text
    this.quiet = changed ? 0 : this.quiet + (this.o.refreshMs ?? 1_000)
    if (!changed && this.quiet < KEEPALIVE_MS) return
    this.quiet = 0
    for (const s of this.streams) s.write(changed ? `data: ${text}\n\n` : ': keep-alive\n\n')
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    this.last = ''
  }

  async close(): Promise<void> {
    this.stopTimer()
    for (const s of this.streams) s.end()
    const s = this.server
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>(resolve => s.close(() => resolve()))
  }
}
