import type { Logger } from 'pino'
import type { Membership } from '../gossip/membership.js'
import { isEncrypted, type Routing, type RoutingNetwork } from '../types/session.js'
import type { PortConfig } from '../types/service.js'
import { OPT_VXLANID_LIST } from '../types/network.js'
import type { NetworkAttachment, PortStatus } from '../types/task.js'
import type { BalancingStrategy } from '../mesh/balancer.js'
import { KernelPlane, type PlaneSpec, type ResolverNetwork } from '../mesh/kernel/kernel-plane.js'
import { bridgeName } from '../mesh/kernel/names.js'
import { Mesh, MeshError, type PublishTarget } from '../mesh/mesh.js'
import { SealKeyring } from '../mesh/seal.js'
import type { TunnelAuth } from '../mesh/tunnel-auth.js'
import type { Endpoint, Protocol } from '../mesh/types.js'
import { chooseDataPlane, type DataPlaneChoice, type DataPlaneStatus, type KernelChoice } from './data-plane.js'
import { listening } from './listening.js'
import { planeSpec } from './plane-spec.js'
import { TaskNetns, type TaskNetwork, type TaskNetworking } from './task-netns.js'

/** Key IDs are one byte on the wire; tags grow by one per rotation, so three consecutive tags never collide. */
const keyId = (tag: number): number => ((tag - 1) % 255) + 1

/** A task's endpoints as this node announced them, to withdraw them later. */
interface Announced {
  endpoints: Omit<Endpoint, 'node'>[]
  /** Its host-mode ports, forwarded by the kernel data plane to its address. */
  hostPorts: PlaneSpec['hostPorts']
  /** Its endpoints are in the table (in the kernel data plane, once it listens). */
  ready: boolean
}

/** How long the kernel data plane waits for a task to listen before it joins the rotation anyway. */
const READY_WAIT_MS = 10_000

/** The task an endpoint of this node's own address on a network names (it has no service). */
const nodeTask = (nodeId: string): string => `node.${nodeId}`

/**
 * A node's data plane, kept in step with what the manager says: the
 * networks (keys rotated in place), published ports, each service's VIPs,
 * and an endpoint for each task of this node once it runs, withdrawn (with
 * the drain delay) before it stops.
 *
 * Two data planes (chooseDataPlane decides at start): the userspace mesh
 * listens on every published port and on each VIP's loopback twin. The
 * kernel's gives each task a namespace with an address on each of its
 * networks (TaskNetns), and programs bridges, VXLAN and nftables
 * (KernelPlane) from the routing and the endpoint table, which the mesh
 * still spreads; the mesh itself then serves only what the kernel cannot:
 * encrypted networks (on their VIPs, over the sealed tunnel, since this
 * kernel has no IPsec) and published ports on 127.0.0.1.
 */
export class NodeMesh {
  private mesh: Mesh | undefined
  private readonly keyrings = new Map<string, SealKeyring>()
  /** The networks the mesh carries: every plain one, and the encrypted ones this node has keys for. */
  private carried = new Set<string>()
  private readonly listeners = new Map<string, string>()
  private readonly tasks = new Map<string, Announced>()
  private syncing: Promise<void> = Promise.resolve()
  /** The swarm's nodes: the only peers the tunnel admits. */
  private nodes: Set<string> | undefined
  /** Published ports this node could not listen on, with why: shown on the service's tasks here. */
  readonly conflicts = new Map<string, string>()
  private choice: KernelChoice | undefined
  private status: DataPlaneStatus = { kind: 'userspace', reason: 'not started' }
  private netns: TaskNetns | undefined
  private plane: KernelPlane | undefined
  private routing: Routing | undefined
  /** This node's own endpoints on each network, by network ID. */
  private readonly nodeEndpoints = new Map<string, Omit<Endpoint, 'node'>>()
  private unhook: (() => void) | undefined

