import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { pino, type Logger } from 'pino'
import { SwarmdError } from '../types/errors.js'
import { Awareness } from './awareness.js'
import { type Clock, systemClock } from './clock.js'
import { COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD, makeCompound, makeCompounds, parseCompound } from './compound.js'
import { buildVsn, type GossipTuning, META_MAX_SIZE, type Profile, profiles, pushPullScale } from './config.js'
import { Keyring } from './keyring.js'
import {
  type AckResp,
  decodeAck,
  decodeAlive,
  decodeDead,
  decodeErr,
  decodeIndirectPing,
  decodeNack,
  decodePing,
  decodePushNodeState,
  decodePushPullHeader,
  decodeSuspect,
  decodeUserMsgHeader,
  encodeAck,
  encodeDead,
  encodeErr,
  encodeIndirectPing,
  encodeNack,
  encodePing,
  encodePushNodeState,
  encodePushPullHeader,
  encodeSuspect,
  encodeUser,
  encodeUserMsgHeader,
  type IndirectPingReq,
  MsgType,
  type Ping,
  type PushNodeState,
  type Vsn,
} from './messages.js'
import { MsgpackReader } from './msgpack.js'
import { NetTransport } from './net-transport.js'
import { type DropReason, decompressMessage, openPacket, PacketError, packetOverhead, sealPacket, type WireSecurity } from './packet.js'
import { TransmitLimitedQueue } from './queue.js'
import { type MemberEventType, type NodeState, StateMachine } from './state.js'
import { encodeStreamFrame, StreamReader } from './stream.js'
import { countMessage, countOutgoing, emptyMessageCounts, type MessageCounts } from './traffic.js'
import { checkAlive, checkDead, checkIndirectPing, checkSuspect, dropReason, pushStateProblem } from './validate.js'
import type { Address, Transport } from './transport.js'
import { GOSSIP_PORT } from '../types/defaults.js'

export class MembershipError extends SwarmdError {}

/** Hooks for the embedding program, as memberlist's Delegate. All optional. */
export interface Delegate {
  /** A user message arrived (best-effort over UDP, or reliable over TCP). */
  notifyMsg?(msg: Buffer, from: Address): void
  /** Extra user broadcasts to piggyback; each must fit `limit` with `overhead` per message. */
  getBroadcasts?(overhead: number, limit: number): Buffer[]
  /** Opaque state sent on every push/pull (join and anti-entropy). */
  localState?(join: boolean): Buffer
  mergeRemoteState?(state: Buffer, join: boolean): void
}

export interface MembershipOptions {
  /** Unique node name. */
  name: string
  /** Where to listen (UDP and TCP on the same port). Default 0.0.0.0:7946. */
  bind?: Address
  /** What others should dial. Default: the bound address (0.0.0.0 is not advertisable: set it). */
  advertise?: Address
  profile?: Profile
  /** Overrides of the profile's settings. */
  tuning?: Partial<GossipTuning>
  /** AES keys, 16/24/32 bytes; the first is primary. With keys, plaintext is refused. */
  keys?: Uint8Array[]
  /** memberlist's label: prefixes every packet and stream, and is GCM additional data. */
  label?: string
  /** [min, max, current] versions of the embedding application (serf: e.g. [2, 5, 4]). */
  delegateVersions?: readonly [number, number, number]
  /** Node meta, at most 512 bytes. */
  meta?: Uint8Array
  delegate?: Delegate
  /** Lifeguard (awareness, nacks, accelerating suspicion). On by default. */
  lifeguard?: boolean
  clock?: Clock
  transport?: Transport
  logger?: Logger
  random?: () => number
  /** Subscribed before the node starts, so it also sees this node's own join. */
  onEvent?: (e: MemberEvent) => void
}

/** A member as the API returns it (a copy). */
export interface Member {
  name: string
  addr: string
  port: number
  meta: Buffer
  incarnation: number
  state: 'alive' | 'suspect' | 'dead' | 'left'
  vsn: Vsn
}

export interface MemberEvent {
  type: MemberEventType
  member: Member
  /** Clock time of the event. */
  ts: number
}

/** How a probe ended: a direct ack, an ack through another member, only the TCP fallback answering, or none (the member is suspected). */
export type ProbeOutcome = 'ack' | 'indirect_ack' | 'tcp_ack' | 'failed'

/** Traffic and protocol counters; `dropped` counts inbound packets and streams by reason. */
export interface Counters {
  packetsSent: number
  packetsReceived: number
  bytesSent: number
  bytesReceived: number
  /** Bytes written on TCP streams (push/pull, reliable messages, fallback pings). */
  streamBytesSent: number
  sendErrors: number
  streamsOpened: number
  streamsAccepted: number
  dropped: Record<string, number>
  /** UDP messages by type, each part of a compound counted; sent before compression, received after. */
  sent: MessageCounts
  received: MessageCounts
  probes: Record<ProbeOutcome, number>
  /** Members this node came to suspect (by its own probe or by another's word). */
  suspicions: number
  /** Accusations about this node it refuted with a higher incarnation. */
  refutations: number
}

