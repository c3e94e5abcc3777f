import t, { type Test as Tap } from 'tap'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import { rawPeer } from '../../bench/tunnel-fuzz.js'
import { peerKey } from './peer-address.js'
import { SharedKeyAuth } from './shared-key-auth.js'
import { AcceptorHandshake, DialerHandshake, TRUST_NAMES, type TunnelAuth } from './tunnel-auth.js'
import { FrameType, encodeFrame, encodeOpenBody } from './tunnel-frame.js'
import { Tunnel, TunnelError, type IncomingStream, type TunnelOptions } from './tunnel.js'
import { sleep, until } from './wait.test-helper.js'

// Ports 29201-29219 on 127.0.0.x, one per test.
const VNI = 4096
const KEY = randomBytes(32)

async function tunnel(t: Tap, host: string, port: number, extra: Partial<TunnelOptions> = {}): Promise<Tunnel> {
  const tn = await Tunnel.listen({ host, port, auth: new SharedKeyAuth(KEY), ...extra })
  t.teardown(() => tn.close())
  return tn
}

/** Accepts every stream, answers "<name>:<key>" and ends. */
const answering = (name: string, log: string[]) => (s: IncomingStream) => {
  log.push(s.endpointKey)
  const d = s.accept()
  d.on('error', () => {})
  d.end(`${name}:${s.endpointKey}`)
  d.resume()
}

async function ask(tn: Tunnel, peer: Parameters<Tunnel['open']>[0], key: string): Promise<string> {
  const d = await tn.open(peer, VNI, key)
  let got = ''
  for await (const c of d) got += String(c)
  return got
}

const frame = (type: FrameType, body: Buffer = Buffer.alloc(0), vni = 0, streamId = 0): Buffer => encodeFrame({ vni, type, flags: 0, keyId: 0, streamId }, body)

t.test('the handshake: proofs bind both nonces, both names and the direction', async (t) => {
  const auth = new SharedKeyAuth(KEY)
  const dialer = new DialerHandshake(auth, { name: 'a', address: '127.0.0.1:4789' }, 'b')
  const acceptor = new AcceptorHandshake(auth, 'b')
  const challenge = acceptor.onHello(dialer.helloBody())
  const proof = dialer.onChallenge(challenge)
  t.same(acceptor.onAuth(proof), { name: 'a', address: '127.0.0.1:4789', nonce: (acceptor as unknown as { hello: { nonce: Buffer } }).hello.nonce })

  // A recorded AUTH is worth nothing on the next connection: the acceptor's nonce is new.
  const next = new AcceptorHandshake(auth, 'b')
  next.onHello(dialer.helloBody())
  t.throws(() => next.onAuth(proof), { code: 'E_TUNNEL_AUTH' }, 'no replay')

  // The acceptor's proof sent back as the dialer's AUTH (reflection) fails: the role is signed.
  const mirror = new AcceptorHandshake(auth, 'b')
  const c2 = mirror.onHello(dialer.helloBody())
  const reflected = Buffer.concat([Buffer.from([0, 32]), c2.subarray(c2.length - 32)])
  t.throws(() => mirror.onAuth(reflected), { code: 'E_TUNNEL_AUTH' }, 'no reflection')

  // The dialer insists on the name it dialled.
  const other = new AcceptorHandshake(auth, 'c')
  t.throws(() => new DialerHandshake(auth, { name: 'a', address: '127.0.0.1:4789' }, 'b').onChallenge(other.onHello(dialer.helloBody())), { code: 'E_TUNNEL_AUTH', message: /reached c, not b/ })

  // Another key proves nothing; an auth that throws refuses rather than crashes.
  const wrong = new DialerHandshake(new SharedKeyAuth(randomBytes(32)), { name: 'a', address: '127.0.0.1:4789' }, 'b')
  t.throws(() => wrong.onChallenge(new AcceptorHandshake(auth, 'b').onHello(wrong.helloBody())), { code: 'E_TUNNEL_AUTH' })
  const broken: TunnelAuth = {
    prove: () => {
      throw new Error('no certificate yet')
    },
    verify: () => {
      throw new Error('boom')
    },
  }
  t.throws(() => new AcceptorHandshake(broken, 'b').onHello(dialer.helloBody()), { code: 'E_TUNNEL_AUTH', message: /no certificate yet/ })
  const d3 = new DialerHandshake(broken, { name: 'a', address: '127.0.0.1:4789' }, 'b')
  t.throws(() => d3.onChallenge(new AcceptorHandshake(auth, 'b').onHello(d3.helloBody())), { code: 'E_TUNNEL_AUTH', message: /did not prove/ })

  // Malformed bodies are FrameErrors (counted as malformed, not as failed proofs).
  for (const body of [Buffer.alloc(0), Buffer.from('127.0.0.99:1'), Buffer.concat([dialer.helloBody(), Buffer.alloc(1)])]) t.throws(() => new AcceptorHandshake(auth, 'b').onHello(body), { code: 'E_FRAME_BODY' })
  t.throws(() => new SharedKeyAuth(Buffer.alloc(8)), { code: 'E_TUNNEL_AUTH_KEY' })
  t.equal(TRUST_NAMES.verify('anyone', Buffer.alloc(0), Buffer.alloc(0)), true)
})

