/**
 * The --metrics-addr server over a real node (a temp data dir; gossip and
 * the control plane on 127.0.16.21 once it inits a swarm): /metrics, the
 * page's files, its data while the node is in no swarm and once it manages
 * one, pushed on the event stream as it changes; GET and HEAD only; bad
 * requests never take it down.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { get, type IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { NodeMetrics } from '../node/metrics/node-metrics.js'
import { SwarmNode } from '../node/node.js'
import { NOT_IN_SWARM } from '../types/errors.js'
import { MetricsServer } from './metrics-server.js'

const IP = '127.0.16.21'
const log = pino({ level: 'silent' })

async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-metrics-server-'))
  const metrics = new NodeMetrics()
  const node = await SwarmNode.open(dir, 'ms-node', log, { observer: metrics.observer })
  metrics.attach(node)
  const server = new MetricsServer({ metrics, node: () => node, log, refreshMs: 100 })
  const { port } = await server.listen(IP, 0)
  t.teardown(async () => {
    await server.close()
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { node, server, base: `http://${IP}:${port}`, port }
}

/** The data of each event on the stream, as they come. */
function events(url: string): { next: () => Promise<unknown>; close: () => void; res: Promise<IncomingMessage> } {
  const queue: unknown[] = []
  const waiting: ((v: unknown) => void)[] = []
  let buf = ''
  const req = get(url)
  const res = new Promise<IncomingMessage>(resolve =>
    req.on('response', r => {
      resolve(r)
      r.on('data', (c: Buffer) => {
        buf += c
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const data = buf.slice(0, i).split('\n').find(l => l.startsWith('data: '))
          buf = buf.slice(i + 2)
          if (!data) continue
          const v = JSON.parse(data.slice('data: '.length))
          const w = waiting.shift()
          if (w) w(v)
          else queue.push(v)
        }
      })
    }),
  )
  req.on('error', () => undefined)
  return { next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise(r => waiting.push(r))), close: () => req.destroy(), res }
}

t.test('metrics, the page, and its data as the node goes from no swarm to managing one', async t => {
  const { node, base } = await setup(t)
  const m = await fetch(`${base}/metrics`)
  t.equal(m.status, 200)
  t.match(m.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await m.text()
  t.match(text, new RegExp(`swarmd_node_info\\{node_id="${node.nodeId}",role="none",version="[^"]+"\\} 1`))
  t.match(text, /# TYPE swarmd_gossip_probes_total counter/)
  t.notMatch(text, /nodejs_active_handles_total/, 'no gauge named like a counter')

  for (const [path, type] of [
    ['/', 'text/html'],
    ['/ui/', 'text/html'],
    ['/ui/app.js', 'text/javascript'],
    ['/ui/style.css', 'text/css'],
    ['/ui/icon.svg', 'image/svg+xml'],
  ] as const) {
    const r = await fetch(base + path)
    t.equal(r.status, 200, path)
    t.match(r.headers.get('content-type'), type)
    t.match(r.headers.get('content-security-policy'), "default-src 'self'", 'the page talks to this server only')
    t.ok((await r.text()).length > 100)
  }

  const stream = events(`${base}/ui/events`)
  t.teardown(() => stream.close())
  t.match((await stream.res).headers['content-type'], 'text/event-stream')
  t.same(await stream.next(), { error: NOT_IN_SWARM }, 'in no swarm: Docker\'s answer')
  const state = await fetch(`${base}/ui/state`)
  t.equal(state.status, 503)
  t.same(await state.json(), { error: NOT_IN_SWARM })

  await node.init({ ListenAddr: `${IP}:2377`, AdvertiseAddr: IP })
  const v = (await stream.next()) as { nodes: { hostname: string; state: string; managerStatus: string }[]; services: unknown[]; tasks: unknown[] }
  t.same(v.nodes.map(n => [n.hostname, n.state, n.managerStatus]), [['ms-node', 'ready', 'leader']], 'pushed once it manages a swarm')
  t.same([v.services, v.tasks], [[], []])
  t.match(await (await fetch(`${base}/metrics`)).text(), /swarmd_manager_is_leader 1/)

  // A job (this node runs no tasks: it stays pending): its mode by name, and its completions as `service ls` shows them.
  await node.manager().services.create({ Name: 'once', TaskTemplate: { ContainerSpec: { Image: 'node' } }, Mode: { ReplicatedJob: { TotalCompletions: 3 } } })
  const job = (await (await fetch(`${base}/ui/state`)).json()) as { services: { name: string; mode: string; running: number; desired: number; completed?: unknown }[] }
  t.same(
    job.services.map(s => [s.name, s.mode, s.running, s.desired, s.completed]),
    [['once', 'replicated-job', 0, 1, { done: 0, of: 3 }]],
  )
  const text2 = await (await fetch(`${base}/metrics`)).text()
  t.same(
    ['replicated', 'global', 'replicated-job', 'global-job'].map(mode => new RegExp(`swarmd_manager_services\\{mode="${mode}"\\} (\\d+)`).exec(text2)?.[1]),
    ['0', '0', '1', '0'],
    'services by their mode, jobs apart',
  )
})

t.test('GET and HEAD only; unknown paths and garbage are answered, and the server goes on', async t => {
  const { base, port } = await setup(t)
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const r = await fetch(`${base}/metrics`, { method })
    t.equal(r.status, 405, method)
    t.equal(r.headers.get('allow'), 'GET, HEAD')
  }
  t.equal((await fetch(`${base}/metrics/../etc/passwd`)).status, 404)
  t.equal((await fetch(`${base}/ui/../../package.json`)).status, 404)
  t.equal((await fetch(`${base}/ui/index.html`)).status, 404, 'the page is at / and /ui/')
  const head = await fetch(`${base}/metrics`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(await head.text(), '', 'HEAD: no body')
  for (const junk of ['\x00\x01\x02 nonsense\r\n\r\n', 'GET /metrics HTTP/9.9\r\n\r\n', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n${'X: y\r\n'.repeat(2_000)}\r\n`]) {
    await new Promise<void>(resolve => {
      const s = connect(port, IP, () => s.end(junk))
      s.on('data', () => undefined)
      s.on('close', () => resolve())
      s.on('error', () => resolve())
    })
  }
  t.equal((await fetch(`${base}/metrics`)).status, 200, 'still serving')
})

t.test('an address it cannot have is a clear error', async t => {
  const { port } = await setup(t)
  const other = new MetricsServer({ metrics: new NodeMetrics(), node: () => undefined, log })
  await t.rejects(other.listen(IP, port), { code: 'E_METRICS_LISTEN', message: `cannot serve metrics on ${IP}:${port}: the port is in use` })
})
