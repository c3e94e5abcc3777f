/**
 * What travels over a node's session with the manager (the dispatcher's
 * messages). Down: the node's assignments (every task placed on it that is
 * not yet known to be over, with the secrets they use) and log requests.
 * Up: task status and log lines.
 */
import type { LogLine, LogOptions } from './logs.js'
import type { PortConfig } from './service.js'
import type { Task, TaskStatus } from './task.js'

/** A network as a node's data plane sees it. */
export interface RoutingNetwork {
  id: string
  name?: string
  vni: number
  ingress: boolean
  /** As the network's IPAM config has them ("10.0.1.0/24", "10.0.1.1"). */
  subnet?: string
  gateway?: string
  /**
   * Set for every encrypted network, whether or not this node was given its
   * keys: a node without them must neither carry the network in plaintext
   * nor serve its VIPs.
   */
  encrypted?: true
  /** An encrypted network's keys (oldest first): only for the nodes with tasks on it, and on the ingress network for every node. */
  keys?: { tag: number; key: string }[]
}

/** Whether a network's traffic must be sealed: marked so, or keyed (either alone fails closed). */
export const isEncrypted = (n: RoutingNetwork): boolean => n.encrypted === true || !!n.keys?.length

/** What every node's mesh needs: the networks (with their keys, where it is owed them), each service's ports and VIPs, and the swarm's nodes. */
export interface Routing {
  /** The swarm's data-path port (4789 unless `swarm init --data-path-port` said otherwise). */
  dataPathPort: number
  networks: RoutingNetwork[]
  services: {
    id: string
    name: string
    labels: Record<string, string>
    ports: PortConfig[]
    /** `addr`: the VIP on the overlay (no prefix length); `loopback`: its twin the userspace mesh listens on. */
    vips: { network: string; loopback: string; addr?: string }[]
    /** Set for endpoint mode dnsrr: no VIPs, its name resolves to its tasks. */
    mode?: 'dnsrr'
    /** The networks the service's tasks are attached to (beside ingress), VIP or not. */
    networks?: string[]
    /** Network ID → the service's network aliases there (the spec's TaskTemplate.Networks[].Aliases). */
    aliases?: Record<string, string[]>
  }[]
  /** This node's own address on each network it takes part in (network ID → "10.0.1.254/24"): set per node by the dispatcher. */
  nodeAddrs?: Record<string, string>
  /** The IDs of the swarm's nodes: the only peers a node's data plane accepts. */
  nodes?: string[]
}

export type DownMessage =
  | {
      t: 'assign'
      /** Each task with its service's name and ports, and the IDs of the networks its endpoints join. */
      tasks: { task: Task; serviceName: string; ports: PortConfig[]; networks: string[] }[]
      secrets: Record<string, string>
      /** The data of the configs those tasks use, base64, by config ID. */
      configs: Record<string, string>
      routing: Routing
    }
  | { t: 'logs'; req: number; taskIds: string[]; opts: LogOptions }
  | { t: 'logs-cancel'; req: number }

export type UpMessage =
  | { t: 'status'; updates: { id: string; status: TaskStatus }[] }
  | { t: 'log'; req: number; lines: { task: string; line: LogLine }[] }
  | { t: 'logs-end'; req: number; error?: string }

/** What a node's check-in with the leader is answered with. */
export interface CheckInAnswer {
  gossipKeys: string[]
  periodMs: number
  /** The node's role now: a worker told `manager` was promoted, and enrolls. */
  role: 'manager' | 'worker'
  /** Every manager's control address, the leader's first (swarm's RemoteManagers). */
  managers: string[]
}

/** What a manager joining etcd is handed by the leader, over its authenticated session only. */
export interface Enrollment {
  tls: { ca: string; cert: string; key: string }
  initialCluster: string
  /** The swarm's cluster ID: etcd's cluster token. */
  token: string
  /** The managers' data key, base64. */
  dataKey: string
}

/** An API call one manager forwards to the leader (swarmkit's raft proxy): no HTTP, just what the handler reads. */
export interface ApiCall {
  method: string
  /** Without the `/v1.xx` prefix. */
  path: string
  /** The query string, without `?`. */
  query: string
  body: unknown
}

/** The leader's answer to a forwarded call: the status and JSON body it would have sent. */
export interface ApiAnswer {
  status: number
  body: unknown
}
