import type { Awareness } from './awareness.js'
import type { Clock } from './clock.js'
import type { GossipTuning } from './config.js'
import {
  type Alive,
  type Dead,
  encodeAlive,
  encodeDead,
  encodeSuspect,
  type NodeStateName,
  NodeStateType,
  type PushNodeState,
  type Suspect,
  type Vsn,
} from './messages.js'
import type { TransmitLimitedQueue } from './queue.js'
import { Suspicion, suspicionTimeoutMs } from './suspicion.js'

/** What this node knows of one member. */
export interface NodeState {
  name: string
  addr: string
  port: number
  meta: Buffer
  incarnation: number
  state: NodeStateName
  /** Clock time of the last state change. */
  stateChange: number
  vsn: Vsn
}

/** Membership changes, as the agent prints them. */
export type MemberEventType = 'join' | 'update' | 'suspect' | 'alive' | 'dead' | 'left'

export interface StateDeps {
  name: string
  tuning: GossipTuning
  clock: Clock
  queue: TransmitLimitedQueue
  awareness: Awareness
  /** This node's current Vsn (protocol and delegate versions). */
  vsn: () => Vsn
  leaving: () => boolean
  emit: (type: MemberEventType, node: NodeState) => void
  /** Called for each conflicting alive (same name, other address). */
  conflict?: (existing: NodeState, other: Alive) => void
  /** This node refuted an accusation about itself. */
  refuted?: () => void
  random?: () => number
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

/**
 * The member list and memberlist's rules for alive / suspect / dead messages,
 * incarnations, refutation and Lifeguard's suspicion timers. No sockets: it
 * queues broadcasts and emits events, so every rule is testable on its own.
 */
export class StateMachine {
  /** Probe order; new nodes go in at a random position. */
  nodes: NodeState[] = []
  readonly nodeMap = new Map<string, NodeState>()
  private readonly timers = new Map<string, Suspicion>()
  private readonly random: () => number
  /** Called when the broadcast of our own leave has gone out (or was dropped). */
  onLeaveBroadcast: (() => void) | undefined

  constructor(private readonly d: StateDeps) {
    this.random = d.random ?? Math.random
  }

  get local(): NodeState | undefined {
    return this.nodeMap.get(this.d.name)
  }

  numNodes(): number {
    return this.nodes.length
  }

  /** While set, state changes are applied but not gossiped (adopting a known membership). */
  quiet = false

  /** Queues a message about `node`; encoded only when it will really be gossiped. */
  private broadcast(node: string, encode: () => Buffer, finished?: () => void): void {
    if (this.quiet) return
    const msg = encode()
    this.d.queue.queueBroadcast(finished ? { name: node, msg, finished } : { name: node, msg })
  }

  /** memberlist's aliveNode. `bootstrap` is set for our own first alive. */
  aliveNode(a: Alive, bootstrap = false): void {
    const isLocal = a.node === this.d.name
    if (this.d.leaving() && isLocal) return
    const [pmin, pmax] = a.vsn
    if (pmin === 0 || pmax === 0 || pmin > pmax) return
    let state = this.nodeMap.get(a.node)
    let updatesNode = false
    if (!state) {
      state = {
        name: a.node,
        addr: a.addr,
        port: a.port,
        meta: a.meta,
        incarnation: 0,
        state: 'dead',
        stateChange: this.d.clock.now(),
        vsn: a.vsn,
      }
      this.nodeMap.set(a.node, state)
      const n = this.nodes.length
      const offset = Math.floor(this.random() * (n + 1))
      this.nodes.push(state)
      if (offset < n) {
        this.nodes[n] = this.nodes[offset]!
        this.nodes[offset] = state
      }
    } else if (state.addr !== a.addr || state.port !== a.port) {
      const reclaim = this.d.tuning.deadNodeReclaimTime > 0 && this.d.clock.now() - state.stateChange > this.d.tuning.deadNodeReclaimTime
      if (state.state === 'left' || (state.state === 'dead' && reclaim)) {
        updatesNode = true
      } else {
        this.d.conflict?.(state, a)
        return
      }
    }
    if (a.incarnation <= state.incarnation && !isLocal && !updatesNode) return
    if (a.incarnation < state.incarnation && isLocal) return
    this.stopTimer(a.node)
    const oldState = state.state
    const oldMeta = state.meta
    if (!bootstrap && isLocal) {
      if (a.incarnation === state.incarnation && sameBytes(a.meta, state.meta) && sameBytes(Buffer.from(a.vsn), Buffer.from(this.d.vsn()))) return
      this.refute(state, a.incarnation)
    } else {
      this.broadcast(a.node, () => encodeAlive(a))
      state.vsn = a.vsn
      state.incarnation = a.incarnation
      state.meta = a.meta
      state.addr = a.addr
      state.port = a.port
      if (state.state !== 'alive') {
        state.state = 'alive'
        state.stateChange = this.d.clock.now()
      }
    }
    if (oldState === 'dead' || oldState === 'left') this.d.emit('join', state)
    else {
      if (oldState === 'suspect' && state.state === 'alive') this.d.emit('alive', state)
      if (!sameBytes(oldMeta, state.meta)) this.d.emit('update', state)
    }
  }

