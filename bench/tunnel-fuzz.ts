/**
 * Randomized frame sequences against a real Tunnel, over real TCP and UDP
 * sockets: a fast-check generator of cases (valid and invalid frames, on an
 * authenticated connection, before authentication, and as datagrams), and
 * TunnelFuzz, which plays one case against its target and checks that
 * every drop and refusal was counted under the reason the case predicts,
 * and that a legitimate peer on its own connection is still served.
 * lib/mesh/tunnel-fuzz.test.ts runs it as a property; bench/fuzz/tunnel.ts
 * for a bounded time.
 */
import { randomBytes } from 'node:crypto'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import fc from 'fast-check'
import { peerKey, type PeerAddress } from '../lib/mesh/peer-address.js'
import { SealKeyring } from '../lib/mesh/seal.js'
import { SharedKeyAuth } from '../lib/mesh/shared-key-auth.js'
import { DialerHandshake, TRUST_NAMES, type TunnelAuth } from '../lib/mesh/tunnel-auth.js'
import { FrameDecoder, FrameFlag, FrameType, MAX_DATA_PAYLOAD, encodeDgramPrefix, encodeFrame, encodeOpenBody, type Frame } from '../lib/mesh/tunnel-frame.js'
import { Tunnel, type DropReason, type RefusalReason, type TunnelCounters } from '../lib/mesh/tunnel.js'

export interface RawPeer {
  socket: Socket
  /** Every frame the tunnel sent, the handshake's included. */
  received: Frame[]
  /** Resolves when the tunnel closes the connection. */
  closed: Promise<void>
  close(): void
}

const handshakeFrame = (type: FrameType, body: Buffer): Buffer => encodeFrame({ vni: 0, type, flags: 0, keyId: 0, streamId: 0 }, body)

/**
 * A TCP connection to `target` that says HELLO as `name` and, unless
 * `hello` is false, answers the CHALLENGE with AUTH under `auth` (by
 * default the claim alone, which only a tunnel without authentication
 * takes). The tunnel's own proof is not checked, only that it is named
 * `expected` (default: its address, a tunnel's default name). Resolves
 * once AUTH is sent, or when the tunnel closes first (or at once, without HELLO).
 */
export async function rawPeer(target: PeerAddress, o: { name: string; auth?: TunnelAuth; expected?: string; localAddress?: string; hello?: boolean }): Promise<RawPeer> {
  const socket = connect({ host: target.host, port: target.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) })
  socket.on('error', () => {})
  const received: Frame[] = []
  const closed = new Promise<void>((r) => socket.once('close', () => r()))
  const peer: RawPeer = { socket, received, closed, close: () => socket.destroy() }
  await Promise.race([once(socket, 'connect').catch(() => undefined), closed])
  const decoder = new FrameDecoder()
  let challenged: (f: Frame) => void = () => {}
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk, (f) => {
        received.push(f)
        if (f.type === FrameType.CHALLENGE) challenged(f)
      })
    } catch {
      socket.destroy()
    }
  })
  if (o.hello === false || socket.destroyed) return peer
  const auth = o.auth ?? TRUST_NAMES
  const hs = new DialerHandshake({ prove: (t) => auth.prove(t), verify: () => true }, { name: o.name, address: peerKey({ host: socket.localAddress!, port: socket.localPort! }) }, o.expected ?? peerKey(target))
  const challenge = new Promise<Frame | undefined>((resolve) => {
    challenged = resolve
    void closed.then(() => resolve(undefined))
  })
  socket.write(handshakeFrame(FrameType.HELLO, hs.helloBody()))
  const c = await challenge
  if (c) socket.write(handshakeFrame(FrameType.AUTH, hs.onChallenge(c.body)))
  return peer
}

// --- the cases ----------------------------------------------------------------

const PLAIN = 4096
const SEALED = 4097
/** A second plaintext network: a stream's frame on it is on the wrong VNI. */
const OTHER = 4098
const UNKNOWN = 5555
/** The target's receive window per stream. */
const WINDOW = 64 * 1024
const STREAM_TYPES = [FrameType.OPEN_OK, FrameType.OPEN_FAIL, FrameType.DATA, FrameType.WINDOW, FrameType.FIN, FrameType.RST] as const
const CONN_TYPES = [FrameType.DGRAM, FrameType.HELLO, FrameType.CHALLENGE, FrameType.AUTH, FrameType.PING, FrameType.PONG] as const
const ALL_TYPES = Object.values(FrameType)

