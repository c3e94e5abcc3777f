/** IPv4 addresses and prefixes as Go's netip reads and prints them: what Docker's network validation checks against. */

/** A dotted quad as Go's netip parses it (no leading zeros), or undefined. */
export function parseIPv4(s: string): number | undefined {
  const parts = s.split('.')
  if (parts.length !== 4) return undefined
  let n = 0
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined
    n = n * 256 + Number(p)
  }
  return n
}

export const formatIPv4 = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
export const maskOf = (bits: number): number => (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0)

export interface Prefix {
  addr: number
  bits: number
}

/** `a.b.c.d/n`, or `'v6'` for an IPv6 prefix (swarmd's overlays are IPv4 only), or undefined. */
export function parsePrefix(s: string): Prefix | 'v6' | undefined {
  const i = s.indexOf('/')
  if (i < 0) return undefined
  const bits = s.slice(i + 1)
  if (!/^(0|[1-9]\d?)$/.test(bits)) return undefined
  if (s.slice(0, i).includes(':')) return Number(bits) <= 128 ? 'v6' : undefined
  const addr = parseIPv4(s.slice(0, i))
  if (addr === undefined || Number(bits) > 32) return undefined
  return { addr, bits: Number(bits) }
}

export const masked = (p: Prefix): Prefix => ({ addr: (p.addr & maskOf(p.bits)) >>> 0, bits: p.bits })
export const fmtPrefix = (p: Prefix): string => `${formatIPv4(p.addr)}/${p.bits}`
export const contains = (p: Prefix, a: number): boolean => ((a & maskOf(p.bits)) >>> 0) === masked(p).addr
/** Two prefixes overlap when the shorter contains the other's network address. */
export const overlaps = (a: Prefix, b: Prefix): boolean => (a.bits <= b.bits ? contains(a, b.addr) : contains(b, a.addr))
