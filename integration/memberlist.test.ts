/**
 * swarmd's Membership against hashicorp/memberlist itself: a Go program built
 * by the test against Debian's memberlist 0.2.2 source, on loopback, both
 * directions, plaintext and with a 16-byte key. Ports 28100-28199 belong to
 * this file.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Membership, type MemberEvent } from '../lib/index.js'
import { goAvailable, startGoPeer, type GoPeer } from './helpers/gopeer.js'
import { testNeeding } from './helpers/prerequisites.js'
import { sleep, waitUntil } from './helpers/procs.js'

const HOST = '127.0.0.1'
const goMissing = goAvailable() ? undefined : 'go or Debian memberlist source not installed (run scripts/setup.sh as root)'
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`

async function goSees(peer: GoPeer, name: string, state: string, timeoutMs: number): Promise<void> {
  await waitUntil(async () => (await peer.members()).find(m => m.name === name)?.state === state, {
    timeoutMs,
    what: `${peer.name} to list ${name} ${state}`,
  })
}

/** Every event a member emitted, so a wait also finds what already happened. */
const history = new WeakMap<Membership, MemberEvent[]>()

async function member(opts: Parameters<typeof Membership.create>[0]): Promise<Membership> {
  const events: MemberEvent[] = []
  const m = await Membership.create({ ...opts, onEvent: e => events.push(e) })
  history.set(m, events)
  return m
}

function waitEvent(m: Membership, pred: (e: MemberEvent) => boolean, timeoutMs: number, what: string): Promise<MemberEvent> {
  const past = history.get(m)?.find(pred)
  if (past) return Promise.resolve(past)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      m.off('event', on)
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
    }, timeoutMs)
    const on = (e: MemberEvent): void => {
      if (!pred(e)) return
      clearTimeout(timer)
      m.off('event', on)
      resolve(e)
    }
    m.on('event', on)
  })
}

for (const mode of [
  { label: 'plaintext', key: undefined as Buffer | undefined, base: 28100 },
  { label: 'AES-128 (16-byte key)', key: randomBytes(16), base: 28150 },
]) {
  testNeeding(t, `Go memberlist, ${mode.label}`, goMissing, async t => {
    const keys = mode.key ? [mode.key] : []
    const goKey = mode.key?.toString('base64')
    const go1 = await startGoPeer({ name: 'go1', port: mode.base, ...(goKey ? { key: goKey } : {}), profile: 'local' })
    t.teardown(() => go1.stop())
    const js = await member({ name: 'js1', bind: { ip: HOST, port: mode.base + 1 }, profile: 'local', keys })
    t.teardown(() => js.shutdown())

    // swarmd dials Go.
    t.equal(await js.join([go1.addr]), 1, 'js1 joined through go1')
    await goSees(go1, 'js1', 'alive', 30_000)
    const seen = (await go1.members()).find(m => m.name === 'js1')!
    t.same(seen.vsn, [1, 5, 2, 0, 0, 0], 'Go reads our protocol versions')
    t.equal(seen.addr, `${HOST}:${mode.base + 1}`)
    await sleep(3_500)
    await goSees(go1, 'js1', 'alive', 1)
    t.equal(js.members().find(m => m.name === 'go1')?.state, 'alive', 'js1 lists go1 alive after more than 3 probe intervals')
    t.notMatch(go1.proc.stderrTail(), /Suspect js1|Marking js1/, 'Go never suspected js1')
    t.same(js.counters.dropped, {}, 'nothing Go sent was dropped')

    // Go dials swarmd.
    const go2 = await startGoPeer({ name: 'go2', port: mode.base + 2, ...(goKey ? { key: goKey } : {}), profile: 'local', join: js.address.ip + ':' + js.address.port })
    t.teardown(() => go2.stop())
    await waitEvent(js, e => e.type === 'join' && e.member.name === 'go2', 30_000, 'js1 to see go2')
    await goSees(go2, 'js1', 'alive', 30_000)
    await goSees(go2, 'go1', 'alive', 30_000)
    t.pass('go2 joined through js1 and lists js1 and go1 alive')

    // User messages both ways, reliable (TCP) and best-effort (UDP).
    const got = new Promise<string>(resolve => js.once('message', (b: Buffer) => resolve(b.toString())))
    await go1.send('js1', 'hello from go1')
    t.equal(await got, 'hello from go1', 'a reliable message from Go arrived')
    await js.sendReliable('go2', Buffer.from('reliable from js1'))
    t.equal((await go2.waitFor(e => e.event === 'msg' && e.data === 'reliable from js1', 5_000)).data, 'reliable from js1')
    await js.sendBestEffort('go2', Buffer.from('udp from js1'))
    t.equal((await go2.waitFor(e => e.event === 'msg' && e.data === 'udp from js1', 5_000)).data, 'udp from js1')

    // Go killed: swarmd reports it dead.
    const killedAt = Date.now()
    go2.kill('SIGKILL')
    const dead = await waitEvent(js, e => e.type === 'dead' && e.member.name === 'go2', 30_000, 'js1 to see go2 dead')
    t.comment(`swarmd saw a killed Go node dead after ${secs(Date.now() - killedAt)}`)
    t.equal(dead.member.addr, HOST, 'the dead member is go2 at its address')
    t.equal(dead.member.port, mode.base + 2)
    t.equal(js.allMembers().find(m => m.name === 'go2')?.state, 'dead', 'js1 lists go2 dead')
    t.same(js.members().map(m => m.name).sort(), ['go1', 'js1'], 'and no longer among its live members')
    await goSees(go1, 'go2', 'dead', 10_000)

    // swarmd gone without leaving: Go marks it dead.
    const js2 = await member({ name: 'js2', bind: { ip: HOST, port: mode.base + 3 }, profile: 'local', keys })
    t.teardown(() => js2.shutdown())
    await js2.join([go1.addr])
    await goSees(go1, 'js2', 'alive', 30_000)
    await waitEvent(js, e => e.type === 'join' && e.member.name === 'js2', 30_000, 'js1 to see js2').catch(() => undefined)
    const t0 = performance.now()
    await js2.shutdown()
    await goSees(go1, 'js2', 'dead', 30_000)
    t.comment(`Go marked a crashed swarmd dead after ${secs(performance.now() - t0)}`)

    // A graceful leave shows as left.
    await js.leave()
    await goSees(go1, 'js1', 'left', 30_000)
    t.pass('Go lists js1 left after leave()')
  })
}

testNeeding(t, 'Go with another key cannot join us', goMissing, async t => {
  const js = await member({ name: 'js9', bind: { ip: HOST, port: 28190 }, profile: 'local', keys: [randomBytes(16)] })
  t.teardown(() => js.shutdown())
  const go = await startGoPeer({ name: 'go9', port: 28191, key: randomBytes(16).toString('base64'), profile: 'local' })
  t.teardown(() => go.stop())
  await t.rejects(go.join(`${HOST}:28190`), 'the join is refused')
  t.equal(js.members().length, 1)
  t.ok((js.counters.dropped.decrypt ?? 0) >= 1, 'the undecryptable stream was counted')
})
