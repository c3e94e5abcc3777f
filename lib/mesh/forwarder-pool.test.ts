import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer, connect as tcpConnect, type Server } from 'node:net'
import t, { type Test } from 'tap'
import { Membership } from '../gossip/membership.js'
import type { ForwarderPool } from './forwarder-pool.js'
import { Mesh } from './mesh.js'
import { meshPair } from './pair.test-helper.js'
import { until } from './wait.test-helper.js'

// Node a (with forwarder workers) on 127.0.0.155, node b on .156; gossip 29560, tunnel 29561, published 29562-29565.
const A = '127.0.0.155'
const B = '127.0.0.156'

const pair = (t: Test, workers: number): Promise<{ a: Mesh; b: Mesh }> => meshPair(t, { name: 'fw', hosts: [A, B], gossipPort: 29560, tunnelPort: 29561, a: { workers } })

/** A task answering with its name and the bytes it got (half-close to end). */
async function task(t: Test, name: string): Promise<number> {
  const s: Server = createServer({ allowHalfOpen: true }, c => {
    let got = ''
    c.on('data', d => (got += d))
    c.on('end', () => c.end(`${name} ${got}`))
  })
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  t.teardown(() => s.close())
  return (s.address() as { port: number }).port
}

function ask(port: number, line: string): Promise<string> {
  return new Promise(resolve => {
    const s = tcpConnect({ host: A, port })
    let got = ''
    s.on('data', d => (got += d))
    s.on('close', () => resolve(got))
    s.on('error', e => resolve(`error:${(e as NodeJS.ErrnoException).code}`))
    s.end(line)
  })
}

/** The PIDs of the forwarder workers of this process. */
const workerPids = (): number[] =>
  execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)])
    .toString()
    .split('\n')
    .filter(l => l.includes('forwarder-worker'))
    .map(l => Number(l.trim().split(/\s+/)[0]))

t.test('with workers, a published port spreads its connections over the processes, to local and remote tasks alike', async t => {
  const { a, b } = await pair(t, 2)
  t.equal(workerPids().length, 2, 'two worker processes')
  a.register({ network: 'ingress', service: 's1', serviceName: 'echo', task: 'local', protocol: 'tcp', targetPort: 7, host: '127.0.0.1', port: await task(t, 'local') })
  b.register({ network: 'ingress', service: 's1', serviceName: 'echo', task: 'remote', protocol: 'tcp', targetPort: 7, host: '127.0.0.1', port: await task(t, 'remote') })
  t.ok(await until(() => a.endpoints('ingress', 'echo').length === 2), 'a sees both tasks')
  await a.publish(29562, { network: 'ingress', service: 'echo', targetPort: 7 }, A)
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => ask(29562, `req-${i}`)))
  t.same(answers.filter(x => !/^(local|remote) req-\d+$/.test(x)), [], 'every connection answered, with its own bytes')
  const byTask = { local: answers.filter(x => x.startsWith('local')).length, remote: answers.filter(x => x.startsWith('remote')).length }
  t.ok(Math.max(byTask.local, byTask.remote) / Math.min(byTask.local, byTask.remote) <= 1.5, `balanced over both tasks, within 1.5 max/min: ${JSON.stringify(byTask)}`)
  await until(() => a.stats().connections >= 200, 3_000)
  const s = a.stats()
  t.equal(s.connections, 200, 'the workers\' connections counted with the Mesh\'s (as they report each second)')
  t.ok(s.tunnel.framesOut > 0, 'remote ones went through the tunnel')
})

t.test('a worker that dies is replaced and serves the port again; unpublish closes the port in every process; close ends the workers', async t => {
  const { a } = await pair(t, 1)
  a.register({ network: 'ingress', service: 's1', serviceName: 'echo', task: 'local', protocol: 'tcp', targetPort: 7, host: '127.0.0.1', port: await task(t, 'local') })
  await a.publish(29563, { network: 'ingress', service: 'echo', targetPort: 7 }, A)
  await a.publish(29564, { network: 'ingress', service: 'echo', targetPort: 7, proxyProtocol: 'v1' }, A)
  const [first] = workerPids()
  process.kill(first!, 'SIGKILL')
  t.ok(await until(() => workerPids().length === 1 && workerPids()[0] !== first, 5_000), 'a new worker')
  const pool = (a as unknown as { pool: ForwarderPool }).pool
  const answers: string[] = []
  // A worker takes a while to start (and reports each second): ask until it has served some, or 30 s.
  const t0 = Date.now()
  for (let i = 0; Date.now() - t0 < 30_000 && pool.counters().connections === 0; i++) {
    answers.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => ask(29563, `x${i}-${j}`)))))
    await new Promise(r => setTimeout(r, 50))
  }
  t.ok(pool.counters().connections > 0, `the new worker serves the port (${pool.counters().connections} of ${answers.length} connections)`)
  t.ok(answers.every(x => /^local x\d+-\d+$/.test(x)), 'every connection answered meanwhile')
  t.match(await ask(29564, 'p'), /^local PROXY TCP4 127\.0\.0\.1 127\.0\.0\.155 \d+ 29564\r\np$/, 'a PROXY protocol port is the Mesh\'s own')
  await a.unpublish(29563, 'tcp', A)
  const after = await Promise.all(Array.from({ length: 20 }, () => ask(29563, 'y')))
  t.ok(after.every(x => x === 'error:ECONNREFUSED'), `refused once unpublished: ${[...new Set(after)].join(', ')}`)
  await a.close()
  t.same(workerPids(), [], `no worker left: ${execFileSync('ps', ['-o', 'pid=,stat=,args=', '--ppid', String(process.pid)])}`)
})

t.test('workers must be a positive integer', async t => {
  const m = await Membership.create({ name: 'fw-c', bind: { ip: A, port: 29565 }, profile: 'local' })
  t.teardown(() => m.shutdown())
  await t.rejects(Mesh.create({ membership: m, host: A, port: 29566, workers: 1.5 }), { code: 'E_MESH_WORKERS' })
})
