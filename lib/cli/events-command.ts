import type { Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import { sinceParam } from './log-prefix.js'
import { filterFlags, filtersQuery, out } from './service-commands.js'
import { collect, parseGoDuration } from './service-flags.js'

/** swarmctl events: docker's `events`, its options and its lines. */

interface EventObj {
  Type: string
  Action: string
  Actor: { ID: string; Attributes?: Record<string, string> }
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0')

/** Go's RFC3339NanoFixed in local time, as docker prints an event's time. */
export function eventTime(timeNano: bigint): string {
  const ms = Number(timeNano / 1_000_000n)
  const d = new Date(ms)
  const off = -d.getTimezoneOffset()
  const zone = off === 0 ? 'Z' : `${off < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  return `${date}.${String(timeNano % 1_000_000_000n).padStart(9, '0')}${zone}`
}

/** docker's prettyPrintEvent: time, type, action, actor, then the attributes in key order. */
export function prettyEvent(line: string): string {
  const e = JSON.parse(line) as EventObj
  // timeNano is beyond a double's integers: read from the text.
  const nano = /"timeNano":(\d+)/.exec(line)?.[1]
  const attrs = e.Actor.Attributes ?? {}
  const keys = Object.keys(attrs).sort()
  const tail = keys.length ? ` (${keys.map(k => `${k}=${attrs[k]}`).join(', ')})` : ''
  return `${nano ? `${eventTime(BigInt(nano))} ` : ''}${e.Type} ${e.Action} ${e.Actor.ID}${tail}\n`
}

/** A `--format` over an event: `{{json .}}`, or fields by path (`{{.Actor.ID}}`). */
function formatEvent(format: string, line: string): string {
  const e = JSON.parse(line) as Record<string, unknown>
  const field = (path: string): string => {
    let v: unknown = e
    for (const k of path.split('.').filter(Boolean)) v = (v as Record<string, unknown> | undefined)?.[k]
    return v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v)
  }
  return format.replace(/\{\{\s*json\s+\.\s*\}\}/g, line.trim()).replace(/\{\{\s*\.([\w.]*)\s*\}\}/g, (_, p: string) => field(p)) + '\n'
}

export function addEventsCommand(program: Command, client: () => ApiClient): void {
  program
    .command('events')
    .description('Get real time events from the server')
    .option('--since <time>', 'show all events created since timestamp')
    .option('--until <time>', 'stream events until this timestamp')
    .option('-f, --filter <filter>', 'filter output based on conditions provided', collect)
    .option('--format <string>', 'format the output using the given Go template')
    .action(async (o: { since?: string; until?: string; filter?: string[]; format?: string }) => {
      const now = Date.now()
      const q = [
        // docker's GetTimestamp: a Unix time, a Go duration back from now, or a date.
        ...(o.since ? [`since=${sinceParam(o.since, now, parseGoDuration)}`] : []),
        ...(o.until ? [`until=${sinceParam(o.until, now, parseGoDuration)}`] : []),
        filtersQuery(filterFlags(o.filter)),
      ].filter(Boolean)
      const res = await client().stream(`/events${q.length ? `?${q.join('&')}` : ''}`)
      let buf = ''
      res.setEncoding('utf8')
      for await (const chunk of res) {
        buf += String(chunk)
        let i: number
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i)
          buf = buf.slice(i + 1)
          if (line.trim()) out(o.format ? formatEvent(o.format, line) : prettyEvent(line))
        }
      }
    })
}
