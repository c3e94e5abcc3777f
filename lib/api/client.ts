import { request, type IncomingMessage } from 'node:http'
import { SwarmdError } from '../types/errors.js'
import { ApiError } from './api-error.js'

/**
 * A typed client for swarmd's local API (the Docker Engine API subset) over
 * its unix socket. Errors carry the daemon's message and status, as the
 * docker CLI shows them.
 */
export class ApiClient {
  constructor(readonly socketPath: string) {}

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method, path: `/v1.41${path}`, headers: { 'Content-Type': 'application/json' } }, res => {
        let data = ''
        res.setEncoding('utf8')
        res.on('data', d => (data += d))
        res.on('end', () => {
          const json = /json/.test(res.headers['content-type'] ?? '') && data ? (JSON.parse(data) as unknown) : data
          const status = res.statusCode ?? 0
          if (status >= 400) reject(new ApiError(status, (json as { message?: string }).message ?? `HTTP ${status}`))
          else resolve(json as T)
        })
      })
      req.on('error', e =>
        reject(new SwarmdError('E_CONNECT', `Cannot connect to the swarmd daemon at unix://${this.socketPath}. Is the daemon running?`, { cause: e })),
      )
      req.end(body === undefined ? undefined : JSON.stringify(body))
    })
  }

  /**
   * A GET whose body is read as it arrives (logs with --follow). Resolves
   * with the open response; an error status rejects with the daemon's message.
   */
  stream(path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method: 'GET', path: `/v1.41${path}`, signal }, res => {
        const status = res.statusCode ?? 0
        if (status < 400) return resolve(res)
        let data = ''
        res.setEncoding('utf8')
        res.on('data', d => (data += d))
        res.on('end', () => {
          let message = data.trim() || `HTTP ${status}`
          try {
            message = (JSON.parse(data) as { message?: string }).message ?? message
          } catch {
            // A plain-text error body is the message itself.
          }
          reject(new ApiError(status, message))
        })
      })
      req.on('error', e =>
        reject(new SwarmdError('E_CONNECT', `Cannot connect to the swarmd daemon at unix://${this.socketPath}. Is the daemon running?`, { cause: e })),
      )
      req.end()
    })
  }
}