  constructor(
    private readonly o: {
      membership: () => Membership | undefined
      /** The data-plane address: the node's advertise address. */
      host: string
      /** Where published ports listen (every address by default). */
      ingressHost: string
      idleTimeoutMs?: number
      strategy?: BalancingStrategy
      /** Forwarder processes beside the daemon's (Mesh `workers`; default none). */
      workers?: number
      /** How the tunnel proves this node's ID and checks its peers' (certificateAuth in mesh-auth.ts); without it, names are taken at their word. */
      auth?: TunnelAuth
      /** Which data plane to run (default userspace); `start()` decides. */
      dataPlane?: DataPlaneChoice
      /** Names the node's task namespaces. */
      nodeId?: string
      /** Where the kernel data plane's claim on the namespace is kept (default /run/swarmd). */
      lockDir?: string
      /** Called after each programming of the kernel data plane (the node's DNS listens on the gateways once they exist). */
      onProgrammed?: () => void
      log: Logger
    },
  ) {}

  /** Decides the data plane; before the agent recovers its tasks (their namespaces are the data plane's). */
  async start(): Promise<DataPlaneStatus> {
    const c = await chooseDataPlane({ want: this.o.dataPlane ?? 'userspace', host: this.o.host, log: this.o.log, ...(this.o.lockDir ? { lockDir: this.o.lockDir } : {}) })
    this.status = c.status
    if ('lock' in c) {
      this.choice = c
      this.netns = new TaskNetns({ nodeId: this.o.nodeId ?? 'node', ready: () => this.syncing, log: this.o.log })
    }
    return this.status
  }

  /** Which data plane runs, as `docker info` shows it. */
  get dataPlane(): DataPlaneStatus {
    return this.status
  }

  /** What gives tasks namespaces of their own: only in the kernel data plane. */
  get taskNetworking(): TaskNetworking | undefined {
    return this.netns
  }

  /** A task's place on each of its networks, for its namespace (undefined in the userspace mesh, or for a task on none). */
  taskNetworks(attachments: readonly NetworkAttachment[] | undefined): TaskNetwork[] | undefined {
    if (!this.choice || !attachments?.length) return undefined
    const vnis = new Map(this.routing?.networks.map(n => [n.id, n.vni]))
    const ingress = this.routing?.networks.find(n => n.ingress)?.id
    return attachments.map(a => ({
      network: a.Network.ID,
      bridge: bridgeName(vnis.get(a.Network.ID) ?? Number(a.Network.DriverState.Options[OPT_VXLANID_LIST])),
      address: a.Addresses[0] ?? '',
      gateway: a.Network.IPAMOptions.Configs[0]?.Gateway ?? '',
      mtu: this.choice!.mtu,
      ...(a.Network.ID === ingress ? { ingress: true } : {}),
    }))
  }

  /** How a task reaches a service's VIP: the VIP itself in the kernel data plane, its loopback twin in the userspace mesh. */
  vipAddress(v: Routing['services'][number]['vips'][number]): string {
    return this.choice && v.addr ? v.addr : v.loopback
  }

  /** What the node's DNS answers (the kernel data plane only; see KernelPlane.resolverView). */
  resolverView(): ResolverNetwork[] {
    return this.plane?.resolverView() ?? []
  }

  /** The kernel data plane, once the first routing made it (for its counters and DNS's change events). */
  get kernelPlane(): KernelPlane | undefined {
    return this.plane
  }

