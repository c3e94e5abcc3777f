import t, { type Test } from 'tap'
import { pino } from 'pino'
import { rawPeer } from '../../bench/tunnel-fuzz.js'
import { ClusterCA, type NodeCertificate } from '../control/ca.js'
import { generateKeyPair, nodeIdFor, type KeyPair } from '../control/identity.js'
import { Membership } from '../gossip/membership.js'
import type { IncomingStream } from '../mesh/tunnel.js'
import { Tunnel, type TunnelError } from '../mesh/tunnel.js'
import { certificateAuth } from './mesh-auth.js'
import { NodeMesh } from './node-mesh.js'

// Ports 29251-29259 on 127.0.0.x.
const VNI = 4096
const DAY = 86_400_000

interface Node {
  keys: KeyPair
  id: string
  cert: NodeCertificate
}

function node(ca: ClusterCA, o: { role?: 'manager' | 'worker'; now?: number; ttlMs?: number } = {}): Node {
  const keys = generateKeyPair()
  return { keys, id: nodeIdFor(keys.publicKey), cert: ca.issue({ nodePublicKey: keys.publicKey, role: o.role ?? 'worker', now: o.now ?? Date.now(), ttlMs: o.ttlMs ?? DAY }) }
}

const echo = (s: IncomingStream): void => {
  const d = s.accept()
  d.on('error', () => {})
  d.pipe(d)
}

async function listen(t: Test, host: string, port: number, n: Node, ca: ClusterCA, cert: NodeCertificate = n.cert): Promise<Tunnel> {
  const tn = await Tunnel.listen({ host, port, name: n.id, auth: certificateAuth({ privateKey: n.keys.privateKey, certificate: () => cert, caPublicKey: () => ca.publicKey }), onStream: echo })
  t.teardown(() => tn.close())
  return tn
}

async function roundTrip(from: Tunnel, to: Tunnel, name = to.name): Promise<string> {
  const d = await from.open({ ...to.advertise, name }, VNI, 'echo/tcp/1')
  d.end('hi')
  let got = ''
  for await (const c of d) got += String(c)
  return got
}

const failure = (p: Promise<unknown>): Promise<TunnelError> => p.then(
  () => {
    throw new Error('expected a refusal')
  },
  (e: TunnelError) => e,
)

t.test('nodes with certificates of the cluster CA reach each other by node ID; nobody else does', async (t) => {
  const ca = ClusterCA.create()
  const manager = node(ca, { role: 'manager' })
  const worker = node(ca)
  const m = await listen(t, '127.0.0.81', 29251, manager, ca)
  const w = await listen(t, '127.0.0.82', 29251, worker, ca)
  t.equal(await roundTrip(w, m), 'hi', 'worker to manager')
  t.equal(await roundTrip(m, w), 'hi', 'and back')

  // A certificate from another CA.
  const rogueCa = ClusterCA.create()
  const rogue = node(rogueCa)
  const r = await listen(t, '127.0.0.83', 29251, rogue, rogueCa)
  t.match(await failure(roundTrip(r, m, manager.id)), { code: 'E_TUNNEL_AUTH' }, 'the manager is not fooled by another CA… ')
  t.match(await failure(roundTrip(m, r, rogue.id)), { code: 'E_TUNNEL_AUTH' }, '…and does not take it for a peer either')

  // A real worker of this cluster claiming the manager's ID, and one whose certificate expired.
  const liar = node(ca)
  const l = await Tunnel.listen({ host: '127.0.0.84', port: 29251, name: manager.id, auth: certificateAuth({ privateKey: liar.keys.privateKey, certificate: () => liar.cert, caPublicKey: () => ca.publicKey }), onStream: echo })
  t.teardown(() => l.close())
  // (a fresh dialer: w would reuse its connection to the real manager, whatever address it is given)
  const fresh = await listen(t, '127.0.0.90', 29251, node(ca), ca)
  t.match(await failure(roundTrip(fresh, l, manager.id)), { code: 'E_TUNNEL_AUTH' }, 'a certified node cannot pose as another')
  t.equal(await roundTrip(w, l, manager.id), 'hi', 'w, by name, still reaches the real manager')
  const old = node(ca, { now: Date.now() - 2 * DAY, ttlMs: DAY })
  const o = await listen(t, '127.0.0.85', 29251, old, ca)
  t.match(await failure(roundTrip(o, m, manager.id)), { code: 'E_TUNNEL_AUTH' }, 'an expired certificate is refused')
  // Someone else's certificate, signed with one's own key.
  const thief = node(ca)
  const th = await listen(t, '127.0.0.86', 29251, { ...thief, id: worker.id }, ca, worker.cert)
  t.match(await failure(roundTrip(th, m, manager.id)), { code: 'E_TUNNEL_AUTH' }, 'a stolen certificate without its key is refused')
  t.equal(m.counters().refused.auth, 3, 'the manager refused the rogue it dialled, the expired and the thief (the others were refused by their dialers first)')

  // No certificate yet: this node cannot prove anything, and says so.
  const pending = await Tunnel.listen({ host: '127.0.0.87', port: 29251, name: 'pending', auth: certificateAuth({ privateKey: worker.keys.privateKey, certificate: () => undefined, caPublicKey: () => ca.publicKey }) })
  t.teardown(() => pending.close())
  t.match(await failure(roundTrip(pending, m, manager.id)), { code: 'E_TUNNEL_AUTH' })
  const garbage = await rawPeer(m.advertise, { name: worker.id, expected: manager.id, auth: { prove: () => Buffer.from([0, 3, 1, 2, 3]), verify: () => true } })
  await garbage.closed
  t.equal(m.counters().refused.auth, 4, 'a proof that is not a certificate is refused too')
})

