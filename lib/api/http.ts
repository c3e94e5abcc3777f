import { existsSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { pino, type Logger } from 'pino'
import { SwarmdError } from '../types/errors.js'
import type { ApiAnswer, ApiCall } from '../types/session.js'
import { ApiError, statusOf } from './api-error.js'

export interface Request {
  method: string
  /** Path without the `/v1.xx` version prefix. */
  path: string
  params: Record<string, string>
  query: URLSearchParams
  body: unknown
}

export type Handler = (req: Request) => Promise<unknown> | unknown

/**
 * A handler's answer that is a byte stream rather than JSON (service logs):
 * `write` writes to the response and resolves when done; `signal` aborts
 * when the client goes away.
 */
export class StreamResponse {
  constructor(
    readonly contentType: string,
    readonly write: (res: ServerResponse, signal: AbortSignal) => Promise<void>,
  ) {}
}

interface Route {
  method: string
  path: string
  pattern: RegExp
  names: string[]
  handler: Handler
}

/** The largest request body we read: the swarm API's objects are small. */
const MAX_BODY = 4 * 1024 * 1024

/** The API version we speak (the docker CLI negotiates down to it). */
export const API_VERSION = '1.41'

/**
 * A request body that must be a JSON object (a Go struct on dockerd's side):
 * anything else is the 400 dockerd's decoder gives. No body, or null, is an
 * empty object, as Go leaves the struct zero.
 */
export function objectBody(body: unknown, goType: string): Record<string, unknown> {
  if (body === undefined || body === null) return {}
  if (typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>
  const kind = Array.isArray(body) ? 'array' : typeof body === 'boolean' ? 'bool' : typeof body
  throw new ApiError(400, `invalid JSON: json: cannot unmarshal ${kind} into Go value of type ${goType}`)
}

/** One path segment, percent-decoded; a malformed escape is the client's error, as Go's URL parser says. */
function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    const bad = /%(?![0-9a-fA-F]{2})/.exec(s)
    throw new ApiError(400, bad ? `invalid URL escape "${s.slice(bad.index, bad.index + 3)}"` : `invalid URL path "${s}": the escapes are not UTF-8`)
  }
}

/**
 * The path and query of a request target: origin-form (`/path?query`), or
 * absolute-form (`http://host/path`, RFC 9112 section 3.2), which a server
 * must accept. Anything else is a 400.
 */