  /**
   * The mesh, created on first use (the first routing the manager sends).
   * Tasks that were found running before it existed (adopted after a
   * restart) are announced as soon as it does.
   */
  private async ensure(port: number): Promise<Mesh | undefined> {
    if (this.mesh) return this.mesh
    const membership = this.o.membership()
    if (!membership) return undefined
    // The tunnel's datagrams one port up: the kernel's VXLAN socket holds the data-path port's UDP (on every node alike, so they agree).
    const mesh = await Mesh.create({
      membership,
      host: this.o.host,
      port,
      udpPort: port + 1,
      ...(this.o.idleTimeoutMs ? { idleTimeoutMs: this.o.idleTimeoutMs } : {}),
      ...(this.o.strategy ? { strategy: this.o.strategy } : {}),
      ...(this.o.workers ? { workers: this.o.workers } : {}),
      ...(this.o.auth ? { auth: this.o.auth } : {}),
      logger: this.o.log,
    })
    this.mesh = mesh
    for (const a of this.tasks.values()) if (a.ready) for (const e of a.endpoints) mesh.register(e)
    if (this.choice) {
      const self = membership.name
      const plane = new KernelPlane({
        self,
        underlay: this.o.host,
        vxlanPort: port,
        mtu: this.choice.mtu,
        conntrack: this.choice.conntrack,
        endpoints: net => mesh.table.endpoints(net),
        peers: () => new Map(membership.members().filter(m => m.name !== self && (m.state === 'alive' || m.state === 'suspect')).map(m => [m.name, m.addr])),
        ...(this.o.ingressHost !== '0.0.0.0' ? { ingressAddr: this.o.ingressHost } : {}),
        log: this.o.log,
      })
      this.plane = plane
      const programmed = this.o.onProgrammed
      const offProgrammed = programmed ? plane.onChange(programmed) : undefined
      // A dead node's endpoints leave the table in the same membership event: one reconcile takes them out.
      const unwatch = mesh.watch(() => plane.changed())
      const onMember = (): void => plane.changed()
      membership.on('event', onMember)
      this.unhook = () => {
        offProgrammed?.()
        unwatch()
        membership.off('event', onMember)
      }
    }
    return mesh
  }

  get instance(): Mesh | undefined {
    return this.mesh
  }

  /** Whether the swarm has this node, as the last routing said (before any routing: yes). */
  knows(nodeId: string): boolean {
    return !this.nodes || this.nodes.has(nodeId)
  }

  sync(r: Routing): Promise<void> {
    if (r.nodes) this.nodes = new Set(r.nodes)
    this.syncing = this.syncing.then(() => this.apply(r)).catch(e => this.o.log.warn({ err: e }, 'mesh: sync failed'))
    return this.syncing
  }

  private async apply(r: Routing): Promise<void> {
    this.routing = r
    const mesh = await this.ensure(r.dataPathPort)
    if (!mesh) return
    const carried = new Set<string>()
    for (const n of r.networks) {
      const seal = this.keyring(n)
      // Fail closed: an encrypted network this node has no keys for is not carried, so nothing here sends its traffic or serves its VIPs, and the tunnel drops its frames.
      if (isEncrypted(n) && !seal) continue
      mesh.addNetwork({ id: n.id, vni: n.vni, ...(seal ? { seal } : {}) })
      carried.add(n.id)
    }
    for (const id of this.carried) if (!carried.has(id)) mesh.removeNetwork(id)
    this.carried = carried
    if (this.plane) {
      await this.plane.set(this.spec(r))
      this.announceNode(mesh, r)
    }
    const ingress = r.networks.find(n => n.ingress)
    const nets = new Map(r.networks.map(n => [n.id, n]))
    // In the kernel data plane the mesh serves published ports on loopback (unless ingress is encrypted), and only encrypted networks' VIPs, on the VIPs themselves.
    const publishHost = this.plane && ingress && !isEncrypted(ingress) ? '127.0.0.1' : this.o.ingressHost
    const want = new Map<string, { host: string; port: number; target: PublishTarget; vip: boolean; service: string }>()
    for (const s of r.services) {
      for (const p of s.ports) {
        const protocol = (p.Protocol ?? 'tcp') as Protocol
        if (protocol === ('sctp' as Protocol)) continue
        if (ingress && carried.has(ingress.id) && (p.PublishMode ?? 'ingress') === 'ingress' && p.PublishedPort) {
          const proxy = proxyFor(s.labels, p)
          want.set(`${publishHost}:${p.PublishedPort}/${protocol}`, {
            host: publishHost,
            port: p.PublishedPort,
            target: { network: ingress.id, service: s.id, targetPort: p.TargetPort, protocol, ...(proxy ? { proxyProtocol: proxy } : {}) },
            vip: false,
            service: s.id,
          })
        }
        for (const v of s.vips) {
          const net = nets.get(v.network)
          if (!net || !carried.has(net.id)) continue
          if (this.plane && !(isEncrypted(net) && v.addr && r.nodeAddrs?.[v.network])) continue
          const host = this.vipAddress(v)
          want.set(`${host}:${p.TargetPort}/${protocol}`, { host, port: p.TargetPort, target: { network: v.network, service: s.id, targetPort: p.TargetPort, protocol }, vip: true, service: s.id })
        }
      }
    }
    for (const [key, sig] of this.listeners) {
      const w = want.get(key)
      if (w && JSON.stringify(w.target) === sig) continue
      const { host, port, protocol } = parseKey(key)
      await mesh.unpublish(port, protocol, host)
      this.listeners.delete(key)
    }
    this.conflicts.clear()
    for (const [key, w] of want) {
      if (this.listeners.has(key)) continue
      try {
        await mesh.publish(w.port, w.target, w.host)
        this.listeners.set(key, JSON.stringify(w.target))
      } catch (e) {
        // Several daemons on one host share its loopback: one of them serving a VIP serves them all.
        if (w.vip) continue
        this.conflicts.set(w.service, (e as MeshError).message)
        this.o.log.warn({ err: e, port: w.port }, 'mesh: cannot listen on a published port')
      }
    }
  }

