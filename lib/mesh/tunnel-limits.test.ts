import t, { type Test as Tap } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import { rawPeer, type RawPeer } from '../../bench/tunnel-fuzz.js'
import { SharedKeyAuth } from './shared-key-auth.js'
import { ConnectionLimits, DEFAULT_LIMITS, openFds, readFdLimit } from './tunnel-limits.js'
import { Tunnel, TunnelError, type IncomingStream, type TunnelOptions } from './tunnel.js'
import { until } from './wait.test-helper.js'

// Ports 29221-29239 on 127.0.0.x (sources 127.0.0.100-.139), one per test.
const VNI = 4096
const KEY = randomBytes(32)

async function tunnel(t: Tap, host: string, port: number, extra: Partial<TunnelOptions> = {}): Promise<Tunnel> {
  const tn = await Tunnel.listen({ host, port, auth: new SharedKeyAuth(KEY), onStream: echo, ...extra })
  t.teardown(() => tn.close())
  return tn
}

const echo = (s: IncomingStream): void => {
  const d = s.accept()
  d.on('error', () => {})
  d.pipe(d)
}

async function roundTrip(tn: Tunnel, peer: Parameters<Tunnel['open']>[0]): Promise<string> {
  const d = await tn.open(peer, VNI, 'echo/tcp/1')
  d.end('ping')
  let got = ''
  for await (const c of d) got += String(c)
  return got
}

function hold(t: Tap, peers: RawPeer[]): void {
  t.teardown(() => {
    for (const p of peers) p.close()
  })
}

