import { SwarmError } from './errors.js'

/** host[:port] → host and port, Docker's way: a bare host gets the default port. */
export function splitAddr(addr: string, port: number): { host: string; port: number } {
  const m = /^(.*?)(?::(\d+))?$/.exec(addr.trim())!
  const host = m[1]!
  if (!host) throw new SwarmError('E_INVALID_ADDRESS', `invalid address: "${addr}"`)
  return { host, port: m[2] ? Number(m[2]) : port }
}