interface AckHandler {
  ack(payload: Buffer): void
  nack?(): void
  timer: unknown
}

/** Newer memberlist's caps on what a peer may make us hold. */
const MAX_PUSH_PULL_NODES = 1_048_576
const MAX_USER_STATE = 20 * 1024 * 1024
const MAX_USER_MSG = 20 * 1024 * 1024
const MAX_CONCURRENT_PUSH_PULL = 128
const MAX_NESTING = 4
/** Live members told of a graceful leave directly, besides the gossiped broadcast. */
const LEAVE_DIRECT_FANOUT = 32

function toMember(n: NodeState): Member {
  return { name: n.name, addr: n.addr, port: n.port, meta: Buffer.from(n.meta), incarnation: n.incarnation, state: n.state, vsn: n.vsn }
}

/**
 * A member of a gossip cluster that speaks hashicorp/memberlist's protocol
 * (SWIM with Lifeguard). Emits `event` ({@link MemberEvent}) for every
 * membership change, and also `join`, `update`, `suspect`, `alive`, `dead`,
 * `left` with the {@link Member}.
 */
export class Membership extends EventEmitter {
  readonly name: string
  readonly tuning: GossipTuning
  readonly keyring: Keyring
  readonly counters: Counters = {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    streamBytesSent: 0,
    sendErrors: 0,
    streamsOpened: 0,
    streamsAccepted: 0,
    dropped: {},
    sent: emptyMessageCounts(),
    received: emptyMessageCounts(),
    probes: { ack: 0, indirect_ack: 0, tcp_ack: 0, failed: 0 },
    suspicions: 0,
    refutations: 0,
  }
  private readonly clock: Clock
  private readonly transport: Transport
  private readonly log: Logger
  private readonly advertise: Address
  private readonly sec: WireSecurity
  private readonly vsn: Vsn
  private readonly queue: TransmitLimitedQueue
  private readonly userQueue: TransmitLimitedQueue
  private readonly awareness: Awareness
  private readonly state: StateMachine
  private delegate: Delegate
  private readonly lifeguard: boolean
  private readonly random: () => number
  private readonly ackHandlers = new Map<number, AckHandler>()
  private seqNo = 0
  private probeIndex = 0
  private probing = false
  private leaving = false
  private stopped = false
  private pushPullsInFlight = 0
  /** The pending timer of each periodic task, replaced at every tick. */
  private readonly tickers = new Map<'probe' | 'gossip' | 'pushPull', unknown>()
  private meta: Buffer

  private constructor(opts: MembershipOptions, transport: Transport) {
    super()
    this.name = opts.name
    this.tuning = { ...profiles[opts.profile ?? 'lan'], ...opts.tuning }
    this.clock = opts.clock ?? systemClock
    this.transport = transport
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.random = opts.random ?? Math.random
    this.lifeguard = opts.lifeguard ?? true
    this.delegate = opts.delegate ?? {}
    // Port 0 means "whatever the transport got".
    this.advertise = { ip: opts.advertise?.ip ?? transport.localAddress.ip, port: opts.advertise?.port || transport.localAddress.port }
    this.keyring = new Keyring(opts.keys ?? [])
    this.sec = {
      label: opts.label ?? '',
      keyring: this.keyring,
      encryptionVersion: this.tuning.protocolVersion < 2 ? 0 : 1,
      verifyIncoming: true,
      verifyOutgoing: true,
      skipInboundLabelCheck: false,
    }
    this.vsn = buildVsn(this.tuning.protocolVersion, opts.delegateVersions ?? [0, 0, 0])
    this.meta = Buffer.from(opts.meta ?? [])
    this.awareness = new Awareness(this.lifeguard ? this.tuning.awarenessMaxMultiplier : 1)
    this.queue = new TransmitLimitedQueue({ numNodes: () => this.state.numNodes(), retransmitMult: this.tuning.retransmitMult })
    this.userQueue = new TransmitLimitedQueue({ numNodes: () => this.state.numNodes(), retransmitMult: this.tuning.retransmitMult })
    this.state = new StateMachine({
      name: this.name,
      tuning: this.lifeguard ? this.tuning : { ...this.tuning, suspicionMaxTimeoutMult: 1 },
      clock: this.clock,
      queue: this.queue,
      awareness: this.awareness,
      vsn: () => this.vsn,
      leaving: () => this.leaving,
      random: this.random,
      refuted: () => this.counters.refutations++,
      emit: (type, node) => {
        if (type === 'suspect') this.counters.suspicions++
        // Copies only for listeners: simulations of thousands of members have none on most.
        if (this.listenerCount('event') === 0 && this.listenerCount(type) === 0) return
        const member = toMember(node)
        const ev: MemberEvent = { type, member, ts: this.clock.now() }
        this.emit('event', ev)
        this.emit(type, member)
      },
      conflict: (existing, other) =>
        this.log.warn({ node: existing.name, mine: `${existing.addr}:${existing.port}`, theirs: `${other.addr}:${other.port}` }, 'conflicting address'),
    })
    transport.setHandlers(
      (packet, from) => this.ingestPacket(packet, from),
      (stream, from) => void this.handleStream(stream, from),
    )
  }