/** One step on an authenticated connection; `s` picks one of the streams the case opened. */
export type TcpOp =
  | { k: 'open' }
  | { k: 'data'; s: number; len: number }
  | { k: 'overrun'; s: number }
  | { k: 'window'; s: number; good: boolean }
  | { k: 'fin'; s: number }
  | { k: 'rst'; s: number; good: boolean }
  | { k: 'answer'; s: number; type: (typeof FrameType)['OPEN_OK' | 'OPEN_FAIL'] }
  | { k: 'wrongVni'; s: number }
  | { k: 'sealedOnStream'; s: number }
  | { k: 'unknownStream'; type: (typeof STREAM_TYPES)[number]; body: Uint8Array }
  | { k: 'connTypeOnVni'; type: (typeof CONN_TYPES)[number] }
  | { k: 'badPing'; len: number }
  | { k: 'pong'; id: number }
  | { k: 'vni0'; type: FrameType }
  | { k: 'openUnknownVni' }
  | { k: 'plainOpenOnSealed' }
  | { k: 'badSeal'; vni: number; keyId: number; body: Uint8Array }
  | { k: 'badOpen'; why: 'even' | 'zero' | 'reuse' | 'body' }
  /** Any well-framed frame at all: its fate is not predicted. */
  | { k: 'chaos'; vni: number; type: FrameType; sealed: boolean; keyId: number; streamId: number; body: Uint8Array }

export type UdpOp =
  | { k: 'junk'; bytes: Uint8Array }
  | { k: 'truncated' }
  | { k: 'unknownVni' }
  | { k: 'notDgram'; type: FrameType }
  | { k: 'vni0' }
  | { k: 'reply'; id: number }
  | { k: 'plainOnSealed' }
  | { k: 'sealedOnPlain' }
  | { k: 'badSeal' }
  | { k: 'badBody' }
  | { k: 'valid'; payload: Uint8Array }

/** Before the handshake completes: each ends the connection, with the reason it gives. */
export type PreAuth = 'noHello' | 'badHello' | 'forgedAuth' | 'wrongKey' | 'replayedAuth' | 'early'

export type FuzzCase =
  | { kind: 'tcp'; ops: TcpOp[]; garbage?: Uint8Array }
  | { kind: 'preauth'; how: PreAuth; first: FrameType; body: Uint8Array }
  | { kind: 'udp'; ops: UdpOp[] }

const idx = fc.nat({ max: 15 })
const bytes = (max: number) => fc.uint8Array({ maxLength: max })
const sealedBody = fc.uint8Array({ minLength: 28, maxLength: 120 })

const tcpOp: fc.Arbitrary<TcpOp> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ k: 'open' as const }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('data' as const), s: idx, len: fc.nat({ max: 2048 }) }) },
  fc.record({ k: fc.constant('overrun' as const), s: idx }),
  fc.record({ k: fc.constant('window' as const), s: idx, good: fc.boolean() }),
  fc.record({ k: fc.constant('fin' as const), s: idx }),
  fc.record({ k: fc.constant('rst' as const), s: idx, good: fc.boolean() }),
  fc.record({ k: fc.constant('answer' as const), s: idx, type: fc.constantFrom(FrameType.OPEN_OK, FrameType.OPEN_FAIL) }),
  fc.record({ k: fc.constant('wrongVni' as const), s: idx }),
  fc.record({ k: fc.constant('sealedOnStream' as const), s: idx }),
  fc.record({ k: fc.constant('unknownStream' as const), type: fc.constantFrom(...STREAM_TYPES), body: bytes(64) }),
  fc.record({ k: fc.constant('connTypeOnVni' as const), type: fc.constantFrom(...CONN_TYPES) }),
  fc.record({ k: fc.constant('badPing' as const), len: fc.nat({ max: 20 }).filter((n) => n !== 8) }),
  fc.record({ k: fc.constant('pong' as const), id: fc.nat() }),
  fc.record({ k: fc.constant('vni0' as const), type: fc.constantFrom(...ALL_TYPES.filter((x) => x !== FrameType.PING && x !== FrameType.PONG)) }),
  fc.constant({ k: 'openUnknownVni' as const }),
  fc.constant({ k: 'plainOpenOnSealed' as const }),
  fc.record({ k: fc.constant('badSeal' as const), vni: fc.constantFrom(PLAIN, SEALED), keyId: fc.integer({ min: 1, max: 255 }), body: sealedBody }),
  fc.record({ k: fc.constant('badOpen' as const), why: fc.constantFrom('even' as const, 'zero' as const, 'reuse' as const, 'body' as const) }),
  fc.record({
    k: fc.constant('chaos' as const),
    vni: fc.oneof(fc.constantFrom(0, PLAIN, SEALED, OTHER, UNKNOWN), fc.integer({ min: 0, max: 0xffffff })),
    type: fc.constantFrom(...ALL_TYPES),
    sealed: fc.boolean(),
    keyId: fc.integer({ min: 1, max: 255 }),
    streamId: fc.oneof(fc.nat({ max: 40 }), fc.nat()),
    body: fc.uint8Array({ maxLength: 300 }),
  }),
)