  /** The network's keyring with the keys the routing gives, rotated in place; undefined (and forgotten) without keys. */
  private keyring(n: RoutingNetwork): SealKeyring | undefined {
    if (!n.keys?.length) {
      this.keyrings.delete(n.id)
      return undefined
    }
    const keys = n.keys.map(k => ({ id: keyId(k.tag), key: Buffer.from(k.key, 'base64') }))
    const primary = keys[Math.min(1, keys.length - 1)]!.id
    let seal = this.keyrings.get(n.id)
    if (!seal) this.keyrings.set(n.id, (seal = new SealKeyring(keys, primary)))
    else {
      for (const k of keys) seal.install(k.id, k.key)
      seal.usePrimary(primary)
      for (const id of seal.ids()) if (!keys.some(k => k.id === id)) seal.remove(id)
    }
    return seal
  }

  /** The kernel data plane's spec: the routing, and the host-mode ports of the tasks here. */
  private spec(r: Routing): PlaneSpec {
    return planeSpec(r, [...this.tasks.values()].flatMap(a => a.hostPorts))
  }

  /** This node's own address on each plain network it is on, announced like a task's: others reach it across the overlay (the replies to what it translated). */
  private announceNode(mesh: Mesh, r: Routing): void {
    const want = new Map<string, Omit<Endpoint, 'node'>>()
    for (const n of r.networks) {
      const addr = r.nodeAddrs?.[n.id]
      if (!addr || isEncrypted(n)) continue
      want.set(n.id, { network: n.id, service: '', serviceName: '', task: nodeTask(mesh.self), protocol: 'tcp', targetPort: 0, host: addr.split('/')[0]!, port: 0 })
    }
    for (const [id, e] of this.nodeEndpoints) if (!want.has(id)) void mesh.withdraw(e, 0)
    for (const [id, e] of want) {
      const had = this.nodeEndpoints.get(id)
      if (had?.host !== e.host) mesh.register(e)
    }
    this.nodeEndpoints.clear()
    for (const [id, e] of want) this.nodeEndpoints.set(id, e)
  }

