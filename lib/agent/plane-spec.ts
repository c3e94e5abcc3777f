import type { PlaneNetwork, PlaneSpec } from '../mesh/kernel/kernel-plane.js'
import type { Protocol } from '../mesh/types.js'
import { isEncrypted, type Routing } from '../types/session.js'

/**
 * What this node's kernel data plane serves, from the manager's routing:
 * the networks it has an address on (its own, the dispatcher says which),
 * every service's VIPs and TCP/UDP ports, and the host-mode ports of the
 * tasks it runs.
 */
export function planeSpec(r: Routing, hostPorts: PlaneSpec['hostPorts']): PlaneSpec {
  const networks: PlaneNetwork[] = []
  for (const n of r.networks) {
    const nodeAddr = r.nodeAddrs?.[n.id]
    if (!nodeAddr || !n.subnet || !n.gateway) continue
    networks.push({ id: n.id, name: n.name ?? n.id, vni: n.vni, subnet: n.subnet, gateway: n.gateway, nodeAddr, encrypted: isEncrypted(n) })
  }
  const ingress = r.networks.find(n => n.ingress && networks.some(x => x.id === n.id))
  const services = r.services.map(s => ({
    id: s.id,
    name: s.name,
    vips: s.vips.flatMap(v => (v.addr ? [{ network: v.network, addr: v.addr }] : [])),
    ports: s.ports.flatMap(p => {
      const protocol = p.Protocol ?? 'tcp'
      if (protocol !== 'tcp' && protocol !== 'udp') return []
      return [{ protocol: protocol as Protocol, targetPort: p.TargetPort, ...(p.PublishedPort ? { publishedPort: p.PublishedPort } : {}), mode: p.PublishMode ?? 'ingress' }]
    }),
    dnsrr: s.mode === 'dnsrr',
  }))
  return { networks, ...(ingress ? { ingress: ingress.id } : {}), services, hostPorts }
}
