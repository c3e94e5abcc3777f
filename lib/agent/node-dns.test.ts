import { createSocket } from 'node:dgram'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode, encode } from 'dns-packet'
import { pino } from 'pino'
import t from 'tap'
import type { Endpoint } from '../mesh/types.js'
import type { Mesh } from '../mesh/mesh.js'
import type { Routing } from '../types/session.js'
import { NodeDns } from './node-dns.js'

const log = pino({ level: 'silent' })
/** Stands in for a network's gateway on its bridge: a loopback address, which any host has. */
const GATEWAY = '127.0.0.161'

async function ask(host: string, port: number, name: string): Promise<string[]> {
  const s = createSocket('udp4')
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      s.once('message', resolve)
      setTimeout(() => reject(new Error(`no answer from ${host}:${port}`)), 2_000).unref()
    })
    s.send(encode({ type: 'query', id: 7, flags: 1 << 8, questions: [{ type: 'A', name, class: 'IN' }] }), port, host)
    const reply = decode(await got) as unknown as { answers: { data: string }[] }
    return reply.answers.map(a => a.data).sort()
  } finally {
    s.close()
  }
}

const ROUTING: Routing = {
  dataPathPort: 4789,
  networks: [{ id: 'be', vni: 4097, ingress: false, subnet: '10.0.1.0/24', gateway: GATEWAY }],
  services: [{ id: 's1', name: 'api', labels: {}, ports: [], vips: [{ network: 'be', loopback: '127.1.1.2', addr: '10.0.1.2' }] }],
  nodeAddrs: { be: '10.0.1.254/24' },
}
const ENDPOINTS: Endpoint[] = [{ network: 'be', service: 's1', serviceName: 'api', task: 't1', node: 'n2', protocol: 'tcp', targetPort: 80, host: '10.0.1.250', port: 80 }]

t.test("the kernel data plane: the node's DNS answers at each network's gateway, port 53, with VIPs and task addresses", { skip: process.getuid?.() !== 0 ? 'port 53 needs root' : false }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-node-dns-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.162\n')
  const mesh = { endpoints: () => ENDPOINTS } as unknown as Mesh
  const dns = new NodeDns({ listen: { host: '127.0.0.160', port: 0 }, mesh: () => mesh, membership: () => undefined, resolvConf: join(dir, 'resolv.conf'), kernel: () => true, log })
  await dns.start()
  t.teardown(() => dns.close())
  dns.sync(ROUTING)
  let answer: string[] = []
  for (let i = 0; i < 40 && !answer.length; i++) answer = await ask(GATEWAY, 53, 'api').catch(() => [])
  t.same(answer, ['10.0.1.2'], 'the VIP itself')
  t.same(await ask(GATEWAY, 53, 'tasks.api'), ['10.0.1.250'], "the task's overlay address, not its node's")
  dns.sync({ ...ROUTING, nodeAddrs: {} })
  await t.rejects(async () => {
    for (let i = 0; i < 40; i++) await ask(GATEWAY, 53, 'api').then(() => new Promise(r => setTimeout(r, 25)))
  }, 'a network this node has left is not answered on any more')
})
