import type { Duplex } from 'node:stream'

export interface Address {
  ip: string
  port: number
}

export type PacketHandler = (packet: Buffer, from: Address) => void
export type StreamHandler = (stream: Duplex, from: Address) => void

/**
 * What the protocol needs from the network: datagrams and streams to
 * addresses. Real sockets (NetTransport) and the simulated network implement
 * it, so the same protocol code runs on both.
 */
export interface Transport {
  /** Where this transport actually listens (a requested port 0 becomes the real one). */
  readonly localAddress: Address
  /** Resolves once the kernel took the datagram; rejects when the write fails. */
  sendPacket(packet: Buffer, to: Address): Promise<void>
  dialStream(to: Address, timeoutMs: number): Promise<Duplex>
  setHandlers(onPacket: PacketHandler, onStream: StreamHandler): void
  shutdown(): Promise<void>
}
