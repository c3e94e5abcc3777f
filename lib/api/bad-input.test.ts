/**
 * The real routes over a real manager (a one-node swarm in a temp data dir,
 * gossip on 127.0.0.171) answer bad input with 4xx, never a crash or an
 * internal 500; then fast-check throws raw bytes, mutated valid requests and
 * fuzzed requests to every route at the socket (bench/fuzz/api.ts judges
 * each answer: see its header).
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { exchange, httpRequest, parseResponses, plane, probe, rawBytes, mutatedRequest, routeRequest, startApiTarget, validRequests, type ApiTarget } from '../../bench/fuzz/api.js'

let target: ApiTarget
t.before(async () => {
  target = await startApiTarget()
})
t.teardown(() => target.close())

async function send(method: string, path: string, body?: string): Promise<{ status: number; message: unknown }> {
  const [a] = parseResponses((await exchange(target.sock, httpRequest(method, path, body))).bytes)
  return { status: a!.status, message: (JSON.parse(a!.body.toString('utf8') || '{}') as { message?: unknown }).message }
}

t.test('an ID with malformed percent-encoding is a 400, not "URI malformed"', async t => {
  t.same(await send('GET', '/v1.41/services/%zz'), { status: 400, message: 'invalid URL escape "%zz"' })
  t.same(await send('GET', '/v1.41/nodes/%E2%82'), { status: 400, message: 'invalid URL path "/v1.41/nodes/%E2%82": the escapes are not UTF-8' })
  t.same(await send('DELETE', '/v1.41/secrets/%'), { status: 400, message: 'invalid URL escape "%"' })
})

t.test('a non-object body to a route that reads one is a 400 naming the type, before the version check', async t => {
  const { node } = target.seeds
  for (const [body, kind] of [
    ['5', 'number'],
    ['"x"', 'string'],
    ['[]', 'array'],
    ['true', 'bool'],
  ]) {
    t.same(await send('POST', '/v1.41/swarm/update?version=999', body), { status: 400, message: `invalid JSON: json: cannot unmarshal ${kind} into Go value of type swarm.Spec` })
    t.same(await send('POST', `/v1.41/nodes/${node}/update?version=999`, body), { status: 400, message: `invalid JSON: json: cannot unmarshal ${kind} into Go value of type swarm.NodeSpec` })
    t.same(await send('POST', '/v1.41/swarm/init', body), { status: 400, message: `invalid JSON: json: cannot unmarshal ${kind} into Go value of type swarm.InitRequest` })
    t.same(await send('POST', '/v1.41/swarm/join', body), { status: 400, message: `invalid JSON: json: cannot unmarshal ${kind} into Go value of type swarm.JoinRequest` })
  }
  // An object with a stale version is still dockerd's 500.
  t.same(await send('POST', '/v1.41/swarm/update?version=999', '{}'), { status: 500, message: 'rpc error: code = Unknown desc = update out of sequence' })
  t.same(target.internalErrors, [])
})

/** Runs a property over `arb`, failing with the first input whose answer is wrong. */
async function fuzz(t: Test, arb: fc.Arbitrary<Uint8Array>, numRuns: number): Promise<void> {
  const statuses: Record<string, number> = {}
  await fc.assert(
    fc.asyncProperty(arb, async input => {
      const v = await probe(target, input)
      if (!v.ok) throw new Error(`${v.why}\ninput: ${JSON.stringify(Buffer.from(input).toString('latin1').slice(0, 500))}`)
      for (const s of v.statuses) statuses[s] = (statuses[s] ?? 0) + 1
    }),
    { numRuns },
  )
  t.pass(`${numRuns} inputs, answers by status: ${JSON.stringify(statuses)}`)
}

t.test('fuzz: raw bytes get a 400 with a Docker body, or a bare close when they hold no request', async t => {
  await fuzz(t, rawBytes, 1500)
})

t.test('fuzz: byte-mutated valid requests of every route', async t => {
  await fuzz(t, mutatedRequest(validRequests(target.api.endpoints, target.seeds)), 1500)
})

t.test("fuzz: every route's parameters, query, headers and body", async t => {
  const hit = new Set<string>()
  await fuzz(
    t,
    routeRequest(target.api.endpoints, target.seeds).map(r => {
      hit.add(r.route)
      return r.bytes
    }),
    3000,
  )
  t.same([...hit].sort(), target.api.endpoints.map(e => `${e.method} ${e.path}`).sort(), 'every mounted route was fuzzed')
})

t.test('after all that the manager still answers', async t => {
  t.same(await send('GET', '/v1.41/swarm'), { status: 200, message: undefined })
  t.same(target.internalErrors, [])
})

t.test('the fuzz bench plane counts answers by status on a target of its own', async t => {
  const r = await plane.run({ inputs: 600, deadlineMs: Date.now() + 30_000, seed: 11 })
  t.equal(r.inputs, 600)
  t.ok((r.drops['400'] ?? 0) > 0 && (r.drops['200'] ?? 0) > 0, JSON.stringify(r.drops))
  t.ok(Object.values(r.drops).reduce((a, b) => a + b, 0) >= 600, 'every input answered (a pipelined one maybe twice)')
  t.equal(r.crashes, 0)
})
