/**
 * A forwarder worker of the Mesh (forwarder-pool.ts forks it): it accepts
 * on the Mesh's published TCP ports, whose listening sockets it shares with
 * the Mesh's process (the kernel gives each connection to one of them), and
 * splices each connection to a task of this node, chosen by its own
 * balancer over the endpoint lists the Mesh sends. A connection whose
 * chosen task is on another node, or that no local task took, goes back to
 * the Mesh untouched (no byte read), which sends it through the tunnel. It
 * exits when the Mesh's process goes away.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { Balancer, type BalancerTarget } from './balancer.js'
import type { FromWorker, ToWorker, WorkerConfig } from './forwarder-protocol.js'
import { dial, splice } from './splice.js'
import { type Endpoint, endpointKey } from './types.js'

const cfg = JSON.parse(process.argv[2] ?? '') as WorkerConfig
const servers = new Map<string, Server>()
/** Per published port, its target, its endpoints as last sent, and a balancer over exactly them. */
const lists = new Map<string, { target: BalancerTarget; endpoints: Endpoint[]; balancer: Balancer }>()
const counters = { connections: 0, retries: 0 }

const send = (m: FromWorker, handle?: Socket): void => {
  if (process.connected) process.send!(m, handle)
}

function setEndpoints(key: string, target: BalancerTarget, next: Endpoint[]): void {
  const l = lists.get(key)
  const balancer = l?.balancer ?? new Balancer()
  const keep = new Set(next.map(endpointKey))
  for (const e of l?.endpoints ?? []) if (!keep.has(endpointKey(e))) balancer.remove(e)
  for (const e of next) balancer.add(e)
  lists.set(key, { target, endpoints: next, balancer })
}

/** A local task for the connection, trying the next one when a dial fails; anything else goes back to the Mesh. */
async function connection(key: string, client: Socket): Promise<void> {
  const l = lists.get(key)
  if (!l) return send({ t: 'back', key }, client)
  const tried: Endpoint[] = []
  for (;;) {
    const e = l.balancer.pick(l.target, tried)
    if (!e) return send({ t: 'back', key }, client)
    // The rotation chose another node's task: the Mesh takes it there, so the balance over tasks holds.
    if (e.node !== cfg.self) return send({ t: 'back', key, endpoint: e }, client)
    try {
      const backend = await dial(e.host, e.port, cfg.keepAliveMs)
      l.balancer.markOk(e)
      l.balancer.acquire(e)
      counters.connections++
      splice(client, backend, cfg.idleTimeoutMs, () => l.balancer.release(e))
      client.resume()
      return
    } catch {
      l.balancer.markFailed(e)
      tried.push(e)
      counters.retries++
    }
  }
}

function listen(key: string, shared: Server): void {
  // Our own server on the shared handle: connections arrive paused, so one can go back to the Mesh unread.
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, client => {
    client.on('error', () => client.destroy())
    void connection(key, client)
  })
  server.on('error', () => undefined)
  server.listen(shared)
  servers.set(key, server)
}

process.on('message', (m: ToWorker, handle?: Server) => {
  if (m.t === 'listen' && handle) listen(m.key, handle)
  else if (m.t === 'unlisten') {
    servers.get(m.key)?.close()
    servers.delete(m.key)
    lists.delete(m.key)
  } else if (m.t === 'endpoints') setEndpoints(m.key, m.target, m.endpoints)
  if (m.t === 'listen' || m.t === 'unlisten') send({ t: 'ack', id: m.id })
})
setInterval(() => send({ t: 'counters', ...counters }), cfg.reportMs).unref()
// The Mesh closed or its process died: no orphan keeps its ports.
process.once('disconnect', () => process.exit(0))
send({ t: 'ready' })
