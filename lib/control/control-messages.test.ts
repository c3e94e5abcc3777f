/**
 * Fuzz: every join, RPC and session message, malformed, over real control
 * connections. A manager given garbage answers with a refusal or ends the
 * stream, and its handlers throw nothing but ChannelErrors (the peer went
 * away or fell silent); a node given garbage by a manager rejects with a
 * SwarmdError, never a TypeError, and never hangs.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { SwarmdError } from '../types/errors.js'
import type { Channel } from './channel.js'
import type { ChannelHandler, ControlNode } from './control-node.js'
import { issue } from './certs.test-helper.js'
import { controlPeers } from './control-peers.test-helper.js'
import { nodeIdFor, rawPublicKey } from './identity.js'
import { JOIN_PROTOCOL, requestJoin, serveJoin } from './join-protocol.js'
import { newJoinToken } from './join-token.js'
import { callRpc, RPC_PROTOCOL, serveRpc } from './rpc.js'
import { openSession, serveSession, SESSION_PROTOCOL } from './session.js'

const HOST = '127.0.0.244'
const RUNS = 100

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`hang: ${what} did not settle within ${ms} ms`)), ms).unref())])

/** The control plane of one test: a CA, a manager's and a worker's keys and certificates, two real nodes. */
async function plane(t: Test) {
  const peers = await controlPeers(t, HOST)
  const { ca, mgrKeys, wrkKeys, manager } = peers
  /** The manager's node, its handlers' failures recorded. */
  const thrown: unknown[] = []
  const watched = {
    handle: (protocol: string, h: ChannelHandler) =>
      manager.handle(protocol, async (ch, peer) => {
        try {
          await h(ch, peer)
        } catch (e) {
          thrown.push(e)
          throw e
        }
      }),
  } as unknown as ControlNode
  return { ...peers, watched, thrown, mgrCert: issue(ca, mgrKeys, 'manager'), wrkCert: issue(ca, wrkKeys, 'worker') }
}

/**
 * Sends `msgs` on a new stream and returns every answer until the manager
 * ends the stream or falls silent (2 s for a first answer, then 100 ms);
 * `hangUp` ends our side right after sending, as a peer that does not wait.
 */
async function converse(node: ControlNode, to: { ip: string; port: number }, protocol: string, msgs: unknown[], hangUp = false): Promise<unknown[]> {
  const { ch } = await node.open(to, protocol)
  for (const m of msgs) ch.send(m)
  if (hangUp) await ch.close()
  const answers: unknown[] = []
  for (;;) {
    try {
      answers.push(await ch.recv(answers.length === 0 && msgs.length > 0 ? 2_000 : 100))
    } catch {
      await ch.close()
      return answers
    }
  }
}

/** Anything a handler may throw on garbage: the peer ended the stream, fell silent or sent a broken frame. */
const channelOnly = (thrown: unknown[]): unknown[] => thrown.filter(e => !(e instanceof SwarmdError && /^E_CHANNEL_/.test(e.code)))

const json = fc.jsonValue({ maxDepth: 3 })
const text = fc.oneof(fc.string({ maxLength: 20 }), json)

