import { CERT_TTL_MS, HEARTBEAT_MS, TASK_HISTORY } from '../types/defaults.js'
import { SwarmError } from '../types/errors.js'
import type { ClusterRecord } from '../types/node.js'

/**
 * The swarm's Spec (Docker's swarm.Spec) as the cluster record holds it,
 * and what `swarm update` may change in it: the task history, the
 * dispatcher's heartbeat, the certificates' expiry, autolock and labels.
 * The rest (raft's snapshots, external CAs, a CA rotation, a default log
 * driver) swarmd does not have, so a request that changes one is refused
 * rather than answered "Swarm updated." with nothing done.
 */

/** What swarmd reports of raft's settings (it keeps the state in its own store, or etcd): a request must leave them so. */
const RAFT = { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 }

const MIN_HEARTBEAT_NS = 100e6

const rpc = (desc: string): SwarmError => new SwarmError('E_INVALID_ARGUMENT', `rpc error: code = InvalidArgument desc = ${desc}`)
const unsupported = (what: string): SwarmError => new SwarmError('E_UNSUPPORTED', `swarmd does not support ${what}`)

/** Docker's swarm.Spec of the cluster. */
export function clusterSpec(c: ClusterRecord): Record<string, unknown> {
  return {
    Name: 'default',
    Labels: c.labels ?? {},
    Orchestration: { TaskHistoryRetentionLimit: c.taskHistory ?? TASK_HISTORY },
    Raft: { ...RAFT },
    Dispatcher: { HeartbeatPeriod: (c.heartbeatMs ?? HEARTBEAT_MS) * 1e6 },
    CAConfig: { NodeCertExpiry: (c.certTtlMs ?? CERT_TTL_MS) * 1e6 },
    TaskDefaults: {},
    EncryptionConfig: { AutoLockManagers: !!c.unlockKeySealed },
  }
}

/** CAConfig.NodeCertExpiry (nanoseconds) as milliseconds: at least a second, so tests can watch renewals (Docker's minimum is an hour). */
export function certExpiryMs(ns: unknown): number {
  if (typeof ns !== 'number' || !Number.isFinite(ns) || ns < 1e9) throw new SwarmError('E_INVALID_ARGUMENT', `invalid CAConfig.NodeCertExpiry ${String(ns)}: it must be at least 1s (in nanoseconds)`)
  return Math.floor(ns / 1e6)
}

/** What a `swarm update` sets. */
export interface ClusterSettings {
  taskHistory: number
  heartbeatMs: number | undefined
  certTtlMs: number
  labels: Record<string, string>
  autolock: boolean
}

const obj = (v: unknown, what: string): Record<string, unknown> => {
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw rpc(`${what} must be an object`)
  return v as Record<string, unknown>
}

/**
 * The settings a swarm.Spec asks for, checked as swarmkit's
 * validateClusterSpec checks them; a field the request leaves out keeps
 * its value.
 */
export function clusterSettings(body: unknown, c: ClusterRecord): ClusterSettings {
  const spec = obj(body, 'the swarm spec')
  if (spec.Name !== undefined && spec.Name !== '' && spec.Name !== 'default') throw rpc('modification of cluster name is not allowed')
  const orchestration = obj(spec.Orchestration, 'Orchestration')
  const dispatcher = obj(spec.Dispatcher, 'Dispatcher')
  const ca = obj(spec.CAConfig, 'CAConfig')
  const raft = obj(spec.Raft, 'Raft')
  const encryption = obj(spec.EncryptionConfig, 'EncryptionConfig')
  for (const [k, v] of Object.entries(raft)) {
    if (k in RAFT && v !== undefined && v !== null && v !== RAFT[k as keyof typeof RAFT]) throw unsupported(`raft's settings (Raft.${k}): it keeps the swarm's state in its own store or etcd`)
  }
  if (Array.isArray(ca.ExternalCAs) && ca.ExternalCAs.length) throw unsupported('external CAs (--external-ca): its own CA signs every certificate')
  if (ca.SigningCACert || ca.SigningCAKey || (ca.ForceRotate !== undefined && ca.ForceRotate !== 0)) throw unsupported('rotating the root CA (swarm ca --rotate)')
  const logDriver = obj(spec.TaskDefaults, 'TaskDefaults').LogDriver
  if (logDriver !== undefined && logDriver !== null) throw unsupported('a default log driver for tasks (TaskDefaults.LogDriver)')
  const history = orchestration.TaskHistoryRetentionLimit ?? c.taskHistory ?? TASK_HISTORY
  if (typeof history !== 'number' || !Number.isInteger(history)) throw rpc('Orchestration.TaskHistoryRetentionLimit must be an integer')
  const heartbeat = dispatcher.HeartbeatPeriod
  if (heartbeat !== undefined && heartbeat !== null && (typeof heartbeat !== 'number' || !Number.isFinite(heartbeat))) throw rpc('Dispatcher.HeartbeatPeriod must be a duration in nanoseconds')
  if (typeof heartbeat === 'number' && heartbeat < 0) throw rpc('heartbeat time period cannot be a negative duration')
  // Shorter would have every node check in, and this manager's timers fire, a thousand times a second.
  if (typeof heartbeat === 'number' && heartbeat > 0 && heartbeat < MIN_HEARTBEAT_NS) throw unsupported('a dispatcher heartbeat shorter than 100ms')
  const labels = obj(spec.Labels ?? c.labels, 'Labels')
  if (Object.values(labels).some(v => typeof v !== 'string')) throw rpc('Labels must map strings to strings')
  const autolock = encryption.AutoLockManagers ?? !!c.unlockKeySealed
  if (typeof autolock !== 'boolean') throw rpc('EncryptionConfig.AutoLockManagers must be true or false')
  return {
    taskHistory: history,
    // Zero (or none): the default period.
    heartbeatMs: typeof heartbeat === 'number' && heartbeat > 0 ? Math.round(heartbeat / 1e6) : heartbeat === undefined ? c.heartbeatMs : undefined,
    certTtlMs: ca.NodeCertExpiry === undefined || ca.NodeCertExpiry === null ? (c.certTtlMs ?? CERT_TTL_MS) : certExpiryMs(ca.NodeCertExpiry),
    labels: labels as Record<string, string>,
    autolock,
  }
}
