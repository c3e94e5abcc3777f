import type { NodeCertificate } from '../control/ca.js'

/** What a worker keeps of the swarm it joined. */
export interface WorkerRecord {
  clusterId: string
  cert: NodeCertificate
  caPublicKey: string
  gossipKeys: string[]
  gossipAddr: string
  advertiseAddr: string
  managerAddr: string
}