t.test('fuzz: join requests the manager cannot use are refused, whatever their shape', async t => {
  const p = await plane(t)
  const admitted: string[] = []
  await serveJoin(p.watched, {
    ca: () => p.ca,
    certTtlMs: () => 3600_000,
    managerCert: () => p.mgrCert,
    secrets: () => ({ worker: '0'.repeat(25), manager: '1'.repeat(25) }),
    admit: async o => {
      admitted.push(o.nodeId)
      return { clusterId: 'c', gossipKeys: [], gossipAddr: `${HOST}:7946` }
    },
    onRefused: () => undefined,
  })
  const hello = fc.oneof(json, fc.record({ hostname: text, advertiseAddr: text }, { requiredKeys: [] }))
  const proof = fc.oneof(fc.constant(null), json, fc.record({ proof: fc.oneof(fc.base64String({ maxLength: 64 }), json) }, { requiredKeys: [] }))
  let refusals = 0
  await fc.assert(
    fc.asyncProperty(fc.tuple(hello, proof), fc.array(json, { maxLength: 2 }), fc.nat(3), fc.boolean(), async ([h, pr], extra, n, hangUp) => {
      const answers = await within(converse(p.worker, p.to, JOIN_PROTOCOL, [h, pr, ...extra].slice(0, n), hangUp), 10_000, 'a join')
      refusals += answers.filter(a => typeof (a as { error?: unknown })?.error === 'string').length
      return answers.every(a => typeof a === 'object' && a !== null)
    }),
    { numRuns: RUNS },
  )
  t.same(channelOnly(p.thrown), [], 'the join handler threw nothing but channel errors')
  t.ok(refusals > 0, `${refusals} refusals answered`)
  t.same(admitted, [], 'and nobody was admitted')
})

t.test('fuzz: RPC calls are refused unless signed, known and allowed', async t => {
  const p = await plane(t)
  const ran: unknown[] = []
  await serveRpc(p.watched, {
    caPublicKey: () => p.ca.publicKey,
    selfCert: () => p.mgrCert,
    methods: { echo: { roles: ['worker'], run: params => ran.push(params) }, admin: { roles: ['manager'], run: () => 'no' } },
    role: id => (id === nodeIdFor(p.wrkKeys.publicKey) ? 'worker' : undefined),
    onRefused: () => undefined,
  })
  const cert = fc.oneof(
    fc.constant(p.wrkCert),
    json,
    fc.record({ body: fc.oneof(json, fc.constant(p.wrkCert.body)), signature: fc.oneof(fc.constant(p.wrkCert.signature), text) }),
    fc.constantFrom(...Object.keys(p.wrkCert.body)).chain(k => json.map(v => ({ ...p.wrkCert, body: { ...p.wrkCert.body, [k]: v } }))),
  )
  const method = fc.oneof(fc.constantFrom('echo', 'admin', 'toString', '__proto__', 'hasOwnProperty'), text)
  const call = fc.oneof(
    { arbitrary: fc.record({ cert: fc.constant(p.wrkCert), method, params: json }), weight: 2 },
    { arbitrary: fc.record({ cert, method, params: json }, { requiredKeys: [] }), weight: 2 },
    { arbitrary: json, weight: 1 },
  )
  let ok = 0
  await fc.assert(
    fc.asyncProperty(call, async c => {
      const answers = await within(converse(p.worker, p.to, RPC_PROTOCOL, [c]), 10_000, 'a call')
      const a = answers[0] as { error?: unknown; result?: unknown } | undefined
      if (a?.result !== undefined) ok++
      return answers.length === 1 && (typeof a?.error === 'string' || a?.result !== undefined)
    }),
    { numRuns: RUNS },
  )
  t.same(channelOnly(p.thrown), [], 'the RPC handler threw nothing but channel errors')
  t.ok(ok > 0, `${ok} signed, known calls of an allowed method answered`)
  t.equal(ran.length, ok, 'and only those ran')
})

t.test('fuzz: sessions open only for a good certificate; what follows reaches the dispatcher as sent', async t => {
  const p = await plane(t)
  const got: unknown[] = []
  await serveSession(p.watched, {
    caPublicKey: () => p.ca.publicKey,
    selfCert: () => p.mgrCert,
    role: id => (id === nodeIdFor(p.wrkKeys.publicKey) ? 'worker' : undefined),
    onRefused: () => undefined,
    onSession: () => m => got.push(m),
  })
  const hello = fc.oneof(json, fc.constant({ cert: p.wrkCert }), fc.record({ cert: json }))
  let sent = 0
  await fc.assert(
    fc.asyncProperty(hello, fc.array(json, { maxLength: 4 }), async (h, rest) => {
      const answers = await within(converse(p.worker, p.to, SESSION_PROTOCOL, [h, ...rest]), 10_000, 'a session')
      const a = answers[0] as { error?: unknown; cert?: unknown } | undefined
      if (a?.cert) sent += rest.length
      return answers.length === 1 && (typeof a?.error === 'string' || a?.cert !== undefined)
    }),
    { numRuns: RUNS },
  )
  t.same(channelOnly(p.thrown), [], 'the session handler threw nothing but channel errors')
  t.equal(got.length, sent, `the ${sent} messages sent on open sessions arrived, none of the others`)
})

