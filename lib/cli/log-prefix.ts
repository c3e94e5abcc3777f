import { SwarmdError } from '../types/errors.js'

/**
 * `service logs` on the client side, as docker/cli's logs.go reads it:
 * Docker's multiplexed stream (stdcopy) of lines `[<timestamp> ]<details> <message>`
 * where details are `k=v` pairs, comma-separated and URL-query-escaped,
 * that carry com.docker.swarm.{node,service,task}.id.
 */

export interface Frame {
  stream: 'stdout' | 'stderr'
  payload: Buffer
}

/**
 * Splits Docker's multiplexed stream: an 8-byte header [stream, 0, 0, 0,
 * size u32 BE] then `size` bytes. Feed chunks as they come; frames split
 * across chunks are kept until complete.
 */
export class Demuxer {
  private buf: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    const frames: Frame[] = []
    while (this.buf.length >= 8) {
      const kind = this.buf[0]!
      const size = this.buf.readUInt32BE(4)
      if (this.buf.length < 8 + size) break
      // stdin (0) and systemerr (3) as stdcopy knows them; 3 carries a daemon error.
      if (kind === 3) throw new SwarmdError('E_LOGS', `error from daemon in stream: ${this.buf.subarray(8, 8 + size).toString()}`)
      if (kind !== 0 && kind !== 1 && kind !== 2) throw new SwarmdError('E_LOGS', `Unrecognized input header: ${kind}`)
      frames.push({ stream: kind === 2 ? 'stderr' : 'stdout', payload: this.buf.subarray(8, 8 + size) })
      this.buf = this.buf.subarray(8 + size)
    }
    return frames
  }

  /** Bytes of an incomplete frame left at the end of the stream. */
  get pending(): number {
    return this.buf.length
  }
}

/** logdetails.Parse: `k=v,k2=v2`, each side URL-query-unescaped. */
export function parseDetails(s: string): Map<string, string> {
  const m = new Map<string, string>()
  if (!s) return m
  const unescape = (x: string): string => decodeURIComponent(x.replace(/\+/g, ' '))
  for (const pair of s.split(',')) {
    const i = pair.indexOf('=')
    if (i < 0) throw new SwarmdError('E_LOGS', `invalid details format: ${s}`)
    m.set(unescape(pair.slice(0, i)), unescape(pair.slice(i + 1)))
  }
  return m
}

export interface LogLine {
  timestamp?: string
  nodeID: string
  serviceID: string
  taskID: string
  /** Details other than the three IDs, for --details. */
  details: Map<string, string>
  /** The message with its newline, as the daemon sent it. */
  message: string
}

/** One frame's payload; `timestamps` says whether the daemon was asked for them. */
export function parseLogLine(payload: string, timestamps: boolean): LogLine {
  const n = timestamps ? 3 : 2
  const parts: string[] = []
  let rest = payload
  while (parts.length < n - 1) {
    const i = rest.indexOf(' ')
    if (i < 0) throw new SwarmdError('E_LOGS', `invalid context in log message: ${payload}`)
    parts.push(rest.slice(0, i))
    rest = rest.slice(i + 1)
  }
  const details = parseDetails(parts[n - 2]!)
  const take = (k: string, what: string): string => {
    const v = details.get(k)
    if (v === undefined) throw new SwarmdError('E_LOGS', `missing ${what} id in details: ${payload}`)
    details.delete(k)
    return v
  }
  return {
    ...(timestamps && { timestamp: parts[0] }),
    nodeID: take('com.docker.swarm.node.id', 'node'),
    serviceID: take('com.docker.swarm.service.id', 'service'),
    taskID: take('com.docker.swarm.task.id', 'task'),
    details,
    message: rest,
  }
}

const digits = (n: number): number => String(n).length

/**
 * `<service>.<slot>[.<taskID>]@<node><pad>`: the pad lines prefixes up to
 * the width of the largest slot (`replicas`).
 */
export function logContext(o: { service: string; slot: number; taskID: string; node: string; replicas: number; noTaskIDs?: boolean; noTrunc?: boolean }): string {
  let name = `${o.service}.${o.slot}`
  if (!o.noTaskIDs) name += '.' + (o.noTrunc ? o.taskID : o.taskID.slice(0, 12))
  return `${name}@${o.node}${' '.repeat(Math.max(0, digits(o.replicas) - digits(o.slot)))}`
}

/** A printed line: `[<ts> ]<context>    | [k=v,... ]<message>`. */
export function formatLogLine(line: LogLine, context: string, showDetails: boolean): string {
  let out = line.timestamp !== undefined ? line.timestamp + ' ' : ''
  out += context + '    | '
  if (showDetails) {
    out +=
      [...line.details]
        .map(([k, v]) => `${k}=${v}`)
        .sort()
        .join(',') + ' '
  }
  return out + line.message
}

/** `--since`: a Go duration back from now or a date, as the unix seconds the API takes. */
export function sinceParam(v: string, now: number, parseDuration: (s: string) => number): string {
  if (/^\d+(\.\d+)?$/.test(v)) return v
  let ms: number
  try {
    ms = now - parseDuration(v) / 1e6
  } catch {
    ms = Date.parse(v)
    if (Number.isNaN(ms)) throw new SwarmdError('E_USAGE', `failed to parse value as time or duration: "${v}"`)
  }
  const secs = Math.floor(ms / 1000)
  return `${secs}.${String(Math.round((ms - secs * 1000) * 1e6)).padStart(9, '0')}`
}
