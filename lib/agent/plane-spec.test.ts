import t from 'tap'
import type { Routing } from '../types/session.js'
import { planeSpec } from './plane-spec.js'

const net = (id: string, vni: number, more: Partial<Routing['networks'][number]> = {}): Routing['networks'][number] => ({ id, vni, ingress: false, subnet: `10.0.${vni - 4096}.0/24`, gateway: `10.0.${vni - 4096}.1`, ...more })

t.test("an encrypted network is encrypted in the kernel's spec with or without its keys here (no VXLAN device either way)", async t => {
  const r: Routing = {
    dataPathPort: 4789,
    networks: [
      net('plain', 4097),
      net('marked', 4098, { encrypted: true }),
      net('keyed', 4099, { encrypted: true, keys: [{ tag: 1, key: Buffer.alloc(32).toString('base64') }] }),
      net('elsewhere', 4100),
    ],
    services: [],
    nodeAddrs: { plain: '10.0.1.254/24', marked: '10.0.2.254/24', keyed: '10.0.3.254/24' },
  }
  const spec = planeSpec(r, [])
  t.same(
    spec.networks.map(n => [n.id, n.encrypted]),
    [
      ['plain', false],
      ['marked', true],
      ['keyed', true],
    ],
    'only the networks this node has an address on, each encrypted as marked',
  )
})
