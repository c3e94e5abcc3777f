import { arch, cpus, totalmem } from 'node:os'
import type { Manager } from '../manager/manager.js'
import type { SwarmNode } from '../node/node.js'
import type { Availability, NodeRecord, NodeSpec } from '../types/node.js'
import { filterNodes } from '../manager/filters.js'
import { parseFilters } from '../manager/services.js'
import { VERSION } from '../types/version.js'
import { ApiError } from './api-error.js'
import { objectBody, type ApiServer } from './http.js'
import { versionParam } from './params.js'
import { tlsInfo } from './swarm-routes.js'

const ARCH = arch() === 'x64' ? 'x86_64' : arch()

/** Docker's Node object. */
export function nodeObject(m: Manager, n: NodeRecord): Record<string, unknown> {
  const state = m.nodeState(n)
  const manager = m.managerStatus(n)
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
      // The only plugin swarmd has: its network driver.
      Engine: { EngineVersion: VERSION, Labels: {}, Plugins: [{ Type: 'Network', Name: 'overlay' }] },
      // Every node's certificate comes from the cluster CA.
      TLSInfo: tlsInfo(m.cluster.ca().publicKey),
    },
    Status: { State: state, Message: state === 'unknown' ? 'Node moved to "unknown" state due to leadership change in cluster' : '', Addr: n.addr },
    ...(manager ? { ManagerStatus: manager } : {}),
  }
}

const AVAILABILITY: readonly Availability[] = ['active', 'pause', 'drain']

/** moby's NodeSpecToGRPC: role and availability matched without case, refused with its texts (%q is JSON's quoting for these). */
function nodeSpec(body: unknown): NodeSpec {
  const b = objectBody(body, 'swarm.NodeSpec')
  const role = String(b.Role ?? '').toLowerCase()
  if (role !== 'manager' && role !== 'worker') throw new ApiError(400, `invalid Role: ${JSON.stringify(String(b.Role ?? ''))}`)
  const availability = String(b.Availability ?? '').toLowerCase() as Availability
  if (!AVAILABILITY.includes(availability)) throw new ApiError(400, `invalid Availability: ${JSON.stringify(String(b.Availability ?? ''))}`)
  const labels = (b.Labels ?? {}) as Record<string, unknown>
  if (typeof labels !== 'object' || Object.values(labels).some(v => typeof v !== 'string')) throw new ApiError(400, 'invalid Labels: it must map strings to strings')
  return { ...(typeof b.Name === 'string' ? { Name: b.Name } : {}), Labels: labels as Record<string, string>, Role: role, Availability: availability }
}

const forced = (q: URLSearchParams): boolean => q.get('force') === 'true' || q.get('force') === '1'

/** /nodes: list, inspect (ID, ID prefix or hostname), update, remove. */
export function mountNodeRoutes(api: ApiServer, node: SwarmNode): void {
  const obj = (n: NodeRecord): Record<string, unknown> => nodeObject(node.manager(), n)
  api
    .route('GET', '/nodes', req => filterNodes(node.manager().nodes.list(), parseFilters(req.query.get('filters')), () => ({})).map(obj))
    .route('GET', '/nodes/:id', req => obj(node.manager().nodes.get(req.params.id!)))
    .route('DELETE', '/nodes/:id', async req => {
      const m = node.manager()
      await m.sync()
      await m.removeNode(req.params.id!, forced(req.query))
    })
    .route('POST', '/nodes/:id/update', async req => {
      const m = node.manager()
      await m.sync()
      await m.updateNode(req.params.id!, versionParam(req.query), nodeSpec(req.body))
    })
}