t.test('NodeMesh passes its auth to the tunnel', async (t) => {
  const ca = ClusterCA.create()
  const n = node(ca)
  const log = pino({ level: 'silent' })
  const membership = await Membership.create({ name: n.id, bind: { ip: '127.0.0.88', port: 29255 }, logger: log })
  const nm = new NodeMesh({ membership: () => membership, host: '127.0.0.88', ingressHost: '127.0.0.88', log, auth: certificateAuth({ privateKey: n.keys.privateKey, certificate: () => n.cert, caPublicKey: () => ca.publicKey }) })
  t.teardown(async () => {
    await nm.close()
    await membership.shutdown()
  })
  await nm.sync({ dataPathPort: 29256, networks: [{ id: 'ing', vni: VNI, ingress: true }], services: [] })
  const claim = await rawPeer({ host: '127.0.0.88', port: 29256 }, { name: 'someone', expected: n.id })
  await claim.closed
  t.equal(nm.instance!.stats().tunnel.refused.auth, 1, 'a bare claim is refused')
  const peer = node(ca)
  const p = await listen(t, '127.0.0.89', 29256, peer, ca)
  const d = await p.open({ host: '127.0.0.88', port: 29256, name: n.id }, VNI, 'nothing/tcp/1').catch((e: TunnelError) => e)
  t.match(d, { code: 'E_TUNNEL_OPEN_FAILED', reason: 'ENOENT' }, 'a certified peer gets through (to an endpoint that does not exist)')
})

t.test("a removed node's certificate, valid as it is, proves nothing", async t => {
  const ca = ClusterCA.create()
  const a = node(ca)
  const known = new Set([a.id])
  const mine = certificateAuth({ privateKey: a.keys.privateKey, certificate: () => a.cert, caPublicKey: () => ca.publicKey })
  const theirs = certificateAuth({ privateKey: generateKeyPair().privateKey, certificate: () => undefined, caPublicKey: () => ca.publicKey, known: id => known.has(id) })
  const transcript = Buffer.from('transcript of one handshake')
  const proof = mine.prove(transcript)
  t.ok(theirs.verify(a.id, transcript, proof), 'a node the swarm has')
  known.delete(a.id)
  t.notOk(theirs.verify(a.id, transcript, proof), 'the same proof once the node is removed')
})