t.test('issue 11.6: a keyless process that names a peer gets nothing, answers nothing and displaces nothing', async (t) => {
  const atA: string[] = []
  const a = await tunnel(t, '127.0.0.51', 29201, { onStream: answering('a', atA) })
  const b = await tunnel(t, '127.0.0.52', 29201)
  // a dials b: at b, a's connection is inbound, as the manager's was in the attack.
  await b.ping(a.advertise).catch(() => undefined)
  t.equal(await ask(b, a.advertise, 'warm/tcp/1'), 'a:warm/tcp/1')
  t.equal(b.connectionCount(), 1)
  const aName = peerKey(a.advertise) // a tunnel's default name

  // The attack as tried: HELLO with the peer's address (the old format), then frames.
  const old = await rawPeer(b.advertise, { name: aName, hello: false })
  old.socket.write(frame(FrameType.HELLO, Buffer.from(`${a.advertise.host}:${a.advertise.port}`)))
  old.socket.write(frame(FrameType.PING, Buffer.alloc(8)))
  // The handshake's format, claiming a's name: it is challenged, but cannot answer.
  const noAuth = await rawPeer(b.advertise, { name: aName, hello: true, auth: { prove: () => randomBytes(32), verify: () => true } })
  const silent = await rawPeer(b.advertise, { name: aName, hello: false })
  silent.socket.write(frame(FrameType.PING, Buffer.alloc(8)))
  // HELLO, then PING and OPEN at once, without waiting to be challenged.
  const eager = await rawPeer(b.advertise, { name: aName, hello: false })
  const hello = new DialerHandshake(TRUST_NAMES, { name: aName, address: `${a.advertise.host}:${a.advertise.port}` }, peerKey(b.advertise)).helloBody()
  eager.socket.write(Buffer.concat([frame(FrameType.HELLO, hello), frame(FrameType.PING, Buffer.alloc(8)), frame(FrameType.OPEN, encodeOpenBody({ window: 1024, endpointKey: 'x/tcp/1', preamble: Buffer.alloc(0) }), VNI, 1)]))

  const attackers = [old, noAuth, silent, eager]
  await Promise.race([Promise.all(attackers.map((x) => x.closed)), sleep(3000)])
  t.same(attackers.map((x) => x.socket.destroyed), [true, true, true, true], 'every one was closed')
  t.same(old.received, [], 'the old-format HELLO got no answer')
  t.same(noAuth.received.map((f) => f.type), [FrameType.CHALLENGE], 'a forged AUTH: only the challenge came back')
  t.same(silent.received, [], 'no PONG before a HELLO')
  t.ok(eager.received.every((f) => f.type === FrameType.CHALLENGE), 'frames before AUTH: no PONG, no OPEN_FAIL')

  // Every request b routes to a still reaches a.
  const answers = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => ask(b, a.advertise, `req-${i}/tcp/1`)))
  t.equal(answers.filter((x, i) => x.status === 'fulfilled' && x.value === `a:req-${i}/tcp/1`).length, 30, 'every request b routed to a was answered by a')
  t.same(attackers.flatMap((x) => x.received.filter((f) => f.type === FrameType.OPEN)), [], 'no OPEN reached an attacker')
  t.equal(atA.length, 31)
  t.ok(await until(() => b.connectionCount() === 1), 'the real connection is the only one left')
  const c = b.counters()
  t.same({ auth: c.refused.auth, unauthenticated: c.refused.unauthenticated, malformed: c.dropped.malformed }, { auth: 1, unauthenticated: 2, malformed: 1 })
})

