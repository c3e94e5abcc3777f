/**
 * Fuzzing the Docker API plane: a real ApiServer with the real routes over a
 * real SwarmNode (a single-manager swarm in a temp data dir, gossip on
 * 127.0.0.171 unless told otherwise), fed over its unix socket with raw
 * bytes, mutated valid requests, and requests to every mounted route with
 * fuzzed path parameters, query and body.
 *
 * The verdict on each answer: the bytes back are one or more well-formed
 * HTTP responses, each 2xx or 4xx, or a 5xx that a route gives on purpose
 * as dockerd does (503 outside a swarm, 500 "update out of sequence": an
 * ApiError); an internal failure (the server's "API request failed" log
 * entry, a 500 nobody chose) is a finding. A connection closed with no
 * answer is right only for input that holds no request at all (nothing, or
 * only the blank lines HTTP allows before a request line).
 *
 * Shared by lib/api/bad-input.test.ts (fast-check properties) and by the
 * fuzz bench, which loads `plane`.
 */
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { ApiServer } from '../../lib/api/http.js'
import { mountRoutes } from '../../lib/api/routes.js'
import { SwarmNode } from '../../lib/node/node.js'
import { mutate } from '../../lib/test-helpers.test-helper.js'
import { byteEdit, feed } from './feed.js'
import type { FuzzOptions, FuzzResult } from './plane.js'

/** The objects a fresh target holds, so requests can name real ones. */
export interface Seeds {
  node: string
  hostname: string
  service: string
  task: string
  secret: string
  network: string
}

export interface ApiTarget {
  sock: string
  api: ApiServer
  manager: SwarmNode
  seeds: Seeds
  /** Internal failures the server logged (a 500 no route chose), oldest first. */
  internalErrors: string[]
  close(): Promise<void>
}

/** One parsed response. `framed` is false for a body-less answer to HEAD. */
export interface Answer {
  status: number
  headers: Record<string, string>
  body: Buffer
  framed: boolean
}

/** Every log entry at error level or above, kept as text: an internal failure to report. */
function errorSink(into: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue
        const e = JSON.parse(line) as { level: number; msg?: string; err?: { message?: string } }
        if (e.level >= 50) into.push(`${e.msg ?? ''}: ${e.err?.message ?? ''}`)
      }
      done()
    },
  })
}

/** Sends one request over a fresh connection and gives the parsed JSON answer (for seeding). */
async function call(sock: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const data = await exchange(sock, httpRequest(method, path, body === undefined ? undefined : JSON.stringify(body)))
  const [a] = parseResponses(data.bytes)
  if (!a) throw new Error(`no answer to ${method} ${path}`)
  return { status: a.status, json: a.body.length ? JSON.parse(a.body.toString('utf8')) : undefined }
}

/** Starts the target: a manager that inits a swarm on `ip` and holds one service, secret and network. */
export async function startApiTarget(opts: { ip?: string } = {}): Promise<ApiTarget> {
  const ip = opts.ip ?? '127.0.0.171'
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-fuzz-api-'))
  const internalErrors: string[] = []
  const log = pino({ level: 'error' }, errorSink(internalErrors))
  const manager = await SwarmNode.open(join(dir, 'data'), 'fuzz-node', log, { ingressAddr: ip })
  const api = new ApiServer({ logger: log })
  mountRoutes(api, manager, 'fuzz-node')
  const sock = join(dir, 'api.sock')
  await api.listen(sock)
  const close = async (): Promise<void> => {
    await api.close()
    await manager.close()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const init = await call(sock, 'POST', '/v1.41/swarm/init', { ListenAddr: `${ip}:0`, AdvertiseAddr: ip })
    if (init.status !== 200) throw new Error(`swarm init answered ${init.status}: ${JSON.stringify(init.json)}`)
    const network = await call(sock, 'POST', '/v1.41/networks/create', { Name: 'fuzz-net', Driver: 'overlay' })
    const secret = await call(sock, 'POST', '/v1.41/secrets/create', { Name: 'fuzz-secret', Data: Buffer.from('s3cr3t').toString('base64') })
    const service = await call(sock, 'POST', '/v1.41/services/create', validServiceSpec('fuzz-web'))
    // The orchestrator plans the service's tasks on its next pass.
    let tasks = await call(sock, 'GET', '/v1.41/tasks')
    for (let i = 0; i < 50 && !(tasks.json as unknown[]).length; i++) {
      await new Promise(r => setTimeout(r, 100))
      tasks = await call(sock, 'GET', '/v1.41/tasks')
    }
    const task = (tasks.json as { ID: string }[])[0]
    if (!task) throw new Error('the orchestrator planned no task for the seeded service in 5 s')
    const seeds: Seeds = {
      node: init.json as string,
      hostname: 'fuzz-node',
      network: (network.json as { Id: string }).Id,
      secret: (secret.json as { ID: string }).ID,
      service: (service.json as { ID: string }).ID,
      task: task.ID,
    }
    return { sock, api, manager, seeds, internalErrors, close }
  } catch (e) {
    await close()
    throw e
  }
}

