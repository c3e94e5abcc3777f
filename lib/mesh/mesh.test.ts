import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { createServer, connect as tcpConnect, type Server } from 'node:net'
import t, { type Test } from 'tap'
import type { Mesh } from './mesh.js'
import { meshPair } from './pair.test-helper.js'
import { FrameFlag, FrameType, encodeFrame } from './tunnel-frame.js'

const NET = { id: 'ingress', vni: 4096 }
const PORT = 29480

const pair = (t: Test, opts: { idleTimeoutMs?: number } = {}): Promise<{ a: Mesh; b: Mesh }> =>
  meshPair(t, { name: 'mesh', hosts: ['127.0.0.221', '127.0.0.222'], gossipPort: 29470, tunnelPort: PORT, a: opts, b: opts })

async function listen(s: Server): Promise<number> {
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  return (s.address() as { port: number }).port
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise(r => setTimeout(r, 25))
  if (!cond()) throw new Error('condition not met in 5 s')
}

async function ask(port: number, host: string, line: string): Promise<string> {
  const s = tcpConnect({ host, port })
  s.end(line)
  let got = ''
  for await (const c of s) got += String(c)
  return got
}

t.test('a backend that resets after accepting does not bring the node down; a refusing one is skipped', async t => {
  const { a, b } = await pair(t)
  const rude = createServer(c => c.resetAndDestroy())
  const good = createServer(c => c.on('data', d => c.end(`echo ${d}`)))
  t.teardown(() => {
    rude.close()
    good.close()
  })
  const rudePort = await listen(rude)
  const goodPort = await listen(good)
  b.register({ network: 'ingress', service: 's1', serviceName: 'echo', task: 'rude', protocol: 'tcp', targetPort: 7, host: '127.0.0.1', port: rudePort })
  await until(() => a.endpoints('ingress', 'echo').length === 1)
  await a.publish(29481, { network: 'ingress', service: 'echo', targetPort: 7 }, '127.0.0.221')
  for (let i = 0; i < 5; i++) await ask(29481, '127.0.0.221', 'x').catch(() => '')
  t.pass('node b survived backends resetting after accept')
  b.register({ network: 'ingress', service: 's1', serviceName: 'echo', task: 'good', protocol: 'tcp', targetPort: 7, host: '127.0.0.1', port: goodPort })
  await b.withdraw({ network: 'ingress', task: 'rude', protocol: 'tcp', targetPort: 7 })
  await until(() => a.endpoints('ingress', 'echo').map(e => e.task).join() === 'good')
  t.equal(await ask(29481, '127.0.0.221', 'hi'), 'echo hi', 'through the tunnel to b')

  // A task that refuses: skipped, the connection goes to the other one.
  b.register({ network: 'ingress', service: 's1', serviceName: 'echo', task: 'gone', protocol: 'tcp', targetPort: 7, host: '127.0.0.1', port: 1 })
  await until(() => a.endpoints('ingress', 'echo').length === 2)
  for (let i = 0; i < 4; i++) t.equal(await ask(29481, '127.0.0.221', `r${i}`), `echo r${i}`)
  t.ok(a.stats().retries >= 1, `retried elsewhere (${a.stats().retries} retries)`)
})

t.test('idle connections are closed visibly after the idle timeout', async t => {
  const { a } = await pair(t, { idleTimeoutMs: 300 })
  const quiet = createServer(c => c.on('data', () => undefined))
  t.teardown(() => quiet.close())
  const port = await listen(quiet)
  a.register({ network: 'ingress', service: 's2', serviceName: 'quiet', task: 'q', protocol: 'tcp', targetPort: 9, host: '127.0.0.1', port })
  await a.publish(29482, { network: 'ingress', service: 'quiet', targetPort: 9 }, '127.0.0.221')
  const s = tcpConnect({ host: '127.0.0.221', port: 29482 })
  const t0 = performance.now()
  const [err] = (await Promise.race([once(s, 'error'), once(s, 'close').then(() => [undefined])])) as [NodeJS.ErrnoException | undefined]
  t.equal(err?.code, 'ECONNRESET', 'the client sees a reset, not silence')
  t.ok(performance.now() - t0 >= 250, 'after the idle timeout')
})

t.test('issue 11.7: forged UDP replies do not reach a published port\'s clients', async t => {
  const { a, b } = await pair(t)
  const task = createSocket('udp4')
  task.on('message', (m, r) => task.send(`echo ${m}`, r.port, r.address))
  await new Promise<void>(r => task.bind(0, '127.0.0.1', r))
  t.teardown(() => task.close())
  b.register({ network: 'ingress', service: 's3', serviceName: 'udp-echo', task: 'u1', protocol: 'udp', targetPort: 53, host: '127.0.0.1', port: task.address().port })
  await until(() => a.endpoints('ingress', 'udp-echo').length === 1)
  await a.publish(29483, { network: 'ingress', service: 'udp-echo', targetPort: 53, protocol: 'udp' }, '127.0.0.221')

  const client = createSocket('udp4')
  const got: string[] = []
  client.on('message', m => got.push(m.toString()))
  await new Promise<void>(r => client.bind(0, '127.0.0.1', r))
  t.teardown(() => client.close())
  client.send('q1', 29483, '127.0.0.221')
  await until(() => got.length === 1)
  t.same(got, ['echo q1'], 'a real round trip through the tunnel')

  // Anyone who reaches a's 4789 sends replies for flow ids 1..100: a counter's first ids.
  const forger = createSocket('udp4')
  t.teardown(() => forger.close())
  for (let id = 1; id <= 100; id++) forger.send(encodeFrame({ vni: NET.vni, type: FrameType.DGRAM, flags: FrameFlag.REPLY, keyId: 0, streamId: id }, Buffer.from('forged')), PORT, '127.0.0.221')
  const forgedDrops = (): number => a.stats().tunnel.dropped.reply_unknown_flow + a.stats().tunnel.dropped.reply_wrong_peer
  await until(() => forgedDrops() === 100).catch(() => undefined)
  t.equal(forgedDrops(), 100, 'every forged reply dropped and counted')
  client.send('q2', 29483, '127.0.0.221')
  await until(() => got.length >= 2)
  await new Promise(r => setTimeout(r, 100))
  t.same(got, ['echo q1', 'echo q2'], 'the client saw no forged reply')
})
