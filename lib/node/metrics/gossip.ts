import type { Registry } from 'prom-client'
import type { Membership } from '../../gossip/membership.js'
import type { MessageCounts } from '../../gossip/traffic.js'
import { byLabel, counterFrom, gaugeFrom, sentReceived, type Labels } from './read.js'

const STATES = ['alive', 'suspect', 'dead', 'left'] as const

function messages(sent: MessageCounts, received: MessageCounts, what: 'messages' | 'bytes'): [Labels, number][] {
  const out: [Labels, number][] = []
  for (const [direction, c] of [['sent', sent], ['received', received]] as const) {
    for (const [type, n] of Object.entries(c[what])) out.push([{ direction, type }, n])
  }
  return out
}

/** The gossip layer's families, read from this node's membership (none before it joins a swarm). */
export function gossipMetrics(registry: Registry, membership: () => Membership | undefined): void {
  const c = () => membership()?.counters
  gaugeFrom(registry, { name: 'swarmd_gossip_members', help: 'Members this node knows, by state (dead and left ones until reaped)', labelNames: ['state'] }, () => {
    const m = membership()
    if (!m) return undefined
    const all = m.allMembers()
    return STATES.map(state => [{ state }, all.filter(x => x.state === state).length] as const)
  })
  gaugeFrom(registry, { name: 'swarmd_gossip_health_score', help: "Lifeguard's awareness of this node's own health (0 is healthy)" }, () => membership()?.healthScore())
  counterFrom(registry, { name: 'swarmd_gossip_probes_total', help: 'Probes of other members by outcome: a direct ack, an ack through another member, only the TCP fallback, or none', labelNames: ['outcome'] }, () =>
    byLabel('outcome', c()?.probes),
  )
  counterFrom(registry, { name: 'swarmd_gossip_suspicions_total', help: 'Members this node came to suspect, by its own probe or by gossip' }, () => c()?.suspicions)
  counterFrom(registry, { name: 'swarmd_gossip_refutations_total', help: 'Suspicions of this node it refuted with a higher incarnation' }, () => c()?.refutations)
  counterFrom(registry, { name: 'swarmd_gossip_messages_total', help: 'UDP gossip messages by type (each part of a compound counted)', labelNames: ['direction', 'type'] }, () => {
    const x = c()
    return x && messages(x.sent, x.received, 'messages')
  })
  counterFrom(registry, { name: 'swarmd_gossip_message_bytes_total', help: 'Bytes of UDP gossip messages by type, before compression and encryption', labelNames: ['direction', 'type'] }, () => {
    const x = c()
    return x && messages(x.sent, x.received, 'bytes')
  })
  counterFrom(registry, { name: 'swarmd_gossip_packets_total', help: 'UDP gossip packets', labelNames: ['direction'] }, () => {
    const x = c()
    return x && sentReceived(x.packetsSent, x.packetsReceived)
  })
  counterFrom(registry, { name: 'swarmd_gossip_packet_bytes_total', help: 'Bytes of UDP gossip packets on the wire', labelNames: ['direction'] }, () => {
    const x = c()
    return x && sentReceived(x.bytesSent, x.bytesReceived)
  })
  counterFrom(registry, { name: 'swarmd_gossip_streams_total', help: 'TCP gossip streams (push/pull, reliable messages, fallback pings)', labelNames: ['direction'] }, () => {
    const x = c()
    return (
      x && [
        [{ direction: 'outbound' }, x.streamsOpened],
        [{ direction: 'inbound' }, x.streamsAccepted],
      ]
    )
  })
  counterFrom(registry, { name: 'swarmd_gossip_stream_sent_bytes_total', help: 'Bytes written on TCP gossip streams' }, () => c()?.streamBytesSent)
  counterFrom(registry, { name: 'swarmd_gossip_send_errors_total', help: 'UDP gossip packets the socket refused to send' }, () => c()?.sendErrors)
  counterFrom(registry, { name: 'swarmd_gossip_dropped_total', help: 'Inbound gossip packets, messages and streams dropped, by reason', labelNames: ['reason'] }, () => byLabel('reason', c()?.dropped))
}