function validServiceSpec(name: string): Record<string, unknown> {
  return {
    Name: name,
    Labels: { tier: 'web' },
    TaskTemplate: { ContainerSpec: { Image: 'busybox:latest', Command: ['sleep', '60'], Env: ['A=1'] }, RestartPolicy: { Condition: 'on-failure', MaxAttempts: 3 } },
    Mode: { Replicated: { Replicas: 2 } },
    UpdateConfig: { Parallelism: 1, Delay: 1_000_000_000, FailureAction: 'pause' },
  }
}

/** A request as the docker CLI writes one: Host, and a JSON body with its length; `extra` header lines after those. */
export function httpRequest(method: string, target: string, body?: string | Buffer, extra: string[] = []): Buffer {
  const b = body === undefined ? Buffer.alloc(0) : Buffer.from(body)
  const head =
    `${method} ${target} HTTP/1.1\r\nHost: api\r\nUser-Agent: swarmd-fuzz\r\n` +
    (body === undefined ? '' : `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n`) +
    extra.map(h => `${h}\r\n`).join('') +
    '\r\n'
  return Buffer.concat([Buffer.from(head, 'latin1'), b])
}

/**
 * Writes `bytes` on a new connection, half-closes it, and gathers what comes
 * back until the server closes. `timedOut` when it neither answers nor
 * closes within `timeoutMs`.
 */
export function exchange(sock: string, bytes: Uint8Array, timeoutMs = 5_000): Promise<{ bytes: Buffer; timedOut: boolean }> {
  return new Promise(resolve => {
    const chunks: Buffer[] = []
    const s = connect(sock)
    const timer = setTimeout(() => {
      s.destroy()
      resolve({ bytes: Buffer.concat(chunks), timedOut: true })
    }, timeoutMs)
    s.on('data', c => chunks.push(c))
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve({ bytes: Buffer.concat(chunks), timedOut: false })
    })
    s.end(bytes)
  })
}

export class MalformedAnswer extends Error {}

/** Splits what a server sent into its responses (Content-Length, chunked, or to the end), or throws MalformedAnswer. */
export function parseResponses(data: Buffer): Answer[] {
  const out: Answer[] = []
  let off = 0
  while (off < data.length) {
    const end = data.indexOf('\r\n\r\n', off)
    if (end < 0) throw new MalformedAnswer(`a response head without its end: ${JSON.stringify(data.subarray(off, off + 200).toString('latin1'))}`)
    const [statusLine = '', ...lines] = data.subarray(off, end).toString('latin1').split('\r\n')
    const m = /^HTTP\/1\.[01] (\d{3}) [^\r\n]*$/.exec(statusLine)
    if (!m) throw new MalformedAnswer(`not a status line: ${JSON.stringify(statusLine)}`)
    const headers: Record<string, string> = {}
    for (const l of lines) {
      const i = l.indexOf(':')
      if (i <= 0) throw new MalformedAnswer(`not a header: ${JSON.stringify(l)}`)
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
    }
    off = end + 4
    const status = Number(m[1])
    let body: Buffer
    let framed = true
    if (status === 100 || status === 204 || status === 304) body = Buffer.alloc(0)
    else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = []
      for (;;) {
        const eol = data.indexOf('\r\n', off)
        if (eol < 0) throw new MalformedAnswer('a chunk size without its line end')
        const size = parseInt(data.subarray(off, eol).toString('latin1'), 16)
        if (!Number.isInteger(size) || size < 0 || eol + 2 + size + 2 > data.length) throw new MalformedAnswer('a chunk cut short')
        off = eol + 2 + size + 2
        if (size === 0) break
        parts.push(data.subarray(eol + 2, eol + 2 + size))
      }
      body = Buffer.concat(parts)
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length'])
      if (!Number.isInteger(n) || n < 0 || off + n > data.length) throw new MalformedAnswer(`a body shorter than its Content-Length ${headers['content-length']}`)
      body = data.subarray(off, off + n)
      off += n
    } else if (data.subarray(off, off + 7).toString('latin1') === 'HTTP/1.' || off === data.length) {
      // An answer to HEAD: headers only.
      body = Buffer.alloc(0)
      framed = false
    } else {
      body = data.subarray(off)
      off = data.length
    }
    out.push({ status, headers, body, framed })
  }
  return out
}

