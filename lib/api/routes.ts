import { arch, cpus, hostname as osHostname, release, totalmem } from 'node:os'
import { ApiError } from '../errors.js'
import type { Availability, ClusterRecord, JoinRequest, NodeRecord, NodeSpec, SwarmManager } from '../manager/swarm.js'
import { VERSION } from '../version.js'
import { API_VERSION, objectBody, type ApiServer } from './http.js'
import { mountNetworkRoutes } from './network-routes.js'
import { mountServiceRoutes } from './service-routes.js'

const ARCH = arch() === 'x64' ? 'x86_64' : arch()

/** Docker's Node object. */
export function nodeObject(m: SwarmManager, n: NodeRecord): Record<string, unknown> {
  const state = m.nodeState(n.id)
  return {
    ID: n.id,
    Version: { Index: n.version },
    CreatedAt: n.createdAt,
    UpdatedAt: n.updatedAt,
    Spec: { Name: n.spec.Name ?? '', Labels: n.spec.Labels, Role: n.spec.Role, Availability: n.spec.Availability },
    Description: {
      Hostname: n.hostname,
      Platform: { Architecture: ARCH, OS: 'linux' },
      Resources: { NanoCPUs: cpus().length * 1e9, MemoryBytes: totalmem() },
      Engine: { EngineVersion: VERSION, Labels: {}, Plugins: [] },
      TLSInfo: {},
    },
    Status: { State: state, Message: state === 'unknown' ? 'Node moved to "unknown" state due to leadership change in cluster' : '', Addr: n.addr },
    ...(n.spec.Role === 'manager' && n.managerAddr ? { ManagerStatus: { Leader: n.id === m.nodeId, Reachability: 'reachable', Addr: n.managerAddr } } : {}),
  }
}

function clusterSpec(): Record<string, unknown> {
  return {
    Name: 'default',
    Labels: {},
    Orchestration: { TaskHistoryRetentionLimit: 5 },
    Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 },
    Dispatcher: { HeartbeatPeriod: 5_000_000_000 },
    CAConfig: { NodeCertExpiry: 7_776_000_000_000_000 },
    TaskDefaults: {},
    EncryptionConfig: { AutoLockManagers: false },
  }
}

/** Docker's ClusterInfo (the Swarm object without join tokens). */
function clusterInfo(c: ClusterRecord): Record<string, unknown> {
  return {
    ID: c.id,
    Version: { Index: c.version },
    CreatedAt: c.createdAt,
    UpdatedAt: c.updatedAt,
    Spec: clusterSpec(),
    TLSInfo: { TrustRoot: '', CertIssuerSubject: '', CertIssuerPublicKey: '' },
    RootRotationInProgress: false,
    DataPathPort: c.dataPathPort,
    DefaultAddrPool: ['10.0.0.0/8'],
    SubnetSize: 24,
  }
}

function versionParam(q: URLSearchParams): number {
  const v = Number(q.get('version'))
  if (!q.has('version') || !Number.isInteger(v) || v < 0) throw new ApiError(400, 'invalid or missing version parameter: it must be the object\'s current Version.Index')
  return v
}

const AVAILABILITY: readonly Availability[] = ['active', 'pause', 'drain']

function nodeSpec(body: unknown): NodeSpec {
  const b = objectBody(body, 'swarm.NodeSpec')
  const role = b.Role ?? 'worker'
  if (role !== 'manager' && role !== 'worker') throw new ApiError(400, `invalid Role "${String(role)}": it must be "manager" or "worker"`)
  const availability = b.Availability ?? 'active'
  if (!AVAILABILITY.includes(availability as Availability)) throw new ApiError(400, `invalid Availability "${String(availability)}": it must be "active", "pause" or "drain"`)
  const labels = (b.Labels ?? {}) as Record<string, unknown>
  if (typeof labels !== 'object' || Object.values(labels).some(v => typeof v !== 'string')) throw new ApiError(400, 'invalid Labels: it must map strings to strings')
  return { ...(typeof b.Name === 'string' ? { Name: b.Name } : {}), Labels: labels as Record<string, string>, Role: role, Availability: availability as Availability }
}

