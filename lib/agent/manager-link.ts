import type { KeyObject } from 'node:crypto'
import type { NodeCertificate } from '../control/ca.js'
import type { ControlNode } from '../control/control-node.js'

/** How a worker reaches its manager: its control node, the manager's address, its own certificate, and the CA that must have signed the manager's. */
export interface ManagerLink {
  control: ControlNode
  manager: () => { ip: string; port: number }
  cert: () => NodeCertificate
  caPublicKey: KeyObject
}
