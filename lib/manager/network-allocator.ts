import { randomBytes } from 'node:crypto'
import { SwarmError } from '../types/errors.js'
import { OPT_ENCRYPTED, type NetworkKey, type NetworkRecord, type VipRecord } from '../types/network.js'
import { newId } from './ids.js'
import { contains, fmtPrefix, formatIPv4, masked, overlaps, parseIPv4, parsePrefix, type Prefix } from './ipv4.js'
import type { CreateRequest } from './network-spec.js'

/**
 * The manager half of the overlay driver: subnets, VNIs, VIPs and keys, as
 * pure functions over the networks that exist.
 *
 * swarmd runs unprivileged, so a VIP has two faces: the overlay-subnet
 * address Docker would show (Endpoint.VirtualIPs, "10.0.1.2/24", what tools
 * and DNS answers use) and a loopback twin the mesh binds on every node.
 * Linux routes all of 127.0.0.0/8 to lo, so any process may bind 127.a.b.c.
 * Each network owns the /24 127.a.b.0 derived from its VNI, and a VIP takes
 * the same host index in both: 10.0.1.2/24 ↔ 127.1.1.2.
 */

/** swarmkit's VNI range (ovmanager): 4096 up, clear of the 802.1Q VLAN IDs Windows refuses. */
export const VNI_FIRST = 4096
export const VNI_LAST = 2 ** 24 - 1
/** Docker's default address pool for swarm networks: 10.0.0.0/8 cut into /24s. */
const POOL = { base: 0x0a000000, bits: 8, size: 24 }
/** One loopback /24 per network in 127.1.0.0–127.255.255.0 (127.0.0.0/24 holds 127.0.0.1 and Docker's DNS at 127.0.0.11). */
const LOOPBACK_NETWORKS = 255 * 256
/** A VIP's host index must fit the loopback /24 too. */
const MAX_HOST_INDEX = 254
/** Swarm's IPsec key ring: three keys, rotated every 12 h. */
const RING = 3

const newKey = (tag: number): NetworkKey => ({ tag, key: randomBytes(32).toString('base64') })

/** The loopback /24 of a VNI: 127.(1 + i / 256).(i % 256).0 for i = vni − 4096. */
export function loopbackSubnet(vni: number): string {
  const i = vni - VNI_FIRST
  if (!Number.isInteger(i) || i < 0 || i >= LOOPBACK_NETWORKS) throw new SwarmError('E_INTERNAL', `VNI ${vni} has no loopback range: swarmd maps VNIs ${VNI_FIRST}-${VNI_FIRST + LOOPBACK_NETWORKS - 1} only`)
  return `127.${1 + (i >> 8)}.${i & 255}.0/24`
}

/** A VIP's loopback twin: the same host index in the network's loopback /24. */
export function loopbackAddr(vipAddr: string, subnet: string, loopback: string): string {
  const vip = parseIPv4(vipAddr.split('/')[0]!)
  const s = parsePrefix(subnet)
  const l = parsePrefix(loopback)
  if (vip === undefined || !s || s === 'v6' || !l || l === 'v6') throw new SwarmError('E_INTERNAL', `cannot map VIP ${vipAddr} of ${subnet} into ${loopback}`)
  return formatIPv4(l.addr + (vip - masked(s).addr))
}

/** A new network's subnet (given or the first free /24 of 10.0.0.0/8), gateway, VNI (first free from 4096) and keys. */
export function allocateNetwork(req: CreateRequest, all: NetworkRecord[]): NetworkRecord {
  const cfg = req.IPAM?.Config?.[0] ?? {}
  const taken = all.map(n => parsePrefix(n.Subnet) as Prefix)
  let subnet: Prefix
  if (cfg.Subnet) {
    subnet = masked(parsePrefix(cfg.Subnet) as Prefix)
    if (taken.some(t => overlaps(t, subnet))) throw new SwarmError('E_NETWORK_FORBIDDEN', 'invalid pool request: Pool overlaps with other one on this address space')
  } else {
    subnet = freeSubnet(taken)
  }
  const hosts = 2 ** (32 - subnet.bits)
  const gateway = cfg.Gateway || formatIPv4(subnet.addr + (hosts > 2 ? 1 : 0))
  const vni = freeVni(all)
  const options = { ...(req.Options ?? {}) }
  return {
    ID: newId(),
    Name: req.Name,
    Created: new Date().toISOString(),
    Labels: req.Labels ?? {},
    Options: options,
    Internal: !!req.Internal,
    Attachable: !!req.Attachable,
    Ingress: !!req.Ingress,
    IPAMOptions: req.IPAM?.Options && Object.keys(req.IPAM.Options).length ? req.IPAM.Options : null,
    Subnet: fmtPrefix(subnet),
    Gateway: gateway,
    ...(cfg.IPRange ? { IPRange: cfg.IPRange } : {}),
    ...(cfg.AuxiliaryAddresses && Object.keys(cfg.AuxiliaryAddresses).length ? { AuxAddresses: cfg.AuxiliaryAddresses } : {}),
    Vni: vni,
    Loopback: loopbackSubnet(vni),
    ...(OPT_ENCRYPTED in options ? { Keys: [1, 2, 3].map(newKey) } : {}),
  }
}

