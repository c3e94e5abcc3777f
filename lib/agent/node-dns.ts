import type { Logger } from 'pino'
import type { Membership } from '../gossip/membership.js'
import type { Mesh } from '../mesh/mesh.js'
import type { Endpoint } from '../mesh/types.js'
import type { Routing } from '../types/session.js'
import { routingView } from './dns-records.js'
import { DnsServer, type DnsListen } from './dns-server.js'

/** Where a node's DNS answers in the userspace data plane by default: Docker's resolver address, on the host's loopback. */
export const USERSPACE_DNS = { host: '127.0.0.11', port: 53 }

/**
 * A node's DNS in the userspace data plane. Tasks share the host's network,
 * so there is one address for all of them (given to process tasks as
 * `SWARMD_DNS=ip:port`), answering the names of every overlay network:
 * a service's name is its VIP's loopback twin, which the mesh serves on
 * every node at the service's target ports (`http://api/` reaches api's
 * port 80), and a task's address is its node's, as with host networking.
 * Several daemons on one host share its loopback: while another one holds
 * the address, it answers for all (they answer alike), and each routing
 * tries to take it again.
 *
 * In the kernel data plane each task has a namespace and a resolv.conf
 * naming its first network's gateway (task-netns.ts): the server answers
 * there too, on every network this node has a bridge for, with that
 * network's names only; a name is the VIP itself and a task its overlay
 * address. The gateways appear as the plane programs the bridges, so each
 * programming (`resync`) tries the missing ones again.
 */
export class NodeDns {
  private server: DnsServer | undefined
  private routing: Routing | undefined
  private listening = false
  private shared = false
  private taking: Promise<void> | undefined

  constructor(
    private readonly o: {
      listen: { host: string; port: number }
      mesh: () => Mesh | undefined
      membership: () => Membership | undefined
      /** Where the host's resolvers are read (default /etc/resolv.conf; systemd-resolved hosts may want /run/systemd/resolve/resolv.conf). */
      resolvConf?: string
      /** Whether the node runs the kernel data plane (decided before the first routing). */
      kernel?: () => boolean
      log: Logger
    },
  ) {}

  /** `ip:port` for tasks, once the address answers (this daemon's server or another's on the same host). */
  get address(): string | undefined {
    return this.listening || this.shared ? `${this.o.listen.host}:${this.o.listen.port}` : undefined
  }

  get instance(): DnsServer | undefined {
    return this.server
  }

  /** Creates the server and takes the address, before any task starts: tasks are told it as they start. */
  async start(): Promise<void> {
    this.server = await DnsServer.create({ ...(this.o.resolvConf ? { resolvConf: this.o.resolvConf } : {}), logger: this.o.log })
    await this.take()
  }

  /** A new routing: the names it gives. An address still held by another program is tried again. */
  sync(r: Routing): void {
    this.routing = r
    const server = this.server
    if (!server) return
    const kernel = this.o.kernel?.() ?? false
    server.update(
      routingView(r, {
        vipAddress: v => (kernel ? (v.addr ?? v.loopback) : v.loopback),
        taskAddress: e => (kernel ? e.host : this.nodeAddress(e)),
        endpoints: network => this.o.mesh()?.endpoints(network) ?? [],
      }),
    )
    // In the kernel data plane the gateways come and go with the networks: the addresses are reconciled each time.
    if (!this.listening || kernel) void this.take()
  }

  /** The kernel data plane programmed its bridges: gateways that were missing may be there now. */
  resync(): void {
    if (this.routing) this.sync(this.routing)
  }

  /** The loopback address, and in the kernel data plane each network's gateway on this node, scoped to that network. */
  private addresses(): DnsListen[] {
    const all: DnsListen[] = [{ ...this.o.listen, networks: () => this.networks() }]
    if (!this.o.kernel?.()) return all
    for (const n of this.routing?.networks ?? []) {
      if (n.ingress || !n.gateway || !this.routing?.nodeAddrs?.[n.id]) continue
      all.push({ host: n.gateway, port: 53, networks: () => [n.id] })
    }
    return all
  }

  /** One attempt at a time: a second bind of the same address would fail against the first. */
  private take(): Promise<void> {
    this.taking ??= this.bind().finally(() => (this.taking = undefined))
    return this.taking
  }

  private async bind(): Promise<void> {
    try {
      const was = this.listening
      await this.server?.listen(this.addresses())
      this.listening = !!this.server
      this.shared = false
      if (this.listening && !was) this.o.log.info({ addr: this.address }, 'dns: answering service names')
    } catch (e) {
      const wasShared = this.shared
      this.listening = false
      this.shared = ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE'
      // A gateway not yet on its bridge is tried again at the next programming.
      if (this.o.kernel?.()) this.o.log.debug({ err: e }, 'dns: not every gateway can be listened on yet')
      else if (!this.shared) this.o.log.warn({ err: e }, 'dns: cannot listen; tasks resolve no service names')
      else if (!wasShared) this.o.log.info({ addr: this.address }, 'dns: another daemon on this host answers on the address')
    }
  }

  /** Every overlay network, in the manager's order: a task could be on any of them, and none hides its names from host processes. */
  private networks(): string[] {
    return (this.routing?.networks ?? []).filter(n => !n.ingress).map(n => n.id)
  }

  private nodeAddress(e: Endpoint): string | undefined {
    return this.o.membership()?.members().find(m => m.name === e.node)?.addr
  }

  async close(): Promise<void> {
    await this.taking
    await this.server?.close()
    this.server = undefined
    this.listening = false
  }
}
