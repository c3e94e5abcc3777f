import { META_MAX_SIZE } from './config.js'
import { type Alive, type Dead, type IndirectPingReq, NodeStateType, type PushNodeState, type Suspect, type Vsn } from './messages.js'
import { MsgpackError } from './msgpack.js'
import { type DropReason, PacketError } from './packet.js'

/**
 * What a decoded message must hold before it is applied. memberlist checks
 * an alive's protocol range only (non-zero, min <= max) and takes an empty
 * node name, an alive with no address, or versions that contradict
 * themselves; these checks refuse those too, and never what a memberlist
 * node sends of itself (its Vsn always holds min <= cur <= max, as its
 * config and verifyProtocol require).
 */

/** The counter a failed decode or check goes to. */
export function dropReason(e: unknown): DropReason {
  if (e instanceof PacketError) return e.reason
  if (e instanceof MsgpackError) {
    if (e.code === 'E_MSGPACK_FIELD') return 'invalid_field'
    if (e.code === 'E_BAD_IP') return 'invalid_addr'
    if (e.code === 'E_BAD_VSN') return 'invalid_vsn'
  }
  return 'decode'
}

function named(node: string, what: string): void {
  if (!node) throw new PacketError('invalid_node', `${what} with no node name`)
}

/** What is wrong with an alive node's name, address, meta or versions, or undefined. */
function aliveProblem(node: string, addr: string, meta: Buffer, vsn: Vsn): PacketError | undefined {
  if (!node) return new PacketError('invalid_node', 'an alive with no node name')
  if (!addr) return new PacketError('invalid_addr', `an alive for '${node}' with no address`)
  if (meta.length > META_MAX_SIZE) return new PacketError('oversize', `an alive for '${node}' with ${meta.length} bytes of meta`)
  return vsnProblem(node, vsn)
}

/** Versions no node can have: no protocol, or a current version outside its own range. */
function vsnProblem(node: string, vsn: Vsn): PacketError | undefined {
  const [pmin, pmax, pcur, dmin, dmax, dcur] = vsn
  if (pmin === 0 || pmin > pcur || pcur > pmax) return new PacketError('invalid_vsn', `'${node}' with protocol versions [${pmin}, ${pmax}] around ${pcur}`)
  if (dmin > dcur || dcur > dmax) return new PacketError('invalid_vsn', `'${node}' with delegate versions [${dmin}, ${dmax}] around ${dcur}`)
  return undefined
}

/** Whether two nodes can speak: each one's current versions within the other's range (verifyProtocol, for a pair). */
function compatible(a: Vsn, b: Vsn): boolean {
  const within = (x: number, min: number, max: number): boolean => x >= min && x <= max
  return within(a[2], b[0], b[1]) && within(b[2], a[0], a[1]) && within(a[5], b[3], b[4]) && within(b[5], a[3], a[4])
}

/** An alive about a node this one can talk to, given `ours` (this node's Vsn); else a PacketError. */
export function checkAlive(a: Alive, ours: Vsn): void {
  const problem = aliveProblem(a.node, a.addr, a.meta, a.vsn)
  if (problem) throw problem
  if (!compatible(a.vsn, ours)) throw new PacketError('version', `an alive for '${a.node}' with versions [${a.vsn.join(', ')}] that do not meet ours [${ours.join(', ')}]`)
}

export function checkSuspect(s: Suspect): void {
  named(s.node, 'a suspect')
}

export function checkDead(d: Dead): void {
  named(d.node, 'a dead')
}

export function checkIndirectPing(p: IndirectPingReq): void {
  if (!p.target) throw new PacketError('invalid_addr', 'an indirect ping with no target address')
}

/**
 * Why one node of a push/pull cannot be merged, or undefined: no name,
 * versions no node can have (memberlist would fail the whole exchange on
 * them), or for an alive one, what checkAlive refuses but the version
 * match, which verifyProtocol judges for the whole exchange.
 */
export function pushStateProblem(n: PushNodeState): DropReason | undefined {
  if (!n.name) return 'invalid_node'
  return (n.state === NodeStateType.alive ? aliveProblem(n.name, n.addr, n.meta, n.vsn) : vsnProblem(n.name, n.vsn))?.reason
}