  /**
   * A task of this node runs: its ports join the service's networks (the
   * ingress network for published ones). In the kernel data plane they are
   * the task's address on each network (`addresses`, network ID → address)
   * at its target port; a task without ports is announced there too (target
   * port 0), so that other nodes can reach its address and the DNS knows it.
   */
  taskRunning(t: { id: string; serviceId: string; serviceName: string; ports: PortConfig[]; networks: string[]; status: PortStatus[]; addresses?: Record<string, string> }): void {
    if (this.tasks.has(t.id)) return
    const endpoints: Omit<Endpoint, 'node'>[] = []
    const hostPorts: PlaneSpec['hostPorts'] = []
    const kernel = !!this.choice && !!t.addresses
    for (const network of t.networks) {
      // In the userspace mesh tasks share the host's network: their overlay addresses (the manager allocates them either way) are not where they listen.
      const addr = kernel ? t.addresses?.[network] : undefined
      if (kernel && !addr) continue
      const base = { network, service: t.serviceId, serviceName: t.serviceName, task: t.id }
      for (const p of t.ports) {
        const protocol = (p.Protocol ?? 'tcp') as Protocol
        if (protocol !== 'tcp' && protocol !== 'udp') continue
        const bound = t.status.find(s => s.TargetPort === p.TargetPort && s.Protocol === protocol)
        endpoints.push({ ...base, protocol, targetPort: p.TargetPort, host: addr ?? '127.0.0.1', port: kernel ? p.TargetPort : (bound?.PublishedPort ?? p.TargetPort) })
      }
      // A task without ports is still on the network: its presence (target port 0) is what tasks.<name> and dnsrr answer from, and (kernel) what lets other nodes reach its address.
      if (!endpoints.some(e => e.network === network)) endpoints.push({ ...base, protocol: 'tcp', targetPort: 0, host: addr ?? '127.0.0.1', port: 0 })
    }
    const first = t.addresses?.[t.networks[0] ?? '']
    if (kernel && first) {
      for (const p of t.ports) {
        const protocol = (p.Protocol ?? 'tcp') as Protocol
        if (p.PublishMode === 'host' && p.PublishedPort && (protocol === 'tcp' || protocol === 'udp')) hostPorts.push({ protocol, port: p.PublishedPort, addr: first, targetPort: p.TargetPort })
      }
    }
    const a: Announced = { endpoints, hostPorts, ready: false }
    this.tasks.set(t.id, a)
    const announce = (): void => {
      if (this.tasks.get(t.id) !== a) return
      a.ready = true
      if (this.mesh) for (const e of endpoints) this.mesh.register(e)
      if (hostPorts.length) this.replan()
    }
    // The kernel cannot try another task when one refuses, as the mesh does: a task joins the rotation once it listens.
    const probe = kernel ? endpoints.find(e => e.protocol === 'tcp' && e.targetPort > 0) : undefined
    if (probe) void listening(probe.host, probe.port, READY_WAIT_MS).then(announce)
    else announce()
  }

  /** The local tasks' host-mode ports changed: the kernel data plane is programmed again. */
  private replan(): void {
    const r = this.routing
    if (!this.plane || !r) return
    this.syncing = this.syncing.then(() => this.plane?.set(this.spec(r))).catch(e => this.o.log.warn({ err: e }, 'data plane: programming failed'))
  }

  /** Withdraws a task's endpoints; with `drain`, waits the drain delay so new connections go elsewhere before it stops. */
  async taskStopping(taskId: string, drain: boolean): Promise<void> {
    const a = this.tasks.get(taskId)
    if (!a) return
    this.tasks.delete(taskId)
    if (a.hostPorts.length) this.replan()
    if (!this.mesh) return
    await Promise.all(a.endpoints.map((e, i) => this.mesh!.withdraw(e, drain && i === 0 ? undefined : 0)))
  }

  /**
   * Stops the data plane. When no task runs any more (the daemon stopped
   * them, or the node left its swarm), what the kernel data plane
   * programmed goes too; tasks kept running (--live-restore) keep it, and
   * the next daemon adopts it.
   */
  async close(): Promise<void> {
    await this.syncing
    this.unhook?.()
    await this.plane?.close({ purge: this.tasks.size === 0 })
    this.plane = undefined
    this.choice?.lock.release()
    await this.mesh?.close()
    this.mesh = undefined
  }
}

function parseKey(key: string): { host: string; port: number; protocol: Protocol } {
  const [hp, protocol] = key.split('/') as [string, Protocol]
  const i = hp.lastIndexOf(':')
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)), protocol }
}

/** PROXY protocol is opted into per service by label: com.swarmd.proxy-protocol=v1|v2, or per published port with a .<port> suffix. */
function proxyFor(labels: Record<string, string> | undefined, p: PortConfig): 'v1' | 'v2' | undefined {
  const v = labels?.[`com.swarmd.proxy-protocol.${p.PublishedPort}`] ?? labels?.['com.swarmd.proxy-protocol']
  return v === 'v1' || v === 'v2' ? v : undefined
}
