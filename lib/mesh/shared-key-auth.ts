import { createHmac, timingSafeEqual } from 'node:crypto'
import { TunnelError } from './tunnel-error.js'
import type { TunnelAuth } from './tunnel-auth.js'

const MIN_KEY_BYTES = 16

/**
 * Tunnel authentication for embedders: every node holds the same secret,
 * and a proof is an HMAC-SHA256 of the handshake transcript under it. It
 * keeps out whoever lacks the key; it cannot tell key holders apart (any of
 * them can claim any name), which per-node credentials do (the swarm's node
 * certificates, lib/agent/mesh-auth.ts).
 */
export class SharedKeyAuth implements TunnelAuth {
  private readonly key: Buffer

  /** Throws TunnelError E_TUNNEL_AUTH_KEY for a key shorter than 16 bytes. */
  constructor(key: Uint8Array) {
    if (key.length < MIN_KEY_BYTES) throw new TunnelError('E_TUNNEL_AUTH_KEY', `a shared tunnel key needs at least ${MIN_KEY_BYTES} bytes, got ${key.length}`)
    this.key = Buffer.from(key)
  }

  prove(transcript: Buffer): Buffer {
    return createHmac('sha256', this.key).update(transcript).digest()
  }

  /** The name is inside the transcript, so the HMAC covers it. */
  verify(_name: string, transcript: Buffer, proof: Buffer): boolean {
    const want = this.prove(transcript)
    return proof.length === want.length && timingSafeEqual(proof, want)
  }
}
