import { macOf, VXLAN_PREFIX } from './names.js'

/**
 * A remote overlay address as a VXLAN device must know it: a permanent
 * neighbour entry (ip → mac, which the device's ARP proxy answers from, so
 * no ARP crosses the underlay) and a permanent FDB entry (mac → the node's
 * underlay address, its VTEP). No flood entry is ever made: a frame for
 * an address no node announced goes nowhere.
 */
export interface PeerEntry {
  device: string
  ip: string
  mac: string
  vtep: string
}

/** An FDB entry as `bridge -j fdb show` prints it. */
export interface FdbState {
  mac: string
  ifname: string
  dst?: string
  state?: string
}

/** A neighbour entry as `ip -j neigh show` prints it. */
export interface NeighState {
  dst: string
  dev: string
  lladdr?: string
  state?: string[]
}

/** One entry per (device, address): endpoints of one task on several ports share its address. */
export function peerEntries(device: string, peers: readonly { ip: string; vtep: string }[]): PeerEntry[] {
  const byIp = new Map<string, PeerEntry>()
  for (const p of [...peers].sort((a, b) => (a.ip + a.vtep < b.ip + b.vtep ? -1 : 1))) if (!byIp.has(p.ip)) byIp.set(p.ip, { device, ip: p.ip, mac: macOf(p.ip), vtep: p.vtep })
  return [...byIp.values()]
}

/**
 * The `bridge -batch` and `ip -batch` lines that make swarmd's VXLAN
 * devices hold exactly `want`: stale entries go (the FDB entry first, then
 * the neighbour, as libnetwork's peerDelete), new or moved ones are put
 * (the FDB entry first, so the neighbour never points at a MAC with no
 * way out). Entries of devices that are not swarmd's are not touched.
 */
export function fdbCommands(fdb: readonly FdbState[], neigh: readonly NeighState[], want: readonly PeerEntry[]): { bridge: string[]; ip: string[] } {
  const ours = (dev: string): boolean => dev.startsWith(VXLAN_PREFIX)
  const wantFdb = new Map(want.map(w => [`${w.device} ${w.mac}`, w]))
  const wantNeigh = new Map(want.map(w => [`${w.device} ${w.ip}`, w]))
  const bridge: string[] = []
  const ip: string[] = []
  const haveFdb = new Set<string>()
  for (const f of fdb) {
    if (!ours(f.ifname) || f.dst === undefined) continue
    const key = `${f.ifname} ${f.mac}`
    const w = wantFdb.get(key)
    if (w && w.vtep === f.dst && f.state === 'permanent') haveFdb.add(key)
    else bridge.push(`fdb del ${f.mac} dev ${f.ifname} dst ${f.dst} self`)
  }
  const haveNeigh = new Set<string>()
  for (const n of neigh) {
    if (!ours(n.dev)) continue
    const key = `${n.dev} ${n.dst}`
    const w = wantNeigh.get(key)
    if (w && w.mac === n.lladdr && n.state?.includes('PERMANENT')) haveNeigh.add(key)
    else if (!w) ip.push(`neigh del ${n.dst} dev ${n.dev}`)
  }
  for (const [key, w] of wantFdb) if (!haveFdb.has(key)) bridge.push(`fdb append ${w.mac} dev ${w.device} dst ${w.vtep} self permanent`)
  for (const [key, w] of wantNeigh) if (!haveNeigh.has(key)) ip.push(`neigh replace ${w.ip} lladdr ${w.mac} dev ${w.device} nud permanent`)
  return { bridge, ip }
}
