/**
 * What swarmd names in the kernel, so that a restarted daemon finds all of
 * it again (to adopt or remove) and nothing else: link names carry these
 * prefixes (at most 15 bytes, IFNAMSIZ), the nft table is swarmd's alone.
 * One swarmd runs the kernel data plane per network namespace (see
 * plane-lock.ts), so names need not say which daemon owns them.
 */
import { createHash } from 'node:crypto'

/** A network's bridge: its tasks' veths, its VXLAN device, this node's addresses on it and its VIPs. */
export const BRIDGE_PREFIX = 'swbr'
/** A network's VXLAN device (not for encrypted networks, whose traffic never leaves the node in the kernel). */
export const VXLAN_PREFIX = 'swvx'
/** The host end of a task's veth. */
export const VETH_PREFIX = 'swtp'
/** swarmd's nft table (family ip). */
export const NFT_TABLE = 'swarmd'

export const bridgeName = (vni: number): string => `${BRIDGE_PREFIX}${vni}`
export const vxlanName = (vni: number): string => `${VXLAN_PREFIX}${vni}`
/** The host end of a task's veth on a network: a hash, since IDs do not fit in 15 bytes. */
export const vethName = (taskId: string, networkId: string): string => VETH_PREFIX + createHash('sha256').update(`${taskId}/${networkId}`).digest('hex').slice(0, 11)

/** Whether a link is one swarmd made. */
export const isOurLink = (name: string): boolean => name.startsWith(BRIDGE_PREFIX) || name.startsWith(VXLAN_PREFIX) || name.startsWith(VETH_PREFIX)

/** The four bytes of a dotted IPv4 address (no prefix length), or undefined. */
export function ipv4Bytes(ip: string): number[] | undefined {
  const parts = ip.split('.')
  if (parts.length !== 4) return undefined
  const b = parts.map(p => (/^\d{1,3}$/.test(p) ? Number(p) : NaN))
  return b.every(x => x >= 0 && x <= 255) ? b : undefined
}

/**
 * The MAC of an overlay address, as Docker derives it: 02:42 and the four
 * bytes of the IPv4 address. Every node can compute a peer's MAC from its
 * address, so only addresses travel in the endpoint table.
 */
export function macOf(ip: string): string {
  const b = ipv4Bytes(ip)
  if (!b) throw new RangeError(`not an IPv4 address: ${ip}`)
  return ['02', '42', ...b.map(x => x.toString(16).padStart(2, '0'))].join(':')
}

/** Whether `ip` is inside `cidr` ("10.0.1.0/24"). */
export function inSubnet(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/') as [string, string | undefined]
  const a = ipv4Bytes(ip)
  const n = ipv4Bytes(net)
  const len = Number(bits)
  if (!a || !n || !Number.isInteger(len) || len < 0 || len > 32) return false
  const num = (x: number[]): number => ((x[0]! << 24) | (x[1]! << 16) | (x[2]! << 8) | x[3]!) >>> 0
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0
  return ((num(a) & mask) >>> 0) === ((num(n) & mask) >>> 0)
}

/** The prefix length of a CIDR. */
export const prefixLength = (cidr: string): number => Number(cidr.split('/')[1])
