/** Nodes and the cluster as a manager stores them, and the requests that make a node join or start a swarm. */
export type Availability = 'active' | 'pause' | 'drain'
export type NodeRole = 'manager' | 'worker'

export interface NodeSpec {
  Name?: string
  Labels: Record<string, string>
  Role: NodeRole
  Availability: Availability
}

/** A node as the manager stores it. */
export interface NodeRecord {
  id: string
  version: number
  createdAt: string
  updatedAt: string
  spec: NodeSpec
  hostname: string
  addr: string
  managerAddr?: string
}

export interface ClusterRecord {
  id: string
  version: number
  createdAt: string
  updatedAt: string
  /** The CA's private key (PEM), sealed under the manager's data key. */
  caKey: string
  tokens: { worker: string; manager: string }
  /** Three AES-128 gossip keys, oldest first; the middle one is primary, as swarm's. */
  gossipKeys: string[]
  listenAddr: string
  advertiseAddr: string
  dataPathPort: number
  /** Node certificates' validity (swarm's CAConfig.NodeCertExpiry), 90 days by default. */
  certTtlMs?: number
}

export interface JoinRequest {
  ListenAddr?: string
  AdvertiseAddr?: string
  RemoteAddrs?: string[]
  JoinToken?: string
}

export interface InitRequest {
  ListenAddr?: string
  AdvertiseAddr?: string
  DataPathPort?: number
  Spec?: { CAConfig?: { NodeCertExpiry?: number } }
}