  /** Validates options, opens the transport (real sockets unless one is given) and starts gossiping. */
  static async create(opts: MembershipOptions): Promise<Membership> {
    if (!opts.name) throw new MembershipError('E_CONFIG', 'a node name is required')
    if (opts.meta && opts.meta.length > META_MAX_SIZE) {
      throw new MembershipError('E_META_SIZE', `node meta is ${opts.meta.length} bytes, the limit is ${META_MAX_SIZE}`)
    }
    for (const k of opts.keys ?? []) Keyring.validateKey(k)
    if (opts.label !== undefined && Buffer.byteLength(opts.label) > 255) throw new MembershipError('E_CONFIG', 'label is longer than 255 bytes')
    const transport = opts.transport ?? (await NetTransport.listen(opts.bind ?? { ip: '0.0.0.0', port: GOSSIP_PORT }))
    const m = new Membership(opts, transport)
    if (m.advertise.ip === '0.0.0.0' || m.advertise.ip === '::') {
      await transport.shutdown()
      throw new MembershipError('E_CONFIG', 'cannot advertise an unspecified address: set advertise')
    }
    if (opts.onEvent) m.on('event', opts.onEvent)
    m.setAlive()
    m.start()
    return m
  }

  private setAlive(): void {
    this.state.aliveNode(
      { incarnation: 1, node: this.name, addr: this.advertise.ip, port: this.advertise.port, meta: this.meta, vsn: this.vsn },
      true,
    )
  }

  /** The advertised address of this node. */
  get address(): Address {
    return { ...this.advertise }
  }

  private start(): void {
    const t = this.tuning
    this.ticker('probe', t.probeInterval, () => this.probe())
    this.ticker('gossip', t.gossipInterval, () => this.gossip())
    // As memberlist: after a random stagger, each push/pull waits a full (scaled) interval first.
    const pushPull = (): void => {
      if (this.stopped) return
      this.tickers.set(
        'pushPull',
        this.clock.setTimeout(() => {
          if (this.stopped) return
          void this.pushPullRandom()
          pushPull()
        }, pushPullScale(t.pushPullInterval, this.state.numNodes())),
      )
    }
    this.tickers.set('pushPull', this.clock.setTimeout(pushPull, this.random() * t.pushPullInterval))
  }

  /** A ticker with a random first delay, as memberlist staggers its timers. */
  private ticker(name: 'probe' | 'gossip', interval: number, fn: () => void): void {
    const tick = (): void => {
      if (this.stopped) return
      fn()
      this.tickers.set(name, this.clock.setTimeout(tick, interval))
    }
    this.tickers.set(name, this.clock.setTimeout(tick, this.random() * interval))
  }

  // ---------------------------------------------------------------- public API

  /** Members that are alive or suspect, this node included. */
  members(): Member[] {
    return this.state.nodes.filter(n => n.state === 'alive' || n.state === 'suspect').map(toMember)
  }

  /** Every known node, dead and left ones not yet reaped included. */
  allMembers(): Member[] {
    return this.state.nodes.map(toMember)
  }

  numMembers(): number {
    return this.members().length
  }

  /**
   * Takes in members learned out of band (a snapshot, or a simulation that
   * starts converged) as alive messages would be applied, without gossiping
   * them. Members already known with a newer incarnation are left alone.
   */
  adopt(members: readonly Member[]): void {
    this.state.quiet = true
    try {
      for (const m of members) {
        if (m.name === this.name || m.state !== 'alive') continue
        this.state.aliveNode({ incarnation: m.incarnation, node: m.name, addr: m.addr, port: m.port, meta: m.meta, vsn: m.vsn })
      }
    } finally {
      this.state.quiet = false
    }
  }

  /** This node's health score (0 is healthy), Lifeguard's awareness. */
  healthScore(): number {
    return this.awareness.getHealthScore()
  }

  /**
   * Joins a cluster through any of `addrs` (`IP:PORT`, or `IP` for this
   * node's port), each by a TCP push/pull. Resolves with how many answered;
   * rejects if none did.
   */
  async join(addrs: readonly string[]): Promise<number> {
    let ok = 0
    const errors: string[] = []
    for (const a of addrs) {
      try {
        await this.pushPullNode(parseHostPort(a, this.advertise.port), true)
        ok++
      } catch (e) {
        errors.push(`${a}: ${(e as Error).message}`)
      }
    }
    if (ok === 0 && addrs.length > 0) throw new MembershipError('E_JOIN', `failed to join: ${errors.join('; ')}`)
    return ok
  }

