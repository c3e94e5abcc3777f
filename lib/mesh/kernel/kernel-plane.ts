import type { Logger } from 'pino'
import type { Endpoint, Protocol } from '../types.js'
import { backendAddrs, conntrackFlushes, runFlushes } from './conntrack.js'
import { fdbCommands, peerEntries, type FdbState, type NeighState, type PeerEntry } from './fdb.js'
import { linkCommands, type LinkState, type OverlayLinks } from './links.js'
import { bridgeName, inSubnet, vxlanName } from './names.js'
import { deleteRuleset, renderRuleset, type Backend, type Ruleset } from './ruleset.js'
import { readJson, runBatch, runOk, spawnRunner, type Runner } from './runner.js'

/** A network this node takes part in (it has an address there). */
export interface PlaneNetwork {
  id: string
  name: string
  vni: number
  /** "10.0.1.0/24" */
  subnet: string
  /** The network's gateway: the same on every node, the tasks' default route and resolver. */
  gateway: string
  /** This node's own address there, "10.0.1.254/24". */
  nodeAddr: string
  encrypted: boolean
}

export interface PlaneService {
  id: string
  name: string
  vips: { network: string; addr: string }[]
  ports: { protocol: Protocol; targetPort: number; publishedPort?: number; mode: 'ingress' | 'host' }[]
  dnsrr: boolean
}

/** What the manager says this node's data plane serves (from its routing), and its own tasks' host-mode ports. */
export interface PlaneSpec {
  networks: PlaneNetwork[]
  /** The ingress network's ID, when this node takes part in it. */
  ingress?: string
  services: PlaneService[]
  hostPorts: { protocol: Protocol; port: number; addr: string; targetPort: number }[]
}

/** What a node's DNS answers on one network (see KernelPlane.resolverView). */
export interface ResolverNetwork {
  id: string
  name: string
  /** Where the DNS server listens for this network's tasks: the gateway, port 53, on the host. */
  resolver: string
  services: { id: string; name: string; vip?: string; dnsrr: boolean; tasks: string[] }[]
}

export interface KernelPlaneOptions {
  /** This node's member name: whose endpoints are local. */
  self: string
  /** This node's underlay address: the local end of its VXLAN devices. */
  underlay: string
  /** VXLAN's UDP port (the swarm's data-path port). */
  vxlanPort: number
  mtu: number
  /** A network's endpoints in the cluster-wide table. */
  endpoints: (network: string) => Endpoint[]
  /** The other nodes' underlay addresses, by member name. */
  peers: () => Map<string, string>
  /** Published ports answer on this address only (default: every local address but loopback). */
  ingressAddr?: string
  /** The conntrack tool is here: flows pinned to removed backends are deleted (conntrack.ts). */
  conntrack: boolean
  run?: Runner
  /** Bursts of table and membership changes are programmed together, this long after the first (default 100 ms). */
  debounceMs?: number
  /** How often everything is programmed again, repairing drift (default 30 s). */
  resyncMs?: number
  log: Logger
}

export interface PlaneCounters {
  reconciles: number
  failures: number
  nftLoads: number
  lastReconcileMs: number
}

/**
 * The kernel data plane of one node, as a reconciler: the desired state
 * (the manager's routing, the cluster-wide endpoint table, the
 * membership's view of the other nodes) is turned into the links of each
 * network (links.ts), the FDB and neighbour entries of each VXLAN device
 * (fdb.ts) and swarmd's nft table (ruleset.ts), in that order, each in one
 * batch; then UDP flows pinned to removed backends leave conntrack
 * (conntrack.ts). Changes in a burst are coalesced; a reconcile never runs twice at
 * once; everything is programmed again periodically. A daemon that starts
 * adopts what an earlier one left: it compares with what the kernel holds
 * and changes only the difference (the nft table is replaced whole).
 */
export class KernelPlane {
  private spec: PlaneSpec | undefined
  private readonly run: Runner
  private running: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  private readonly resync: NodeJS.Timeout
  private lastRuleset: string | undefined
  /** What the kernel holds (the last ruleset loaded), and the node of each of its backends. */
  private loaded: { rules: Ruleset; nodes: Map<string, string> } | undefined
  private closed = false
  readonly counters: PlaneCounters = { reconciles: 0, failures: 0, nftLoads: 0, lastReconcileMs: 0 }
  private readonly listeners = new Set<() => void>()