function freeSubnet(taken: Prefix[]): Prefix {
  const count = 2 ** (POOL.size - POOL.bits)
  for (let i = 0; i < count; i++) {
    const p = { addr: (POOL.base + i * 2 ** (32 - POOL.size)) >>> 0, bits: POOL.size }
    if (!taken.some(t => overlaps(t, p))) return p
  }
  throw new SwarmError('E_POOL_EXHAUSTED', 'all predefined address pools have been fully subnetted')
}

function freeVni(all: NetworkRecord[]): number {
  const used = new Set(all.map(n => n.Vni))
  for (let v = VNI_FIRST; v < VNI_FIRST + LOOPBACK_NETWORKS; v++) if (!used.has(v)) return v
  throw new SwarmError('E_VNI_EXHAUSTED', `could not obtain vxlan id: all ${LOOPBACK_NETWORKS} VNIs swarmd maps to loopback ranges are in use`)
}

/** The lowest free host address of the network for a service's VIP; `used` are the network's VIPs and those being picked. */
export function pickVip(serviceId: string, n: NetworkRecord, used: Set<string>): VipRecord {
  const subnet = parsePrefix(n.Subnet) as Prefix
  const range = n.IPRange ? (parsePrefix(n.IPRange) as Prefix) : undefined
  const reserved = new Set([n.Gateway, ...Object.values(n.AuxAddresses ?? {})])
  const last = Math.min(2 ** (32 - subnet.bits) - 2, MAX_HOST_INDEX)
  for (let i = 1; i <= last; i++) {
    const a = subnet.addr + i
    const addr = `${formatIPv4(a)}/${subnet.bits}`
    if (reserved.has(formatIPv4(a)) || used.has(addr) || (range && !contains(range, a))) continue
    return { ServiceID: serviceId, NetworkID: n.ID, Addr: addr, Loopback: loopbackAddr(addr, n.Subnet, n.Loopback) }
  }
  throw new SwarmError('E_VIP_EXHAUSTED', 'could not find an available IP while allocating VIP')
}

/** A node's attachment to a network is stored under this ID. */
export const nodeAttachmentId = (nodeId: string, networkId: string): string => `${nodeId}/${networkId}`

/**
 * A free address of the network for a task or a node, from the top of the
 * subnet down ("10.0.1.254/24"). VIPs come from the bottom up (pickVip), so
 * an allocation here and a VIP picked by an API call at the same moment do
 * not take the same address. `used` holds addresses without a prefix length.
 */
export function pickAddress(n: NetworkRecord, used: ReadonlySet<string>): string {
  const subnet = parsePrefix(n.Subnet) as Prefix
  const range = n.IPRange ? (parsePrefix(n.IPRange) as Prefix) : undefined
  const reserved = new Set([n.Gateway, ...Object.values(n.AuxAddresses ?? {})])
  for (let i = 2 ** (32 - subnet.bits) - 2; i >= 1; i--) {
    const a = formatIPv4(subnet.addr + i)
    if (reserved.has(a) || used.has(a) || (range && !contains(range, subnet.addr + i))) continue
    return `${a}/${subnet.bits}`
  }
  throw new SwarmError('E_ADDRESS_EXHAUSTED', `could not find an available IP on network ${n.Name}`)
}

/**
 * Swarm's rotation of an encrypted network's ring: drop the oldest key, add
 * a newer one. The new key only decrypts until the next rotation makes it
 * primary, so every node has it before anyone sends with it.
 */
export function nextRing(ring: NetworkKey[]): NetworkKey[] {
  return [...ring, newKey(Math.max(...ring.map(k => k.tag)) + 1)].slice(-RING)
}
