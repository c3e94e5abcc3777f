import { MsgType } from './messages.js'

/** Gossip messages and their bytes by message type, in one direction. */
export interface MessageCounts {
  messages: Record<string, number>
  bytes: Record<string, number>
}

export const emptyMessageCounts = (): MessageCounts => ({ messages: {}, bytes: {} })

/** memberlist's message types by number, named as metrics label them (indirectPing → indirect_ping). */
const NAMES = new Map<number, string>(Object.entries(MsgType).map(([k, v]) => [v, k.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)]))

/** Counts one message of a known type (anything else is a drop, counted as such). */
export function countMessage(c: MessageCounts, msg: Uint8Array): void {
  const name = msg.length ? NAMES.get(msg[0]!) : undefined
  if (!name) return
  c.messages[name] = (c.messages[name] ?? 0) + 1
  c.bytes[name] = (c.bytes[name] ?? 0) + msg.length
}

/** Counts what a packet about to be sent carries: each part of a compound (as makeCompound lays it out), or the one message. */
export function countOutgoing(c: MessageCounts, msg: Uint8Array): void {
  if (msg[0] !== MsgType.compound) return countMessage(c, msg)
  const n = msg[1] ?? 0
  let off = 2 + n * 2
  for (let i = 0; i < n; i++) {
    const len = (msg[2 + i * 2]! << 8) | msg[3 + i * 2]!
    countMessage(c, msg.subarray(off, off + len))
    off += len
  }
}
