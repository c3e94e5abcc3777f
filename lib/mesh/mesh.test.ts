import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { createServer, connect as tcpConnect, type Server } from 'node:net'
import t, { type Test } from 'tap'
import { Membership } from '../gossip/membership.js'
import { Mesh } from './mesh.js'
import { meshPair } from './pair.test-helper.js'
import { FrameFlag, FrameType, encodeFrame } from './tunnel-frame.js'

const NET = { id: 'ingress', vni: 4096 }
const PORT = 29480

const pair = (t: Test, opts: { idleTimeoutMs?: number; udpPort?: number } = {}): Promise<{ a: Mesh; b: Mesh; mb: Membership }> =>
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
  t.ok(a.stats().backends.echo!.failures >= 1, 'the refusing task counts as a failure of its service')
  // Through a's published port, and on b from a's streams to its task: at least what the five answered asks carried.
  for (const m of [a, b]) {
    const s = m.stats()
    t.ok(s.bytesToTasks >= 'hi'.length + 4 * 'r0'.length && s.bytesFromTasks >= 'echo hi'.length + 4 * 'echo r0'.length, `bytes both ways (${s.bytesToTasks} / ${s.bytesFromTasks})`)
  }
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
  const ended = Promise.race([once(s, 'error'), once(s, 'close').then(() => [undefined])])
  await until(() => a.stats().active === 1)
  const [err] = (await ended) as [NodeJS.ErrnoException | undefined]
  t.equal(err?.code, 'ECONNRESET', 'the client sees a reset, not silence')
  t.ok(performance.now() - t0 >= 250, 'after the idle timeout')
  await until(() => a.stats().active === 0)
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

t.test("the tunnel's UDP side on its own port: flows go there, the TCP port's UDP stays free (for the kernel's VXLAN)", async t => {
  const held = createSocket('udp4')
  await new Promise<void>(r => held.bind(PORT, '127.0.0.221', r))
  t.teardown(() => held.close())
  const { a, b } = await pair(t, { udpPort: PORT + 9 })
  const task = createSocket('udp4')
  task.on('message', (m, r) => task.send(`echo ${m}`, r.port, r.address))
  await new Promise<void>(r => task.bind(0, '127.0.0.1', r))
  t.teardown(() => task.close())
  b.register({ network: 'ingress', service: 's4', serviceName: 'udp-echo', task: 'u2', protocol: 'udp', targetPort: 53, host: '127.0.0.1', port: task.address().port })
  await until(() => a.endpoints('ingress', 'udp-echo').length === 1)
  await a.publish(29484, { network: 'ingress', service: 'udp-echo', targetPort: 53, protocol: 'udp' }, '127.0.0.221')
  const client = createSocket('udp4')
  const got: string[] = []
  client.on('message', m => got.push(m.toString()))
  await new Promise<void>(r => client.bind(0, '127.0.0.1', r))
  t.teardown(() => client.close())
  client.send('q', 29484, '127.0.0.221')
  await until(() => got.length === 1)
  t.same(got, ['echo q'], 'through the tunnel, its datagrams on the other port')
  t.equal(b.stats().tunnel.datagramsIn, 1)
})

t.test('watchers see every visible change of the table, a dead node\'s endpoints leaving included', async t => {
  const { a, b, mb } = await pair(t)
  const seen: string[] = []
  const stop = a.watch(u => seen.push(`+${u.added.map(e => e.task).join()} -${u.removed.map(e => e.task).join()}`))
  a.register({ network: 'ingress', service: 's5', serviceName: 'w', task: 'local', protocol: 'tcp', targetPort: 80, host: '127.0.0.1', port: 1 })
  b.register({ network: 'ingress', service: 's5', serviceName: 'w', task: 'remote', protocol: 'tcp', targetPort: 80, host: '127.0.0.1', port: 2 })
  await until(() => a.endpoints('ingress', 'w').length === 2)
  await b.close()
  await mb.shutdown()
  await until(() => a.endpoints('ingress', 'w').length === 1)
  t.same(seen, ['+local -', '+remote -', '+ -remote'])
  stop()
  await a.withdraw({ network: 'ingress', task: 'local', protocol: 'tcp', targetPort: 80 }, 0)
  t.equal(seen.length, 3, 'an unsubscribed watcher hears nothing more')
})

t.test("a mesh made after its membership joined fetches the table at once, not at the next push/pull", async t => {
  // Gossip retransmits b's announcement briefly (4 rounds of 20 ms), push/pull is far off: only a request for the table can bring it.
  const tuning = { gossipInterval: 20, pushPullInterval: 600_000 }
  const ma = await Membership.create({ name: 'late-a', bind: { ip: '127.0.0.223', port: 29470 }, profile: 'lan', tuning })
  const mb = await Membership.create({ name: 'late-b', bind: { ip: '127.0.0.224', port: 29470 }, profile: 'lan', tuning })
  await mb.join(['127.0.0.223:29470'])
  const b = await Mesh.create({ membership: mb, host: '127.0.0.224', port: PORT, networks: [NET], drainMs: 0 })
  b.register({ network: 'ingress', service: 's6', serviceName: 'early', task: 'e1', protocol: 'tcp', targetPort: 80, host: '127.0.0.1', port: 1 })
  await new Promise(r => setTimeout(r, 400))
  const a = await Mesh.create({ membership: ma, host: '127.0.0.223', port: PORT, networks: [NET], drainMs: 0 })
  t.teardown(async () => {
    await a.close()
    await b.close()
    await ma.shutdown()
    await mb.shutdown()
  })
  await until(() => a.endpoints('ingress', 'early').length === 1)
  t.pass("b's endpoint, announced before a's mesh existed, is in a's table")
})
