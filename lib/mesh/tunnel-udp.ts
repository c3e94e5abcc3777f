import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram'
import { isIP } from 'node:net'
import { peerKey, type PeerAddress } from './peer-address.js'
import { Sealer } from './seal.js'
import { TunnelError } from './tunnel-error.js'
import { FlowTable } from './tunnel-flows.js'
import { FrameFlag, FrameType, decodeDgramBody, decodeFrame, encodeDgramPrefix, encodeFrameHeader, type Frame } from './tunnel-frame.js'
import type { TunnelCounters, TunnelNetwork } from './tunnel-types.js'
import type { Vni } from './types.js'

export interface IncomingDatagram {
  vni: Vni
  endpointKey: string
  flowId: number
  /** A view of the received datagram: copy it to keep it past this call. */
  payload: Buffer
  /** The sending tunnel's UDP address. */
  from: PeerAddress
  /** Sends a datagram back to the flow's originator. */
  reply(payload: Uint8Array): void
}

/** An outgoing UDP flow to one endpoint of a peer (openFlow). */
export interface DatagramFlow {
  /** Random, so that nobody off the path can aim a reply at it. */
  readonly id: number
  /** Throws TunnelError E_TUNNEL_UNKNOWN_VNI (the network is gone), E_TUNNEL_TOO_LARGE, E_TUNNEL_CLOSED. */
  send(payload: Uint8Array): void
  /** Later replies to the flow are dropped. */
  close(): void
}

const MAX_UDP_DATAGRAM = 65_507
const EMPTY = Buffer.alloc(0)

/**
 * The tunnel's UDP side, on the same port as its TCP: one frame per
 * datagram, a request naming its endpoint, a reply (REPLY flag) going back
 * to the flow that sent the request, and taken only from that flow's peer
 * and network.
 */
export class TunnelUdp {
  private readonly sealer = new Sealer()
  private readonly flows = new FlowTable()
  private closed = false

  constructor(
    private readonly socket: UdpSocket,
    private readonly o: {
      stats: TunnelCounters
      /** The network behind a VNI, or undefined. */
      network: (vni: Vni) => TunnelNetwork | undefined
      /** The same, throwing E_TUNNEL_UNKNOWN_VNI. */
      networkOf: (vni: Vni) => TunnelNetwork
      /** A frame's plaintext body, or undefined (counted) when the network's sealing rules refuse it. */
      unseal: (network: TunnelNetwork, f: Frame, strict: boolean) => Buffer | undefined
      onDatagram: ((d: IncomingDatagram) => void) | undefined
    },
  ) {
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo))
    // Send errors (e.g. ICMP unreachable reported on the next send) concern one datagram only.
    socket.on('error', () => {})
  }

  /** See Tunnel.openFlow. */
  openFlow(peer: PeerAddress, vni: Vni, endpointKey: string, onReply: (payload: Buffer) => void): DatagramFlow {
    if (this.closed) throw new TunnelError('E_TUNNEL_CLOSED', 'the tunnel is closed')
    if (!isIP(peer.host)) throw new TunnelError('E_TUNNEL_PROTOCOL', `a flow's peer must be an IP address, not ${peer.host}`)
    this.o.networkOf(vni)
    let prefix: Buffer
    try {
      prefix = encodeDgramPrefix(endpointKey)
    } catch (e) {
      throw new TunnelError('E_TUNNEL_PROTOCOL', (e as Error).message, undefined, { cause: e })
    }
    const id = this.flows.add({ peer: peerKey(peer), vni, onReply })
    return {
      id,
      send: (payload) => this.send(peer, vni, id, this.o.networkOf(vni), prefix, payload, 0),
      close: () => this.flows.delete(id),
    }
  }

  close(): Promise<void> {
    this.closed = true
    this.flows.clear()
    return new Promise<void>((r) => this.socket.close(() => r()))
  }

  private send(peer: PeerAddress, vni: Vni, flowId: number, network: TunnelNetwork, prefix: Buffer, payload: Uint8Array, flags: number): void {
    let parts: Uint8Array[]
    if (network.seal) {
      parts = this.sealer.seal(network.seal, { vni, type: FrameType.DGRAM, streamId: flowId, flags }, prefix.length > 0 ? Buffer.concat([prefix, payload]) : payload)
    } else {
      const length = prefix.length + payload.length
      parts = [encodeFrameHeader({ vni, type: FrameType.DGRAM, flags, keyId: 0, streamId: flowId, length }), prefix, payload]
    }
    let size = 0
    for (const p of parts) size += p.length
    if (size > MAX_UDP_DATAGRAM) throw new TunnelError('E_TUNNEL_TOO_LARGE', `datagram of ${size} bytes exceeds ${MAX_UDP_DATAGRAM}`)
    if (this.closed) throw new TunnelError('E_TUNNEL_CLOSED', 'the tunnel is closed')
    const stats = this.o.stats
    stats.datagramsOut++
    stats.framesOut++
    stats.bytesOut += size
    this.socket.send(parts, peer.port, peer.host)
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const stats = this.o.stats
    stats.datagramsIn++
    stats.framesIn++
    stats.bytesIn += msg.length
    let f: Frame
    try {
      f = decodeFrame(msg)
    } catch {
      stats.dropped.malformed++
      return
    }
    if (f.type !== FrameType.DGRAM || f.vni === 0) {
      stats.dropped.malformed++
      return
    }
    const network = this.o.network(f.vni)
    if (!network) {
      stats.dropped.unknown_vni++
      return
    }
    const from = { host: rinfo.address, port: rinfo.port }
    // A reply is checked against its flow before any decryption is spent on it.
    const flow = (f.flags & FrameFlag.REPLY) !== 0 ? this.flows.match(f.streamId, f.vni, peerKey(from)) : undefined
    if (typeof flow === 'string') {
      stats.dropped[flow]++
      return
    }
    const body = this.o.unseal(network, f, false)
    if (body === undefined) return
    if (flow) {
      flow.onReply(body)
      return
    }
    let d
    try {
      d = decodeDgramBody(body)
    } catch {
      stats.dropped.malformed++
      return
    }
    this.o.onDatagram?.({
      vni: f.vni,
      endpointKey: d.endpointKey,
      flowId: f.streamId,
      payload: d.payload,
      from,
      reply: (p) => this.send(from, f.vni, f.streamId, network, EMPTY, p, FrameFlag.REPLY),
    })
  }
}
