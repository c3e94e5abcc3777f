/**
 * The per-packet hot path, timed in TypeScript and in Go in the same run:
 * msgpack encode / decode, LZW, AES-GCM sealing, on the same inputs
 * (bench/go/codecbench runs the Go side with memberlist's own libraries).
 * Prints one JSON object with ns/op for both and the ratio swarmd / Go.
 *
 *   npm run bench:codec
 */
import { Bench } from 'tinybench'
import { buildGoProgram } from '../integration/helpers/gopeer.js'
import { runOk } from '../integration/helpers/procs.js'
import { decodeAlive, encodeAlive, encodePing, type Alive } from '../lib/gossip/messages.js'
import { MsgpackReader } from '../lib/gossip/msgpack.js'
import { lzwDecode, lzwEncode } from '../lib/gossip/lzw.js'
import { decryptPayload, encryptPayload } from '../lib/gossip/security.js'

const alive: Alive = { incarnation: 7, node: 'node-0042', addr: '127.0.0.1', port: 7946, meta: Buffer.alloc(0), vsn: [1, 5, 2, 0, 0, 0] }
const aliveBuf = encodeAlive(alive)
const batch = Buffer.concat(Array.from({ length: 20 }, (_, i) => encodeAlive({ ...alive, node: `node-${String(i).padStart(4, '0')}` })))
const compressed = lzwEncode(batch)
const key = Buffer.alloc(16)
const sealed = encryptPayload(1, key, batch, undefined)

const ops: Record<string, () => unknown> = {
  encode_alive: () => encodeAlive(alive),
  decode_alive: () => decodeAlive(new MsgpackReader(aliveBuf, 1).struct()),
  encode_ping: () => encodePing({ seqNo: 1234, node: 'node-0042', sourceAddr: '127.0.0.1', sourcePort: 7946, sourceNode: 'node-0001' }),
  lzw_compress_batch: () => lzwEncode(batch),
  lzw_decompress: () => lzwDecode(compressed),
  aes_seal_batch: () => encryptPayload(1, key, batch, undefined),
  aes_open_batch: () => decryptPayload([key], sealed, undefined),
}

const bench = new Bench({ time: 500 })
for (const [name, fn] of Object.entries(ops)) bench.add(name, fn)
await bench.run()
const ours: Record<string, number> = {}
for (const t of bench.tasks) {
  const r = t.result
  if (!r || !('latency' in r)) throw new Error(`${t.name}: no result`)
  ours[t.name] = Math.round(r.latency.mean * 1e6)
}

const bin = await buildGoProgram('bench/go/codecbench')
const go = JSON.parse((await runOk(bin, [], { timeoutMs: 120_000 })).stdout.trim()) as { ns_per_op: Record<string, number> }
const ratio: Record<string, number> = {}
for (const k of Object.keys(ours)) ratio[k] = Math.round((ours[k]! / go.ns_per_op[k]!) * 100) / 100
console.log(JSON.stringify({ batch_bytes: batch.length, swarmd_ns_per_op: ours, go_ns_per_op: Object.fromEntries(Object.entries(go.ns_per_op).map(([k, v]) => [k, Math.round(v)])), ratio_swarmd_over_go: ratio }))
