import type { NodeCertificate } from '../control/ca.js'

/** What a worker keeps of the swarm it joined. */
export interface WorkerRecord {
  clusterId: string
  cert: NodeCertificate
  caPublicKey: string
  gossipKeys: string[]
  gossipAddr: string
  advertiseAddr: string
  /** The manager it talks to now. */
  managerAddr: string
  /** Every manager's control address, as the last check-in said (the leader first): where it fails over to. */
  managers?: string[]
  /** Where its control plane listens should it become a manager. */
  listenAddr?: string
}

