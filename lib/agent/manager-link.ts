import type { KeyObject } from 'node:crypto'
import type { NodeCertificate } from '../control/ca.js'
import type { ControlNode } from '../control/control-node.js'
import { splitAddr } from '../types/addr.js'
import { CONTROL_PORT } from '../types/defaults.js'

/**
 * How a node reaches the managers: its control node, its own certificate,
 * the CA that must have signed theirs, and which manager to talk to (swarm's
 * RemoteManagers): the leader as the last check-in said, the next one when
 * it stops answering or answers that it does not lead.
 */
export interface ManagerLink {
  control: ControlNode
  manager: () => { ip: string; port: number }
  /** The manager at `manager()` did not serve us: try another. */
  failed: () => void
  cert: () => NodeCertificate
  caPublicKey: KeyObject
}

/** The managers' control addresses, and the one in use. */
export class ManagerPicker {
  private i = 0

  constructor(private addrs: string[]) {}

  current(): { ip: string; port: number } {
    const m = splitAddr(this.addrs[this.i % this.addrs.length] ?? '', CONTROL_PORT)
    return { ip: m.host, port: m.port }
  }

  failed(): void {
    this.i = (this.i + 1) % Math.max(1, this.addrs.length)
  }

  /** A new list from a check-in, the leader first: use it. Returns whether it differs from the one kept. */
  update(addrs: string[]): boolean {
    if (addrs.length === 0) return false
    const changed = addrs.join() !== this.addrs.join()
    this.addrs = addrs
    this.i = 0
    return changed
  }

  get list(): string[] {
    return [...this.addrs]
  }
}
