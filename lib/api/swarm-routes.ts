import type { SwarmNode } from '../node/node.js'
import { CERT_TTL_MS, HEARTBEAT_MS, TASK_HISTORY } from '../types/defaults.js'
import type { ClusterRecord, JoinRequest } from '../types/node.js'
import { ApiError } from './api-error.js'
import { objectBody, type ApiServer } from './http.js'
import { versionParam } from './params.js'

function clusterSpec(c: ClusterRecord): Record<string, unknown> {
  return {
    Name: 'default',
    Labels: {},
    Orchestration: { TaskHistoryRetentionLimit: TASK_HISTORY },
    Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 },
    Dispatcher: { HeartbeatPeriod: HEARTBEAT_MS * 1e6 },
    CAConfig: { NodeCertExpiry: (c.certTtlMs ?? CERT_TTL_MS) * 1e6 },
    TaskDefaults: {},
    EncryptionConfig: { AutoLockManagers: false },
  }
}

/** Docker's ClusterInfo (the Swarm object without join tokens). */
export function clusterInfo(c: ClusterRecord): Record<string, unknown> {
  return {
    ID: c.id,
    Version: { Index: c.version },
    CreatedAt: c.createdAt,
    UpdatedAt: c.updatedAt,
    Spec: clusterSpec(c),
    TLSInfo: { TrustRoot: '', CertIssuerSubject: '', CertIssuerPublicKey: '' },
    RootRotationInProgress: false,
    DataPathPort: c.dataPathPort,
    DefaultAddrPool: ['10.0.0.0/8'],
    SubnetSize: 24,
  }
}

/** /swarm: init, join, leave, inspect, and update (token rotation). */
export function mountSwarmRoutes(api: ApiServer, node: SwarmNode): void {
  api
    .route('POST', '/swarm/init', req => node.init(objectBody(req.body, 'swarm.InitRequest')))
    .route('POST', '/swarm/join', async req => {
      const b = objectBody(req.body, 'swarm.JoinRequest')
      if (!Array.isArray(b.RemoteAddrs) || b.RemoteAddrs.some(a => typeof a !== 'string')) throw new ApiError(400, 'RemoteAddrs must be a list of manager addresses')
      if (typeof b.JoinToken !== 'string') throw new ApiError(400, 'JoinToken must be a string')
      await node.join(b as JoinRequest)
    })
    .route('GET', '/swarm', () => {
      const c = node.manager().cluster.record()
      return { ...clusterInfo(c), JoinTokens: { Worker: c.tokens.worker, Manager: c.tokens.manager } }
    })
    .route('POST', '/swarm/update', async req => {
      objectBody(req.body, 'swarm.Spec')
      await node.manager().sync()
      await node.manager().cluster.rotateTokens(versionParam(req.query), req.query.get('rotateWorkerToken') === 'true', req.query.get('rotateManagerToken') === 'true')
    })
    .route('POST', '/swarm/leave', async req => {
      await node.leave(req.query.get('force') === 'true' || req.query.get('force') === '1')
    })
}