  /** memberlist's suspectNode. */
  suspectNode(s: Suspect): void {
    const state = this.nodeMap.get(s.node)
    if (!state || s.incarnation < state.incarnation) return
    const timer = this.timers.get(s.node)
    if (timer) {
      if (timer.confirm(s.from)) this.broadcast(s.node, () => encodeSuspect(s))
      return
    }
    if (state.state !== 'alive') return
    if (state.name === this.d.name) {
      this.refute(state, s.incarnation)
      return
    }
    this.broadcast(s.node, () => encodeSuspect(s))
    state.incarnation = s.incarnation
    state.state = 'suspect'
    const changeTime = this.d.clock.now()
    state.stateChange = changeTime
    // Expect confirmations from all but ourselves and the suspect, up to SuspicionMult - 2.
    let k = this.d.tuning.suspicionMult - 2
    const n = this.numNodes()
    if (n - 2 < k) k = 0
    const min = suspicionTimeoutMs(this.d.tuning.suspicionMult, n, this.d.tuning.probeInterval)
    const max = this.d.tuning.suspicionMaxTimeoutMult * min
    this.timers.set(
      s.node,
      new Suspicion({
        from: s.from,
        k,
        minMs: min,
        maxMs: max,
        clock: this.d.clock,
        onTimeout: () => {
          this.timers.delete(s.node)
          const cur = this.nodeMap.get(s.node)
          if (cur && cur.state === 'suspect' && cur.stateChange === changeTime) {
            this.deadNode({ incarnation: cur.incarnation, node: cur.name, from: this.d.name })
          }
        },
      }),
    )
    this.d.emit('suspect', state)
  }

  /** memberlist's deadNode; From == Node means a graceful leave. */
  deadNode(d: Dead): void {
    const state = this.nodeMap.get(d.node)
    if (!state || d.incarnation < state.incarnation) return
    this.stopTimer(d.node)
    if (state.state === 'dead' || state.state === 'left') return
    if (state.name === this.d.name) {
      if (!this.d.leaving()) {
        this.refute(state, d.incarnation)
        return
      }
      this.broadcast(d.node, () => encodeDead(d), () => this.onLeaveBroadcast?.())
    } else {
      this.broadcast(d.node, () => encodeDead(d))
    }
    state.incarnation = d.incarnation
    state.state = d.node === d.from ? 'left' : 'dead'
    state.stateChange = this.d.clock.now()
    this.d.emit(state.state, state)
  }

  /** Beat an accusation about ourselves with a higher incarnation, and count it against our health. */
  refute(me: NodeState, accused: number): void {
    me.incarnation = Math.max(me.incarnation + 1, accused + 1) >>> 0
    this.d.awareness.applyDelta(1)
    this.d.refuted?.()
    const vsn = this.d.vsn()
    this.broadcast(me.name, () =>
      encodeAlive({ incarnation: me.incarnation, node: me.name, addr: me.addr, port: me.port, meta: me.meta, vsn }),
    )
  }