/** Input that holds no request: nothing, or only the empty lines a server ignores before a request line. */
export const holdsNoRequest = (input: Uint8Array): boolean => Buffer.from(input).every(b => b === 0x0d || b === 0x0a)

/** A wrong answer says why; `internal` holds the internal failures logged for it, if that is the reason. */
export type Verdict = { ok: true; statuses: (number | 'closed')[] } | { ok: false; why: string; internal?: string[] }

/** Judges the answer to one input (see the header comment); `internal` are the internal failures logged meanwhile. */
export function judge(input: Uint8Array, answer: { bytes: Buffer; timedOut: boolean }, internal: string[]): Verdict {
  if (internal.length) return { ok: false, why: `internal error: ${internal.join('; ')}`, internal }
  if (answer.timedOut) return { ok: false, why: 'no answer and the connection stayed open' }
  if (answer.bytes.length === 0) return holdsNoRequest(input) ? { ok: true, statuses: ['closed'] } : { ok: false, why: 'closed without an answer' }
  let answers: Answer[]
  try {
    answers = parseResponses(answer.bytes)
  } catch (e) {
    return { ok: false, why: (e as Error).message }
  }
  const final = answers.filter(a => a.status !== 100)
  if (!final.length) return { ok: false, why: 'only interim answers' }
  for (const a of final) {
    if (a.status < 200 || (a.status >= 300 && a.status < 400) || a.status >= 600) return { ok: false, why: `status ${a.status}` }
    if (a.status >= 400 && a.framed) {
      let message: unknown
      try {
        message = (JSON.parse(a.body.toString('utf8')) as { message?: unknown }).message
      } catch {
        message = undefined
      }
      if (typeof message !== 'string') return { ok: false, why: `a ${a.status} without Docker's error body: ${JSON.stringify(a.body.toString('utf8').slice(0, 200))}` }
    }
  }
  return { ok: true, statuses: final.map(a => a.status) }
}

// ---------------------------------------------------------------- inputs

const bools = fc.constantFrom('true', 'false', '1', '0', 'yes', '', 'TRUE')
const ints = fc.oneof(fc.constantFrom('0', '1', '2', '-1', '1.5', '1e3', '9007199254740993', 'NaN', 'x', ''), fc.nat({ max: 50 }).map(String))
const filters = fc.oneof(
  fc.constantFrom('{"name":["fuzz"]}', '{"name":{"fuzz":true}}', '{"id":["x"]}', '{"mode":["global"]}', '{"driver":["overlay"]}', '{"type":["custom"]}', '{"dangling":["true"]}', '{"label":["a=b"]}', '{"until":["10m"]}', '{"label!":["a"]}', '{}', '[]', '{', 'null', '{"name":7}', '{"bogus":["1"]}'),
  fc.jsonValue({ maxDepth: 2 }).map(v => JSON.stringify(v)),
)
const anyText = fc.string({ maxLength: 24 })
/** Past the server's 4 MiB limit on a body. */
const MAX_BODY_TRIED = 4 * 1024 * 1024 + 16
/** Header lines that change how a request is read: expectations, upgrades, framing, content types. */
const extraHeaders = fc.array(
  fc.oneof(
    fc.constantFrom('Expect: 100-continue', 'Expect: something-else', 'Connection: Upgrade\r\nUpgrade: websocket', 'Connection: close', 'Connection: keep-alive', 'Transfer-Encoding: chunked', 'Content-Length: 0', 'Content-Length: 3', 'Content-Type: text/plain', 'Host: second', 'X-Registry-Auth: e30='),
    fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 30 })).map(([k, v]) => `${k}: ${v}`),
  ),
  { maxLength: 2 },
)