const udpOp: fc.Arbitrary<UdpOp> = fc.oneof(
  fc.record({ k: fc.constant('junk' as const), bytes: bytes(100) }),
  fc.constant({ k: 'truncated' as const }),
  fc.constant({ k: 'unknownVni' as const }),
  fc.record({ k: fc.constant('notDgram' as const), type: fc.constantFrom(...ALL_TYPES.filter((x) => x !== FrameType.DGRAM)) }),
  fc.constant({ k: 'vni0' as const }),
  fc.record({ k: fc.constant('reply' as const), id: fc.nat() }),
  fc.constant({ k: 'plainOnSealed' as const }),
  fc.constant({ k: 'sealedOnPlain' as const }),
  fc.constant({ k: 'badSeal' as const }),
  fc.constant({ k: 'badBody' as const }),
  { weight: 3, arbitrary: fc.record({ k: fc.constant('valid' as const), payload: bytes(200) }) },
)

export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('tcp' as const), ops: fc.array(tcpOp, { maxLength: 30 }), garbage: fc.option(bytes(64), { nil: undefined }) }, { requiredKeys: ['kind', 'ops'] }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('preauth' as const),
      how: fc.constantFrom<PreAuth>('noHello', 'badHello', 'forgedAuth', 'wrongKey', 'replayedAuth', 'early'),
      first: fc.constantFrom(...ALL_TYPES.filter((x) => x !== FrameType.HELLO)),
      body: bytes(40),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('udp' as const), ops: fc.array(udpOp, { minLength: 1, maxLength: 20 }) }) },
)

// --- playing a case -------------------------------------------------------------

type Counts = Partial<Record<DropReason | RefusalReason, number>>

const frame = (vni: number, type: FrameType, streamId: number, body: Uint8Array = Buffer.alloc(0), flags = 0, keyId = 0): Buffer => encodeFrame({ vni, type, flags, keyId, streamId }, body)
const text = (s: string): Buffer => Buffer.from(s)
const openBody = (key: string): Buffer => encodeOpenBody({ window: WINDOW, endpointKey: key, preamble: Buffer.alloc(0) })
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

interface ModelStream {
  id: number
  received: number
  finSent: boolean
  alive: boolean
}

