/**
 * Defaults that several layers share, each stated once: the ports of the
 * planes (DESIGN.md's table), and swarm's timings.
 */

/** The control plane: joins, RPCs and node sessions (swarm's 2377). */
export const CONTROL_PORT = 2377
/** Gossip, UDP and TCP (memberlist's and swarm's 7946). */
export const GOSSIP_PORT = 7946
/** The data path between nodes (VXLAN's 4789). */
export const DATA_PATH_PORT = 4789

/** Swarm rotates the gossip keys and each encrypted network's keys every 12 h. */
export const KEY_ROTATION_MS = 12 * 3_600_000
/** Swarm's Dispatcher.HeartbeatPeriod: how often a node checks in. */
export const HEARTBEAT_MS = 5_000
/** Swarm's default stop grace period: SIGTERM, then SIGKILL this much later. */
export const STOP_GRACE_MS = 10_000
/** Swarm's CAConfig.NodeCertExpiry: node certificates last 90 days. */
export const CERT_TTL_MS = 90 * 24 * 3_600_000
/** Swarm's Orchestration.TaskHistoryRetentionLimit: ended tasks kept per slot. */
export const TASK_HISTORY = 5
/** A manager's etcd member: its clients (the managers) and its peers, on the manager's advertise address, once there are several managers. */
export const ETCD_CLIENT_PORT = 2379
export const ETCD_PEER_PORT = 2380
