import { isIPv6 } from 'node:net'

export interface PeerAddress {
  host: string
  port: number
}

/** `host:port`, IPv6 hosts in brackets. */
export const peerKey = (p: PeerAddress): string => (isIPv6(p.host) ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)

export function parsePeerKey(s: string): PeerAddress | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s)
  if (!m) return undefined
  const port = Number(m[3])
  if (port < 1 || port > 65535) return undefined
  return { host: (m[1] ?? m[2])!, port }
}
