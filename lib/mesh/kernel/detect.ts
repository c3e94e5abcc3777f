import { spawnRunner, type Runner } from './runner.js'

/** What the kernel data plane needs, and whether this host has it. */
export interface KernelSupport {
  /** Everything the kernel data plane needs is here. */
  usable: boolean
  /** What is missing, for the log and `docker info` (empty when usable). */
  missing: string[]
  /** IPsec ESP with AES-GCM (`ip xfrm state add` works): what an encrypted overlay in the kernel would need. */
  esp: boolean
  /** The conntrack tool (Debian `conntrack`), which deletes the flows of removed backends; without it they expire by their timeout. */
  conntrack: boolean
}

/** VXLAN, bridge and veth links that can be made (the throwaway namespace's, gone with it). */
const LINK_PROBE = ['link add swprobe0 type bridge', 'link add swprobe1 type veth peer name swprobe2', 'link add swprobe3 type vxlan id 4096 dstport 4789 nolearning proxy']
const LINK_NAMES = ['bridge', 'veth', 'vxlan']

/** The nftables features the ruleset uses: NAT hooks, numgen, verdict maps on concatenations, fib, conntrack, masquerade, reject. */
const NFT_PROBE = `table ip swprobe {
  map m { type ipv4_addr . inet_proto . inet_service : verdict; }
  chain p { type nat hook prerouting priority dstnat; policy accept; ip daddr . meta l4proto . th dport vmap @m; fib daddr type local numgen random mod 2 vmap { 0 : goto e, 1 : goto e }; }
  chain o { type nat hook postrouting priority srcnat; policy accept; meta mark & 0x4000 == 0 return; masquerade; }
  chain f { type filter hook forward priority -110; policy accept; ct state new meta l4proto tcp reject with tcp reset; }
  chain e { meta l4proto tcp dnat to 10.0.0.1:80; }
}
`

/** An ESP state with AES-GCM, as an encrypted overlay's would be. */
const ESP_PROBE = ['xfrm', 'state', 'add', 'src', '192.0.2.1', 'dst', '192.0.2.2', 'proto', 'esp', 'spi', '0x100', 'reqid', '1', 'mode', 'transport', 'aead', 'rfc4106(gcm(aes))', '0x' + '11'.repeat(20), '64']

/**
 * Probes the kernel by doing what the data plane does, in network
 * namespaces made for the probe (`unshare -n`), which vanish with it:
 * nothing is left behind, and nothing of the host's is touched. Needs
 * root, iproute2 (ip, bridge), nftables (nft) and unshare.
 */
export async function detectKernelSupport(o: { run?: Runner; uid?: number } = {}): Promise<KernelSupport> {
  const run = o.run ?? spawnRunner
  const uid = o.uid ?? process.getuid?.() ?? -1
  if (uid !== 0) return { usable: false, missing: ['root'], esp: false, conntrack: false }
  const missing: string[] = []
  const ns = await run('unshare', ['-n', 'true'])
  if (ns.code !== 0) return { usable: false, missing: [`network namespaces (unshare -n: ${firstLine(ns.stderr) || `exit ${ns.code}`})`], esp: false, conntrack: false }
  for (const tool of ['bridge', 'nft']) if ((await run(tool, ['-V'])).code === 127) missing.push(`the ${tool} command`)
  const links = await run('unshare', ['-n', 'ip', '-force', '-batch', '-'], LINK_PROBE.join('\n') + '\n')
  if (links.code === 127) missing.push('the ip command')
  else {
    // -force runs every line and names the ones that failed: "Command failed -:N".
    const failed = new Set([...links.stderr.matchAll(/Command failed -:(\d+)/g)].map(m => Number(m[1])))
    LINK_NAMES.forEach((name, i) => failed.has(i + 1) && missing.push(`${name} links`))
  }
  if (!missing.includes('the nft command')) {
    const nft = await run('unshare', ['-n', 'nft', '-f', '-'], NFT_PROBE)
    if (nft.code !== 0) missing.push(`nftables (${firstLine(nft.stderr)})`)
  }
  const esp = (await run('unshare', ['-n', 'ip', ...ESP_PROBE])).code === 0
  const conntrack = (await run('conntrack', ['--version'])).code === 0
  return { usable: missing.length === 0, missing, esp, conntrack }
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? ''
}
