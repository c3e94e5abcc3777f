import { Duplex } from 'node:stream'
import { SwarmdError } from '../types/errors.js'
import type { VirtualClock } from './virtual-clock.js'
import type { Address, PacketHandler, StreamHandler, Transport } from './transport.js'

export class SimNetworkError extends SwarmdError {}

export interface SimLink {
  /** One-way delay in virtual ms. */
  latencyMs: number
  /** Share of datagrams lost, 0..1. */
  loss: number
}

const key = (a: Address): string => `${a.ip}:${a.port}`

/**
 * An in-memory network on a virtual clock: datagrams arrive after the link's
 * latency unless lost; streams are duplex pairs. Hosts can be cut off
 * (partition) to simulate failures without sockets.
 */
export class SimNetwork {
  private readonly hosts = new Map<string, SimTransport>()
  private readonly lossByHost = new Map<string, number>()
  private readonly down = new Set<string>()
  delivered = 0
  lost = 0

  constructor(
    readonly clock: VirtualClock,
    readonly link: SimLink = { latencyMs: 1, loss: 0 },
    private readonly random: () => number = Math.random,
  ) {}

  /** A transport for a new host at `addr`. */
  attach(addr: Address): SimTransport {
    const k = key(addr)
    if (this.hosts.has(k)) throw new SimNetworkError('E_SIM_ADDR', `address ${k} in use`)
    const t = new SimTransport(this, addr)
    this.hosts.set(k, t)
    return t
  }

  detach(addr: Address): void {
    this.hosts.delete(key(addr))
  }

  /** Drop everything to and from this host (a crashed or cut-off host). */
  setDown(addr: Address, down: boolean): void {
    if (down) this.down.add(key(addr))
    else this.down.delete(key(addr))
  }

  /** Extra loss on every datagram to or from this host. */
  setHostLoss(addr: Address, loss: number): void {
    this.lossByHost.set(key(addr), loss)
  }

  private passes(from: Address, to: Address): boolean {
    if (this.down.has(key(from)) || this.down.has(key(to))) return false
    const loss = 1 - (1 - this.link.loss) * (1 - (this.lossByHost.get(key(from)) ?? 0)) * (1 - (this.lossByHost.get(key(to)) ?? 0))
    return loss === 0 || this.random() >= loss
  }

  deliverPacket(packet: Buffer, from: Address, to: Address): void {
    if (!this.passes(from, to)) {
      this.lost++
      return
    }
    const copy = Buffer.from(packet)
    this.clock.setTimeout(() => {
      const dst = this.hosts.get(key(to))
      if (!dst || this.down.has(key(to))) return
      this.delivered++
      dst.receivePacket(copy, from)
    }, this.link.latencyMs)
  }

  openStream(from: Address, to: Address, timeoutMs: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const dst = this.hosts.get(key(to))
      if (!dst || this.down.has(key(to)) || this.down.has(key(from))) {
        this.clock.setTimeout(() => reject(new SimNetworkError('E_DIAL', `dial ${key(to)}: timeout after ${timeoutMs} ms`)), timeoutMs)
        return
      }
      this.clock.setTimeout(() => {
        const [a, b] = duplexPair()
        dst.acceptStream(b, from)
        resolve(a)
      }, this.link.latencyMs)
    })
  }
}

/** Two connected in-memory streams: what one writes, the other reads. */
export function duplexPair(): [Duplex, Duplex] {
  let a: Duplex
  let b: Duplex
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        peer().push(chunk)
        cb()
      },
      final(cb) {
        peer().push(null)
        cb()
      },
      destroy(err, cb) {
        const p = peer()
        if (!p.destroyed) p.destroy()
        cb(err)
      },
    })
  a = make(() => b)
  b = make(() => a)
  return [a, b]
}

export class SimTransport implements Transport {
  private onPacket: PacketHandler = () => {}
  private onStream: StreamHandler = () => {}
  private closed = false

  constructor(
    private readonly net: SimNetwork,
    readonly localAddress: Address,
  ) {}

  setHandlers(onPacket: PacketHandler, onStream: StreamHandler): void {
    this.onPacket = onPacket
    this.onStream = onStream
  }

  receivePacket(packet: Buffer, from: Address): void {
    if (!this.closed) this.onPacket(packet, from)
  }

  acceptStream(s: Duplex, from: Address): void {
    if (this.closed) s.destroy()
    else this.onStream(s, from)
  }

  async sendPacket(packet: Buffer, to: Address): Promise<void> {
    if (this.closed) throw new SimNetworkError('E_CLOSED', 'transport is shut down')
    this.net.deliverPacket(packet, this.localAddress, to)
  }

  dialStream(to: Address, timeoutMs: number): Promise<Duplex> {
    return this.net.openStream(this.localAddress, to, timeoutMs)
  }

  async shutdown(): Promise<void> {
    this.closed = true
    this.net.detach(this.localAddress)
  }
}