/** A manager that answers every conversation on `protocol` with the messages `script()` gives, one per message it receives. */
async function scripted(p: Awaited<ReturnType<typeof plane>>, protocol: string, script: () => unknown[]): Promise<void> {
  await p.manager.handle(protocol, async (ch: Channel) => {
    for (const answer of script()) {
      await ch.recv(2_000)
      ch.send(answer)
    }
  })
}

t.test('fuzz: a node refuses whatever a broken manager answers, with a SwarmdError', async t => {
  const p = await plane(t)
  const token = newJoinToken(p.ca.digest)
  const caRaw = rawPublicKey(p.ca.publicKey).toString('base64')
  const good = { ca: caRaw, managerCert: p.mgrCert, challenge: Buffer.alloc(32, 7).toString('base64') }
  const challenge = fc.oneof(
    json,
    fc.record({ ca: fc.oneof(fc.constant(caRaw), fc.base64String({ maxLength: 60 }), json), managerCert: fc.oneof(fc.constant(p.mgrCert), json), challenge: fc.oneof(fc.base64String({ maxLength: 60 }), json), error: json }, { requiredKeys: [] }),
  )
  const admission = fc.oneof(json, fc.record({ cert: fc.oneof(fc.constant(p.wrkCert), json), clusterId: text, gossipKeys: fc.oneof(fc.array(fc.string()), json), gossipAddr: text, error: json }, { requiredKeys: [] }))
  const answer = fc.oneof(json, fc.record({ result: json, cert: fc.oneof(fc.constant(p.mgrCert), fc.constant(p.wrkCert), json), error: json }, { requiredKeys: [] }))
  let script: unknown[] = []
  await scripted(p, JOIN_PROTOCOL, () => script)
  await scripted(p, RPC_PROTOCOL, () => script)
  await scripted(p, SESSION_PROTOCOL, () => script)
  const wrkPub = rawPublicKey(p.wrkKeys.publicKey)
  const outcomes: Record<string, number> = {}
  const refusedCleanly = async (what: string, run: () => Promise<unknown>): Promise<boolean> => {
    try {
      const r = await within(run(), 10_000, what)
      if (r && typeof (r as { close?: unknown }).close === 'function') await (r as { close(): Promise<void> }).close()
      outcomes.accepted = (outcomes.accepted ?? 0) + 1
      return true
    } catch (e) {
      if (!(e instanceof SwarmdError)) return false
      outcomes[e.code] = (outcomes[e.code] ?? 0) + 1
      return true
    }
  }
  await fc.assert(
    fc.asyncProperty(fc.oneof(challenge.map(c => [c]), admission.map(a => [good, a])), async s => {
      script = s
      return refusedCleanly('a join', () => requestJoin(p.worker, { token, manager: p.to, hostname: 'w', advertiseAddr: '127.0.0.1', publicKey: wrkPub }))
    }),
    { numRuns: RUNS },
  )
  await fc.assert(
    fc.asyncProperty(answer, async a => {
      script = [a]
      return (await refusedCleanly('a call', () => callRpc(p.worker, p.to, p.wrkCert, p.ca.publicKey, 'x'))) && (await refusedCleanly('a session', () => openSession(p.worker, p.to, p.wrkCert, p.ca.publicKey, () => undefined)))
    }),
    { numRuns: RUNS },
  )
  t.ok(Object.keys(outcomes).length > 2, `refused with SwarmdErrors only: ${JSON.stringify(outcomes)}`)
})
