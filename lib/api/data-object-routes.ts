import type { DataObject, DataObjects } from '../manager/data-objects.js'
import { parseFilters } from '../manager/services.js'
import type { ApiServer } from './http.js'
import { versionParam } from './params.js'

/** The routes of one kind of swarm data object, as dockerd serves /secrets and /configs alike. */
function mountDataObjectRoutes(api: ApiServer, base: '/secrets' | '/configs', objects: () => DataObjects<DataObject>): void {
  api
    .route('POST', `${base}/create`, async req => ({ ID: await objects().create(req.body) }))
    .route('GET', base, req => objects().list(parseFilters(req.query.get('filters'))))
    .route('GET', `${base}/:id`, req => objects().get(req.params.id!))
    .route('POST', `${base}/:id/update`, async req => {
      await objects().update(req.params.id!, versionParam(req.query), req.body)
    })
    .route('DELETE', `${base}/:id`, async req => {
      await objects().remove(req.params.id!)
    })
}

/** Secrets (their data never returned) and configs (shown with theirs). */
export function mountSecretAndConfigRoutes(api: ApiServer, m: () => { secrets: DataObjects<DataObject>; configs: DataObjects<DataObject> }): void {
  mountDataObjectRoutes(api, '/secrets', () => m().secrets)
  mountDataObjectRoutes(api, '/configs', () => m().configs)
}
