/**
 * One routing-mesh node for bench/mesh.ts, in its own process (forked): a
 * Membership gossiping on its own loopback address and a Mesh on it, with
 * a plaintext and an encrypted network. The parent drives it over IPC with
 * numbered requests; it exits when the parent goes away.
 *
 *   node dist/bench/mesh-node.js '{"name":"a","host":"127.0.0.181","gossipPort":7946,"tunnelPort":4789}'
 */
import { pathToFileURL } from 'node:url'
import { Membership } from '../lib/gossip/membership.js'
import { Mesh, type PublishTarget } from '../lib/mesh/mesh.js'
import { SealKeyring } from '../lib/mesh/seal.js'
import type { Endpoint } from '../lib/mesh/types.js'

export interface NodeConfig {
  name: string
  host: string
  gossipPort: number
  tunnelPort: number
  /** The Mesh's forwarder workers (default none). */
  workers?: number
}

export const PLAIN_NETWORK = 'bench-plain'
export const SEALED_NETWORK = 'bench-sealed'

export type NodeRequest =
  | { op: 'join'; addr: string }
  | { op: 'register'; endpoint: Omit<Endpoint, 'node'> }
  | { op: 'publish'; port: number; target: PublishTarget; host: string }
  | { op: 'endpoints'; network: string; service: string }
  | { op: 'members' }
  | { op: 'stats' }
  | { op: 'close' }

export interface NodeReply {
  id: number
  ok: boolean
  result?: unknown
  error?: string
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '') as NodeConfig
  const membership = await Membership.create({ name: cfg.name, bind: { ip: cfg.host, port: cfg.gossipPort }, profile: 'local' })
  const seal = new SealKeyring([{ id: 1, key: Buffer.alloc(32, 0x5a) }], 1)
  const mesh = await Mesh.create({
    membership,
    host: cfg.host,
    port: cfg.tunnelPort,
    ...(cfg.workers ? { workers: cfg.workers } : {}),
    networks: [
      { id: PLAIN_NETWORK, vni: 4096 },
      { id: SEALED_NETWORK, vni: 4097, seal },
    ],
  })
  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await mesh.close()
      await membership.shutdown()
    })())

  const handle = async (r: NodeRequest): Promise<unknown> => {
    switch (r.op) {
      case 'join':
        return membership.join([r.addr])
      case 'register':
        mesh.register(r.endpoint)
        return null
      case 'publish':
        await mesh.publish(r.port, r.target, r.host)
        return null
      case 'endpoints':
        return mesh.endpoints(r.network, r.service).length
      case 'members':
        return membership.members().map(m => m.name)
      case 'stats':
        return mesh.stats()
      case 'close':
        await close()
        return null
    }
  }
  process.on('message', (m: NodeRequest & { id: number }) => {
    handle(m).then(
      result => process.send!({ id: m.id, ok: true, result } satisfies NodeReply),
      (e: unknown) => process.send!({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) } satisfies NodeReply),
    )
  })
  // The parent died or let go: no orphan keeps the ports.
  process.once('disconnect', () => void close().finally(() => process.exit(0)))
  process.once('SIGTERM', () => void close().finally(() => process.exit(0)))
  process.send!({ id: 0, ok: true, result: 'ready' } satisfies NodeReply)
}

// Only as the entry point: bench/mesh.ts imports the names above.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
