/**
 * The routing mesh embedded in a program, without the daemon: two nodes
 * (gossip on 127.0.0.201 and .202) whose tunnels prove a shared key to each
 * other, a "hello" service whose only task runs on node B, a port published
 * on node A that reaches it through the 4789 tunnel, and a direct
 * `connect()` to the service from A.
 *
 *   npm run build && node dist/examples/mesh.js
 */
import { randomBytes } from 'node:crypto'
import { createServer, request } from 'node:http'
import { Membership } from '../lib/gossip/membership.js'
import { Mesh } from '../lib/mesh/mesh.js'
import { SharedKeyAuth } from '../lib/mesh/shared-key-auth.js'

const INGRESS = 'ingress'
const network = { id: INGRESS, vni: 4096 }
// Every node holds the same secret: only its holders reach a node's tunnel (here both nodes live in one process).
const auth = new SharedKeyAuth(randomBytes(32))

async function node(name: string, ip: string): Promise<{ membership: Membership; mesh: Mesh }> {
  const membership = await Membership.create({ name, bind: { ip, port: 7946 } })
  // Every node uses the same data-path port, as VXLAN's 4789; here 47890 to stay out of a real swarmd's way.
  const mesh = await Mesh.create({ membership, host: ip, port: 47890, networks: [network], auth })
  return { membership, mesh }
}

async function main(): Promise<void> {
  const a = await node('node-a', '127.0.0.201')
  const b = await node('node-b', '127.0.0.202')
  await b.membership.join(['127.0.0.201:7946'])

  // The task: an HTTP server on node B, announced as an endpoint of service "hello", target port 80.
  const task = createServer((_req, res) => res.end('hello from the task on node-b\n')).listen(0, '127.0.0.1')
  await new Promise(r => task.once('listening', r))
  const port = (task.address() as { port: number }).port
  b.mesh.register({ network: INGRESS, service: 'svc-hello', serviceName: 'hello', task: 'task-1', protocol: 'tcp', targetPort: 80, host: '127.0.0.1', port })

  // Node A publishes 8088 for it: every connection goes to a healthy task of "hello", wherever it runs.
  await a.mesh.publish(8088, { network: INGRESS, service: 'hello', targetPort: 80 }, '127.0.0.201')
  while (a.mesh.endpoints(INGRESS, 'hello').length === 0) await new Promise(r => setTimeout(r, 50))

  const body = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.201', port: 8088, agent: false }, res => {
      let s = ''
      res.on('data', d => (s += d))
      res.on('end', () => resolve(s))
    })
      .on('error', reject)
      .end()
  })
  process.stdout.write(`through the published port: ${body}`)

  // Or connect to the service directly: a Duplex to the chosen task (here through the tunnel).
  const s = await a.mesh.connect({ network: INGRESS, service: 'hello', targetPort: 80 })
  s.end('GET / HTTP/1.0\r\n\r\n')
  let raw = ''
  for await (const chunk of s) raw += String(chunk)
  process.stdout.write(`through connect(): ${raw.split('\r\n\r\n')[1]}`)

  task.close()
  await a.mesh.close()
  await b.mesh.close()
  await a.membership.shutdown()
  await b.membership.shutdown()
}

main().catch(e => {
  process.stderr.write(`${(e as Error).stack}\n`)
  process.exit(1)
})