/** A TCP case as bytes to send, with the drops it must cause; `open` is false when it ends the connection. */
export function planTcp(ops: TcpOp[], garbage: Uint8Array | undefined): { wire: Buffer[]; expect: Counts; predicted: boolean; open: boolean } {
  const wire: Buffer[] = []
  const expect: Counts = {}
  const add = (r: DropReason, n = 1): void => void (expect[r] = (expect[r] ?? 0) + n)
  const streams: ModelStream[] = []
  let nextId = 1
  let predicted = true
  /** Far above any id this case opens. */
  const unknownId = 0x4000_0000
  const pick = (s: number): ModelStream | undefined => (streams.length ? streams[s % streams.length] : undefined)
  for (const op of ops) {
    const st = 's' in op ? pick(op.s) : undefined
    const dead = 's' in op && (!st || !st.alive)
    if (dead) {
      // A frame for a stream that is gone, or was never opened.
      wire.push(frame(PLAIN, FrameType.DATA, st?.id ?? unknownId, Buffer.alloc(1)))
      add('unknown_stream')
      continue
    }
    switch (op.k) {
      case 'open': {
        const id = nextId
        nextId += 2
        streams.push({ id, received: 0, finSent: false, alive: true })
        wire.push(frame(PLAIN, FrameType.OPEN, id, openBody('sink/tcp/1')))
        break
      }
      case 'data': {
        const s = st!
        wire.push(frame(PLAIN, FrameType.DATA, s.id, Buffer.alloc(op.len, 0x61)))
        if (s.finSent) {
          add('malformed')
          s.alive = false
        } else if (s.received + op.len > WINDOW) {
          add('flow_control')
          s.alive = false
        } else s.received += op.len
        break
      }
      case 'overrun': {
        const s = st!
        if (s.finSent) {
          wire.push(frame(PLAIN, FrameType.DATA, s.id, Buffer.alloc(1)))
          add('malformed')
          s.alive = false
          break
        }
        // Whole frames until the window is exceeded by one.
        let n = s.received
        while (n <= WINDOW) {
          const len = Math.min(MAX_DATA_PAYLOAD, WINDOW - n + 1)
          wire.push(frame(PLAIN, FrameType.DATA, s.id, Buffer.alloc(len, 0x62)))
          n += len
        }
        add('flow_control')
        s.alive = false
        break
      }
      case 'window':
        wire.push(frame(PLAIN, FrameType.WINDOW, st!.id, op.good ? u32(1000) : u32(0)))
        if (!op.good) {
          add('malformed')
          st!.alive = false
        }
        break
      case 'fin':
        wire.push(frame(PLAIN, FrameType.FIN, st!.id))
        if (st!.finSent) {
          add('malformed')
          st!.alive = false
        } else st!.finSent = true
        break
      case 'rst':
        wire.push(frame(PLAIN, FrameType.RST, st!.id, op.good ? text('ECANCELED') : Buffer.from([0xff, 0xfe])))
        if (!op.good) add('malformed')
        st!.alive = false
        break
      case 'answer':
        wire.push(frame(PLAIN, op.type, st!.id, op.type === FrameType.OPEN_OK ? u32(1) : text('EIO')))
        add('malformed')
        st!.alive = false
        break
      case 'wrongVni':
        wire.push(frame(OTHER, FrameType.DATA, st!.id, Buffer.alloc(1)))
        add('malformed')
        break
      case 'sealedOnStream':
        wire.push(frame(PLAIN, FrameType.DATA, st!.id, randomBytes(40), FrameFlag.SEALED, 1))
        add('decrypt')
        break
      case 'unknownStream':
        wire.push(frame(PLAIN, op.type, unknownId, op.body))
        add('unknown_stream')
        break
      case 'connTypeOnVni':
        wire.push(frame(PLAIN, op.type, 0, Buffer.alloc(8)))
        add('malformed')
        break
      case 'badPing':
        wire.push(frame(0, FrameType.PING, 0, Buffer.alloc(op.len)))
        add('malformed')
        break
      case 'pong':
        wire.push(frame(0, FrameType.PONG, 0, Buffer.concat([u32(op.id), Buffer.alloc(4)])))
        add('unknown_stream')
        break
      case 'vni0':
        wire.push(frame(0, op.type, 0, Buffer.alloc(8)))
        add('malformed')
        break
      case 'openUnknownVni':
        wire.push(frame(UNKNOWN, FrameType.OPEN, nextId, openBody('x/tcp/1')))
        add('unknown_vni')
        break
      case 'plainOpenOnSealed':
        wire.push(frame(SEALED, FrameType.OPEN, nextId, openBody('x/tcp/1')))
        add('plaintext')
        break
      case 'badSeal':
        wire.push(frame(op.vni, FrameType.OPEN, nextId, op.body, FrameFlag.SEALED, op.keyId))
        add('decrypt')
        break
      case 'badOpen': {
        const live = streams.find((s) => s.alive)
        if (op.why === 'reuse' && !live) {
          wire.push(frame(PLAIN, FrameType.OPEN, 2, openBody('x/tcp/1')))
        } else {
          const id = op.why === 'even' ? 2 : op.why === 'zero' ? 0 : op.why === 'reuse' ? live!.id : nextId
          wire.push(frame(PLAIN, FrameType.OPEN, id, op.why === 'body' ? Buffer.from([0, 0, 0, 1, 0, 0]) : openBody('x/tcp/1')))
        }
        add('malformed')
        break
      }
      case 'chaos': {
        // Framing stays valid (a plaintext frame has key id 0, a sealed body holds nonce and tag), so the connection may go on.
        const body = op.sealed && op.body.length < 28 ? Buffer.concat([op.body, Buffer.alloc(28 - op.body.length)]) : op.body
        wire.push(frame(op.vni, op.type, op.streamId, body, op.sealed ? FrameFlag.SEALED : 0, op.sealed ? op.keyId : 0))
        predicted = false
        break
      }
    }
  }
  if (garbage) {
    // A VXLAN header without its I flag: the framing is lost, the connection ends.
    wire.push(Buffer.concat([Buffer.from([0]), garbage, Buffer.alloc(19)]))
    add('malformed')
  }
  return { wire, expect, predicted, open: !garbage }
}

