import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { exchange, parseResponses, type Answer } from '../../bench/fuzz/api.js'
import { ApiError } from './api-error.js'
import { thrown } from '../test-helpers.test-helper.js'
import { ApiServer, objectBody, StreamResponse } from './http.js'

/** A real ApiServer on a temp unix socket with a few routes that misbehave on purpose. */
async function server(t: Test): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-http-'))
  const api = new ApiServer()
    .route('GET', '/_ping', () => 'OK')
    .route('GET', '/services', () => [])
    .route('GET', '/services/:id', req => ({ ID: req.params.id }))
    .route('POST', '/echo', req => ({ got: req.body }))
    .route('GET', '/slow', () => new Promise(r => setTimeout(() => r({ slow: true }), 100)))
    .route('GET', '/throws', () => {
      throw new TypeError('x.trim is not a function')
    })
    .route('GET', '/throws-string', () => {
      throw 'not an Error'
    })
    .route('GET', '/bigint', () => ({ n: 1n }))
    .route('GET', '/bad-status', () => {
      throw new ApiError(42, 'a status no HTTP has')
    })
    .route('GET', '/stream', () => new StreamResponse('text/plain', async res => {
      res.write('first line\n')
      throw new Error('the source broke')
    }))
  const sock = join(dir, 'api.sock')
  await api.listen(sock)
  t.teardown(async () => {
    await api.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return sock
}

const raw = (s: string): Buffer => Buffer.from(s, 'latin1')

async function answers(sock: string, request: string): Promise<Answer[]> {
  const r = await exchange(sock, raw(request))
  return parseResponses(r.bytes)
}

/** The one answer to `request`, with its Docker error message if it has one. */
async function answer(sock: string, request: string): Promise<{ status: number; message: unknown; body: string }> {
  const [a, ...more] = await answers(sock, request)
  if (!a || more.length) throw new Error(`expected one answer, got ${more.length + (a ? 1 : 0)}`)
  const body = a.body.toString('utf8')
  let message: unknown
  try {
    message = (JSON.parse(body) as { message?: unknown }).message
  } catch {
    message = undefined
  }
  return { status: a.status, message, body }
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`

t.test('the requests that killed the manager get a 400, and it goes on answering', async t => {
  const sock = await server(t)
  // A path that the URL parser reads as //host/path, and a host it cannot parse.
  t.same(await answer(sock, get('//v1.41/services')), { status: 404, message: 'page not found', body: '{"message":"page not found"}\n' })
  t.match(await answer(sock, get('//v1.41')), { status: 404 })
  t.same((await answer(sock, 'GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n')).status, 400)
  t.match(await answer(sock, 'GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n'), { message: 'malformed request URI "http://["' })
  t.match(await answer(sock, 'GET ftp://x/services HTTP/1.1\r\nHost: x\r\n\r\n'), { status: 400, message: 'malformed request URI "ftp://x/services"' })
  t.match(await answer(sock, 'GET * HTTP/1.1\r\nHost: x\r\n\r\n'), { status: 400 })
  t.same(await answer(sock, get('/_ping')), { status: 200, message: undefined, body: 'OK' })
})

t.test('absolute-form targets are served as their path', async t => {
  const sock = await server(t)
  t.same(await answer(sock, 'GET http://docker/v1.41/services/abc?x=1 HTTP/1.1\r\nHost: docker\r\n\r\n'), { status: 200, message: undefined, body: '{"ID":"abc"}\n' })
})

t.test('malformed percent-encoding in a path is a 400 naming the escape', async t => {
  const sock = await server(t)
  t.same(await answer(sock, get('/services/%zz')), { status: 400, message: 'invalid URL escape "%zz"', body: '{"message":"invalid URL escape \\"%zz\\""}\n' })
  t.match(await answer(sock, get('/v1.41/services/ab%')), { status: 400, message: 'invalid URL escape "%"' })
  t.match(await answer(sock, get('/services/%ff')), { status: 400, message: /not UTF-8/ })
  t.match(await answer(sock, get('/nowhere%zz')), { status: 400, message: 'invalid URL escape "%zz"' }, 'anywhere in the path, as Go parses it')
  t.same(await answer(sock, get('/services/a%2Fb%20c')), { status: 200, message: undefined, body: '{"ID":"a/b c"}\n' }, 'good escapes decode')
})

t.test("what Node's parser refuses gets a 4xx with Docker's error body", async t => {
  const sock = await server(t)
  for (const req of ['GARBAGE\r\n\r\n', 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'GET /x HTTP/9.9\r\n\r\n', '\x00\x01\x02\r\n\r\n', 'GET /services HTTP/1.1\r\nHost']) {
    const a = await answer(sock, req)
    t.equal(a.status, 400, JSON.stringify(req))
    t.match(a.message, /^malformed HTTP request: /, JSON.stringify(req))
  }
  const big = await answer(sock, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.same([big.status, big.message], [431, 'request header fields too large'])
  const cut = await answer(sock, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab')
  t.same([cut.status, cut.message], [400, 'malformed HTTP request: Invalid EOF state'], 'a body cut short by the client')
})

t.test('a body cut short on a request that asks for an upgrade is a 400, not a request left hanging', async t => {
  const sock = await server(t)
  const r = await exchange(sock, raw('POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n'), 2_000)
  t.notOk(r.timedOut)
  t.match(parseResponses(r.bytes), [{ status: 400 }])
  t.match(await answer(sock, 'GET /services HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'), { status: 200 }, 'else an upgrade is ignored, as by Go')
})

t.test('a body over 4 MiB is a 413 with a Docker body', async t => {
  const sock = await server(t)
  const body = `"${'a'.repeat(4 * 1024 * 1024)}"`
  t.same(await answer(sock, `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`), { status: 413, message: 'request body too large', body: '{"message":"request body too large"}\n' })
})

t.test('the other requests Node answers by itself answer with a Docker body', async t => {
  const sock = await server(t)
  t.same(await answer(sock, 'GET /services HTTP/1.1\r\n\r\n'), { status: 400, message: 'missing required Host header', body: '{"message":"missing required Host header"}\n' })
  t.match(await answer(sock, 'GET /services HTTP/1.0\r\n\r\n'), { status: 200 }, 'HTTP/1.0 needs no Host')
  t.match(await answer(sock, 'GET /services HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n'), { status: 417, message: 'unsupported Expect header "tea"' })
  t.match(await answer(sock, 'CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n'), { status: 405, message: 'method CONNECT not allowed for example:443' })
  const continued = await answers(sock, 'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}')
  t.same(
    continued.map(a => a.status),
    [100, 200],
  )
})

t.test('a failing handler is a 500 with a body, whatever it threw', async t => {
  const sock = await server(t)
  t.same(await answer(sock, get('/throws')), { status: 500, message: 'x.trim is not a function', body: '{"message":"x.trim is not a function"}\n' })
  t.match(await answer(sock, get('/throws-string')), { status: 500, message: 'not an Error' })
  t.match(await answer(sock, get('/bigint')), { status: 500, message: /BigInt/ }, 'a result JSON cannot hold')
  t.match(await answer(sock, get('/bad-status')), { status: 500, message: 'a status no HTTP has' })
  t.match(await answer(sock, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{"a":'), { status: 400, message: /^invalid JSON in the request body/ })
  t.same(await answer(sock, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{"a":1}'), { status: 200, message: undefined, body: '{"got":{"a":1}}\n' })
})

t.test('a stream that breaks midway ends where it broke', async t => {
  const sock = await server(t)
  const [a, ...more] = await answers(sock, get('/stream'))
  t.equal(more.length, 0)
  t.equal(a?.status, 200)
  t.equal(a?.body.toString(), 'first line\n')
})

t.test('bytes after a request that closes the connection add nothing to its answer', async t => {
  const sock = await server(t)
  // HTTP/1.0: the answer is delimited by the close, so a second status line would be read as its body.
  const [a, ...more] = await answers(sock, 'GET /services HTTP/1.0\r\n\r\nGARBAGE\r\n\r\n')
  t.same([a?.status, a?.body.toString(), more.length], [200, '[]\n', 0])
  const slow = await answers(sock, 'GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGARBAGE\r\n\r\n')
  t.same(
    slow.map(x => [x.status, x.body.toString()]),
    [[200, '{"slow":true}\n']],
    'an answer still being computed is not cut off',
  )
})

t.test('a client that half-closes after its request still gets the answer', async t => {
  const sock = await server(t)
  // exchange() writes the request and shuts its side at once; the handler answers 100 ms later.
  t.same(await answer(sock, get('/slow')), { status: 200, message: undefined, body: '{"slow":true}\n' })
  const two = await answers(sock, get('/slow') + get('/_ping'))
  t.same(
    two.map(a => a.status),
    [200, 200],
    'pipelined requests are answered in order',
  )
})

t.test('objectBody: a JSON object, or the 400 of Go decoding anything else into a struct', async t => {
  t.same(objectBody(undefined, 'swarm.Spec'), {})
  t.same(objectBody(null, 'swarm.Spec'), {})
  t.same(objectBody({ Name: 'x' }, 'swarm.Spec'), { Name: 'x' })
  for (const [v, kind] of [
    [5, 'number'],
    ['s', 'string'],
    [true, 'bool'],
    [[], 'array'],
  ] as const) {
    const e = thrown(t, () => objectBody(v, 'swarm.NodeSpec'))
    t.ok(e instanceof ApiError && e.status === 400)
    t.equal((e as Error).message, `invalid JSON: json: cannot unmarshal ${kind} into Go value of type swarm.NodeSpec`)
  }
})
