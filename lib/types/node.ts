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
  /** host:port of its control plane, for a manager. */
  managerAddr?: string
  /** The node's state as the leader last saw it (what the other managers show). */
  status?: { state: 'ready' | 'down' | 'unknown'; message?: string }
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
  /** The managers' etcd CA (x509, PEM), its key sealed under the data key: from the second manager on. */
  etcdCa?: { cert: string; keySealed: string }
  /** Swarm's Orchestration.TaskHistoryRetentionLimit once `swarm update` set it (5 by default; negative keeps every ended task). */
  taskHistory?: number
  /** Swarm's Dispatcher.HeartbeatPeriod once `swarm update` set it (5 s by default). */
  heartbeatMs?: number
  /** The cluster's labels (swarm's Spec.Labels). */
  labels?: Record<string, string>
  /**
   * Autolock: the 32 bytes of the unlock key, sealed under the data key, so
   * every manager can read it (and seal its own data key under it) while
   * neither the state nor any disk holds it in the clear.
   */
  unlockKeySealed?: string
}

export interface JoinRequest {
  ListenAddr?: string
  AdvertiseAddr?: string
  RemoteAddrs?: string[]
  JoinToken?: string
}

export interface InitRequest {
  /** Recovery from a lost quorum: this manager alone, with the state it holds. */
  ForceNewCluster?: boolean
  ListenAddr?: string
  AdvertiseAddr?: string
  DataPathPort?: number
  Spec?: { CAConfig?: { NodeCertExpiry?: number } }
}
