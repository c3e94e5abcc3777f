/**
 * The routing mesh's shared vocabulary. An endpoint is one task's port on
 * one overlay network, announced by the node that runs the task; every node
 * keeps the table of all endpoints and balances over the healthy ones.
 */

export type Protocol = 'tcp' | 'udp'

export interface Endpoint {
  /** Overlay network ID (the ingress network for published ports). */
  network: string
  /** Service ID and name: connections go to a service, by name or VIP. */
  service: string
  serviceName: string
  task: string
  /** The member name of the node that runs the task (its gossip name). */
  node: string
  protocol: Protocol
  /** The port the task listens on inside its spec (the service's TargetPort). */
  targetPort: number
  /** Where the task actually listens on its node (process tasks get a free host port per target). */
  host: string
  port: number
}

/** An endpoint's key in its network's table: one task, one target port and protocol. */
export const endpointKey = (e: Pick<Endpoint, 'task' | 'protocol' | 'targetPort'>): string => `${e.task}/${e.protocol}/${e.targetPort}`

/** The VXLAN Network Identifier of each overlay network (allocated by the manager from 4096 up). */
export type Vni = number