  /**
   * Leaves gracefully: broadcasts a dead message about ourselves with From ==
   * our name (others mark us "left"), and waits until it has gone out.
   */
  async leave(timeoutMs = 5_000): Promise<void> {
    if (this.leaving) return
    this.leaving = true
    const me = this.state.local!
    const done = new Promise<void>(resolve => (this.state.onLeaveBroadcast = resolve))
    const leaveMsg = { incarnation: me.incarnation, node: me.name, from: me.name }
    this.state.deadNode(leaveMsg)
    if (!this.state.anyAliveOthers()) return
    // Beyond memberlist: the gossiped broadcast can spend its few transmissions
    // on recently dead members, so also tell some live ones directly.
    const direct = encodeDead(leaveMsg)
    for (const n of this.state.randomNodes(LEAVE_DIRECT_FANOUT, x => x.name === this.name || (x.state !== 'alive' && x.state !== 'suspect'))) {
      this.rawSendPacket({ ip: n.addr, port: n.port }, n, direct).catch(() => {})
    }
    let timer: unknown
    const timeout = new Promise<never>((_, reject) => {
      timer = this.clock.setTimeout(() => reject(new MembershipError('E_LEAVE_TIMEOUT', 'timeout waiting for leave broadcast')), timeoutMs)
    })
    try {
      await Promise.race([done, timeout])
    } finally {
      this.clock.clearTimeout(timer as never)
    }
  }

