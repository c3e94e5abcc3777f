import { BRIDGE_PREFIX, bridgeName, macOf, prefixLength, VXLAN_PREFIX, vxlanName } from './names.js'

/**
 * A network's links on this node: a bridge holding this node's address on
 * the network (first, so it is the primary: what masquerade and local
 * sockets pick), the network's gateway (the same on every node: the tasks'
 * default route and resolver, answered locally and never across the
 * overlay) and each VIP as a /32 (so ARP for a VIP is answered here and
 * nothing floods); and, unless the network is encrypted, a VXLAN device
 * on it with the network's VNI, no learning and ARP proxy (its FDB and
 * neighbour entries come from the endpoint table, see fdb.ts).
 */
export interface OverlayLinks {
  vni: number
  subnet: string
  /** This node's address, "10.0.1.254/24"; the bridge's MAC derives from it. */
  nodeAddr: string
  gateway: string
  vips: string[]
  mtu: number
  /** Absent for an encrypted network: its traffic does not leave the node in the kernel. */
  vxlan?: { port: number; local: string }
}

/** A link as `ip -j -d addr show` prints it (the fields read here). */
export interface LinkState {
  ifname: string
  mtu: number
  address?: string
  flags?: string[]
  master?: string
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; learning?: boolean; proxy?: boolean } }
  addr_info?: { family: string; local: string; prefixlen: number }[]
}

/** The addresses the bridge must hold, in order: the node's, the gateway, the VIPs. */
export function bridgeAddresses(l: OverlayLinks): string[] {
  const bits = prefixLength(l.subnet)
  return [l.nodeAddr, `${l.gateway}/${bits}`, ...l.vips.map(v => `${v}/32`)]
}

function sameVxlan(s: LinkState, l: OverlayLinks): boolean {
  const d = s.linkinfo?.info_data
  return s.linkinfo?.info_kind === 'vxlan' && d?.id === l.vni && d.port === l.vxlan?.port && d.local === l.vxlan?.local && d.learning === false && d.proxy === true
}

/**
 * The `ip -batch` lines that turn the links swarmd has (`current`: every
 * link of the namespace) into `want`: missing bridges and VXLAN devices
 * made, wrong ones remade, addresses added and removed (all of them again
 * when the node's address is not the primary), and swarmd's bridges and
 * VXLAN devices that no network wants any more deleted. Task veths are
 * the task namespaces' business and are left alone.
 */
export function linkCommands(current: readonly LinkState[], want: readonly OverlayLinks[]): string[] {
  const byName = new Map(current.map(s => [s.ifname, s]))
  const out: string[] = []
  const wanted = new Set<string>()
  for (const l of want) {
    const br = bridgeName(l.vni)
    const mac = macOf(l.nodeAddr.split('/')[0]!)
    wanted.add(br)
    let b = byName.get(br)
    if (b && b.linkinfo?.info_kind !== 'bridge') {
      out.push(`link del ${br}`)
      b = undefined
    }
    if (!b) out.push(`link add ${br} address ${mac} mtu ${l.mtu} type bridge`)
    else {
      if (b.address !== mac) out.push(`link set ${br} address ${mac}`)
      if (b.mtu !== l.mtu) out.push(`link set ${br} mtu ${l.mtu}`)
    }
    const addrs = bridgeAddresses(l)
    const have = (b?.addr_info ?? []).filter(a => a.family === 'inet').map(a => `${a.local}/${a.prefixlen}`)
    if (have.length && have[0] !== addrs[0]) {
      out.push(`addr flush dev ${br}`)
      have.length = 0
    }
    for (const a of have) if (!addrs.includes(a)) out.push(`addr del ${a} dev ${br}`)
    for (const a of addrs) if (!have.includes(a)) out.push(`addr add ${a} dev ${br}`)
    if (!b || !b.flags?.includes('UP')) out.push(`link set ${br} up`)

    if (!l.vxlan) continue
    const vx = vxlanName(l.vni)
    wanted.add(vx)
    const v = byName.get(vx)
    const fresh = !v || !sameVxlan(v, l)
    if (v && fresh) out.push(`link del ${vx}`)
    if (fresh) out.push(`link add ${vx} type vxlan id ${l.vni} dstport ${l.vxlan.port} local ${l.vxlan.local} nolearning proxy`)
    if (fresh || v.master !== br || v.mtu !== l.mtu || !v.flags?.includes('UP')) out.push(`link set ${vx} master ${br} mtu ${l.mtu} up`)
  }
  for (const s of current) {
    const ours = s.ifname.startsWith(BRIDGE_PREFIX) || s.ifname.startsWith(VXLAN_PREFIX)
    if (ours && !wanted.has(s.ifname)) out.push(`link del ${s.ifname}`)
  }
  return out
}

/** What VXLAN adds to a frame: outer IPv4 (20), UDP (8), VXLAN (8) and Ethernet (14) headers. */
export const VXLAN_OVERHEAD = 50

/**
 * The MTU of the overlays: the MTU of the link holding the node's
 * underlay address, less VXLAN's 50 bytes (1450 on a 1500 underlay, as
 * Docker's; 1350 on a 1400 one), so that no frame is dropped silently for
 * its size. An address on no link (or the wildcard) counts as 1500.
 */
export function overlayMtu(links: readonly LinkState[], underlay: string): number {
  const link = links.find(l => l.addr_info?.some(a => a.local === underlay))
  return Math.min(link?.mtu ?? 1500, 1500) - VXLAN_OVERHEAD
}
