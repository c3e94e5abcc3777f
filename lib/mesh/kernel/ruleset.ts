import { BRIDGE_PREFIX, NFT_TABLE } from './names.js'

/**
 * swarmd's nft table, in the manner of kube-proxy's nftables mode: verdict
 * maps from VIP and from published port to a chain per service that picks
 * a backend (numgen), a chain per backend that DNATs to it, a mark on what
 * must be source-translated, conntrack for the rest. A VIP, as Docker's,
 * takes every TCP and UDP port to the same port of a task; a published
 * port goes to the service's target port. The whole table is one file that
 * deletes and remakes it: `nft -f` loads it as one transaction, so a
 * reader sees the old ruleset or the new one, never half of either, and
 * connections already translated keep their conntrack entries.
 */

export type Protocol = 'tcp' | 'udp'

/** A task: its overlay address, and for a published port the port it listens on. */
export interface Backend {
  addr: string
  port?: number
}

/** What one map element balances over: a chain picking one of its backends. */
export interface Balanced {
  /** Unique among the ruleset's chains of its kind: becomes the chain's name. */
  id: string
  /** For people reading `nft list table`: the service, and the port. */
  comment: string
  backends: Backend[]
}

export interface Ruleset {
  /** VXLAN's UDP port: only `vteps` may send to it. */
  vxlanPort: number
  /** The underlay addresses of the swarm's other nodes. */
  vteps: string[]
  vips: { addr: string; service: Balanced }[]
  /** Published ports (ingress mode), on every local address but loopback, or on `ingressAddr` only. */
  published: { protocol: Protocol; port: number; service: Balanced }[]
  ingressAddr?: string
  /** Host-mode published ports of this node's tasks: straight to the task, the client's address kept. */
  hostPorts: { protocol: Protocol; port: number; backend: Required<Backend> }[]
  /** Per network bridge, this node's address there: what VIP and published-port traffic leaves with. */
  snat: { bridge: string; addr: string }[]
  /** The overlays' subnets: tasks reach the outside world masqueraded behind the node. */
  overlays: string[]
}

/** Packets that must leave with this node's address on the network they go out on. */
const MASQ_MARK = '0x4000'

