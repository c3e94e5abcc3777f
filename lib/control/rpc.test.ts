import t, { type Test } from 'tap'
import { NOT_MANAGER } from '../types/errors.js'
import type { NodeCertificate, Role } from './ca.js'
import { nodeIdFor } from './identity.js'
import { RemoteError } from './remote-error.js'
import { callRpc, serveRpc } from './rpc.js'
import { issue } from './certs.test-helper.js'
import { controlPeers } from './control-peers.test-helper.js'

const HOST = '127.0.0.242'



/** A manager serving RPCs whose callers' current roles the test sets, and a client node. */
async function setup(t: Test) {
  const { ca, mgrKeys, wrkKeys: nodeKeys, port, manager: server, worker: client } = await controlPeers(t, HOST)
  const roles = new Map<string, Role>()
  const refused: string[] = []
  const calls: { method: string; outcome: string; ms: number }[] = []
  await serveRpc(server, {
    onCall: (method, outcome, ms) => calls.push({ method, outcome, ms }),
    caPublicKey: () => ca.publicKey,
    selfCert: () => issue(ca, mgrKeys, 'manager'),
    role: id => roles.get(id),
    onRefused: why => refused.push(why),
    methods: {
      'nodes.list': { roles: ['manager'], run: () => ['the node list'] },
      heartbeat: { roles: ['worker', 'manager'], run: (_p, caller) => ({ role: caller.role }) },
      fail: { roles: ['worker'], run: () => Promise.reject(new RemoteError('E_SOMETHING', 'it went wrong', { kind: 'not_found' })) },
    },
  })
  const call = (cert: NodeCertificate, method: string) => callRpc<unknown>(client, { ip: HOST, port }, cert, ca.publicKey, method)
  return { ca, nodeKeys, nodeId: nodeIdFor(nodeKeys.publicKey), roles, refused, calls, call }
}

t.test("a certificate's role is no more than the node's role now: demotion takes effect at once", async t => {
  const h = await setup(t)
  const managerCert = issue(h.ca, h.nodeKeys, 'manager')
  h.roles.set(h.nodeId, 'manager')
  t.same(await h.call(managerCert, 'nodes.list'), ['the node list'], 'a manager calls manager methods')
  h.roles.set(h.nodeId, 'worker')
  await t.rejects(h.call(managerCert, 'nodes.list'), { constructor: RemoteError, kind: 'unavailable', message: NOT_MANAGER }, 'demoted: the certificate issued while promoted no longer works')
  t.same(await h.call(managerCert, 'heartbeat'), { role: 'worker' }, 'it may still call what workers call, as a worker')
  // Promoted again but still holding a worker certificate: nothing more until the certificate is renewed.
  h.roles.set(h.nodeId, 'manager')
  await t.rejects(h.call(issue(h.ca, h.nodeKeys, 'worker'), 'nodes.list'), { message: NOT_MANAGER })
  h.roles.delete(h.nodeId)
  await t.rejects(h.call(managerCert, 'heartbeat'), { kind: 'permission_denied', message: `node ${h.nodeId} is not part of this swarm` }, 'removed: nothing at all')
  t.match(h.refused, [/called nodes\.list/, /called nodes\.list/, /is not in the swarm/])
  t.same(
    h.calls.map(c => `${c.method} ${c.outcome}`),
    ['nodes.list ok', 'nodes.list refused', 'heartbeat ok', 'nodes.list refused', 'heartbeat refused'],
    'each call observed with its method and outcome',
  )
  t.ok(h.calls.every(c => c.ms >= 0 && c.ms < 5_000), 'with its duration')
})

t.test("a method's error comes back with its code and kind", async t => {
  const h = await setup(t)
  h.roles.set(h.nodeId, 'worker')
  await t.rejects(h.call(issue(h.ca, h.nodeKeys, 'worker'), 'fail'), { constructor: RemoteError, code: 'E_SOMETHING', kind: 'not_found', message: 'it went wrong' })
  await t.rejects(h.call(issue(h.ca, h.nodeKeys, 'worker'), 'nope'), { kind: 'unimplemented', message: 'unknown method nope' })
  t.same(
    h.calls.map(c => `${c.method} ${c.outcome}`),
    ['fail error', 'unknown unknown_method'],
    "a method that throws is an error; a name not served is no label of its own",
  )
})