/** What each route reads from its query, with values worth trying. */
const QUERY: Record<string, Record<string, fc.Arbitrary<string>>> = {
  'POST /swarm/update': { version: ints, rotateWorkerToken: bools, rotateManagerToken: bools, rotateManagerUnlockKey: bools },
  'GET /events': { since: fc.oneof(ints, fc.constantFrom('1700000000.5', '1.0000000001', '-5')), until: fc.oneof(ints, fc.constantFrom('1700000000.5', '9999999999')), filters },
  'GET /containers/json': { all: bools, limit: ints, filters },
  'GET /containers/:id/logs': { stdout: bools, stderr: bools, tail: ints, since: ints, follow: bools, timestamps: bools },
  // Never `force=true`: that would end the swarm every other route is fuzzed against.
  'POST /swarm/leave': { force: bools.filter(v => v !== 'true' && v !== '1') },
  'DELETE /nodes/:id': { force: bools },
  'POST /nodes/:id/update': { version: ints },
  'GET /services': { filters, status: bools },
  'GET /services/:id': { insertDefaults: bools },
  'POST /services/:id/update': { version: ints, rollback: fc.constantFrom('previous', 'none', '') },
  'GET /services/:id/logs': { stdout: bools, stderr: bools, tail: fc.oneof(ints, fc.constant('all')), since: fc.oneof(ints, fc.constantFrom('2020-01-01T00:00:00Z', 'yesterday')), follow: bools, timestamps: bools, details: bools },
  'GET /tasks': { filters },
  'GET /tasks/:id/logs': { stdout: bools, stderr: bools, tail: ints, since: ints, timestamps: bools, details: bools },
  'GET /secrets': { filters },
  'GET /networks': { filters },
  'GET /networks/:id': { verbose: bools, scope: fc.constantFrom('swarm', 'local', 'global', '') },
  'POST /networks/prune': { filters },
}

/** A valid body for each route that reads one, for mutation. */
function validBody(route: string): unknown {
  switch (route) {
    case 'POST /swarm/init':
      return { ListenAddr: '127.0.0.171:2377', AdvertiseAddr: '127.0.0.171' }
    case 'POST /swarm/join':
      return { RemoteAddrs: ['127.0.0.171:2377'], JoinToken: 'SWMTKN-1-x' }
    case 'POST /swarm/update':
      return { Name: 'default', Orchestration: { TaskHistoryRetentionLimit: 5 } }
    case 'POST /nodes/:id/update':
      return { Role: 'manager', Availability: 'active', Labels: { zone: 'a' } }
    case 'POST /services/create':
      return validServiceSpec('fuzz-new')
    case 'POST /services/:id/update':
      return validServiceSpec('fuzz-web')
    case 'POST /secrets/create':
      return { Name: 'fuzz-new', Data: 'c2VjcmV0', Labels: {} }
    case 'POST /networks/create':
      return { Name: 'fuzz-new', Driver: 'overlay', Attachable: true, IPAM: { Config: [{ Subnet: '10.77.0.0/24' }] }, Labels: { a: 'b' }, Options: {} }
    default:
      return undefined
  }
}

/** Every leaf and subtree of a JSON value, by path. */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at]
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])))
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]))
  return out
}

/**
 * Counts above this make the orchestrator plan that many tasks in one go
 * (it walks 1..Replicas): a finding of its own, reported, kept out of the
 * API fuzz so a run ends.
 */
const MAX_FUZZED_COUNT = 1000

function bounded(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) > MAX_FUZZED_COUNT) return v % MAX_FUZZED_COUNT
  if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (v as Record<string, unknown>)[k] = bounded(x)
  return v
}