const udpFrame = (vni: number, body: Uint8Array, flags = 0, keyId = 0, type: FrameType = FrameType.DGRAM): Buffer => frame(vni, type, 7, body, flags, keyId)
const udpRequest = (payload: Uint8Array): Buffer => Buffer.concat([encodeDgramPrefix('echo/udp/1'), payload])

/** One UDP op's datagram, and the reason it is dropped (undefined: it reaches onDatagram). */
function udpDatagram(op: UdpOp): [Buffer, DropReason | undefined] {
  switch (op.k) {
    case 'junk':
      return [Buffer.concat([Buffer.from([0]), op.bytes]), 'malformed']
    case 'truncated':
      return [udpFrame(PLAIN, udpRequest(Buffer.alloc(10))).subarray(0, 25), 'malformed']
    case 'unknownVni':
      return [udpFrame(UNKNOWN, udpRequest(Buffer.alloc(1))), 'unknown_vni']
    case 'notDgram':
      return [udpFrame(PLAIN, Buffer.alloc(8), 0, 0, op.type), 'malformed']
    case 'vni0':
      return [udpFrame(0, udpRequest(Buffer.alloc(1))), 'malformed']
    case 'reply':
      return [frame(PLAIN, FrameType.DGRAM, op.id, Buffer.from('forged'), FrameFlag.REPLY), 'reply_unknown_flow']
    case 'plainOnSealed':
      return [udpFrame(SEALED, udpRequest(Buffer.alloc(1))), 'plaintext']
    case 'sealedOnPlain':
      return [udpFrame(PLAIN, randomBytes(40), FrameFlag.SEALED, 1), 'decrypt']
    case 'badSeal':
      return [udpFrame(SEALED, randomBytes(60), FrameFlag.SEALED, 1), 'decrypt']
    case 'badBody':
      return [udpFrame(PLAIN, Buffer.from([0, 0, 1])), 'malformed']
    case 'valid':
      return [udpFrame(PLAIN, udpRequest(op.payload)), undefined]
  }
}

/** A UDP case as datagrams, with the drops they must cause and how many reach onDatagram. */
export function planUdp(ops: UdpOp[]): { datagrams: Buffer[]; expect: Counts; delivered: number } {
  const datagrams: Buffer[] = []
  const expect: Counts = {}
  let delivered = 0
  for (const op of ops) {
    const [d, reason] = udpDatagram(op)
    datagrams.push(d)
    if (reason) expect[reason] = (expect[reason] ?? 0) + 1
    else delivered++
  }
  return { datagrams, expect, delivered }
}

export interface FuzzResult {
  /** Drops and refusals the case caused, by reason, as the tunnel counted them. */
  counted: Counts
  /** What went wrong: empty when the tunnel behaved. */
  problems: string[]
}

const KEY = Buffer.alloc(32, 0x42)

function delta(after: TunnelCounters, before: TunnelCounters): Counts {
  const d: Counts = {}
  for (const [k, v] of [...Object.entries(after.dropped), ...Object.entries(after.refused)] as [DropReason | RefusalReason, number][]) {
    const b = (before.dropped as Record<string, number>)[k] ?? (before.refused as Record<string, number>)[k] ?? 0
    if (v - b !== 0) d[k] = v - b
  }
  return d
}

