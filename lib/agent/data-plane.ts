import fs from 'node:fs'
import type { Logger } from 'pino'
import { detectKernelSupport, type KernelSupport } from '../mesh/kernel/detect.js'
import { overlayMtu, type LinkState } from '../mesh/kernel/links.js'
import { PlaneLock } from '../mesh/kernel/plane-lock.js'
import { KernelError, readJson, spawnRunner, type Runner } from '../mesh/kernel/runner.js'

/** `swarmd --data-plane`: the kernel's where it can run (the default), or the userspace mesh always. */
export type DataPlaneChoice = 'auto' | 'kernel' | 'userspace'

/** Which data plane a node runs, and why not the kernel's when it does not. */
export interface DataPlaneStatus {
  kind: 'kernel' | 'userspace'
  /** Why the userspace mesh runs (what is missing, or that it was asked for). */
  reason?: string
  /** Whether the kernel has IPsec ESP with AES-GCM (encrypted overlays ride the sealed tunnel either way). */
  esp?: boolean
}

export interface KernelChoice {
  status: DataPlaneStatus & { kind: 'kernel' }
  lock: PlaneLock
  mtu: number
  /** The conntrack tool is here (see KernelSupport). */
  conntrack: boolean
}

/**
 * Decides a node's data plane when its agent starts: the kernel's needs
 * root, network namespaces, veth, bridges, VXLAN and nftables (probed:
 * detect.ts), a data-plane address that is not on loopback (nodes whose
 * addresses are on loopback share one host and its namespace), and no
 * other swarmd running it in this namespace. `kernel` asked for and not
 * possible is an error; `auto` falls back to the userspace mesh, saying why.
 */
export async function chooseDataPlane(o: { want: DataPlaneChoice; host: string; log: Logger; run?: Runner; lockDir?: string; detect?: () => Promise<KernelSupport> }): Promise<KernelChoice | { status: DataPlaneStatus & { kind: 'userspace' } }> {
  const userspace = (reason: string, esp?: boolean): { status: DataPlaneStatus & { kind: 'userspace' } } => {
    if (o.want === 'kernel') throw new KernelError('E_KERNEL_UNSUPPORTED', `--data-plane kernel: ${reason}`)
    o.log.info({ reason }, 'data plane: the userspace mesh')
    return { status: { kind: 'userspace', reason, ...(esp !== undefined ? { esp } : {}) } }
  }
  if (o.want === 'userspace') return userspace('asked for (--data-plane userspace)')
  if (o.host.startsWith('127.')) return userspace(`the data-plane address ${o.host} is on loopback`)
  const support = await (o.detect ?? detectKernelSupport)()
  if (!support.usable) return userspace(`the kernel data plane needs ${support.missing.join(', ')}`, support.esp)
  const lock = PlaneLock.acquire(o.lockDir)
  if (!(lock instanceof PlaneLock)) return userspace(`swarmd (pid ${lock.heldBy}) runs the kernel data plane in this network namespace`, support.esp)
  const run = o.run ?? spawnRunner
  const mtu = overlayMtu(await readJson<LinkState>(run, 'ip', ['-j', 'addr', 'show']), o.host)
  // Tasks' packets are routed between their bridges and the world.
  fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '1')
  o.log.info({ mtu, esp: support.esp }, `data plane: the kernel's (VXLAN, nftables)${support.esp ? '' : '; no IPsec ESP/AES-GCM here: encrypted overlays ride the sealed tunnel'}`)
  if (!support.conntrack) o.log.warn('data plane: no conntrack tool (Debian package conntrack): UDP flows to a removed task are not deleted: they keep going to it until idle for the conntrack UDP timeout (30 s, 120 s once answered)')
  return { status: { kind: 'kernel', esp: support.esp }, lock, mtu, conntrack: support.conntrack }
}