  constructor(private readonly o: KernelPlaneOptions) {
    this.run = o.run ?? spawnRunner
    this.resync = setInterval(() => {
      this.lastRuleset = undefined
      this.changed()
    }, o.resyncMs ?? 30_000)
    this.resync.unref()
  }

  /** New desired state from the manager: programmed now; resolves once it is. */
  set(spec: PlaneSpec): Promise<void> {
    this.spec = spec
    return this.reconcileNow()
  }

  /** The endpoint table or the membership changed: programmed with the rest of the burst. */
  changed(): void {
    if (this.closed || !this.spec || this.timer) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.reconcileNow()
    }, this.o.debounceMs ?? 100)
  }

  /** Called after every reconcile (the DNS server refreshes its records). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /** Resolves once what is queued has been programmed. */
  settled(): Promise<void> {
    return this.running
  }

  private reconcileNow(): Promise<void> {
    const next = this.running.then(async () => {
      if (this.closed || !this.spec) return
      const t0 = performance.now()
      try {
        await this.reconcile(this.spec)
        this.counters.reconciles++
      } catch (e) {
        this.counters.failures++
        this.o.log.warn({ err: e }, 'kernel data plane: programming failed; trying again at the next change')
        this.lastRuleset = undefined
      }
      this.counters.lastReconcileMs = Math.round(performance.now() - t0)
      for (const fn of this.listeners) fn()
    })
    this.running = next
    return next
  }

  private async reconcile(spec: PlaneSpec): Promise<void> {
    const links = await readJson<LinkState>(this.run, 'ip', ['-j', '-d', 'addr', 'show'])
    await runBatch(this.run, 'ip', linkCommands(links, this.overlayLinks(spec)))
    const fdb = await readJson<FdbState>(this.run, 'bridge', ['-j', 'fdb', 'show'])
    const neigh = await readJson<NeighState>(this.run, 'ip', ['-j', 'neigh', 'show'])
    const cmds = fdbCommands(fdb, neigh, this.peerEntries(spec))
    await runBatch(this.run, 'bridge', cmds.bridge)
    await runBatch(this.run, 'ip', cmds.ip)
    const rules = this.ruleset(spec)
    const text = renderRuleset(rules)
    if (text !== this.lastRuleset) {
      await runOk(this.run, 'nft', ['-f', '-'], text)
      this.lastRuleset = text
      this.counters.nftLoads++
    }
    await this.forgetGone(spec, rules)
  }

  private overlayLinks(spec: PlaneSpec): OverlayLinks[] {
    return spec.networks.map(n => ({
      vni: n.vni,
      subnet: n.subnet,
      nodeAddr: n.nodeAddr,
      gateway: n.gateway,
      vips: [...new Set(spec.services.flatMap(s => s.vips.filter(v => v.network === n.id).map(v => v.addr)))].sort(),
      mtu: this.o.mtu,
      ...(n.encrypted ? {} : { vxlan: { port: this.o.vxlanPort, local: this.o.underlay } }),
    }))
  }

  /** Every address another node announced on a plain network, at that node's underlay address. */
  private peerEntries(spec: PlaneSpec): PeerEntry[] {
    const peers = this.o.peers()
    return spec.networks
      .filter(n => !n.encrypted)
      .flatMap(n => {
        const remote = this.o
          .endpoints(n.id)
          .filter(e => e.node !== this.o.self && inSubnet(e.host, n.subnet) && peers.has(e.node))
          .map(e => ({ ip: e.host, vtep: peers.get(e.node)! }))
        return peerEntries(vxlanName(n.vni), remote)
      })
  }

  /** The service's tasks on the network (their addresses), wherever they run; for a port, those with that target port. */
  private backends(n: PlaneNetwork, s: PlaneService, p?: PlaneService['ports'][number]): Backend[] {
    const out = new Map<string, Backend>()
    for (const e of this.o.endpoints(n.id)) {
      if (e.service !== s.id || !inSubnet(e.host, n.subnet)) continue
      if (!p) out.set(e.host, { addr: e.host })
      else if (e.protocol === p.protocol && e.targetPort === p.targetPort) out.set(`${e.host}:${e.port}`, { addr: e.host, port: e.port })
    }
    return [...out.values()]
  }

  private ruleset(spec: PlaneSpec): Ruleset {
    const nets = new Map(spec.networks.map(n => [n.id, n]))
    const r: Ruleset = {
      vxlanPort: this.o.vxlanPort,
      vteps: [...new Set(this.o.peers().values())].sort(),
      vips: [],
      published: [],
      hostPorts: spec.hostPorts.map(h => ({ protocol: h.protocol, port: h.port, backend: { addr: h.addr, port: h.targetPort } })),
      snat: spec.networks.map(n => ({ bridge: bridgeName(n.vni), addr: n.nodeAddr.split('/')[0]! })),
      overlays: spec.networks.map(n => n.subnet),
      ...(this.o.ingressAddr ? { ingressAddr: this.o.ingressAddr } : {}),
    }
    const ingress = spec.ingress ? nets.get(spec.ingress) : undefined
    for (const s of spec.services) {
      // Encrypted networks are served by the userspace mesh on the VIP itself, over the sealed tunnel.
      for (const v of s.vips) {
        const n = nets.get(v.network)
        if (n && !n.encrypted) r.vips.push({ addr: v.addr, service: { id: `${n.vni}-${s.id}`, comment: `${s.name} on ${n.name}`, backends: this.backends(n, s) } })
      }
      if (!ingress || ingress.encrypted) continue
      for (const p of s.ports) {
        if (p.mode !== 'ingress' || !p.publishedPort) continue
        r.published.push({ protocol: p.protocol, port: p.publishedPort, service: { id: `${s.id}-${p.protocol}-${p.targetPort}`, comment: `${s.name} ${p.targetPort}/${p.protocol}`, backends: this.backends(ingress, s, p) } })
      }
    }
    return r
  }

  /** Flows pinned to backends the new ruleset removed leave conntrack (conntrack.ts), when the tool is here. */
  private async forgetGone(spec: PlaneSpec, rules: Ruleset): Promise<void> {
    const nodes = new Map(spec.networks.flatMap(n => this.o.endpoints(n.id).map(e => [e.host, e.node] as const)))
    const before = this.loaded
    this.loaded = { rules, nodes }
    if (!before || !this.o.conntrack) return
    const live = new Set([this.o.self, ...this.o.peers().keys()])
    const now = backendAddrs(rules)
    const dead = new Set([...backendAddrs(before.rules)].filter(a => !now.has(a) && !live.has(before.nodes.get(a) ?? this.o.self)))
    await runFlushes(this.run, conntrackFlushes(before.rules, rules, dead), this.o.log)
  }

  /**
   * What the node's DNS server needs, per network this node takes part in:
   * where to listen (the gateway, on the host, UDP and TCP 53), and each
   * service of the network with its VIP there (none for dnsrr) and the
   * addresses of its running tasks there.
   */
  resolverView(): ResolverNetwork[] {
    const spec = this.spec
    if (!spec) return []
    return spec.networks.map(n => {
      const tasks = new Map<string, Set<string>>()
      for (const e of this.o.endpoints(n.id)) {
        if (!e.service || !inSubnet(e.host, n.subnet)) continue
        let set = tasks.get(e.service)
        if (!set) tasks.set(e.service, (set = new Set()))
        set.add(e.host)
      }
      const services = spec.services
        .filter(s => tasks.has(s.id) || s.vips.some(v => v.network === n.id))
        .map(s => {
          const vip = s.vips.find(v => v.network === n.id)?.addr
          return { id: s.id, name: s.name, ...(vip ? { vip } : {}), dnsrr: s.dnsrr, tasks: [...(tasks.get(s.id) ?? [])].sort() }
        })
      return { id: n.id, name: n.name, resolver: n.gateway, services }
    })
  }

  /**
   * Stops reconciling. With `purge` (the node left the swarm, or stopped
   * its tasks), swarmd's table and links go too; without it they stay, so
   * tasks kept running (--live-restore) stay reachable until a new daemon
   * adopts them.
   */
  async close(o: { purge: boolean }): Promise<void> {
    this.closed = true
    clearInterval(this.resync)
    if (this.timer) clearTimeout(this.timer)
    await this.running
    if (!o.purge) return
    try {
      await runOk(this.run, 'nft', ['-f', '-'], deleteRuleset())
      const links = await readJson<LinkState>(this.run, 'ip', ['-j', '-d', 'addr', 'show'])
      await runBatch(this.run, 'ip', linkCommands(links, []))
    } catch (e) {
      this.o.log.warn({ err: e }, 'kernel data plane: removing what it programmed failed')
    }
  }
}
