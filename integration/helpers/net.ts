/** Small network clients for the integration tests. */
import { request } from 'node:http'

/** One HTTP GET without keep-alive; the body, or `error:CODE` (a refused or timed-out request is an answer too). */
export function httpGet(host: string, port: number, path = '/', localAddress?: string): Promise<string> {
  return new Promise(resolve => {
    const req = request({ host, port, path, agent: false, timeout: 5_000, ...(localAddress ? { localAddress } : {}) }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', d => (body += d))
      res.on('end', () => resolve(body))
    })
    req.on('error', e => resolve(`error:${(e as NodeJS.ErrnoException).code}`))
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })))
    req.end()
  })
}
