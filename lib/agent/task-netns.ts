import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { macOf, vethName } from '../mesh/kernel/names.js'
import { KernelError, runBatch, runOk, spawnRunner, type Runner } from '../mesh/kernel/runner.js'

/** A task's place on one network, as its namespace gets it. */
export interface TaskNetwork {
  network: string
  /** The network's bridge on this node, where the task's veth goes. */
  bridge: string
  /** "10.0.1.5/24" */
  address: string
  gateway: string
  mtu: number
  /** The ingress network: it has no names, so its gateway is never the task's resolver. */
  ingress?: boolean
}

/** Where a task's DNS queries go: the gateway of its first network with names (not ingress), where the node's DNS answers. */
export function resolverOf(networks: readonly TaskNetwork[]): string | undefined {
  return (networks.find(n => !n.ingress) ?? networks[0])?.gateway
}

/** How an executor gives a task its own network namespace (see TaskNetns). */
export interface TaskNetworking {
  /**
   * Makes the task's namespace with an interface on each network; returns
   * the argv prefix that runs a command in it. With `pid`, the namespace is
   * that process's (a container's, which its engine made), named as a
   * made one would be, so teardown and sweep find it alike.
   */
  setup(taskId: string, networks: readonly TaskNetwork[], pid?: number): Promise<string[]>
  /** Whether the task's namespace exists (a daemon that died between starting a container and setting it up left none). */
  has(taskId: string): boolean
  /** Ends what still runs in the task's namespace and removes it. */
  teardown(taskId: string): Promise<void>
  /** Removes the namespaces of this node's tasks that are not in `keep` (what a crash left). */
  sweep(keep: ReadonlySet<string>): Promise<void>
}

const NETNS_DIR = '/run/netns'
const ETC_NETNS = '/etc/netns'

/**
 * Each task in a network namespace of its own, named
 * `swarmd-<node ID>-<task ID>` so a restarted daemon finds its own (and
 * only its own: namespace names are global to the host, and other nodes'
 * daemons may run beside it). In it: `lo`, and per network an `ethN`
 * whose peer is on the network's bridge (hairpin on, so a task reaching
 * its own VIP can be sent to itself), with the task's address and the MAC
 * derived from it, the MTU of the overlay; the default route through the
 * first network's gateway; and a resolv.conf naming the gateway of its
 * first network but ingress (resolverOf), where the node's DNS answers
 * (`ip netns exec` puts /etc/netns/<name>/resolv.conf over /etc/resolv.conf).
 * A container's namespace, which its engine made, is named the same way
 * (`ip netns attach`) and set up alike; its resolv.conf is the engine's to
 * write (the docker executor asks for the same nameserver).
 */
export class TaskNetns implements TaskNetworking {
  private readonly run: Runner

  constructor(
    private readonly o: {
      nodeId: string
      /** Resolves once the node's bridges are made for what the manager last sent. */
      ready: () => Promise<void>
      run?: Runner
      /** The host's resolv.conf, whose search domains the tasks get (default /etc/resolv.conf). */
      hostResolvConf?: string
      log: Logger
    },
  ) {
    this.run = o.run ?? spawnRunner
  }

  name(taskId: string): string {
    return `swarmd-${this.o.nodeId}-${taskId}`
  }

  has(taskId: string): boolean {
    return fs.existsSync(path.join(NETNS_DIR, this.name(taskId)))
  }

  async setup(taskId: string, networks: readonly TaskNetwork[], pid?: number): Promise<string[]> {
    const first = networks[0]
    if (!first) throw new KernelError('E_KERNEL_COMMAND', `task ${taskId} has no network to attach`)
    await this.o.ready()
    const ns = this.name(taskId)
    if (this.has(taskId)) await this.teardown(taskId)
    for (const n of networks) {
      if ((await this.run('ip', ['link', 'show', n.bridge])).code !== 0) throw new KernelError('E_KERNEL_COMMAND', `network ${n.network} has no bridge on this node (${n.bridge}): this node has no address on it yet`)
    }
    // `netns attach` names the process's namespace as `netns add` names a new one: a bind mount under /run/netns.
    const host = [pid === undefined ? `netns add ${ns}` : `netns attach ${ns} ${pid}`]
    const inside = ['link set lo up']
    networks.forEach((n, i) => {
      const veth = vethName(taskId, n.network)
      const ip = n.address.split('/')[0]!
      host.push(`link add ${veth} mtu ${n.mtu} type veth peer name eth${i} netns ${ns}`, `link set ${veth} master ${n.bridge} up`, `link set ${veth} type bridge_slave hairpin on`)
      inside.push(`link set eth${i} address ${macOf(ip)} mtu ${n.mtu} up`, `addr add ${n.address} dev eth${i}`)
    })
    inside.push(`route add default via ${first.gateway} dev eth0`)
    try {
      await runBatch(this.run, 'ip', host)
      await runBatch(this.run, 'ip', inside, ['-n', ns])
      this.writeResolvConf(ns, resolverOf(networks)!)
    } catch (e) {
      await this.teardown(taskId)
      throw e
    }
    return ['ip', 'netns', 'exec', ns]
  }

  private writeResolvConf(ns: string, nameserver: string): void {
    let search: string[] = []
    try {
      search = fs
        .readFileSync(this.o.hostResolvConf ?? '/etc/resolv.conf', 'utf8')
        .split('\n')
        .filter(l => /^(search|domain)\s/.test(l))
    } catch {
      // No host resolver configuration: the tasks get no search domains.
    }
    const dir = path.join(ETC_NETNS, ns)
    fs.mkdirSync(dir, { recursive: true })
    // ndots:0 as Docker's embedded resolver: service names are single labels.
    fs.writeFileSync(path.join(dir, 'resolv.conf'), [`nameserver ${nameserver}`, ...search, 'options ndots:0', ''].join('\n'))
  }

  async teardown(taskId: string): Promise<void> {
    await this.remove(this.name(taskId))
  }

  private async remove(ns: string): Promise<void> {
    fs.rmSync(path.join(ETC_NETNS, ns), { recursive: true, force: true })
    if (!fs.existsSync(path.join(NETNS_DIR, ns))) return
    // What escaped the task's process group would keep the namespace (and its address) alive.
    for (let i = 0; i < 20; i++) {
      const pids = (await this.run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean).map(Number)
      if (!pids.length) break
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // Already gone.
        }
      }
      await new Promise(r => setTimeout(r, 50))
    }
    // Deleting the namespace takes the task's end of each veth, and so the host's end too.
    await runOk(this.run, 'ip', ['netns', 'delete', ns]).catch(e => this.o.log.warn({ err: e, netns: ns }, 'removing a task namespace failed'))
  }

  async sweep(keep: ReadonlySet<string>): Promise<void> {
    const prefix = this.name('')
    let names: string[] = []
    try {
      names = fs.readdirSync(NETNS_DIR)
    } catch {
      return
    }
    for (const ns of names) {
      if (!ns.startsWith(prefix) || keep.has(ns.slice(prefix.length))) continue
      this.o.log.info({ netns: ns }, 'removing the namespace of a task that no longer runs')
      await this.remove(ns)
    }
  }
}