const epChain = (b: Backend, protocol?: Protocol): string => (b.port === undefined ? `ep-${b.addr}` : `ep-${protocol}-${b.addr}-${b.port}`)
const q = (s: string): string => JSON.stringify(s.replace(/["\\]/g, ''))
const elements = (items: string[]): string => (items.length ? ` elements = { ${items.join(', ')} }` : '')

function balancer(name: string, s: Balanced, protocol?: Protocol): string[] {
  const head = [`  chain ${name} {`, `    jump mark-for-masq comment ${q(s.comment)}`]
  if (s.backends.length === 1) return [...head, `    goto ${epChain(s.backends[0]!, protocol)}`, '  }']
  const picks = s.backends.map((b, i) => `${i} : goto ${epChain(b, protocol)}`).join(', ')
  return [...head, `    numgen random mod ${s.backends.length} vmap { ${picks} }`, '  }']
}

/** The ruleset file: `table ... {}` first so that `delete table` never fails on a first load. */
export function renderRuleset(r: Ruleset): string {
  const eps = new Map<string, string>()
  const ep = (b: Backend, protocol?: Protocol): void =>
    void eps.set(epChain(b, protocol), b.port === undefined ? `dnat to ${b.addr}` : `meta l4proto ${protocol} dnat to ${b.addr}:${b.port}`)
  const chains: string[] = []
  const vipElems: string[] = []
  const noVip: string[] = []
  for (const v of r.vips) {
    if (!v.service.backends.length) {
      noVip.push(`${v.addr} : goto reject-fast`)
      continue
    }
    vipElems.push(`${v.addr} : goto vip-${v.service.id}`)
    chains.push(...balancer(`vip-${v.service.id}`, v.service))
    for (const b of v.service.backends) ep(b)
  }
  const pubElems: string[] = []
  const noPub: string[] = []
  for (const p of r.published) {
    const key = `${p.protocol} . ${p.port}`
    if (!p.service.backends.length) {
      noPub.push(`${key} : goto reject-fast`)
      continue
    }
    pubElems.push(`${key} : goto pub-${p.protocol}-${p.port}`)
    chains.push(...balancer(`pub-${p.protocol}-${p.port}`, p.service, p.protocol))
    for (const b of p.service.backends) ep(b, p.protocol)
  }
  for (const h of r.hostPorts) ep(h.backend, h.protocol)
  const hostElems = r.hostPorts.map(h => `${h.protocol} . ${h.port} : goto ${epChain(h.backend, h.protocol)}`)
  const local = r.ingressAddr ? `ip daddr ${r.ingressAddr}` : 'fib daddr type local ip daddr != 127.0.0.0/8'
  const hostLocal = 'fib daddr type local ip daddr != 127.0.0.0/8'

  const lines = [
    `table ip ${NFT_TABLE} {}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    `  set vteps { type ipv4_addr;${elements(r.vteps)} }`,
    `  set overlays { type ipv4_addr; flags interval;${elements(r.overlays)} }`,
    `  map vips { type ipv4_addr : verdict;${elements(vipElems)} }`,
    `  map pubports { type inet_proto . inet_service : verdict;${elements(pubElems)} }`,
    `  map hostports { type inet_proto . inet_service : verdict;${elements(hostElems)} }`,
    `  map novips { type ipv4_addr : verdict;${elements(noVip)} }`,
    `  map nopubports { type inet_proto . inet_service : verdict;${elements(noPub)} }`,
    '  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }',
    // nft 1.0.6 takes no `priority dstnat` on the output hook.
    '  chain nat-output { type nat hook output priority -100; policy accept; jump services; }',
    '  chain nat-postrouting { type nat hook postrouting priority srcnat; policy accept; jump masquerading; }',
    '  chain filter-input {',
    '    type filter hook input priority -110; policy accept;',
    // Only the swarm's nodes put frames onto the overlays.
    `    udp dport ${r.vxlanPort} ip saddr != @vteps drop`,
    '    ct state new jump no-endpoints',
    '  }',
    '  chain filter-forward {',
    '    type filter hook forward priority -110; policy accept;',
    '    ct state new jump no-endpoints',
    // One network's tasks do not reach another's: overlays are isolated, as Docker's are.
    `    iifname "${BRIDGE_PREFIX}*" oifname "${BRIDGE_PREFIX}*" jump isolation`,
    '  }',
    '  chain filter-output { type filter hook output priority -110; policy accept; ct state new jump no-endpoints; }',
    '  chain services {',
    '    meta l4proto { tcp, udp } ip daddr vmap @vips',
    `    ${local} meta l4proto . th dport vmap @pubports`,
    `    ${hostLocal} meta l4proto . th dport vmap @hostports`,
    '  }',
    '  chain no-endpoints {',
    '    meta l4proto { tcp, udp } ip daddr vmap @novips',
    `    ${local} meta l4proto . th dport vmap @nopubports`,
    '  }',
    '  chain reject-fast { meta l4proto tcp reject with tcp reset; reject; }',
    `  chain mark-for-masq { meta mark set meta mark | ${MASQ_MARK}; }`,
    '  chain masquerading {',
    `    meta mark & ${MASQ_MARK} == 0 goto outbound`,
    `    meta mark set meta mark ^ ${MASQ_MARK}`,
    ...r.snat.map(s => `    oifname ${q(s.bridge)} snat ip to ${s.addr}`),
    // Not fully-random: with one source address for every client, random ports land on backends' TIME_WAIT sockets (PAWS drops).
    '    masquerade',
    '  }',
    `  chain outbound { ip saddr @overlays oifname != "${BRIDGE_PREFIX}*" masquerade; }`,
    '  chain isolation {',
    ...r.snat.map(s => `    iifname ${q(s.bridge)} oifname != ${q(s.bridge)} drop`),
    '  }',
    ...chains,
    ...[...eps].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, rule]) => `  chain ${name} { ${rule}; }`),
    '}',
  ]
  return lines.join('\n') + '\n'
}

/** The removal of swarmd's table (what a node leaving its swarm loads). */
export const deleteRuleset = (): string => `table ip ${NFT_TABLE} {}\ndelete table ip ${NFT_TABLE}\n`