/** One edit of a JSON value: a subtree replaced, removed, or a key added beside it. */
function mutateJson(base: unknown, pick: number, op: 'set' | 'delete' | 'add', value: unknown, key: string): unknown {
  const root = structuredClone(base)
  // Through an own "__proto__" key, plain property access would reach the prototype instead.
  const all = paths(root).filter(p => !p.includes('__proto__'))
  const path = all[pick % all.length]!
  if (path.length === 0) return op === 'set' ? value : root
  let parent = root as Record<string | number, unknown>
  for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>
  const last = path.at(-1)!
  if (op === 'set') parent[last] = value
  else if (Array.isArray(parent)) {
    if (op === 'delete') parent.splice(last as number, 1)
    else parent.push(value)
  } else if (op === 'delete') delete parent[last]
  else if (key !== '__proto__') parent[key] = value
  return root
}

function bodyArbitrary(route: string): fc.Arbitrary<string | undefined> {
  const valid = validBody(route)
  const json = fc.jsonValue({ maxDepth: 3 }).map(bounded)
  const options: fc.Arbitrary<string | undefined>[] = [
    fc.constant(undefined),
    json.map(v => JSON.stringify(v)),
    fc.constantFrom('5', '"text"', '[]', '[{}]', 'null', 'true', '{}', '{"a":', 'not json', '\u0000', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '['.repeat(20_000) + ']'.repeat(20_000), '{"a":' + '"x"'.padEnd(MAX_BODY_TRIED, ' ') + '}'),
    anyText,
  ]
  if (valid !== undefined) {
    options.push(
      fc.constant(JSON.stringify(valid)),
      fc
        .array(fc.tuple(fc.nat(), fc.constantFrom('set', 'delete', 'add') as fc.Arbitrary<'set' | 'delete' | 'add'>, json, fc.string({ maxLength: 12 })), { minLength: 1, maxLength: 3 })
        .map(edits => JSON.stringify(edits.reduce<unknown>((v, [pick, op, x, key]) => mutateJson(v, pick, op, x, key), valid))),
    )
  }
  return fc.oneof(...options)
}

/** A path parameter: a real object's ID or name, a prefix of one, or something no ID looks like. */
function paramArbitrary(name: string, method: string, s: Seeds): fc.Arbitrary<string> {
  const real: Record<string, string[]> = { id: [s.node, s.hostname, s.service, s.task, s.secret, s.network, 'fuzz-web', 'fuzz-net', 'fuzz-secret'] }
  const odd = fc.constantFrom('%zz', '%', '%e2%82', '%ff', '%2F', '..', '.', '%00', 'a%20b', '%C3%A9', 'x'.repeat(300))
  const encoded = fc.string({ maxLength: 30 }).map(encodeURIComponent)
  // A real ID only where the route reads: deleting the seeds would leave the rest of the run nothing to find.
  const ids = method === 'DELETE' ? [] : (real[name] ?? [])
  return ids.length ? fc.oneof(fc.constantFrom(...ids), fc.constantFrom(...ids).map(x => x.slice(0, 3)), odd, encoded) : fc.oneof(odd, encoded)
}

function queryArbitrary(route: string): fc.Arbitrary<string> {
  const known = Object.entries(QUERY[route] ?? {}).map(([k, v]) => fc.tuple(fc.constant(k), v))
  const pair = known.length ? fc.oneof(...known, fc.tuple(anyText, anyText)) : fc.tuple(anyText, anyText)
  const enc = fc.boolean()
  return fc.array(fc.tuple(pair, enc), { maxLength: 4 }).map(list => list.map(([[k, v], e]) => (e ? `${encodeURIComponent(k)}=${encodeURIComponent(v)}` : `${k}=${v}`)).join('&'))
}

export interface RouteInput {
  route: string
  bytes: Buffer
}

/** A request to one mounted route, with fuzzed parameters, query and body; sometimes another method or version prefix. */
export function routeRequest(endpoints: { method: string; path: string }[], s: Seeds): fc.Arbitrary<RouteInput> {
  return fc.constantFrom(...endpoints).chain(ep => {
    const route = `${ep.method} ${ep.path}`
    const names = [...ep.path.matchAll(/:([a-zA-Z]+)/g)].map(m => m[1]!)
    return fc
      .record({
        method: fc.oneof({ weight: 9, arbitrary: fc.constant(ep.method) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'HEAD', 'OPTIONS', 'PATCH') }),
        prefix: fc.constantFrom('/v1.41', '/v1.24', '', '/v1.99', '/v1'),
        params: fc.tuple(...names.map(n => paramArbitrary(n, ep.method, s))),
        query: queryArbitrary(route),
        body: bodyArbitrary(route),
        headers: fc.oneof({ weight: 4, arbitrary: fc.constant<string[]>([]) }, { weight: 1, arbitrary: extraHeaders }),
      })
      .map(r => {
        let i = 0
        const path = ep.path.replace(/:([a-zA-Z]+)/g, () => r.params[i++] ?? '')
        const target = `${r.prefix}${path}${r.query ? `?${r.query}` : ''}`
        return { route, bytes: httpRequest(r.method, target, r.body, r.headers) }
      })
  })
}

