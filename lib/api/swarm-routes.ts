import type { KeyObject } from 'node:crypto'
import { clusterSpec } from '../manager/cluster-spec.js'
import type { Manager } from '../manager/manager.js'
import { humanUnlockKey } from '../manager/unlock-key.js'
import type { SwarmNode } from '../node/node.js'
import type { JoinRequest } from '../types/node.js'
import { ApiError } from './api-error.js'
import { objectBody, type ApiServer } from './http.js'
import { versionParam } from './params.js'

/**
 * Docker's TLSInfo of the swarm's trust root. swarmd's node CA is an
 * Ed25519 key that signs swarmd's own certificates, not an x509 CA: the
 * trust root is that public key (PEM, SPKI, as openssl reads it), and
 * there is no issuer subject to show.
 */
export function tlsInfo(caPublicKey: KeyObject): Record<string, string> {
  return {
    TrustRoot: caPublicKey.export({ type: 'spki', format: 'pem' }).toString(),
    CertIssuerSubject: '',
    CertIssuerPublicKey: caPublicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
  }
}

/** Docker's ClusterInfo (the Swarm object without join tokens). */
export function clusterInfo(m: Manager): Record<string, unknown> {
  const c = m.cluster.record()
  return {
    ID: c.id,
    Version: { Index: c.version },
    CreatedAt: c.createdAt,
    UpdatedAt: c.updatedAt,
    Spec: clusterSpec(c),
    TLSInfo: tlsInfo(m.cluster.ca().publicKey),
    RootRotationInProgress: false,
    DataPathPort: c.dataPathPort,
    DefaultAddrPool: ['10.0.0.0/8'],
    SubnetSize: 24,
  }
}

const truthy = (v: string | null): boolean => v === 'true' || v === '1'

/** /swarm: init, join, leave, inspect, update (settings, tokens, autolock), unlock and the unlock key. */
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
      const m = node.manager()
      const c = m.cluster.record()
      return { ...clusterInfo(m), JoinTokens: { Worker: c.tokens.worker, Manager: c.tokens.manager } }
    })
    .route('POST', '/swarm/update', async req => {
      const spec = objectBody(req.body, 'swarm.Spec')
      const m = node.manager()
      await m.sync()
      const q = req.query
      await m.cluster.update(versionParam(q), spec, { worker: truthy(q.get('rotateWorkerToken')), manager: truthy(q.get('rotateManagerToken')), unlockKey: truthy(q.get('rotateManagerUnlockKey')) })
    })
    .route('GET', '/swarm/unlockkey', () => {
      const key = node.manager().cluster.unlockKey()
      return { UnlockKey: key ? humanUnlockKey(key) : '' }
    })
    .route('POST', '/swarm/unlock', async req => {
      const b = objectBody(req.body, 'swarm.UnlockRequest')
      await node.unlock(typeof b.UnlockKey === 'string' ? b.UnlockKey : '')
    })
    .route('POST', '/swarm/leave', async req => {
      await node.leave(req.query.get('force') === 'true' || req.query.get('force') === '1')
    })
}