  /** Anti-entropy merge: remote dead is only suspected, so hearsay cannot kill a node at once. */
  mergeState(remote: readonly PushNodeState[]): void {
    for (const r of remote) {
      switch (r.state) {
        case NodeStateType.alive:
          this.aliveNode({ incarnation: r.incarnation, node: r.name, addr: r.addr, port: r.port, meta: r.meta, vsn: r.vsn })
          break
        case NodeStateType.left:
          this.deadNode({ incarnation: r.incarnation, node: r.name, from: r.name })
          break
        default:
          this.suspectNode({ incarnation: r.incarnation, node: r.name, from: this.d.name })
      }
    }
  }

  /**
   * memberlist's verifyProtocol: every node's current protocol and delegate
   * versions must lie inside what all alive nodes (ours and theirs) understand.
   * Returns an error text, or undefined when compatible.
   */
  verifyProtocol(remote: readonly PushNodeState[]): string | undefined {
    let maxpmin = 0
    let minpmax = 255
    let maxdmin = 0
    let mindmax = 255
    const widen = (v: Vsn): void => {
      maxpmin = Math.max(maxpmin, v[0])
      minpmax = Math.min(minpmax, v[1])
      maxdmin = Math.max(maxdmin, v[3])
      mindmax = Math.min(mindmax, v[4])
    }
    for (const r of remote) if (r.state === NodeStateType.alive) widen(r.vsn)
    for (const n of this.nodes) if (n.state === 'alive') widen(n.vsn)
    const check = (name: string, v: Vsn): string | undefined => {
      if (v[2] < maxpmin || v[2] > minpmax) return `Node '${name}' protocol version (${v[2]}) is incompatible: [${maxpmin}, ${minpmax}]`
      if (v[5] < maxdmin || v[5] > mindmax) return `Node '${name}' delegate protocol version (${v[5]}) is incompatible: [${maxdmin}, ${mindmax}]`
      return undefined
    }
    for (const r of remote) {
      const err = check(r.name, r.vsn)
      if (err) return err
    }
    for (const n of this.nodes) {
      const err = check(n.name, n.vsn)
      if (err) return err
    }
    return undefined
  }

  /** Our state for a push/pull: every node we know, dead and left included. */
  pushState(): PushNodeState[] {
    return this.nodes.map(n => ({
      name: n.name,
      addr: n.addr,
      port: n.port,
      meta: n.meta,
      incarnation: n.incarnation,
      state: NodeStateType[n.state],
      vsn: n.vsn,
    }))
  }

  /**
   * Drops dead and left nodes older than GossipToTheDeadTime and shuffles the
   * rest: memberlist does this when the probe walk wraps around.
   */
  reapAndShuffle(): void {
    const now = this.d.clock.now()
    const keep: NodeState[] = []
    for (const n of this.nodes) {
      if ((n.state === 'dead' || n.state === 'left') && now - n.stateChange > this.d.tuning.gossipToTheDeadTime) {
        this.nodeMap.delete(n.name)
        this.stopTimer(n.name)
      } else {
        keep.push(n)
      }
    }
    for (let i = keep.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      const t = keep[i]!
      keep[i] = keep[j]!
      keep[j] = t
    }
    this.nodes = keep
  }

  /**
   * Up to k distinct random nodes not excluded, with at most 3n draws as
   * memberlist's kRandomNodes: no O(n) scan per call.
   */
  randomNodes(k: number, exclude: (n: NodeState) => boolean): NodeState[] {
    const n = this.nodes.length
    const out: NodeState[] = []
    for (let i = 0; i < 3 * n && out.length < k; i++) {
      const node = this.nodes[Math.floor(this.random() * n)]!
      if (exclude(node) || out.includes(node)) continue
      out.push(node)
    }
    return out
  }

  anyAliveOthers(): boolean {
    for (const n of this.nodes) if (n.name !== this.d.name && n.state !== 'dead' && n.state !== 'left') return true
    return false
  }

  private stopTimer(name: string): void {
    const t = this.timers.get(name)
    if (t) {
      t.stop()
      this.timers.delete(name)
    }
  }

  stopAll(): void {
    for (const t of this.timers.values()) t.stop()
    this.timers.clear()
  }
}