t.test('the descriptor limit is read from /proc/self/limits, as ulimit -n reports it', async (t) => {
  const shell = execFileSync('sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).trim()
  t.equal(readFdLimit(), shell === 'unlimited' ? Infinity : Number(shell))
  const dir = mkdtempSync(join(tmpdir(), 'limits-'))
  writeFileSync(join(dir, 'limits'), 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            unlimited            unlimited            files\n')
  t.equal(readFdLimit(join(dir, 'limits')), Infinity)
  t.equal(readFdLimit(join(dir, 'missing')), Infinity)
  t.ok(openFds() > 2, `${openFds()} descriptors open here`)
})

t.test('issue 11.8: hundreds of held connections stay within the caps, and a real peer still connects', async (t) => {
  const b = await tunnel(t, '127.0.0.71', 29221, { limits: { maxUnauthenticated: 64, maxUnauthenticatedPerSource: 8, handshakeTimeoutMs: 1500 } })
  const before = openFds()
  // 300 connections from 30 addresses, held open: half say HELLO and stop, half say nothing.
  const held: RawPeer[] = []
  hold(t, held)
  for (let src = 0; src < 30; src++) {
    for (let i = 0; i < 10; i++) held.push(await rawPeer(b.advertise, { name: `x${src}`, localAddress: `127.0.0.${100 + src}`, hello: false }))
  }
  await until(() => b.connectionCount() <= 64 && held.filter((p) => p.socket.destroyed).length >= 300 - 64, 3000)
  t.ok(b.connectionCount() <= 64, `${b.connectionCount()} of 300 connections held`)
  t.ok(openFds() - before <= 300 + 64 + 8, 'descriptors: the client ends, and at most the cap on the tunnel side')
  const c = b.counters()
  t.equal(c.refused.source_cap, 60, 'two of each address’s ten refused')
  t.equal(c.refused.unauthenticated_cap, 240 - 64, 'the oldest handshakes made room for newer ones')

  // A real peer, from another address, gets through at once.
  const a = await tunnel(t, '127.0.0.72', 29221)
  t.equal(await roundTrip(a, b.advertise), 'ping', 'the peer connected despite the flood')

  // The held ones end at the handshake timeout; the peer's connection stays.
  t.ok(await until(() => b.connectionCount() === 1, 4000), `${b.connectionCount()} left after the handshake timeout`)
  t.equal(b.counters().refused.handshake_timeout, 64 - 1, 'the rest timed out (one made room for the peer)')
  t.equal(await roundTrip(a, b.advertise), 'ping')
})

t.test('authenticated connections: capped per peer, and closed when idle', async (t) => {
  const b = await tunnel(t, '127.0.0.73', 29223, { limits: { maxConnectionsPerPeer: 4, idleTimeoutMs: 300 } })
  const peers: RawPeer[] = []
  hold(t, peers)
  for (let i = 0; i < 10; i++) peers.push(await rawPeer(b.advertise, { name: 'same-node', auth: new SharedKeyAuth(KEY) }))
  await until(() => peers.filter((p) => p.socket.destroyed).length === 6, 2000)
  t.equal(b.connectionCount(), 4, 'four connections of one peer kept')
  t.equal(b.counters().refused.peer_cap, 6)
  // Idle, without streams: the acceptor closes them after twice the idle timeout (the dialer should have after once).
  const t0 = Date.now()
  t.ok(await until(() => b.connectionCount() === 0, 3000))
  t.ok(Date.now() - t0 >= 400, `closed after ${Date.now() - t0} ms`)
  t.equal(b.counters().idleClosed, 4)

  // A real dialer closes its own idle connection once its streams are done, and dials again when needed.
  const a = await tunnel(t, '127.0.0.74', 29223, { limits: { idleTimeoutMs: 300 } })
  t.equal(await roundTrip(a, b.advertise), 'ping')
  t.ok(await until(() => a.connectionCount() === 0, 3000), 'closed when idle')
  t.equal(a.counters().idleClosed, 1)
  t.equal(await roundTrip(a, b.advertise), 'ping', 'redialled')
})

/** Another process that opens `n` connections to `target` and holds them until killed; resolves once all are up or refused. */
async function holder(t: Tap, target: { host: string; port: number }, n: number): Promise<void> {
  const script = `
    const net = require('net'); let settled = 0; const socks = []
    for (let i = 0; i < ${n}; i++) {
      const s = net.connect(${target.port}, '${target.host}'); socks.push(s)
      const done = () => { if (!s.settled) { s.settled = true; if (++settled === ${n}) process.stdout.write('ready') } }
      s.on('connect', done); s.on('error', done); s.on('close', done)
    }
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => child.kill())
  await once(child.stdout, 'data')
}

t.test('the descriptor reserve: near the limit no connection is taken or dialled, and the rest of the process still has descriptors', async (t) => {
  const fdLimit = openFds() + 60
  const b = await tunnel(t, '127.0.0.75', 29225, { limits: { fdLimit, fdReserve: 30, maxUnauthenticated: 1000, maxUnauthenticatedPerSource: 1000 } })
  await holder(t, b.advertise, 100)
  await until(() => b.counters().connectionsOpened + b.counters().refused.fd_reserve === 100, 2000)
  const held = b.connectionCount()
  t.ok(held > 0 && held <= 30, `${held} of 100 held`)
  t.ok(openFds() < fdLimit - 30 + 2, `${openFds()} open: the reserve of 30 under ${fdLimit} is left`)
  t.equal(b.counters().refused.fd_reserve, 100 - held, 'the rest refused at the reserve')
  // What the reserve is for: this process can still open sockets (its local API, its control plane).
  const api = createServer((c) => c.end('api ok'))
  await new Promise<void>((r) => api.listen(0, '127.0.0.75', r))
  t.teardown(() => api.close())
  const reply = await new Promise<string>((resolve) => {
    const c = connect((api.address() as { port: number }).port, '127.0.0.75')
    let got = ''
    c.on('data', (d) => (got += d))
    c.on('close', () => resolve(got))
  })
  t.equal(reply, 'api ok')
  const e = (await b.open({ host: '127.0.0.76', port: 29225 }, VNI, 'k/tcp/1').catch((x: unknown) => x)) as TunnelError
  t.match(e, { code: 'E_TUNNEL_REFUSED', reason: 'EMFILE' }, 'no dial either')
})

t.test('ConnectionLimits: slots follow a connection from its handshake to its peer and back', async (t) => {
  let fds = 0
  const limits = new ConnectionLimits({ ...DEFAULT_LIMITS, fdLimit: 100, fdReserve: 10, maxUnauthenticated: 2, maxUnauthenticatedPerSource: 1, maxConnectionsPerPeer: 1 }, () => 0, () => fds)
  const c1 = { source: '10.0.0.1', dialed: false, peer: undefined as string | undefined, slot: undefined as 'handshake' | 'peer' | undefined }
  t.equal(limits.admitInbound('10.0.0.1'), undefined)
  limits.opened(c1)
  t.equal(limits.admitInbound('10.0.0.1'), 'source_cap')
  const c2 = { ...c1, source: '10.0.0.2', slot: undefined }
  limits.opened(c2)
  t.equal(limits.handshakesFull, true)
  c1.peer = 'n1'
  t.equal(limits.authenticated(c1), undefined)
  t.equal(limits.handshakesFull, false)
  t.equal(limits.admitInbound('10.0.0.1'), undefined, 'the address is free again')
  c2.peer = 'n1'
  t.equal(limits.authenticated(c2), 'peer_cap')
  limits.closed(c2)
  limits.closed(c1)
  c2.slot = undefined
  const c3 = { ...c1, slot: undefined }
  limits.opened(c3)
  t.equal(limits.authenticated(c3), undefined, 'n1 may connect again')
  fds = 95
  t.equal(limits.admitDial(), undefined, 'the count is cached for a while')
  const later = new ConnectionLimits({ ...DEFAULT_LIMITS, fdLimit: 100, fdReserve: 10 }, () => 0, () => 95)
  t.equal(later.admitDial(), 'fd_reserve')
  t.equal(later.admitInbound('x'), 'fd_reserve')
  t.equal(new ConnectionLimits({ ...DEFAULT_LIMITS, fdLimit: 100, fdReserve: 10 }, () => 0, () => { throw new Error('no /proc') }).admitDial(), undefined, 'unmeasurable: not enforced')
})