t.test('mutual: the dialer sends nothing to an acceptor that cannot prove the name it dialled', async (t) => {
  const reached: string[] = []
  // An impostor at the address where 127.0.0.54 should be, without the key; then one with the key under another name.
  const impostor = await tunnel(t, '127.0.0.54', 29203, { auth: new SharedKeyAuth(randomBytes(32)), onStream: answering('impostor', reached) })
  const a = await tunnel(t, '127.0.0.53', 29203)
  const e = (await a.open(impostor.advertise, VNI, 'secret/tcp/1').catch((x: unknown) => x)) as TunnelError
  t.equal(e.code, 'E_TUNNEL_AUTH')
  t.equal(a.counters().refused.auth, 1)
  t.equal(impostor.counters().refused.auth, 0, 'the impostor never saw an AUTH it could check')
  await impostor.close()
  const renamed = await tunnel(t, '127.0.0.54', 29203, { name: 'someone-else', onStream: answering('renamed', reached) })
  const e2 = (await a.open(renamed.advertise, VNI, 'secret/tcp/1').catch((x: unknown) => x)) as TunnelError
  t.match(e2, { code: 'E_TUNNEL_AUTH', message: /reached someone-else, not 127\.0\.0\.54:29203/ })
  t.same(reached, [], 'no OPEN left the dialer')
  t.equal(await ask(a, { ...renamed.advertise, name: 'someone-else' }, 'ok/tcp/1'), 'renamed:ok/tcp/1', 'named right, it is reached')
})

t.test('a handshake that does not finish in time is ended, on both sides', async (t) => {
  const b = await tunnel(t, '127.0.0.56', 29205, { limits: { handshakeTimeoutMs: 200 } })
  const t0 = Date.now()
  const silent = await rawPeer(b.advertise, { name: 'x', hello: false })
  const helloOnly = await rawPeer(b.advertise, { name: 'x', hello: false })
  helloOnly.socket.write(frame(FrameType.HELLO, new DialerHandshake(TRUST_NAMES, { name: 'x', address: '127.0.0.1:1' }, b.name).helloBody()))
  await Promise.all([silent.closed, helloOnly.closed])
  t.ok(Date.now() - t0 >= 150, 'after the timeout')
  t.equal(b.counters().refused.handshake_timeout, 2)

  // A dialer whose acceptor never answers gives up as well.
  const held: Socket[] = []
  const mute = createServer((s) => held.push(s.on('error', () => {})))
  mute.listen(29205, '127.0.0.57')
  await once(mute, 'listening')
  t.teardown(() => {
    for (const s of held) s.destroy()
    mute.close()
  })
  const a = await tunnel(t, '127.0.0.58', 29205, { limits: { handshakeTimeoutMs: 200 } })
  const e = (await a.open({ host: '127.0.0.57', port: 29205 }, VNI, 'k/tcp/1').catch((x: unknown) => x)) as TunnelError
  t.match(e, { code: 'E_TUNNEL_AUTH', reason: 'handshake_timeout' })
})

t.test('a proven newcomer for a name replaces its old connection; simultaneous dials settle on one', async (t) => {
  const atB: string[] = []
  const b = await tunnel(t, '127.0.0.60', 29207, { onStream: answering('b', atB) })
  const a1 = await Tunnel.listen({ host: '127.0.0.59', port: 29207, auth: new SharedKeyAuth(KEY), onStream: answering('a1', []) })
  t.equal(await ask(a1, b.advertise, 'one/tcp/1'), 'b:one/tcp/1')
  // a restarts; its old connection is still up at b (half-open, say) when the new process dials.
  const a2 = await tunnel(t, '127.0.0.59', 29208, { name: a1.name, onStream: answering('a2', []) })
  t.equal(await ask(a2, b.advertise, 'two/tcp/1'), 'b:two/tcp/1')
  t.equal(await ask(b, { ...a2.advertise, name: a1.name }, 'back/tcp/1'), 'a2:back/tcp/1', 'b now reaches the newcomer')
  t.equal(await ask(b, a1.advertise, 'again/tcp/1'), 'a2:again/tcp/1', 'whatever address it is asked by')
  await a1.close()

  const c = await tunnel(t, '127.0.0.61', 29207, { onStream: answering('c', []) })
  const d = await tunnel(t, '127.0.0.62', 29207, { onStream: answering('d', []) })
  const [x, y] = await Promise.all([ask(c, d.advertise, 'k/tcp/1'), ask(d, c.advertise, 'k/tcp/1')])
  t.same([x, y], ['d:k/tcp/1', 'c:k/tcp/1'])
  t.ok(await until(() => c.connectionCount() === 1 && d.connectionCount() === 1), `one connection left (${c.connectionCount()} / ${d.connectionCount()})`)
})