function parseTarget(target: string): { path: string; query: URLSearchParams } {
  let rest = target
  if (!rest.startsWith('/')) {
    let url: URL
    try {
      url = new URL(rest)
    } catch {
      throw new ApiError(400, `malformed request URI "${target}"`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ApiError(400, `malformed request URI "${target}"`)
    rest = url.pathname + url.search
  }
  const q = rest.indexOf('?')
  const path = (q < 0 ? rest : rest.slice(0, q)).replace(/#.*/, '')
  decodeSegment(path)
  return { path, query: new URLSearchParams(q < 0 ? '' : rest.slice(q + 1).replace(/#.*/, '')) }
}

/** Docker's error body, `{"message": "..."}`. */
function errorBody(message: string): string {
  return JSON.stringify({ message }) + '\n'
}

/** What a request the HTTP parser refused gets, written straight to the socket: no response object exists for it. */
function rawErrorResponse(status: number, reason: string, message: string): string {
  const body = errorBody(message)
  return (
    `HTTP/1.1 ${status} ${reason}\r\nAPI-Version: ${API_VERSION}\r\nServer: swarmd\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  )
}

/** The parser's refusals by kind: headers too large, too slow, or anything else malformed. */
function clientErrorStatus(err: NodeJS.ErrnoException): [number, string, string] {
  if (err.code === 'HPE_HEADER_OVERFLOW') return [431, 'Request Header Fields Too Large', 'request header fields too large']
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'Request Timeout', 'request timeout']
  return [400, 'Bad Request', `malformed HTTP request: ${(err as { reason?: string }).reason ?? err.message}`]
}

/**
 * A small router for the Docker Engine API: `/v1.41/nodes/{id}` and
 * `/nodes/{id}` both match `/nodes/:id`; results are sent as JSON, errors as
 * Docker's error body with its status code. No request, however malformed,
 * escapes as an exception: the parser's refusals are 4xx answers, a
 * handler's unexpected error is a 500.
 */
export class ApiServer {
  private readonly routes: Route[] = []
  private server: Server | undefined
  private readonly log: Logger
  /** The responses each connection still owes, so a parse error never cuts into one being written. */
  private readonly pending = new WeakMap<Socket, Set<ServerResponse>>()

  constructor(opts: { logger?: Logger } = {}) {
    this.log = opts.logger ?? pino({ level: 'silent' })
  }

  route(method: string, path: string, handler: Handler): this {
    const names: string[] = []
    const pattern = new RegExp(
      '^' +
        path.replace(/:([a-zA-Z]+)/g, (_, n: string) => {
          names.push(n)
          return '([^/]+)'
        }) +
        '$',
    )
    this.routes.push({ method, path, pattern, names, handler })
    return this
  }

  /**
   * Where a write goes instead of this server's own handlers (a manager that
   * does not lead sends the swarm's writes to the one that does, as
   * swarmkit's raft proxy): a promise of the answer, or undefined to serve
   * the request here.
   */
  forwarder: ((req: ApiCall) => Promise<ApiAnswer> | undefined) | undefined

  /**
   * Serves a call that came without HTTP (forwarded by another manager) as
   * it would serve it over HTTP: the status and the JSON body, Docker's
   * error body on failure. Streams are not forwarded.
   */
  async invoke(call: ApiCall): Promise<ApiAnswer> {
    try {
      const path = call.path
      const match = this.routes.map(r => ({ r, m: r.method === call.method ? r.pattern.exec(path) : null })).find(x => x.m)
      if (!match) throw new ApiError(404, 'page not found')
      const params: Record<string, string> = {}
      match.r.names.forEach((n, i) => (params[n] = decodeSegment(match.m![i + 1]!)))
      const result = await match.r.handler({ method: call.method, path, params, query: new URLSearchParams(call.query), body: call.body })
      if (result instanceof StreamResponse) throw new ApiError(400, `${path} streams: it is served only by the manager asked`)
      return { status: 200, body: result ?? null }
    } catch (e) {
      const status = statusOf(e)
      const known = e instanceof SwarmdError && e.kind !== 'internal'
      if (!known) this.log.error({ err: e }, 'forwarded API call failed')
      return { status: known ? status : 500, body: { message: e instanceof Error ? e.message : String(e) } }
    }
  }

  /** Every mounted route, as declared (`/nodes/:id`). */
  get endpoints(): { method: string; path: string }[] {
    return this.routes.map(r => ({ method: r.method, path: r.path }))
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      res.setHeader('API-Version', API_VERSION)
      res.setHeader('Server', 'swarmd')
      // RFC 9112 3.2, as Go's server: Node's own check would answer without Docker's body.
      if (req.httpVersion === '1.1' && req.headers.host === undefined) throw new ApiError(400, 'missing required Host header')
      const expect = req.headers.expect
      if (expect !== undefined && expect.toLowerCase() !== '100-continue') throw new ApiError(417, `unsupported Expect header "${expect}"`)
      const target = parseTarget(req.url ?? '/')
      const path = target.path.replace(/^\/v\d+(\.\d+)?(?=\/)/, '')
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET')
      const match = this.routes.map(r => ({ r, m: r.method === method ? r.pattern.exec(path) : null })).find(x => x.m)
      if (!match) {
        if (this.routes.some(r => r.pattern.test(path))) throw new ApiError(405, `method ${req.method} not allowed for ${path}`)
        throw new ApiError(404, `page not found`)
      }
      const params: Record<string, string> = {}
      match.r.names.forEach((n, i) => (params[n] = decodeSegment(match.m![i + 1]!)))
      const body = await readJson(req)
      const forwarded = this.forwarder?.({ method, path, query: target.query.toString(), body })
      if (forwarded) {
        const r = await forwarded
        res.writeHead(r.status, { 'Content-Type': 'application/json' })
        res.end(r.body === undefined || r.body === null ? undefined : JSON.stringify(r.body) + '\n')
        return
      }
      const result = await match.r.handler({ method, path, params, query: target.query, body })
      if (result instanceof StreamResponse) {
        const ac = new AbortController()
        res.on('close', () => ac.abort())
        // As Go's server: a client that shut its side of the connection is gone (its request's context ends), and so is its stream.
        if (req.socket.readableEnded) ac.abort()
        else req.socket.once('end', () => ac.abort())
        res.writeHead(200, { 'Content-Type': result.contentType })
        res.flushHeaders()
        try {
          await result.write(res, ac.signal)
        } finally {
          res.end()
        }
        return
      }
      if (typeof result === 'string' && path === '/_ping') {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' })
        res.end(req.method === 'HEAD' ? undefined : result)
        return
      }
      // Serialized before the status goes out, so a value JSON cannot hold is still a 500.
      const json = result === undefined ? undefined : JSON.stringify(result) + '\n'
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(json)
    } catch (e) {
      this.fail(res, e)
    }
  }

  private fail(res: ServerResponse, e: unknown): void {
    // A stream that failed midway: it ends where it broke.
    if (res.headersSent) {
      res.end()
      return
    }
    const status = statusOf(e)
    // Only lib/api turns a kind into a status; an error of no known kind is a defect, and logged as one.
    const known = e instanceof SwarmdError && e.kind !== 'internal' && Number.isInteger(status) && status >= 400 && status <= 599
    if (!known) this.log.error({ err: e }, 'API request failed')
    res.writeHead(known ? status : 500, { 'Content-Type': 'application/json' })
    res.end(errorBody(e instanceof Error ? e.message : String(e)))
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const sock = req.socket
    let owed = this.pending.get(sock)
    if (!owed) this.pending.set(sock, (owed = new Set()))
    owed.add(res)
    res.once('close', () => owed.delete(res))
    this.dispatch(req, res).catch(e => {
      // Only a failure to write the error itself gets here: the connection is all that is left to end.
      this.log.error({ err: e }, 'API response failed')
      res.destroy()
    })
  }

  /**
   * A request Node's parser refused: Docker's error body when nothing is
   * being written on the connection, else the connection is cut (a second
   * status line inside a response would corrupt it).
   */
  private refuse(err: NodeJS.ErrnoException, sock: Socket): void {
    this.log.debug({ err }, 'malformed HTTP request')
    const owed = [...(this.pending.get(sock) ?? [])]
    if (err.code === 'ECONNRESET' || !sock.writable || owed.some(r => r.headersSent && !r.writableEnded)) {
      sock.destroy()
      return
    }
    // Bytes after a request that closes the connection: its answer (maybe delimited by the close) is the last.
    if (err.code === 'HPE_CLOSED_CONNECTION') {
      if (!owed.length) sock.end()
      return
    }
    const [status, reason, message] = clientErrorStatus(err)
    // The parser is done with this connection: what a handler still computes for it goes nowhere.
    sock.end(rawErrorResponse(status, reason, message), () => sock.destroy())
  }

  /** Listens on a unix socket path, replacing a stale socket file. */
  async listen(socketPath: string): Promise<void> {
    if (existsSync(socketPath)) rmSync(socketPath)
    this.server = createServer({ requireHostHeader: false }, (req, res) => this.serve(req, res))
    // A client that sends its request and shuts its side (nc -N, a script's `end(request)`) still gets
    // its answer, as from dockerd; Node's default ends the connection at once. Undocumented, long-standing.
    ;(this.server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
    this.server.on('clientError', (err: NodeJS.ErrnoException, sock: Socket) => this.refuse(err, sock))
    // Node hands these to listeners only (else it answers without Docker's body, or cuts the connection).
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => this.serve(req, res))
    this.server.on('connect', (req: IncomingMessage, sock: Duplex) => {
      sock.on('error', () => {})
      sock.end(rawErrorResponse(405, 'Method Not Allowed', `method ${req.method} not allowed for ${req.url}`), () => sock.destroy())
    })
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(socketPath, () => resolve())
    })
  }

  async close(): Promise<void> {
    const s = this.server
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>(resolve => s.close(() => resolve()))
  }
}

/**
 * The request body, at most MAX_BODY bytes. A body the client stops short of
 * its declared length is a 400 when its side of the connection ends (Node's
 * parser says nothing then for a request that asked for an upgrade).
 */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const settle = (e?: ApiError): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError)
      req.socket.off('end', onSocketEnd)
      if (e) {
        // The rest is read and dropped, so the answer can still go out on this connection.
        req.resume()
        reject(e)
      } else resolve(Buffer.concat(chunks))
    }
    const onData = (c: Buffer): void => {
      size += c.length
      if (size > MAX_BODY) settle(new ApiError(413, 'request body too large'))
      else chunks.push(c)
    }
    const onEnd = (): void => settle()
    const onError = (e: Error): void => settle(new ApiError(400, `the request body was cut short: ${e.message}`, { cause: e }))
    const onSocketEnd = (): void => {
      if (!req.complete) settle(new ApiError(400, 'the request body was cut short: the client closed the connection'))
    }
    req.on('data', onData).on('end', onEnd).on('error', onError)
    req.socket.on('end', onSocketEnd)
  })
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req)
  if (body.length === 0) return undefined
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (e) {
    throw new ApiError(400, `invalid JSON in the request body: ${(e as Error).message}`, { cause: e })
  }
}