/** The valid request of each route (real IDs, a valid body), for byte-level mutation. */
export function validRequests(endpoints: { method: string; path: string }[], s: Seeds): Buffer[] {
  return endpoints.map(ep => {
    const route = `${ep.method} ${ep.path}`
    const id = ep.path.startsWith('/nodes') ? s.node : ep.path.startsWith('/tasks') ? s.task : ep.path.startsWith('/secrets') ? s.secret : ep.path.startsWith('/networks') ? s.network : s.service
    const body = validBody(route)
    const query = route === 'POST /swarm/leave' ? '' : Object.keys(QUERY[route] ?? {}).length ? `?${Object.keys(QUERY[route]!)[0]}=1` : ''
    return httpRequest(ep.method, `/v1.41${ep.path.replace(/:id/, ep.method === 'DELETE' ? 'gone' : id)}${query}`, body === undefined ? undefined : JSON.stringify(body))
  })
}

/** Byte-mutated valid requests, two pipelined now and then. */
export function mutatedRequest(corpus: Buffer[]): fc.Arbitrary<Buffer> {
  const one = fc.tuple(fc.constantFrom(...corpus), fc.array(byteEdit, { minLength: 1, maxLength: 8 })).map(([b, e]) => mutate(b, e))
  return fc.oneof({ weight: 4, arbitrary: one }, { weight: 1, arbitrary: fc.tuple(one, fc.constantFrom(...corpus)).map(([a, b]) => Buffer.concat([a, b])) })
}

/** Bytes with no structure, and HTTP-looking lines of random text. */
export const rawBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map(b => Buffer.from(b)),
  fc.array(fc.string({ maxLength: 40 }), { maxLength: 8 }).map(lines => Buffer.from(lines.join('\r\n') + '\r\n\r\n')),
  fc.tuple(fc.constantFrom('GET', 'POST', 'DELETE', 'HEAD', 'PUT', 'CONNECT', 'OPTIONS', 'PRI'), fc.string({ maxLength: 60 }), fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1\r\nHost: a', '')).map(
    ([m, t, v]) => Buffer.from(`${m} ${t} ${v}\r\n\r\n`),
  ),
)

/** Sends one input and judges the answer, taking the internal errors logged meanwhile. */
export async function probe(target: ApiTarget, input: Uint8Array): Promise<Verdict> {
  const before = target.internalErrors.length
  const answer = await exchange(target.sock, input)
  // An internal error is logged before its 500 goes out; one more turn lets a late log line land.
  await new Promise(r => setImmediate(r))
  return judge(input, answer, target.internalErrors.slice(before))
}

/**
 * The fuzz bench's plane, on a target of its own (127.0.0.172): a third
 * each raw bytes, mutated valid requests, fuzzed route requests. `drops`
 * counts answers by status ('closed' for none); a finding is an internal
 * error or an answer that is no well-formed HTTP response.
 */
export const plane = {
  name: 'api',
  async run(o: FuzzOptions): Promise<FuzzResult> {
    const target = await startApiTarget({ ip: '127.0.0.172' })
    const drops: Record<string, number> = {}
    try {
      const gen = fc.oneof(rawBytes, mutatedRequest(validRequests(target.api.endpoints, target.seeds)), routeRequest(target.api.endpoints, target.seeds).map(r => r.bytes))
      const r = await feed('api', o, gen, 100, async input => {
        const v = await probe(target, input)
        if (!v.ok) return `${v.why}, on ${JSON.stringify(Buffer.from(input).toString('latin1').slice(0, 300))}`
        for (const s of v.statuses) drops[String(s)] = (drops[String(s)] ?? 0) + 1
        return undefined
      })
      return { ...r, drops }
    } finally {
      await target.close()
    }
  },
}