  /** Stops timers and closes sockets without leaving: the others will detect a failure. */
  async shutdown(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.tickers.values()) this.clock.clearTimeout(t as never)
    for (const h of this.ackHandlers.values()) this.clock.clearTimeout(h.timer as never)
    this.ackHandlers.clear()
    this.state.stopAll()
    await this.transport.shutdown()
  }

  /** Changes our meta and gossips it (a new incarnation). */
  setMeta(meta: Uint8Array): void {
    if (meta.length > META_MAX_SIZE) throw new MembershipError('E_META_SIZE', `node meta is ${meta.length} bytes, the limit is ${META_MAX_SIZE}`)
    const me = this.state.local!
    this.meta = Buffer.from(meta)
    this.state.aliveNode(
      { incarnation: me.incarnation + 1, node: this.name, addr: me.addr, port: me.port, meta: this.meta, vsn: this.vsn },
      true,
    )
  }

  /** A user message over UDP, no retries. `to` is a member name or an address. */
  async sendBestEffort(to: string | Address, payload: Uint8Array): Promise<void> {
    const addr = this.resolve(to)
    await this.rawSendPacket(addr, undefined, encodeUser(payload))
  }

  /** A user message over TCP (memberlist's SendReliable). */
  async sendReliable(to: string | Address, payload: Uint8Array): Promise<void> {
    const addr = this.resolve(to)
    const frame = Buffer.concat([encodeUserMsgHeader(payload.length), payload])
    const sock = await this.dial(addr)
    try {
      await this.writeFrame(sock, frame, true)
    } finally {
      sock.end()
    }
  }

  /** Keyring operations, while running (memberlist's Keyring). */
  installKey(key: Uint8Array): void {
    this.keyring.addKey(key)
  }
  useKey(key: Uint8Array): void {
    this.keyring.useKey(key)
  }
  removeKey(key: Uint8Array): void {
    this.keyring.removeKey(key)
  }

  private resolve(to: string | Address): Address {
    if (typeof to !== 'string') return to
    const n = this.state.nodeMap.get(to)
    if (!n) throw new MembershipError('E_UNKNOWN_NODE', `unknown node ${to}`)
    return { ip: n.addr, port: n.port }
  }

  // ---------------------------------------------------------------- sending

  private drop(reason: DropReason | string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1
  }

  /**
   * Gossips a user message to every member: it rides in the spare room of
   * probe and gossip packets, retransmitted as memberlist's own broadcasts
   * are. A later broadcast with the same `name` replaces a queued one.
   */
  broadcast(payload: Uint8Array, name?: string): void {
    const msg = encodeUser(payload)
    this.userQueue.queueBroadcast(name ? { name, msg } : { msg })
  }

  /**
   * Installs a delegate after creation and returns the one it replaces, so a
   * layer built on this membership (the routing mesh) can take the hooks and
   * pass on what is not its own.
   */
  setDelegate(d: Delegate): Delegate {
    const prev = this.delegate
    this.delegate = d
    return prev
  }

  /** memberlist's own broadcasts first, then the delegate's, then ours: user messages fill what is left. */
  private getBroadcasts(overhead: number, limit: number): Buffer[] {
    const out = this.queue.getBroadcasts(overhead, limit)
    let used = 0
    for (const m of out) used += m.length + overhead
    const d = this.delegate.getBroadcasts
    if (d && limit - used > overhead + 1) {
      for (const m of d(overhead + 1, limit - used)) {
        out.push(encodeUser(m))
        used += m.length + 1 + overhead
      }
    }
    if (this.userQueue.numQueued() > 0 && limit - used > overhead + 1) out.push(...this.userQueue.getBroadcasts(overhead, limit - used))
    return out
  }

  /** Sends one message, piggybacking queued broadcasts in the room left (memberlist's sendMsg). */
  private async sendMsg(to: Address, msg: Buffer, node?: NodeState): Promise<void> {
    const avail = this.tuning.udpBufferSize - msg.length - COMPOUND_HEADER_OVERHEAD - packetOverhead(this.sec)
    const extra = this.getBroadcasts(COMPOUND_PART_OVERHEAD, avail)
    await this.rawSendPacket(to, node, extra.length === 0 ? msg : makeCompound([msg, ...extra]))
  }

  private async rawSendPacket(to: Address, node: NodeState | undefined, msg: Buffer): Promise<void> {
    // CRC only for peers known to speak protocol 5; memberlist finds none for plain sends either.
    countOutgoing(this.counters.sent, msg)
    const packet = sealPacket(msg, { compress: this.tuning.enableCompression, crc: !!node && node.vsn[1] >= 5 }, this.sec)
    this.counters.packetsSent++
    this.counters.bytesSent += packet.length
    try {
      await this.transport.sendPacket(packet, to)
    } catch (e) {
      this.counters.sendErrors++
      throw e
    }
  }

  /** Fire and forget: a failed UDP write is logged, never thrown into a timer. */
  private send(to: Address, msg: Buffer, node?: NodeState): void {
    this.sendMsg(to, msg, node).catch(e => this.log.debug({ err: e, to }, 'send failed'))
  }

  private nextSeq(): number {
    this.seqNo = (this.seqNo + 1) >>> 0
    return this.seqNo
  }

  private sleep(ms: number): Promise<void> {
    return new Promise(resolve => this.clock.setTimeout(resolve, ms))
  }

  private setAckHandler(seq: number, h: Omit<AckHandler, 'timer'>, timeoutMs: number, onTimeout?: () => void): void {
    const timer = this.clock.setTimeout(() => {
      this.ackHandlers.delete(seq)
      onTimeout?.()
    }, timeoutMs)
    this.ackHandlers.set(seq, { ...h, timer })
  }

  // ---------------------------------------------------------------- probing

  /** One probe tick: the next node in the round-robin walk (memberlist's probe). */
  private probe(): void {
    if (this.probing || this.leaving) return
    let checked = 0
    for (;;) {
      const nodes = this.state.nodes
      if (checked >= nodes.length) return
      if (this.probeIndex >= nodes.length) {
        this.state.reapAndShuffle()
        this.probeIndex = 0
        checked++
        continue
      }
      const node = nodes[this.probeIndex++]!
      if (node.name === this.name || node.state === 'dead' || node.state === 'left') {
        checked++
        continue
      }
      this.probing = true
      this.probeNode(node)
        .catch(e => this.log.error({ err: e }, 'probe failed'))
        .finally(() => (this.probing = false))
      return
    }
  }

  private async probeNode(node: NodeState): Promise<void> {
    const t = this.tuning
    const interval = this.awareness.scaleTimeout(t.probeInterval)
    const ping: Ping = { seqNo: this.nextSeq(), node: node.name, sourceAddr: this.advertise.ip, sourcePort: this.advertise.port, sourceNode: this.name }
    let nacks = 0
    let settle!: (ok: boolean) => void
    const acked = new Promise<boolean>(r => (settle = r))
    this.setAckHandler(ping.seqNo, { ack: () => settle(true), nack: () => nacks++ }, interval, () => settle(false))
    const deadline = this.clock.now() + interval
    const to = { ip: node.addr, port: node.port }
    let sent = true
    try {
      if (node.state === 'alive') {
        await this.sendMsg(to, encodePing(ping))
      } else {
        // Buddy system: tell a suspect it is suspected, so it can refute at once.
        const s = encodeSuspect({ incarnation: node.incarnation, node: node.name, from: this.name })
        await this.rawSendPacket(to, node, makeCompound([encodePing(ping), s]))
      }
    } catch {
      sent = false
    }
    if (sent) {
      const first = await Promise.race([acked, this.sleep(t.probeTimeout).then(() => false)])
      if (first) {
        this.counters.probes.ack++
        this.awareness.applyDelta(-1)
        return
      }
    }
    // Indirect probes through random alive peers, and a TCP ping beside them.
    const peers = this.state.randomNodes(t.indirectChecks, n => n.name === this.name || n.name === node.name || n.state !== 'alive')
    let expectedNacks = 0
    for (const peer of peers) {
      const nack = this.lifeguard && peer.vsn[1] >= 4
      if (nack) expectedNacks++
      const ind: IndirectPingReq = {
        seqNo: ping.seqNo,
        target: node.addr,
        port: node.port,
        node: node.name,
        nack,
        sourceAddr: this.advertise.ip,
        sourcePort: this.advertise.port,
        sourceNode: this.name,
      }
      this.send({ ip: peer.addr, port: peer.port }, encodeIndirectPing(ind))
    }
    const fallback = !t.disableTcpPings && node.vsn[1] >= 3 ? this.tcpPing(to, ping, deadline).catch(() => false) : Promise.resolve(false)
    if (await acked) {
      this.counters.probes.indirect_ack++
      this.awareness.applyDelta(-1)
      return
    }
    if (await fallback) {
      this.counters.probes.tcp_ack++
      this.log.warn({ node: node.name }, `Was able to connect to ${node.name} over TCP but UDP probes failed, network may be misconfigured`)
      this.awareness.applyDelta(-1)
      return
    }
    this.counters.probes.failed++
    this.awareness.applyDelta(expectedNacks > 0 ? Math.max(0, expectedNacks - nacks) : 1)
    this.log.info({ node: node.name }, 'suspect: no acks received')
    this.state.suspectNode({ incarnation: node.incarnation, node: node.name, from: this.name })
  }

  /** memberlist's sendPingAndWaitForAck: a ping over TCP, answered by an ack with the same SeqNo. */
  private async tcpPing(to: Address, ping: Ping, deadline: number): Promise<boolean> {
    const sock = await this.dial(to, Math.max(1, deadline - this.clock.now()))
    const timer = this.clock.setTimeout(() => sock.destroy(), Math.max(1, deadline - this.clock.now()))
    try {
      const reader = new StreamReader(sock)
      void this.writeFrame(sock, encodePing(ping), true).catch(() => {})
      const type = await reader.readFrameType(this.sec, this.sec.label)
      if (type !== MsgType.ack) throw new MembershipError('E_PROTOCOL', `Unexpected msgType (${type}) from ping`)
      const ack = decodeAck(await reader.struct())
      return ack.seqNo === ping.seqNo
    } finally {
      this.clock.clearTimeout(timer)
      sock.destroy()
    }
  }

  // ---------------------------------------------------------------- gossip

  /** Every GossipInterval: queued broadcasts to a few random live (or recently dead) nodes. */
  private gossip(): void {
    const now = this.clock.now()
    const targets = this.state.randomNodes(this.tuning.gossipNodes, n => {
      if (n.name === this.name) return true
      if (n.state === 'alive' || n.state === 'suspect') return false
      if (n.state === 'dead') return now - n.stateChange > this.tuning.gossipToTheDeadTime
      return true
    })
    const avail = this.tuning.udpBufferSize - COMPOUND_HEADER_OVERHEAD - packetOverhead(this.sec)
    for (const node of targets) {
      const msgs = this.getBroadcasts(COMPOUND_PART_OVERHEAD, avail)
      if (msgs.length === 0) return
      const to = { ip: node.addr, port: node.port }
      const packets = msgs.length === 1 ? msgs : makeCompounds(msgs)
      for (const p of packets) this.rawSendPacket(to, node, p).catch(e => this.log.debug({ err: e }, 'gossip send failed'))
    }
  }

  // ---------------------------------------------------------------- push/pull

  private async pushPullRandom(): Promise<void> {
    const [node] = this.state.randomNodes(1, n => n.name === this.name || n.state !== 'alive')
    if (!node) return
    try {
      await this.pushPullNode({ ip: node.addr, port: node.port }, false)
    } catch (e) {
      this.log.debug({ err: e, node: node.name }, 'push/pull failed')
    }
  }

  private localStateFrame(join: boolean): Buffer {
    const nodes = this.state.pushState()
    const user = this.delegate.localState?.(join) ?? Buffer.alloc(0)
    return Buffer.concat([encodePushPullHeader({ nodes: nodes.length, userStateLen: user.length, join }), ...nodes.map(encodePushNodeState), user])
  }

  /**
   * Writes one stream frame (compressed and sealed as configured). The dialer
   * prefixes the label; replies carry none but still seal with it.
   */
  private writeFrame(sock: Duplex, frame: Buffer, dialer: boolean, label = this.sec.label): Promise<void> {
    const buf = encodeStreamFrame(frame, { compress: this.tuning.enableCompression, withLabel: dialer, label }, this.sec)
    this.counters.streamBytesSent += buf.length
    return new Promise((resolve, reject) => sock.write(buf, err => (err ? reject(err) : resolve())))
  }

  private async dial(to: Address, timeoutMs = this.tuning.tcpTimeout): Promise<Duplex> {
    const sock = await this.transport.dialStream(to, timeoutMs)
    this.counters.streamsOpened++
    return sock
  }

  /** Exchanges full state with one node over TCP; `join` marks the first exchange. */
  private async pushPullNode(to: Address, join: boolean): Promise<void> {
    const sock = await this.dial(to)
    const timer = this.clock.setTimeout(() => sock.destroy(new MembershipError('E_TIMEOUT', 'push/pull timed out')), this.tuning.tcpTimeout)
    try {
      const reader = new StreamReader(sock)
      void this.writeFrame(sock, this.localStateFrame(join), true).catch(() => {})
      const type = await reader.readFrameType(this.sec, this.sec.label)
      if (type === MsgType.err) throw new MembershipError('E_REMOTE', `remote error: ${decodeErr(await reader.struct()).error}`)
      if (type !== MsgType.pushPull) throw new MembershipError('E_PROTOCOL', `received invalid msgType (${type}), expected pushPullMsg (${MsgType.pushPull})`)
      const remote = await this.readRemoteState(reader)
      this.mergeRemoteState(remote.nodes, remote.user, join)
    } finally {
      this.clock.clearTimeout(timer)
      sock.destroy()
    }
  }

  private async readRemoteState(reader: StreamReader): Promise<{ nodes: PushNodeState[]; user: Buffer; join: boolean }> {
    const h = decodePushPullHeader(await reader.struct())
    if (h.nodes > MAX_PUSH_PULL_NODES) throw new PacketError('oversize', `push/pull with ${h.nodes} nodes`)
    if (h.userStateLen > MAX_USER_STATE) throw new PacketError('oversize', `push/pull user state of ${h.userStateLen} bytes`)
    const nodes: PushNodeState[] = []
    for (let i = 0; i < h.nodes; i++) nodes.push(decodePushNodeState(await reader.struct()))
    const user = Buffer.from(await reader.bytes(h.userStateLen))
    return { nodes, user, join: h.join }
  }

  /** A push/pull's nodes, each malformed one dropped and counted, then memberlist's version check over the rest. */
  private mergeRemoteState(remote: PushNodeState[], user: Buffer, join: boolean): void {
    const nodes = remote.filter(n => {
      const why = pushStateProblem(n)
      if (why) this.drop(why)
      return !why
    })
    const err = this.state.verifyProtocol(nodes)
    if (err) throw new MembershipError('E_VERSION', err)
    this.state.mergeState(nodes)
    if (user.length > 0) this.delegate.mergeRemoteState?.(user, join)
  }

  // ---------------------------------------------------------------- receiving

  /** The UDP receive path: counts, unwraps, dispatches; never throws. */
  private ingestPacket(packet: Buffer, from: Address): void {
    this.counters.packetsReceived++
    this.counters.bytesReceived += packet.length
    if (this.stopped) return
    try {
      this.handleCommand(openPacket(packet, this.sec), from, 0)
    } catch (e) {
      this.drop(dropReason(e))
      this.log.debug({ err: e, from }, 'dropped packet')
    }
  }

  private handleCommand(buf: Buffer, from: Address, depth: number): void {
    if (buf.length === 0) throw new PacketError('truncated', 'empty message')
    const type = buf[0]!
    const body = buf.subarray(1)
    const struct = () => new MsgpackReader(body).struct()
    // Containers are counted by what they hold.
    if (type !== MsgType.compound && type !== MsgType.compress) countMessage(this.counters.received, buf)
    switch (type) {
      case MsgType.compound: {
        if (depth >= MAX_NESTING) throw new PacketError('decode', 'compound nested too deep')
        const { parts, truncated } = parseCompound(body)
        if (truncated > 0) this.counters.dropped.truncated = (this.counters.dropped.truncated ?? 0) + truncated
        for (const p of parts) {
          try {
            this.handleCommand(p, from, depth + 1)
          } catch (e) {
            this.drop(dropReason(e))
            this.log.debug({ err: e, from }, 'dropped message')
          }
        }
        return
      }
      case MsgType.compress:
        if (depth >= MAX_NESTING) throw new PacketError('decode', 'compression nested too deep')
        this.handleCommand(decompressMessage(body), from, depth + 1)
        return
      case MsgType.ping:
        this.handlePing(decodePing(struct()), from)
        return
      case MsgType.indirectPing: {
        const ind = decodeIndirectPing(struct())
        checkIndirectPing(ind)
        this.handleIndirectPing(ind, from)
        return
      }
      case MsgType.ack: {
        const ack: AckResp = decodeAck(struct())
        const h = this.ackHandlers.get(ack.seqNo)
        if (h) {
          this.ackHandlers.delete(ack.seqNo)
          this.clock.clearTimeout(h.timer as never)
          h.ack(ack.payload)
        }
        return
      }
      case MsgType.nack:
        this.ackHandlers.get(decodeNack(struct()).seqNo)?.nack?.()
        return
      case MsgType.suspect: {
        const sus = decodeSuspect(struct())
        checkSuspect(sus)
        this.state.suspectNode(sus)
        return
      }
      case MsgType.alive: {
        const a = decodeAlive(struct())
        checkAlive(a, this.vsn)
        // Protocol 1 peers sent no port: memberlist assumes its own.
        if (a.port === 0) a.port = this.advertise.port
        this.state.aliveNode(a)
        return
      }
      case MsgType.dead: {
        const d = decodeDead(struct())
        checkDead(d)
        this.state.deadNode(d)
        return
      }
      case MsgType.user:
        if (body.length > 0) this.delegate.notifyMsg?.(Buffer.from(body), from)
        this.emit('message', Buffer.from(body), from)
        return
      default:
        throw new PacketError('unknown_type', `message type ${type} not supported`)
    }
  }

  private handlePing(p: Ping, from: Address): void {
    if (p.node && p.node !== this.name) throw new PacketError('wrong_node', `got ping for unexpected node '${p.node}'`)
    const to = p.sourceAddr && p.sourcePort ? { ip: p.sourceAddr, port: p.sourcePort } : from
    this.send(to, encodeAck({ seqNo: p.seqNo, payload: Buffer.alloc(0) }))
  }

  /** Relay for an indirect probe: ping the target for the requester, nack if it stays silent. */
  private handleIndirectPing(ind: IndirectPingReq, from: Address): void {
    const seq = this.nextSeq()
    const requester = ind.sourceAddr && ind.sourcePort ? { ip: ind.sourceAddr, port: ind.sourcePort } : from
    let nackTimer: unknown
    this.setAckHandler(
      seq,
      {
        ack: () => {
          if (nackTimer) this.clock.clearTimeout(nackTimer as never)
          this.send(requester, encodeAck({ seqNo: ind.seqNo, payload: Buffer.alloc(0) }))
        },
      },
      this.tuning.probeTimeout,
    )
    const port = ind.port || this.advertise.port
    this.send({ ip: ind.target, port }, encodePing({ seqNo: seq, node: ind.node, sourceAddr: this.advertise.ip, sourcePort: this.advertise.port, sourceNode: this.name }))
    if (ind.nack) {
      nackTimer = this.clock.setTimeout(() => this.send(requester, encodeNack({ seqNo: ind.seqNo })), this.tuning.probeTimeout)
    }
  }

  /** One inbound TCP exchange (memberlist's handleConn); errors are counted and answered, never thrown. */
  private async handleStream(sock: Duplex, from: Address): Promise<void> {
    this.counters.streamsAccepted++
    const timer = this.clock.setTimeout(() => sock.destroy(), this.tuning.tcpTimeout)
    const reader = new StreamReader(sock)
    let label = this.sec.label
    let pushPull = false
    try {
      label = await reader.readLabel(this.sec)
      const type = await reader.readFrameType(this.sec, label)
      const reply = (frame: Buffer): Promise<void> => this.writeFrame(sock, frame, false, label)
      switch (type) {
        case MsgType.user: {
          const len = decodeUserMsgHeader(await reader.struct())
          if (len > MAX_USER_MSG) throw new PacketError('oversize', `user message of ${len} bytes`)
          const msg = Buffer.from(await reader.bytes(len))
          if (len > 0) this.delegate.notifyMsg?.(msg, from)
          this.emit('message', msg, from)
          break
        }
        case MsgType.pushPull: {
          if (this.pushPullsInFlight >= MAX_CONCURRENT_PUSH_PULL) throw new PacketError('oversize', 'Too many pending push/pull requests')
          this.pushPullsInFlight++
          pushPull = true
          const remote = await this.readRemoteState(reader)
          await reply(this.localStateFrame(remote.join))
          this.mergeRemoteState(remote.nodes, remote.user, remote.join)
          break
        }
        case MsgType.ping: {
          const p = decodePing(await reader.struct())
          if (p.node && p.node !== this.name) throw new PacketError('wrong_node', `got ping for unexpected node '${p.node}'`)
          await reply(encodeAck({ seqNo: p.seqNo, payload: Buffer.alloc(0) }))
          break
        }
        default:
          throw new PacketError('unknown_type', `received invalid msgType (${type})`)
      }
    } catch (e) {
      this.drop(e instanceof MembershipError && e.code === 'E_VERSION' ? 'version' : dropReason(e))
      this.log.debug({ err: e, from }, 'dropped stream')
      if (!sock.destroyed) {
        await this.writeFrame(sock, encodeErr({ error: (e as Error).message }), false, label).catch(() => {})
      }
    } finally {
      if (pushPull) this.pushPullsInFlight--
      this.clock.clearTimeout(timer)
      reader.detach()
      sock.end()
    }
  }
}


/** `IP:PORT`, `[v6]:PORT`, or a bare IP with the default port. */
export function parseHostPort(s: string, defaultPort: number): Address {
  const v6 = /^\[(.+)\]:(\d+)$/.exec(s)
  if (v6) return { ip: v6[1]!, port: Number(v6[2]) }
  const i = s.lastIndexOf(':')
  if (i > 0 && s.indexOf(':') === i) {
    const port = Number(s.slice(i + 1))
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MembershipError('E_ADDR', `bad port in ${s}`)
    return { ip: s.slice(0, i), port }
  }
  return { ip: s, port: defaultPort }
}
