import t, { type Test } from 'tap'
import { RemoteError } from './remote-error.js'
import { ClusterCA, type CertificateBody, type NodeCertificate } from './ca.js'
import { ControlNode } from './control-node.js'
import { generateKeyPair, nodeIdFor } from './identity.js'
import { openSession, serveSession, type Session } from './session.js'
import { freePort } from '../test-helpers.test-helper.js'
import { issue } from './certs.test-helper.js'
import { controlPeers } from './control-peers.test-helper.js'

const HOST = '127.0.0.241'


async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 10))
  }
}


/** A manager serving sessions on HOST, and a worker that opens them; both stopped at teardown. */
async function setup(t: Test, o: { managerRole?: 'manager' | 'worker' } = {}) {
  const { ca, mgrKeys, wrkKeys, port, manager, worker } = await controlPeers(t, HOST)
  const known = new Set([nodeIdFor(wrkKeys.publicKey)])
  const refused: string[] = []
  const sessions: { caller: CertificateBody; session: Session; got: unknown[] }[] = []
  await serveSession(manager, {
    caPublicKey: () => ca.publicKey,
    selfCert: () => issue(ca, mgrKeys, o.managerRole ?? 'manager'),
    role: id => (known.has(id) ? 'worker' : undefined),
    onRefused: why => refused.push(why),
    onSession: (caller, session) => {
      const got: unknown[] = []
      sessions.push({ caller, session, got })
      return m => got.push(m)
    },
  })
  const open = (cert: NodeCertificate, caPublicKey = ca.publicKey) => {
    const got: unknown[] = []
    return { got, session: openSession(worker, { ip: HOST, port }, cert, caPublicKey, m => got.push(m)) }
  }
  return { ca, mgrKeys, wrkKeys, port, manager, worker, known, refused, sessions, open }
}

/** Whether `p` settles within `ms`. */
const within = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true), new Promise<boolean>(r => setTimeout(() => r(false), ms).unref())])


t.test('a session opens and messages flow both ways', async t => {
  const { ca, wrkKeys, sessions, open } = await setup(t)
  const c = open(issue(ca, wrkKeys, 'worker'))
  const client = await c.session
  await until('the manager side', () => sessions.length === 1)
  const server = sessions[0]!
  t.equal(server.caller.nodeId, nodeIdFor(wrkKeys.publicKey))
  t.equal(server.caller.role, 'worker')

  client.send({ t: 'status', updates: [] })
  client.send({ n: 2 })
  server.session.send({ t: 'assign', tasks: [] })
  await until('messages', () => server.got.length === 2 && c.got.length === 1)
  t.same(server.got, [{ t: 'status', updates: [] }, { n: 2 }], 'in order')
  t.same(c.got, [{ t: 'assign', tasks: [] }])
  await client.close()
  client.send({ after: 'close' })
  t.pass('close() resolves; sending after it is silent')
})

t.test('closing the opener ends the session on both sides', async t => {
  const { ca, wrkKeys, sessions, open } = await setup(t)
  const client = await open(issue(ca, wrkKeys, 'worker')).session
  await until('the manager side', () => sessions.length === 1)
  await client.close()
  t.ok(await within(client.closed, 2_000), "the opener's closed resolves")
  t.ok(await within(sessions[0]!.session.closed, 2_000), "the manager's closed resolves")
  client.send({ after: 'close' })
  t.pass('sending on a closed session is silent')
})

t.test('closing the manager side ends the session on both sides', async t => {
  const { ca, wrkKeys, sessions, open } = await setup(t)
  const client = await open(issue(ca, wrkKeys, 'worker')).session
  await until('the manager side', () => sessions.length === 1)
  await sessions[0]!.session.close()
  t.ok(await within(sessions[0]!.session.closed, 2_000), "the manager's closed resolves")
  t.ok(await within(client.closed, 2_000), "the opener's closed resolves")
})

t.test('stopping the opener ends the session on the manager', async t => {
  const { ca, wrkKeys, sessions, open, worker } = await setup(t)
  const client = await open(issue(ca, wrkKeys, 'worker')).session
  await until('the manager side', () => sessions.length === 1)
  await worker.stop()
  t.ok(await within(client.closed, 5_000), "the opener's closed resolves")
  t.ok(await within(sessions[0]!.session.closed, 5_000), "the manager's closed resolves")
  sessions[0]!.session.send({ after: 'close' })
  t.pass('sending on a closed session is silent')
})

t.test('the manager refuses certificates it cannot trust and nodes it does not know', async t => {
  const { ca, wrkKeys, refused, sessions, open, known } = await setup(t)
  const otherCa = ClusterCA.create()
  await t.rejects(open(issue(otherCa, wrkKeys, 'worker')).session, {
    constructor: RemoteError,
    kind: 'permission_denied',
    message: /^certificate refused: certificate from another CA \(/,
  })
  const stranger = generateKeyPair()
  const strangerId = nodeIdFor(stranger.publicKey)
  await t.rejects(open(issue(ca, stranger, 'worker')).session, {
    constructor: RemoteError,
    message: `certificate refused: certificate of node ${strangerId} is for another key than the peer's`,
  })
  await t.rejects(open({ body: { nope: 1 }, signature: 'x' } as unknown as NodeCertificate).session, { message: 'certificate refused: malformed node certificate' })

  known.clear()
  const me = nodeIdFor(wrkKeys.publicKey)
  await t.rejects(open(issue(ca, wrkKeys, 'worker')).session, { constructor: RemoteError, message: `node ${me} is not part of this swarm` })
  t.equal(refused.length, 4)
  t.match(refused[0], /^certificate from another CA/)
  t.equal(refused[3], `node ${me} is not in the swarm`)
  t.equal(sessions.length, 0, 'no session reached the dispatcher')
})

t.test('the opener checks the manager: its CA, and that it is a manager', async t => {
  const worker = await setup(t, { managerRole: 'worker' })
  await t.rejects(worker.open(issue(worker.ca, worker.wrkKeys, 'worker')).session, {
    constructor: RemoteError,
    message: `the node at ${HOST}:${worker.port} is not a manager`,
  })

  // A manager whose certificate another CA signed (the opener trusts only its own CA).
  const other = await setup(t)
  await t.rejects(other.open(issue(other.ca, other.wrkKeys, 'worker'), ClusterCA.create().publicKey).session, { code: 'E_CERT_CA' })
})

t.test('nobody listening: the dial fails', async t => {
  const keys = generateKeyPair()
  const node = await ControlNode.create({ privateKey: keys.privateKey })
  t.teardown(() => node.stop())
  const port = await freePort(HOST)
  const ca = ClusterCA.create()
  await t.rejects(openSession(node, { ip: HOST, port }, issue(ca, keys, 'worker'), ca.publicKey, () => undefined), { code: 'E_CONTROL_DIAL' })
})