const sameCounts = (a: Counts, b: Counts): boolean => {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof Counts>
  return [...keys].every((k) => (a[k] ?? 0) === (b[k] ?? 0))
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 2))
  }
  return true
}

/**
 * The target: a Tunnel with a shared key, two plaintext networks and a
 * sealed one, whose streams are accepted and never read ('sink'), and
 * whose datagrams are echoed; beside it a legitimate peer with its own
 * connection, whose round trip must work after every case.
 */
export class TunnelFuzz {
  private datagramsSeen = 0
  private readonly peerName: string

  private constructor(
    readonly target: Tunnel,
    private readonly peer: Tunnel,
    private readonly udp: UdpSocket,
  ) {
    this.peerName = peer.name
  }

  /** Listens on `host` and the next address up (the peer), both on `port`. */
  static async start(host: string, port: number): Promise<TunnelFuzz> {
    const ring = new SealKeyring([{ id: 1, key: KEY }], 1)
    const network = (vni: number) => (vni === PLAIN || vni === OTHER ? {} : vni === SEALED ? { seal: ring } : undefined)
    let fz: TunnelFuzz | undefined
    const target = await Tunnel.listen({
      host,
      port,
      auth: new SharedKeyAuth(KEY),
      network,
      window: WINDOW,
      // The caps are not what is fuzzed: each case's connection must be taken however quickly the last one went.
      limits: { maxUnauthenticatedPerSource: 10_000, maxConnectionsPerPeer: 10_000 },
      onStream: (s) => {
        const d = s.accept()
        d.on('error', () => {})
        if (s.endpointKey === 'echo/tcp/1') d.pipe(d)
        else d.pause()
      },
      onDatagram: (d) => {
        if (fz) fz.datagramsSeen++
        d.reply(d.payload)
      },
    })
    const peerHost = host.replace(/\d+$/, (n) => String(Number(n) + 1))
    const peer = await Tunnel.listen({ host: peerHost, port, auth: new SharedKeyAuth(KEY), network })
    const udp = createSocket('udp4')
    udp.on('error', () => {})
    await new Promise<void>((r) => udp.bind(0, host, r))
    fz = new TunnelFuzz(target, peer, udp)
    return fz
  }

  async close(): Promise<void> {
    this.udp.close()
    await this.peer.close()
    await this.target.close()
  }

  async run(c: FuzzCase): Promise<FuzzResult> {
    const before = this.target.counters()
    const problems: string[] = []
    let expect: Counts | undefined
    if (c.kind === 'tcp') expect = await this.runTcp(c, problems)
    else if (c.kind === 'preauth') expect = await this.runPreAuth(c, problems)
    else expect = await this.runUdp(c, problems)
    const counted = delta(this.target.counters(), before)
    if (expect && !sameCounts(counted, expect)) problems.push(`counted ${JSON.stringify(counted)}, expected ${JSON.stringify(expect)}`)
    await this.checkPeer(problems)
    return { counted, problems }
  }

  private async runTcp(c: Extract<FuzzCase, { kind: 'tcp' }>, problems: string[]): Promise<Counts | undefined> {
    const plan = planTcp(c.ops, c.garbage)
    const raw = await rawPeer(this.target.advertise, { name: 'fuzzer', auth: new SharedKeyAuth(KEY) })
    try {
      for (const b of plan.wire) raw.socket.write(b)
      if (plan.open) {
        // Frames are handled in order: the PONG says every frame before it was.
        const mark = randomBytes(8)
        raw.socket.write(frame(0, FrameType.PING, 0, mark))
        const ponged = await Promise.race([until(() => raw.received.some((f) => f.type === FrameType.PONG && f.body.equals(mark)), 5000), raw.closed.then(() => false)])
        if (!ponged) problems.push(raw.socket.destroyed ? 'the tunnel ended a connection whose framing was intact' : 'no PONG in 5 s')
      } else if (!(await Promise.race([raw.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]))) {
        problems.push('broken framing did not end the connection')
      }
    } finally {
      raw.close()
      await raw.closed
    }
    return plan.predicted ? plan.expect : undefined
  }

