import type { Logger } from 'pino'
import type { Membership } from '../gossip/membership.js'
import type { Routing } from '../types/session.js'
import type { PortConfig } from '../types/service.js'
import type { PortStatus } from '../types/task.js'
import type { BalancingStrategy } from '../mesh/balancer.js'
import { Mesh, MeshError, type PublishTarget } from '../mesh/mesh.js'
import { SealKeyring } from '../mesh/seal.js'
import type { TunnelAuth } from '../mesh/tunnel-auth.js'
import type { Endpoint, Protocol } from '../mesh/types.js'

/** Key IDs are one byte on the wire; tags grow by one per rotation, so three consecutive tags never collide. */
const keyId = (tag: number): number => ((tag - 1) % 255) + 1

/** A task's endpoints as this node announced them, to withdraw them later. */
interface Announced {
  endpoints: Omit<Endpoint, 'node'>[]
}

/**
 * A node's routing mesh, kept in step with what the manager says: the
 * networks (keys rotated in place), a listener on every published port and
 * on each service's VIP, and an endpoint for each task of this node once it
 * runs, withdrawn (with the drain delay) before it stops.
 */
export class NodeMesh {
  private mesh: Mesh | undefined
  private readonly keyrings = new Map<string, SealKeyring>()
  private readonly listeners = new Map<string, string>()
  private readonly tasks = new Map<string, Announced>()
  private syncing: Promise<void> = Promise.resolve()
  /** The swarm's nodes: the only peers the tunnel admits. */
  private nodes: Set<string> | undefined
  /** Published ports this node could not listen on, with why: shown on the service's tasks here. */
  readonly conflicts = new Map<string, string>()

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
      log: Logger
    },
  ) {}

  /**
   * The mesh, created on first use (the first routing the manager sends).
   * Tasks that were found running before it existed (adopted after a
   * restart) are announced as soon as it does.
   */
  private async ensure(port: number): Promise<Mesh | undefined> {
    if (this.mesh) return this.mesh
    const membership = this.o.membership()
    if (!membership) return undefined
    this.mesh = await Mesh.create({
      membership,
      host: this.o.host,
      port,
      ...(this.o.idleTimeoutMs ? { idleTimeoutMs: this.o.idleTimeoutMs } : {}),
      ...(this.o.strategy ? { strategy: this.o.strategy } : {}),
      ...(this.o.workers ? { workers: this.o.workers } : {}),
      ...(this.o.auth ? { auth: this.o.auth } : {}),
      logger: this.o.log,
    })
    for (const a of this.tasks.values()) for (const e of a.endpoints) this.mesh.register(e)
    return this.mesh
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
    const mesh = await this.ensure(r.dataPathPort)
    if (!mesh) return
    for (const n of r.networks) {
      let seal: SealKeyring | undefined
      if (n.keys?.length) {
        const keys = n.keys.map(k => ({ id: keyId(k.tag), key: Buffer.from(k.key, 'base64') }))
        const primary = keys[Math.min(1, keys.length - 1)]!.id
        seal = this.keyrings.get(n.id)
        if (!seal) this.keyrings.set(n.id, (seal = new SealKeyring(keys, primary)))
        else {
          for (const k of keys) seal.install(k.id, k.key)
          seal.usePrimary(primary)
          for (const id of seal.ids()) if (!keys.some(k => k.id === id)) seal.remove(id)
        }
      }
      mesh.addNetwork({ id: n.id, vni: n.vni, ...(seal ? { seal } : {}) })
    }
    const ingress = r.networks.find(n => n.ingress)
    const want = new Map<string, { host: string; port: number; target: PublishTarget; vip: boolean; service: string }>()
    for (const s of r.services) {
      for (const p of s.ports) {
        const protocol = (p.Protocol ?? 'tcp') as Protocol
        if (protocol === ('sctp' as Protocol)) continue
        if (ingress && (p.PublishMode ?? 'ingress') === 'ingress' && p.PublishedPort) {
          const proxy = proxyFor(s.labels, p)
          want.set(`${this.o.ingressHost}:${p.PublishedPort}/${protocol}`, {
            host: this.o.ingressHost,
            port: p.PublishedPort,
            target: { network: ingress.id, service: s.id, targetPort: p.TargetPort, protocol, ...(proxy ? { proxyProtocol: proxy } : {}) },
            vip: false,
            service: s.id,
          })
        }
        for (const v of s.vips) {
          want.set(`${v.loopback}:${p.TargetPort}/${protocol}`, { host: v.loopback, port: p.TargetPort, target: { network: v.network, service: s.id, targetPort: p.TargetPort, protocol }, vip: true, service: s.id })
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

  /** A task of this node runs: its ports join the service's networks (the ingress network for published ones). */
  taskRunning(t: { id: string; serviceId: string; serviceName: string; ports: PortConfig[]; networks: string[]; status: PortStatus[] }): void {
    if (this.tasks.has(t.id)) return
    const endpoints: Omit<Endpoint, 'node'>[] = []
    for (const network of t.networks) {
      for (const p of t.ports) {
        const protocol = (p.Protocol ?? 'tcp') as Protocol
        if (protocol !== 'tcp' && protocol !== 'udp') continue
        const bound = t.status.find(s => s.TargetPort === p.TargetPort && s.Protocol === protocol)
        endpoints.push({ network, service: t.serviceId, serviceName: t.serviceName, task: t.id, protocol, targetPort: p.TargetPort, host: '127.0.0.1', port: bound?.PublishedPort ?? p.TargetPort })
      }
      // A task without ports is still on the network: its presence (target port 0) is what tasks.<name> and dnsrr answer from.
      if (!endpoints.some(e => e.network === network)) endpoints.push({ network, service: t.serviceId, serviceName: t.serviceName, task: t.id, protocol: 'tcp', targetPort: 0, host: '127.0.0.1', port: 0 })
    }
    this.tasks.set(t.id, { endpoints })
    if (this.mesh) for (const e of endpoints) this.mesh.register(e)
  }

  /** Withdraws a task's endpoints; with `drain`, waits the drain delay so new connections go elsewhere before it stops. */
  async taskStopping(taskId: string, drain: boolean): Promise<void> {
    const a = this.tasks.get(taskId)
    if (!a) return
    this.tasks.delete(taskId)
    if (!this.mesh) return
    await Promise.all(a.endpoints.map((e, i) => this.mesh!.withdraw(e, drain && i === 0 ? undefined : 0)))
  }

  async close(): Promise<void> {
    await this.syncing
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
