import { existsSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
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
  pattern: RegExp
  names: string[]
  handler: Handler
}

/** The largest request body we read: the swarm API's objects are small. */
const MAX_BODY = 4 * 1024 * 1024

/** The API version we speak (the docker CLI negotiates down to it). */
export const API_VERSION = '1.41'

/**
 * A small router for the Docker Engine API: `/v1.41/nodes/{id}` and
 * `/nodes/{id}` both match `/nodes/:id`; results are sent as JSON, errors as
 * Docker's error body with its status code.
 */
export class ApiServer {
  private readonly routes: Route[] = []
  private server: Server | undefined

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
    this.routes.push({ method, pattern, names, handler })
    return this
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('API-Version', API_VERSION)
    res.setHeader('Server', 'swarmd')
    const url = new URL(req.url ?? '/', 'http://localhost')
    const path = url.pathname.replace(/^\/v\d+(\.\d+)?(?=\/)/, '')
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET')
    try {
      const match = this.routes.map(r => ({ r, m: r.method === method ? r.pattern.exec(path) : null })).find(x => x.m)
      if (!match) {
        if (this.routes.some(r => r.pattern.test(path))) throw new ApiError(405, `method ${req.method} not allowed for ${path}`)
        throw new ApiError(404, `page not found`)
      }
      const params: Record<string, string> = {}
      match.r.names.forEach((n, i) => (params[n] = decodeURIComponent(match.m![i + 1]!)))
      const body = await readJson(req)
      const result = await match.r.handler({ method, path, params, query: url.searchParams, body })
      if (result instanceof StreamResponse) {
        const ac = new AbortController()
        res.on('close', () => ac.abort())
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
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(result === undefined ? undefined : JSON.stringify(result) + '\n')
    } catch (e) {
      if (res.headersSent) {
        res.end()
        return
      }
      const status = statusOf(e)
      res.writeHead(status, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ message: (e as Error).message }) + '\n')
    }
  }

  /** Listens on a unix socket path, replacing a stale socket file. */
  async listen(socketPath: string): Promise<void> {
    if (existsSync(socketPath)) rmSync(socketPath)
    this.server = createServer((req, res) => void this.dispatch(req, res))
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

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > MAX_BODY) throw new ApiError(413, 'request body too large')
    chunks.push(c as Buffer)
  }
  if (size === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (e) {
    throw new ApiError(400, `invalid JSON in the request body: ${(e as Error).message}`, { cause: e })
  }
}
