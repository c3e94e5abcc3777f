import type { ServerResponse } from 'node:http'
import { ApiError } from './api-error.js'
import { applyDefaults } from '../manager/service-spec.js'
import { filterServices } from '../manager/filters.js'
import { parseFilters } from '../manager/services.js'
import type { SwarmNode } from '../node/node.js'
import type { LogLine, LogOptions } from '../types/logs.js'
import type { Task } from '../types/task.js'
import { StreamResponse, type ApiServer } from './http.js'

const truthy = (v: string | null): boolean => v === '1' || v === 'true'

/** Docker's multiplexed stream frame: [stream, 0, 0, 0, length BE] then the payload. */
export function frame(stream: 1 | 2, payload: Buffer): Buffer {
  const h = Buffer.alloc(8)
  h[0] = stream
  h.writeUInt32BE(payload.length, 4)
  return Buffer.concat([h, payload])
}

/** Docker's `k=v,k=v` details, sorted by key, each part query-escaped as Go's url.QueryEscape. */
export function details(attrs: Record<string, string>): string {
  const esc = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase())
  return Object.keys(attrs)
    .sort()
    .map(k => `${esc(k)}=${esc(attrs[k]!)}`)
    .join(',')
}

/** RFC3339Nano with the fixed nine digits Docker prints (jsonmessage.RFC3339NanoFixed). */
const fixedNanos = (t: string): string => t.replace(/\.(\d+)Z$/, (_, f: string) => `.${f.padEnd(9, '0').slice(0, 9)}Z`).replace(/:(\d\d)Z$/, ':$1.000000000Z')

/** `since` as the docker CLI sends it: unix seconds, maybe fractional; or an RFC 3339 time. */
function parseSince(v: string | null): number | undefined {
  if (!v || v === '0') return undefined
  const n = Number(v)
  if (Number.isFinite(n)) return n * 1000
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new ApiError(400, `invalid value for "since": ${v}`)
  return t
}

/** Reads log lines for a logs response: each with the `details` attributes it shows (`--details`). */
export type LogSource = (opts: LogOptions, onLine: (l: LogLine, details: Record<string, string>) => void, signal: AbortSignal) => Promise<void>

/**
 * A logs answer in Docker's multiplexed stream, from `read`: streams,
 * tail, since, follow, timestamps and details as the query asks. Service
 * and task logs show both streams unless asked otherwise; a container's
 * only the ones asked for, as dockerd's.
 */
export function logsResponse(q: URLSearchParams, read: LogSource, streamsByDefault = true): StreamResponse {
  const stdout = q.has('stdout') ? truthy(q.get('stdout')) : streamsByDefault
  const stderr = q.has('stderr') ? truthy(q.get('stderr')) : streamsByDefault
  if (!stdout && !stderr) throw new ApiError(400, 'Bad parameters: you must choose at least one stream')
  const tail = q.get('tail')
  const tailN = tail && tail !== 'all' ? Number(tail) : undefined
  if (tailN !== undefined && (!Number.isInteger(tailN) || tailN < 0)) throw new ApiError(400, `invalid value for "tail": ${tail}`)
  const opts = { ...(tailN !== undefined ? { tail: tailN } : {}), ...(parseSince(q.get('since')) !== undefined ? { since: parseSince(q.get('since'))! } : {}), follow: truthy(q.get('follow')) }
  const withTimes = truthy(q.get('timestamps'))
  const withDetails = truthy(q.get('details'))
  return new StreamResponse('application/vnd.docker.multiplexed-stream', async (res: ServerResponse, signal: AbortSignal) => {
    await read(
      opts,
      (l, attrs) => {
        if ((l.stream === 'stdout' && !stdout) || (l.stream === 'stderr' && !stderr)) return
        let line = l.text + '\n'
        if (withDetails) line = `${details(attrs)} ${line}`
        if (withTimes) line = `${fixedNanos(l.time)} ${line}`
        res.write(frame(l.stream === 'stdout' ? 1 : 2, Buffer.from(line)))
      },
      signal,
    )
  })
}

/** The logs of swarm tasks, from the nodes that ran them. */
function taskLogsResponse(node: SwarmNode, tasks: Task[], q: URLSearchParams): StreamResponse {
  return logsResponse(q, (opts, onLine, signal) =>
    node.manager().taskLogs(
      tasks,
      opts,
      (task, l) => onLine(l, { 'com.docker.swarm.node.id': task.NodeID ?? '', 'com.docker.swarm.service.id': task.ServiceID, 'com.docker.swarm.task.id': task.ID }),
      signal,
    ),
  )
}

/** Services, tasks and logs of the Docker Engine API. */
export function mountServiceRoutes(api: ApiServer, node: SwarmNode): void {
  const m = {
    services: () => node.manager().services,
  }
  const nodeRef = (ref: string): string | undefined => {
    try {
      return node.manager().nodes.get(ref).id
    } catch {
      return undefined
    }
  }
  api
    .route('POST', '/services/create', async req => ({ ID: await m.services().create(req.body) }))
    .route('GET', '/services', req => {
      const s = m.services()
      const list = filterServices(s.list(), parseFilters(req.query.get('filters')))
      return list.map(x => (truthy(req.query.get('status')) ? { ...x, ServiceStatus: s.status(x) } : x))
    })
    .route('GET', '/services/:id', req => {
      const svc = m.services().get(req.params.id!)
      return truthy(req.query.get('insertDefaults')) ? { ...svc, Spec: applyDefaults(svc.Spec) } : svc
    })
    .route('POST', '/services/:id/update', async req => {
      const v = Number(req.query.get('version'))
      if (!req.query.has('version') || !Number.isInteger(v)) throw new ApiError(400, 'invalid or missing version parameter: it must be the service\'s current Version.Index')
      await m.services().update(req.params.id!, v, req.body, req.query.get('rollback') === 'previous')
      return { Warnings: null }
    })
    .route('DELETE', '/services/:id', async req => {
      await m.services().remove(req.params.id!)
    })
    .route('GET', '/services/:id/logs', req => {
      const svc = m.services().get(req.params.id!)
      return taskLogsResponse(node, m.services().tasks(new Map([['service', [svc.ID]]]), nodeRef), req.query)
    })
    .route('GET', '/tasks', req => m.services().tasks(parseFilters(req.query.get('filters')), nodeRef))
    .route('GET', '/tasks/:id', req => taskByRef(node, req.params.id!))
    .route('GET', '/tasks/:id/logs', req => taskLogsResponse(node, [taskByRef(node, req.params.id!)], req.query))
}

function taskByRef(node: SwarmNode, ref: string): Task {
  const all = node.manager().services.tasks(new Map(), () => undefined)
  const t = all.find(x => x.ID === ref) ?? (ref.length >= 1 ? all.filter(x => x.ID.startsWith(ref)) : []).at(0)
  if (!t) throw new ApiError(404, `task ${ref} not found`)
  return t
}
