/**
 * Node's AES-256-GCM ceiling on one core, what an encrypted network's bulk
 * through the sealed tunnel is held against: the tunnel's own Sealer
 * (lib/mesh/seal.ts, one cipher per frame) sealing one buffer over and over
 * for about `ms`, at the tunnel's largest DATA frame (64 KiB) and at 1400
 * bytes (a packet, as dataplane.md's 1.21 Gbit/s figure), in this process.
 */
import { performance } from 'node:perf_hooks'
import { SealKeyring, Sealer } from '../lib/mesh/seal.js'
import { FrameType, MAX_DATA_PAYLOAD } from '../lib/mesh/tunnel-frame.js'

export interface AesGcmCeiling {
  what: string
  frame_64k_gbit_s: number
  packet_1400_gbit_s: number
}

function sealRate(bytes: number, ms: number): number {
  const keyring = new SealKeyring([{ id: 1, key: Buffer.alloc(32, 0x5a) }], 1)
  const sealer = new Sealer()
  const body = Buffer.alloc(bytes, 0xa5)
  let n = 0
  const t0 = performance.now()
  let t = t0
  while (t - t0 < ms) {
    // Checking the clock every 64 frames keeps its cost out of the figure.
    for (let i = 0; i < 64; i++) sealer.seal(keyring, { vni: 4097, type: FrameType.DATA, streamId: 1 }, body)
    n += 64
    t = performance.now()
  }
  return Math.round(((n * bytes * 8) / ((t - t0) / 1000) / 1e9) * 100) / 100
}

export function aesGcmCeiling(ms = 1000): AesGcmCeiling {
  return {
    what: "the tunnel's Sealer (AES-256-GCM, node:crypto, one cipher per frame) sealing in a loop on one core",
    frame_64k_gbit_s: sealRate(MAX_DATA_PAYLOAD, ms),
    packet_1400_gbit_s: sealRate(1400, ms),
  }
}
