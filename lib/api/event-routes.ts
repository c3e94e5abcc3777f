import type { ServerResponse } from 'node:http'
import { eventMatches } from '../manager/event-filter.js'
import type { EventLog } from '../manager/event-log.js'
import { eventJson } from '../manager/events.js'
import { parseFilters } from '../manager/services.js'
import { ApiError } from './api-error.js'
import { StreamResponse, type ApiServer } from './http.js'

/** moby's timetypes.ParseTimestamps as the docker CLI sends it: `seconds[.nanoseconds]`, as Unix nanoseconds. */
export function eventTime(v: string | null): bigint | undefined {
  if (v === null || v === '') return undefined
  const m = /^(-?\d+)(?:\.(\d{1,9}))?$/.exec(v)
  if (!m) throw new ApiError(400, `strconv.ParseInt: parsing ${JSON.stringify(v.split('.')[0])}: invalid syntax`)
  return BigInt(m[1]!) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0')
}

/**
 * GET /events, as dockerd's: the kept events between `since` and `until`
 * that pass the filters, then (unless `until` is past) every new one as it
 * comes, until `until` or the client goes; one JSON object per line.
 */
export function mountEventRoutes(api: ApiServer, events: EventLog, now: () => number = Date.now): void {
  api.route('GET', '/events', req => {
    const q = req.query
    const since = eventTime(q.get('since'))
    const until = eventTime(q.get('until'))
    if (until !== undefined && since !== undefined && until < since) {
      throw new ApiError(400, `\`since\` time (${q.get('since')}) cannot be after \`until\` time (${q.get('until')})`)
    }
    const filters = parseFilters(q.get('filters'))
    return new StreamResponse('application/json', async (res: ServerResponse, signal: AbortSignal) => {
      const send = (e: Parameters<typeof eventMatches>[1]): void => {
        if (eventMatches(filters, e)) res.write(eventJson(e))
      }
      const left = until === undefined ? Infinity : Number((until - BigInt(now()) * 1_000_000n) / 1_000_000n)
      const stop = left > 0 ? events.listen(send) : undefined
      for (const e of events.kept(since, until)) send(e)
      if (!stop) return
      await new Promise<void>(resolve => {
        // Node's timers hold at most 2^31 - 1 ms: a later `until` waits for the client instead.
        const timer = left < 2 ** 31 ? setTimeout(resolve, left) : undefined
        if (signal.aborted) resolve()
        signal.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        })
      })
      stop()
    })
  })
}
