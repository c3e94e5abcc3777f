import type { Logger } from 'pino'
import { Membership, type MemberEvent } from '../gossip/membership.js'
import { GOSSIP_PORT } from '../types/defaults.js'

/** Joins gossip on `host`:7946 as `nodeId`, encrypted with the swarm's keys (the middle one primary, as swarm's). */
export function startGossip(o: { nodeId: string; host: string; gossipKeys: string[]; log: Logger; onEvent: (e: MemberEvent) => void }): Promise<Membership> {
  const keys = o.gossipKeys.map(k => Buffer.from(k, 'base64'))
  return Membership.create({
    name: o.nodeId,
    bind: { ip: o.host, port: GOSSIP_PORT },
    keys: [keys[1]!, keys[0]!, keys[2]!],
    logger: o.log,
    onEvent: o.onEvent,
  })
}

/** Installs new keys, makes the middle one primary, removes the dropped ones: no flag day. */
export function applyGossipKeys(m: Membership, gossipKeys: string[]): void {
  const keys = gossipKeys.map(k => Buffer.from(k, 'base64'))
  for (const k of keys) m.installKey(k)
  m.useKey(keys[1]!)
  for (const k of m.keyring.getKeys()) if (!keys.some(x => x.equals(k))) m.removeKey(k)
}
