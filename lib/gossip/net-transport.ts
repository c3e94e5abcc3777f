import dgram from 'node:dgram'
import { isIPv6 } from 'node:net'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { SwarmdError } from '../types/errors.js'
import type { Address, PacketHandler, StreamHandler, Transport } from './transport.js'

export class TransportError extends SwarmdError {}

/** Large enough for any memberlist packet: Go reads with a 64 KiB buffer too. */
const SOCKET_BUFFER = 2 * 1024 * 1024

/**
 * UDP and TCP on the same IP and port, as memberlist's NetTransport. With
 * port 0 the TCP listener picks the port and UDP binds the same one.
 */
export class NetTransport implements Transport {
  private onPacket: PacketHandler = () => {}
  private onStream: StreamHandler = () => {}
  private readonly streams = new Set<net.Socket>()

  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly localAddress: Address,
  ) {
    udp.on('message', (msg, rinfo) => this.onPacket(msg, { ip: rinfo.address, port: rinfo.port }))
    // A failed send or an ICMP error must never take the node down: sends report their own errors.
    udp.on('error', () => {})
    tcp.on('connection', sock => {
      this.track(sock)
      this.onStream(sock, { ip: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 })
    })
    tcp.on('error', () => {})
  }

  static async listen(bind: Address): Promise<NetTransport> {
    const tcp = net.createServer({ noDelay: true })
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', e => reject(new TransportError('E_BIND', `cannot listen on TCP ${bind.ip}:${bind.port}: ${e.message}`, { cause: e })))
      tcp.listen(bind.port, bind.ip, () => resolve())
    })
    const port = (tcp.address() as net.AddressInfo).port
    const udp = dgram.createSocket({ type: isIPv6(bind.ip) ? 'udp6' : 'udp4', recvBufferSize: SOCKET_BUFFER, sendBufferSize: SOCKET_BUFFER })
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', e => reject(new TransportError('E_BIND', `cannot bind UDP ${bind.ip}:${port}: ${e.message}`, { cause: e })))
        udp.bind(port, bind.ip, () => resolve())
      })
    } catch (e) {
      tcp.close()
      throw e
    }
    return new NetTransport(udp, tcp, { ip: bind.ip, port })
  }

  private track(sock: net.Socket): void {
    this.streams.add(sock)
    sock.once('close', () => this.streams.delete(sock))
    sock.on('error', () => {})
  }

  setHandlers(onPacket: PacketHandler, onStream: StreamHandler): void {
    this.onPacket = onPacket
    this.onStream = onStream
  }

  sendPacket(packet: Buffer, to: Address): Promise<void> {
    return new Promise((resolve, reject) => {
      this.udp.send(packet, to.port, to.ip, err => (err ? reject(new TransportError('E_SEND', `UDP send to ${to.ip}:${to.port}: ${err.message}`, { cause: err })) : resolve()))
    })
  }

  dialStream(to: Address, timeoutMs: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: to.ip, port: to.port, noDelay: true })
      const timer = setTimeout(() => {
        sock.destroy()
        reject(new TransportError('E_DIAL', `dial ${to.ip}:${to.port}: timeout after ${timeoutMs} ms`))
      }, timeoutMs)
      sock.once('connect', () => {
        clearTimeout(timer)
        sock.removeAllListeners('error')
        this.track(sock)
        resolve(sock)
      })
      sock.once('error', e => {
        clearTimeout(timer)
        reject(new TransportError('E_DIAL', `dial ${to.ip}:${to.port}: ${e.message}`, { cause: e }))
      })
    })
  }

  async shutdown(): Promise<void> {
    for (const s of this.streams) s.destroy()
    await Promise.all([new Promise<void>(r => this.tcp.close(() => r())), new Promise<void>(r => this.udp.close(() => r()))])
  }
}
