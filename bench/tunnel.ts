/**
 * The mesh's data plane on loopback, in two processes (this one sends, a
 * forked child receives), against a direct TCP connection in the same run:
 * bulk throughput of 1 and 16 streams, plaintext and sealed (AES-256-GCM),
 * and small-message round trips per second. The tunnels authenticate each
 * other with a shared key, as embedders would. Prints one JSON object per result.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/tunnel.js [MiB per case, default 512]
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { SealKeyring } from '../lib/mesh/seal.js'
import { SharedKeyAuth } from '../lib/mesh/shared-key-auth.js'
import { Tunnel } from '../lib/mesh/tunnel.js'

const HOST = '127.0.0.1'
const TUNNEL_PORT = 29150
const SINK_PORT = 29151
const ECHO_PORT = 29152
const CLIENT_PORT = 29153
const PLAIN = 4096
const SEALED = 4097
const KEY = Buffer.alloc(32, 0x5a)
const auth = new SharedKeyAuth(Buffer.alloc(32, 0xa5))
const network = (vni: number) => (vni === PLAIN ? {} : vni === SEALED ? { seal: new SealKeyring([{ id: 1, key: KEY }], 1) } : undefined)

/** Reads everything, then answers "ok" and ends: the sender's clock stops when every byte has arrived. */
function sink(d: Duplex | Socket): void {
  d.on('data', () => {})
  d.on('end', () => d.end('ok'))
  d.on('error', () => {})
}

function echo(d: Duplex | Socket): void {
  if ('setNoDelay' in d) d.setNoDelay(true)
  d.on('error', () => {})
  d.pipe(d)
}

async function server(): Promise<void> {
  const rings = new Map<number, ReturnType<typeof network>>()
  const tn = await Tunnel.listen({
    host: HOST,
    port: TUNNEL_PORT,
    auth,
    network: (vni) => {
      if (!rings.has(vni)) rings.set(vni, network(vni))
      return rings.get(vni)
    },
    onStream: (s) => (s.endpointKey === 'sink/tcp/1' ? sink : echo)(s.accept()),
  })
  const sinkServer = createServer({ noDelay: true }, sink).listen(SINK_PORT, HOST)
  const echoServer = createServer({ noDelay: true }, echo).listen(ECHO_PORT, HOST)
  await Promise.all([once(sinkServer, 'listening'), once(echoServer, 'listening')])
  process.send!('ready')
  process.once('disconnect', () => {
    sinkServer.close()
    echoServer.close()
    void tn.close()
  })
}

type Opener = (kind: 'sink' | 'echo') => Promise<Duplex>

async function bulk(open: Opener, streams: number, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0xab)
  const per = Math.floor(bytes / streams / chunk.length)
  const ds = await Promise.all(Array.from({ length: streams }, () => open('sink')))
  const start = process.hrtime.bigint()
  await Promise.all(
    ds.map(async (d) => {
      const done = once(d, 'end')
      d.resume()
      for (let i = 0; i < per; i++) if (!d.write(chunk)) await once(d, 'drain')
      d.end()
      await done
    }),
  )
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  return (per * streams * chunk.length * 8) / secs / 1e9
}

async function roundTrips(open: Opener, ms: number): Promise<number> {
  const d = await open('echo')
  const msg = Buffer.alloc(64, 1)
  let n = 0
  const end = Date.now() + ms
  const start = process.hrtime.bigint()
  while (Date.now() < end) {
    const got = new Promise<void>((resolve) => {
      let have = 0
      const on = (c: Buffer): void => {
        have += c.length
        if (have >= msg.length) {
          d.off('data', on)
          resolve()
        }
      }
      d.on('data', on)
    })
    d.write(msg)
    await got
    n++
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  d.destroy()
  return Math.round(n / secs)
}

async function client(): Promise<void> {
  const mib = Number(process.argv[2] ?? 512)
  const child = fork(process.argv[1]!, ['--server'], { stdio: 'inherit' })
  await once(child, 'message')
  const tn = await Tunnel.listen({ host: HOST, port: CLIENT_PORT, network, auth })
  const peer = { host: HOST, port: TUNNEL_PORT }
  const direct: Opener = async (kind) => {
    const s = connect({ host: HOST, port: kind === 'sink' ? SINK_PORT : ECHO_PORT })
    await once(s, 'connect')
    s.setNoDelay(true)
    return s
  }
  const via =
    (vni: number): Opener =>
    (kind) =>
      tn.open(peer, vni, `${kind}/tcp/1`)
  const paths: Record<string, Opener> = { direct, tunnel_plain: via(PLAIN), tunnel_sealed: via(SEALED) }

  await bulk(paths.tunnel_plain!, 4, 64 << 20) // warm-up: JIT, connection, socket buffers
  await bulk(direct, 4, 64 << 20)
  for (const streams of [1, 16]) {
    const r: Record<string, number> = {}
    for (const [name, open] of Object.entries(paths)) r[name] = await bulk(open, streams, mib << 20)
    const round = (x: number): number => Math.round(x * 100) / 100
    console.log(
      JSON.stringify({
        bench: 'tunnel_throughput',
        streams,
        mib,
        gbit_s: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)])),
        ratio_plain_over_direct: round(r.tunnel_plain! / r.direct!),
        ratio_sealed_over_direct: round(r.tunnel_sealed! / r.direct!),
      }),
    )
  }
  const rt: Record<string, number> = {}
  for (const [name, open] of Object.entries(paths)) rt[name] = await roundTrips(open, 2000)
  console.log(JSON.stringify({ bench: 'tunnel_round_trips', message_bytes: 64, per_second: rt, ratio_plain_over_direct: Math.round((rt.tunnel_plain! / rt.direct!) * 100) / 100 }))
  const c = tn.counters()
  console.log(JSON.stringify({ bench: 'tunnel_counters', framesOut: c.framesOut, bytesOut: c.bytesOut, dropped: c.dropped, refused: c.refused }))
  await tn.close()
  child.disconnect()
}

await (process.argv.includes('--server') ? server() : client())
