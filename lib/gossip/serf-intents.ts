import { MsgpackReader, MsgpackWriter, fieldUint } from './msgpack.js'

/**
 * Just enough of serf's own protocol (carried in memberlist user messages)
 * for a swarmd agent in a serf cluster to leave as "left": serf marks a
 * member left only if a leave intent arrived before memberlist's leave,
 * otherwise "failed" (serf.go handleNodeLeave). Serf message types:
 * 0 leave, 1 join; bodies are msgpack {LTime, Node}.
 */
const SERF_LEAVE = 0
const SERF_JOIN = 1

export class SerfIntents {
  /** serf's Lamport clock as far as we have seen it. */
  private clock = 0

  /** Reads the Lamport time of serf join / leave intents we receive. Ignores anything else. */
  witness(msg: Buffer): void {
    if (msg.length < 2 || (msg[0] !== SERF_LEAVE && msg[0] !== SERF_JOIN)) return
    try {
      const lt = fieldUint(new MsgpackReader(msg, 1).struct(), 'LTime', Number.MAX_SAFE_INTEGER)
      if (lt > this.clock) this.clock = lt
    } catch {
      // Not an intent we understand: serf has many other message types.
    }
  }

  /** A leave intent for `node`, newer than anything witnessed. */
  leave(node: string): Buffer {
    this.clock++
    return new MsgpackWriter(64).byte(SERF_LEAVE).mapHeader(2).key('LTime').uint(this.clock).key('Node').str(node).toBuffer()
  }
}
