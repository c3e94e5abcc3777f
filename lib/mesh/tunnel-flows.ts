import { randomBytes } from 'node:crypto'
import type { Vni } from './types.js'

export interface Flow {
  /** The peer's UDP address (`host:port`): replies come from there or not at all. */
  peer: string
  vni: Vni
  onReply: (payload: Buffer) => void
}

/** Why a reply matched no flow. */
export type ReplyRefusal = 'reply_unknown_flow' | 'reply_wrong_peer'

/**
 * This tunnel's outgoing UDP flows. Ids are random 32-bit numbers, so a
 * sender off the path must guess one, and its address and network too, to
 * reach the flow's client.
 */
export class FlowTable {
  private readonly flows = new Map<number, Flow>()

  add(f: Flow): number {
    let id: number
    do id = randomBytes(4).readUInt32BE(0)
    while (id === 0 || this.flows.has(id))
    this.flows.set(id, f)
    return id
  }

  delete(id: number): void {
    this.flows.delete(id)
  }

  clear(): void {
    this.flows.clear()
  }

  /** The flow a reply from `from` on `vni` belongs to, or why none. */
  match(id: number, vni: Vni, from: string): Flow | ReplyRefusal {
    const f = this.flows.get(id)
    if (!f) return 'reply_unknown_flow'
    return f.peer === from && f.vni === vni ? f : 'reply_wrong_peer'
  }
}
