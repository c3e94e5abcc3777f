/**
 * The control plane: the channel's length-prefixed frames, and every join,
 * RPC and session message in both directions. The manager's handlers and
 * the node's requestJoin / callRpc / openSession run in this process over
 * in-memory streams (most inputs), and over real libp2p connections to real
 * ControlNodes (a share of the time). Garbage must end in a refusal: an
 * answered error, or a SwarmdError; anything else thrown, or a conversation
 * that does not end, is a crash. At the end the real manager must still
 * answer a good call.
 */
import { ClusterCA, type NodeCertificate } from '../../lib/control/ca.js'
import { Channel } from '../../lib/control/channel.js'
import { type ChannelHandler, ControlNode } from '../../lib/control/control-node.js'
import { generateKeyPair, nodeIdFor, rawPublicKey } from '../../lib/control/identity.js'
import { JOIN_PROTOCOL, requestJoin, serveJoin } from '../../lib/control/join-protocol.js'
import { joinProof, newJoinToken, parseJoinToken } from '../../lib/control/join-token.js'
import { callRpc, RPC_PROTOCOL, serveRpc } from '../../lib/control/rpc.js'
import { openSession, serveSession, SESSION_PROTOCOL } from '../../lib/control/session.js'
import { Inputs } from './inputs.js'
import { MemoryStream } from './memory-stream.js'
import { type FuzzPlane, Tally } from './plane.js'

const HOST = '127.0.0.245'
/** The real manager's port, and the port of one that answers garbage. */
const PORT = 29170
const EVIL_PORT = 29171
/** Of the plane's time, what goes to real connections. */
const REAL_SHARE = 0.25
/** A conversation that has not ended by then hung. */
const HANG_MS = 5_000

const frameOf = (msg: unknown): Buffer => {
  const body = Buffer.from(JSON.stringify(msg) ?? 'null')
  const h = Buffer.alloc(4)
  h.writeUInt32BE(body.length, 0)
  return Buffer.concat([h, body])
}

/** The JSON messages in what a Channel sent. */
function sentMessages(s: MemoryStream): unknown[] {
  const b = Buffer.concat(s.sent)
  const out: unknown[] = []
  for (let at = 0; at + 4 <= b.length; ) {
    const len = b.readUInt32BE(at)
    out.push(JSON.parse(b.subarray(at + 4, at + 4 + len).toString('utf8')))
    at += 4 + len
  }
  return out
}

