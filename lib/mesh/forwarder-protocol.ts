import type { BalancerTarget } from './balancer.js'
import type { Endpoint } from './types.js'

/** What the Mesh's process and its forwarder workers say to each other over the IPC channel. */

export interface WorkerConfig {
  /** The Mesh's member name: endpoints of this node are dialed by the worker, the others go back to the Mesh. */
  self: string
  keepAliveMs: number
  idleTimeoutMs: number
  /** How often the worker reports its counters. */
  reportMs: number
}

export type ToWorker =
  /** With the listening server's handle: accept on it for the published port `key`. */
  | { t: 'listen'; id: number; key: string }
  | { t: 'unlisten'; id: number; key: string }
  /** `key`'s target (its service resolved to an ID) and every usable endpoint of it, replacing the last list. */
  | { t: 'endpoints'; key: string; target: BalancerTarget; endpoints: Endpoint[] }

export type FromWorker =
  | { t: 'ready' }
  | { t: 'ack'; id: number }
  /** With a client socket, untouched: a connection for the Mesh, to `endpoint` (on another node) or, without one, to any task (no local one took it). */
  | { t: 'back'; key: string; endpoint?: Endpoint }
  | { t: 'counters'; connections: number; retries: number }