  private async runPreAuth(c: Extract<FuzzCase, { kind: 'preauth' }>, problems: string[]): Promise<Counts> {
    const to = this.target.advertise
    let raw: RawPeer
    let expect: Counts
    switch (c.how) {
      case 'noHello':
        raw = await rawPeer(to, { name: 'x', hello: false })
        raw.socket.write(frame(0, c.first, 0, Buffer.alloc(8)))
        expect = { unauthenticated: 1 }
        break
      case 'badHello':
        raw = await rawPeer(to, { name: 'x', hello: false })
        raw.socket.write(frame(0, FrameType.HELLO, 0, c.body))
        expect = { malformed: 1 }
        break
      case 'forgedAuth':
        raw = await rawPeer(to, { name: this.peerName, auth: { prove: () => Buffer.from(c.body), verify: () => true } })
        expect = { auth: 1 }
        break
      case 'wrongKey':
        raw = await rawPeer(to, { name: this.peerName, auth: new SharedKeyAuth(Buffer.alloc(32, 1)) })
        expect = { auth: 1 }
        break
      case 'replayedAuth': {
        // A proof that got one connection in, replayed on the next.
        const hello = new DialerHandshake(new SharedKeyAuth(KEY), { name: 'fuzzer', address: '127.0.0.1:1' }, this.target.name)
        const first = await rawPeer(to, { name: 'x', hello: false })
        first.socket.write(handshakeFrame(FrameType.HELLO, hello.helloBody()))
        await until(() => first.received.length > 0, 2000)
        const auth = hello.onChallenge(first.received[0]!.body)
        first.socket.write(handshakeFrame(FrameType.AUTH, auth))
        raw = await rawPeer(to, { name: 'x', hello: false })
        raw.socket.write(handshakeFrame(FrameType.HELLO, hello.helloBody()))
        await until(() => raw.received.length > 0, 2000)
        raw.socket.write(handshakeFrame(FrameType.AUTH, auth))
        first.close()
        await first.closed
        expect = { auth: 1 }
        break
      }
      case 'early':
        raw = await rawPeer(to, { name: 'x', hello: false })
        raw.socket.write(Buffer.concat([handshakeFrame(FrameType.HELLO, new DialerHandshake(TRUST_NAMES, { name: 'x', address: '127.0.0.1:1' }, '').helloBody()), frame(PLAIN, FrameType.OPEN, 1, openBody('sink/tcp/1'))]))
        expect = { unauthenticated: 1 }
        break
    }
    const ended = await Promise.race([raw.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))])
    if (!ended) problems.push(`${c.how}: the connection was not ended`)
    const answered = raw.received.filter((f) => f.type !== FrameType.CHALLENGE)
    if (answered.length) problems.push(`${c.how}: answered before authentication (${answered.map((f) => f.type).join(', ')})`)
    raw.close()
    return expect
  }

  private async runUdp(c: Extract<FuzzCase, { kind: 'udp' }>, problems: string[]): Promise<Counts> {
    const plan = planUdp(c.ops)
    const seen = this.datagramsSeen
    const inBefore = this.target.counters().datagramsIn
    for (const d of plan.datagrams) this.udp.send(d, this.target.advertise.port, this.target.advertise.host)
    if (!(await until(() => this.target.counters().datagramsIn - inBefore >= plan.datagrams.length, 3000))) problems.push(`${this.target.counters().datagramsIn - inBefore} of ${plan.datagrams.length} datagrams arrived`)
    if (this.datagramsSeen - seen !== plan.delivered) problems.push(`${this.datagramsSeen - seen} datagrams delivered, expected ${plan.delivered}`)
    return plan.expect
  }

  /** The legitimate peer: one connection, the same one throughout, and a round trip that works. */
  private async checkPeer(problems: string[]): Promise<void> {
    try {
      const d = await this.peer.open(this.target.advertise, PLAIN, 'echo/tcp/1')
      d.end('legit')
      let got = ''
      for await (const chunk of d) got += String(chunk)
      if (got !== 'legit') problems.push(`the peer's round trip returned ${JSON.stringify(got)}`)
    } catch (e) {
      problems.push(`the peer's round trip failed: ${(e as Error).message}`)
    }
    if (this.peer.connectionCount() !== 1) problems.push(`the peer has ${this.peer.connectionCount()} connections`)
  }
}