/** Settles like `p`, or rejects as a hang after HANG_MS. */
function bounded<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hung for ${HANG_MS} ms`)), HANG_MS)))
  return Promise.race([p, hang]).finally(() => clearTimeout(timer))
}

/** The kind of refusal a manager answered: its first words, before what the input put in it (a method name, a node ID). */
function refusalKind(error: string): string {
  const prefix = error.startsWith('certificate refused: ') ? 'certificate refused: ' : ''
  const words = error.slice(prefix.length).split(' ')
  return prefix + words.slice(0, words[0] === 'unknown' ? 2 : 4).join(' ')
}

export const plane: FuzzPlane = {
  name: 'control',
  async run(o) {
    const input = new Inputs(0xc047201 + (o.seed ?? 0))
    const tally = new Tally('control')
    const ca = ClusterCA.create()
    const mgrKeys = generateKeyPair()
    const wrkKeys = generateKeyPair()
    const mgrCert = ca.issue({ nodePublicKey: mgrKeys.publicKey, role: 'manager', now: Date.now() - 60_000, ttlMs: 24 * 3600_000 })
    const wrkCert = ca.issue({ nodePublicKey: wrkKeys.publicKey, role: 'worker', now: Date.now() - 60_000, ttlMs: 24 * 3600_000 })
    const token = newJoinToken(ca.digest)
    const secret = parseJoinToken(token).secret
    const wrkPub = rawPublicKey(wrkKeys.publicKey)
    const mgrPub = rawPublicKey(mgrKeys.publicKey)
    const caRaw = rawPublicKey(ca.publicKey).toString('base64')
    const certField = (c: NodeCertificate): unknown => (input.chance(0.5) ? c : input.vary({ body: input.vary(c.body as unknown as Record<string, unknown>), signature: c.signature }))

    // The manager's handlers, as serveJoin / serveRpc / serveSession register them.
    const handlers = new Map<string, ChannelHandler>()
    const capture = { handle: async (protocol: string, h: ChannelHandler) => void handlers.set(protocol, h) } as unknown as ControlNode
    const deps = {
      caPublicKey: () => ca.publicKey,
      selfCert: () => mgrCert,
      role: (id: string) => (id === nodeIdFor(wrkKeys.publicKey) ? ('worker' as const) : undefined),
      onRefused: () => undefined,
    }
    const serveAll = async (node: ControlNode): Promise<void> => {
      await serveJoin(node, {
        ca: () => ca,
        certTtlMs: () => 3600_000,
        managerCert: () => mgrCert,
        secrets: () => ({ worker: secret, manager: '0'.repeat(25) }),
        admit: async () => ({ clusterId: 'fuzz', gossipKeys: [], gossipAddr: `${HOST}:7946` }),
        onRefused: () => undefined,
      })
      await serveRpc(node, { ...deps, methods: { heartbeat: { roles: ['worker'], run: p => ({ got: p ?? null }) }, promote: { roles: ['manager'], run: () => 'no' } } })
      await serveSession(node, { ...deps, onSession: () => () => undefined })
    }
    await serveAll(capture)

    /** What a node sends a manager, per protocol: the messages of one conversation. */
    const requests: Record<string, () => unknown[]> = {
      [JOIN_PROTOCOL]: () => [input.vary({ hostname: 'node-1', advertiseAddr: '10.0.0.1' }), input.vary({ proof: input.bytes(40).toString('base64') })].slice(0, input.int(3)),
      [RPC_PROTOCOL]: () => [input.vary({ cert: certField(wrkCert), method: input.pick(['heartbeat', 'promote', 'toString', '__proto__', input.text(8)]), params: input.json(2) })],
      [SESSION_PROTOCOL]: () => [input.vary({ cert: certField(wrkCert) }), ...Array.from({ length: input.int(4) }, () => input.json(2))],
    }
    const protocols = Object.keys(requests)
    /** A request's frames: now and then a frame's bytes mutated, or random bytes after them. */
    const wire = (msgs: unknown[]): Buffer => {
      const frames = msgs.map(m => (input.chance(0.1) ? input.mutate(frameOf(m)) : frameOf(m)))
      if (input.chance(0.05)) frames.push(input.bytes(12))
      return Buffer.concat(frames)
    }

    const afterAnswers = (target: string, s: MemoryStream): void => {
      const errors = sentMessages(s).flatMap(a => (a && typeof a === 'object' && typeof (a as { error?: unknown }).error === 'string' ? [(a as { error: string }).error] : []))
      if (errors.length) tally.drop(target, `refused: ${refusalKind(errors[0]!)}`)
    }

    /** One conversation with a manager's handler, in memory. */
    const toManager = async (): Promise<void> => {
      const protocol = input.pick(protocols)
      const s = new MemoryStream()
      const ch = new Channel(s)
      const bytes = wire(requests[protocol]!())
      s.deliver(bytes)
      const interactiveJoin = protocol === JOIN_PROTOCOL && input.chance(0.1)
      if (!interactiveJoin) s.end()
      tally.inputs++
      const target = `manager ${protocol.split('/')[2]}`
      const run = handlers.get(protocol)!(ch, { publicKey: wrkPub })
      run.catch(() => undefined)
      try {
        if (interactiveJoin) {
          // Answer the challenge with a good proof, so what the hello said reaches admission.
          await new Promise(r => setImmediate(r))
          const c = sentMessages(s)[0] as { challenge?: string } | undefined
          if (typeof c?.challenge === 'string') s.deliver(frameOf({ proof: joinProof(secret, Buffer.from(c.challenge, 'base64'), wrkPub).toString('base64') }))
          s.end()
        }
        await bounded(run)
        afterAnswers(target, s)
      } catch (e) {
        tally.refused(target, e, bytes)
      }
    }

    /** What a manager answers a node, per protocol. */
    const challenge = { ca: caRaw, managerCert: mgrCert, challenge: Buffer.alloc(32, 9).toString('base64') }
    const answers: Record<string, () => unknown[]> = {
      [JOIN_PROTOCOL]: () =>
        input.chance(0.5)
          ? [input.vary(challenge)]
          : [challenge, input.vary({ cert: certField(wrkCert), clusterId: 'c', gossipKeys: input.chance(0.8) ? [input.text(8)] : input.json(1), gossipAddr: '10.0.0.3:7946' })],
      [RPC_PROTOCOL]: () => [input.chance(0.2) ? { error: input.json(1) } : input.vary({ result: input.json(2), cert: certField(input.chance(0.8) ? mgrCert : wrkCert) })],
      [SESSION_PROTOCOL]: () => [input.vary({ cert: certField(mgrCert) })],
    }
    type To = { ip: string; port: number }
    const clients: Record<string, (node: ControlNode, to: To) => Promise<unknown>> = {
      [JOIN_PROTOCOL]: (node, to) => requestJoin(node, { token, manager: to, hostname: 'w', advertiseAddr: '10.0.0.1', publicKey: wrkPub }),
      [RPC_PROTOCOL]: (node, to) => callRpc(node, to, wrkCert, ca.publicKey, 'heartbeat'),
      [SESSION_PROTOCOL]: (node, to) => openSession(node, to, wrkCert, ca.publicKey, () => undefined).then(sess => sess.close()),
    }

    /** One conversation of a node with a manager that answers garbage, in memory. */
    const toNode = async (): Promise<void> => {
      const protocol = input.pick(protocols)
      const s = new MemoryStream()
      const ch = new Channel(s)
      const bytes = wire(answers[protocol]!())
      s.deliver(bytes)
      s.end()
      tally.inputs++
      const fake = { open: async () => ({ ch, peer: { publicKey: mgrPub } }) } as unknown as ControlNode
      try {
        await bounded(clients[protocol]!(fake, { ip: HOST, port: EVIL_PORT }))
      } catch (e) {
        tally.refused(`node ${protocol.split('/')[2]}`, e, bytes)
      }
    }

    /** Raw bytes on one channel: valid frames, garbage, frames that lie about their length, cut anywhere. */
    const frames = async (): Promise<void> => {
      const parts = Array.from({ length: 1 + input.int(4) }, () => {
        const r = input.int(5)
        if (r === 0) return input.bytes(24)
        const f = frameOf(input.json(3))
        if (r === 1) return input.mutate(f)
        if (r === 2) f.writeUInt32BE(input.chance(0.5) ? 0xffffffff : f.length + input.int(64), 0)
        return f
      })
      const bytes = Buffer.concat(parts)
      const s = new MemoryStream()
      const ch = new Channel(s)
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + input.int(bytes.length)
        s.deliver(bytes.subarray(at, at + n))
        at += n
      }
      s.end()
      tally.inputs++
      try {
        for (;;) await bounded(ch.recv(Infinity))
      } catch (e) {
        if (!(e instanceof Error && (e as { code?: string }).code === 'E_CHANNEL_CLOSED')) tally.refused('channel', e, bytes)
      }
    }

    const inMemory = [toManager, toNode, frames]
    const started = Date.now()
    const realFrom = started + (o.deadlineMs - started) * (1 - REAL_SHARE)
    const realInputs = Math.floor(o.inputs * 0.02)
    for (let i = 0; tally.inputs < o.inputs - realInputs; i++) {
      if ((i & 63) === 0 && Date.now() >= realFrom) break
      await inMemory[i % inMemory.length]!()
    }

    // Real connections: a manager node serving the three protocols (its handlers watched for anything
    // but a SwarmdError), a node that talks to it, and a manager that answers garbage.
    const manager = await ControlNode.create({ privateKey: mgrKeys.privateKey, listen: { ip: HOST, port: PORT } })
    const evil = await ControlNode.create({ privateKey: mgrKeys.privateKey, listen: { ip: HOST, port: EVIL_PORT } })
    const node = await ControlNode.create({ privateKey: wrkKeys.privateKey })
    try {
      let pendingCrash: unknown
      await serveAll({
        handle: (protocol: string, h: ChannelHandler) =>
          manager.handle(protocol, async (ch, peer) => {
            try {
              await h(ch, peer)
            } catch (e) {
              if (!(e instanceof Error && /^E_/.test((e as { code?: string }).code ?? ''))) pendingCrash = e
              throw e
            }
          }),
      } as unknown as ControlNode)
      let script: unknown[] = []
      for (const protocol of protocols) {
        await evil.handle(protocol, async ch => {
          for (const answer of script) {
            await ch.recv(2_000)
            ch.send(answer)
          }
        })
      }
      const real = async (i: number): Promise<void> => {
        const protocol = input.pick(protocols)
        tally.inputs++
        if (i % 2 === 0) {
          const target = `real manager ${protocol.split('/')[2]}`
          try {
            const { ch } = await node.open({ ip: HOST, port: PORT }, protocol)
            const msgs = requests[protocol]!()
            for (const m of msgs) ch.send(m)
            // The manager answers a first message, whatever it is; nothing sent, nothing to wait for.
            if (msgs.length) {
              const a = (await bounded(ch.recv(HANG_MS))) as { error?: unknown }
              if (typeof a?.error === 'string') tally.drop(target, `refused: ${refusalKind(a.error)}`)
            }
            await ch.close()
          } catch (e) {
            tally.refused(target, e)
          }
          if (pendingCrash !== undefined) tally.crash(`${target} handler`, pendingCrash)
          pendingCrash = undefined
        } else {
          script = answers[protocol]!()
          const target = `real node ${protocol.split('/')[2]}`
          try {
            await bounded(clients[protocol]!(node, { ip: HOST, port: EVIL_PORT }))
          } catch (e) {
            tally.refused(target, e, JSON.stringify(script))
          }
        }
      }
      for (let i = 0; tally.inputs < o.inputs && Date.now() < o.deadlineMs; i++) await real(i)
      // Still serving: a good heartbeat is answered.
      try {
        await bounded(callRpc(node, { ip: HOST, port: PORT }, wrkCert, ca.publicKey, 'heartbeat', { after: 'fuzz' }))
      } catch (e) {
        tally.crash('the manager after the fuzz', e)
      }
    } finally {
      await node.stop()
      await evil.stop()
      await manager.stop()
    }
    return tally.result()
  },
}