/** The swarm subset of the Docker Engine API, so `docker -H unix://…` works against swarmd. */
export function mountRoutes(api: ApiServer, m: SwarmManager, hostname: string): void {
  api
    .route('GET', '/_ping', () => 'OK')
    .route('GET', '/version', () => ({
      Platform: { Name: 'swarmd' },
      Version: VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: '1.24',
      Os: 'linux',
      Arch: arch() === 'x64' ? 'amd64' : arch(),
      KernelVersion: release(),
      GoVersion: process.version,
      GitCommit: '',
      BuildTime: '',
      Components: [{ Name: 'swarmd', Version: VERSION, Details: { ApiVersion: API_VERSION } }],
    }))
    .route('GET', '/info', () => {
      const c = m.cluster
      const w = m.worker
      const nodes = c ? m.nodes() : []
      const me = c ? nodes.find(n => n.id === m.nodeId) : undefined
      return {
        ID: m.nodeId,
        Name: hostname || osHostname(),
        ServerVersion: VERSION,
        OperatingSystem: 'swarmd',
        OSType: 'linux',
        Architecture: ARCH,
        NCPU: cpus().length,
        MemTotal: totalmem(),
        KernelVersion: release(),
        Containers: 0,
        Images: 0,
        Driver: 'none',
        Swarm: c
          ? {
              NodeID: m.nodeId,
              NodeAddr: me?.addr ?? '',
              LocalNodeState: 'active',
              ControlAvailable: true,
              Error: '',
              RemoteManagers: nodes.filter(n => n.managerAddr).map(n => ({ NodeID: n.id, Addr: n.managerAddr })),
              Nodes: nodes.length,
              Managers: nodes.filter(n => n.spec.Role === 'manager').length,
              Cluster: clusterInfo(c),
            }
          : w
            ? {
                NodeID: m.nodeId,
                NodeAddr: w.advertiseAddr.split(':')[0],
                LocalNodeState: 'active',
                ControlAvailable: false,
                Error: '',
                RemoteManagers: [{ NodeID: '', Addr: w.managerAddr }],
              }
            : { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      }
    })
    .route('POST', '/swarm/init', req => m.init(objectBody(req.body, 'swarm.InitRequest')))
    .route('POST', '/swarm/join', async req => {
      const b = objectBody(req.body, 'swarm.JoinRequest')
      if (!Array.isArray(b.RemoteAddrs) || b.RemoteAddrs.some(a => typeof a !== 'string')) throw new ApiError(400, 'RemoteAddrs must be a list of manager addresses')
      if (typeof b.JoinToken !== 'string') throw new ApiError(400, 'JoinToken must be a string')
      await m.join(b as JoinRequest)
    })
    .route('GET', '/swarm', () => {
      const c = m.requireCluster()
      return { ...clusterInfo(c), JoinTokens: { Worker: c.tokens.worker, Manager: c.tokens.manager } }
    })
    .route('POST', '/swarm/update', async req => {
      objectBody(req.body, 'swarm.Spec')
      await m.rotateTokens(versionParam(req.query), req.query.get('rotateWorkerToken') === 'true', req.query.get('rotateManagerToken') === 'true')
    })
    .route('POST', '/swarm/leave', async req => {
      await m.leave(req.query.get('force') === 'true' || req.query.get('force') === '1')
    })
    .route('GET', '/nodes', () => m.nodes().map(n => nodeObject(m, n)))
    .route('GET', '/nodes/:id', req => nodeObject(m, m.node(req.params.id!)))
    .route('DELETE', '/nodes/:id', async req => {
      await m.removeNode(req.params.id!, req.query.get('force') === 'true' || req.query.get('force') === '1')
    })
    .route('POST', '/nodes/:id/update', async req => {
      await m.updateNode(req.params.id!, versionParam(req.query), nodeSpec(req.body))
    })
  mountServiceRoutes(api, m)
  mountNetworkRoutes(api, () => m.networks())
}
