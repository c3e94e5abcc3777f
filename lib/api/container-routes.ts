import type { LocalTask } from '../agent/agent.js'
import { acceptFilters, argsMatch, kvListMatch, type Filters } from '../manager/filters.js'
import { parseFilters } from '../manager/services.js'
import type { SwarmNode } from '../node/node.js'
import { SwarmError } from '../types/errors.js'
import { ApiError } from './api-error.js'
import { byNewest, containerId, containerInspect, containerState, containerSummary } from './container-object.js'
import type { ApiServer } from './http.js'
import { logsResponse } from './service-routes.js'

/** dockerd's `docker ps` filters (daemon/list.go acceptedPsFilterTags). */
const PS_FILTERS = ['ancestor', 'before', 'expose', 'exited', 'health', 'id', 'isolation', 'is-task', 'label', 'name', 'network', 'publish', 'since', 'status', 'volume']
/** Those that mean something for what swarmd runs; the others are refused rather than ignored. */
const SUPPORTED = new Set(['exited', 'id', 'is-task', 'label', 'name', 'status'])
const STATES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead']

const truthy = (v: string | null): boolean => v === '1' || v === 'true'

/** daemon/list.go's filters over this node's tasks: id and name (exact or a regexp), labels, status, exit code, is-task. */
export function filterContainers(list: LocalTask[], f: Filters): LocalTask[] {
  acceptFilters(f, PS_FILTERS)
  for (const k of f.keys()) if (!SUPPORTED.has(k)) throw new SwarmError('E_UNSUPPORTED', `swarmd does not support the '${k}' filter on the tasks it lists as containers`)
  const get = (k: string): string[] => f.get(k) ?? []
  for (const s of get('status')) if (!STATES.includes(s)) throw new SwarmError('E_INVALID_FILTER', `Invalid filter 'status=${s}'`)
  const exited = get('exited').map(v => {
    const n = Number(v)
    if (!Number.isInteger(n)) throw new SwarmError('E_INVALID_FILTER', `strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`)
    return n
  })
  const isTask = get('is-task')
  if (isTask.length && !isTask.includes('true') && !isTask.includes('false')) throw new SwarmError('E_INVALID_FILTER', `Invalid filter 'is-task=[${isTask.join(' ')}]'`)
  return list.filter(
    lt =>
      (!f.has('id') || argsMatch(get('id'), containerId(lt))) &&
      (!f.has('name') || argsMatch(get('name'), `/${lt.name}`) || argsMatch(get('name'), lt.name)) &&
      kvListMatch(get('label'), lt.labels) &&
      (!f.has('status') || get('status').includes(containerState(lt))) &&
      (!exited.length || (containerState(lt) === 'exited' && exited.includes(lt.task.Status.ContainerStatus?.ExitCode ?? 0))) &&
      // Every container swarmd lists is a swarm task.
      (!isTask.length || isTask.includes('true')),
  )
}

/** A container by full ID, name (with or without its slash), or unique ID prefix; dockerd's "No such container" otherwise. */
function findContainer(list: LocalTask[], ref: string): LocalTask {
  const name = ref.replace(/^\//, '')
  const exact = list.find(lt => containerId(lt) === ref || lt.name === name)
  if (exact) return exact
  const prefix = ref ? list.filter(lt => containerId(lt).startsWith(ref)) : []
  if (prefix.length > 1) throw new ApiError(400, `Multiple IDs found with provided prefix: ${ref}`)
  if (!prefix[0]) throw new ApiError(404, `No such container: ${ref}`)
  return prefix[0]
}

/**
 * The containers of the Engine API, over the tasks this node runs (as a
 * worker or a manager): `docker ps`, `docker inspect` and `docker logs`
 * against swarmd list its process tasks as a swarm node lists its task
 * containers.
 */
export function mountContainerRoutes(api: ApiServer, node: SwarmNode, now: () => number = Date.now): void {
  const local = (): LocalTask[] => node.localTasks?.list() ?? []
  api
    .route('GET', '/containers/json', req => {
      const q = req.query
      const limit = Number(q.get('limit') ?? '-1')
      const f = parseFilters(q.get('filters'))
      // As dockerd: a limit or a status filter shows stopped containers too.
      const all = truthy(q.get('all')) || limit > 0 || (f.get('status') ?? []).length > 0
      const list = filterContainers(local(), f)
        .filter(lt => all || containerState(lt) === 'running')
        .sort(byNewest)
      return (limit > 0 ? list.slice(0, limit) : list).map(lt => containerSummary(lt, now()))
    })
    .route('GET', '/containers/:id/json', req => containerInspect(findContainer(local(), req.params.id!)))
    .route('GET', '/containers/:id/logs', req => {
      const lt = findContainer(local(), req.params.id!)
      return logsResponse(req.query, (opts, onLine, signal) => node.localTasks!.logs(lt.task.ID, opts, l => onLine(l, {}), signal), false)
    })
}
