import t from 'tap'
import { bridgeAddresses, linkCommands, overlayMtu, type LinkState, type OverlayLinks } from './links.js'

const NET: OverlayLinks = { vni: 4096, subnet: '10.0.0.0/24', nodeAddr: '10.0.0.254/24', gateway: '10.0.0.1', vips: ['10.0.0.2', '10.0.0.3'], mtu: 1450, vxlan: { port: 4789, local: '192.0.2.1' } }
const SECURE: OverlayLinks = { vni: 4097, subnet: '10.0.1.0/24', nodeAddr: '10.0.1.254/24', gateway: '10.0.1.1', vips: [], mtu: 1450 }

/** The links as the kernel would hold them once NET is programmed. */
const programmed = (): LinkState[] => [
  { ifname: 'lo', mtu: 65536, flags: ['UP'] },
  {
    ifname: 'swbr4096',
    mtu: 1450,
    address: '02:42:0a:00:00:fe',
    flags: ['UP'],
    linkinfo: { info_kind: 'bridge' },
    addr_info: bridgeAddresses(NET).map(a => ({ family: 'inet', local: a.split('/')[0]!, prefixlen: Number(a.split('/')[1]) })),
  },
  { ifname: 'swvx4096', mtu: 1450, master: 'swbr4096', flags: ['UP'], linkinfo: { info_kind: 'vxlan', info_data: { id: 4096, port: 4789, local: '192.0.2.1', learning: false, proxy: true } } },
]

t.test('from nothing: the bridge with its MAC and addresses (node first), then the VXLAN device on it', async t => {
  t.same(linkCommands([{ ifname: 'lo', mtu: 65536 }], [NET]), [
    'link add swbr4096 address 02:42:0a:00:00:fe mtu 1450 type bridge',
    'addr add 10.0.0.254/24 dev swbr4096',
    'addr add 10.0.0.1/24 dev swbr4096',
    'addr add 10.0.0.2/32 dev swbr4096',
    'addr add 10.0.0.3/32 dev swbr4096',
    'link set swbr4096 up',
    'link add swvx4096 type vxlan id 4096 dstport 4789 local 192.0.2.1 nolearning proxy',
    'link set swvx4096 master swbr4096 mtu 1450 up',
  ])
})

t.test('an encrypted network has a bridge and no VXLAN device', async t => {
  const cmds = linkCommands([], [SECURE])
  t.ok(cmds.includes('link add swbr4097 address 02:42:0a:00:01:fe mtu 1450 type bridge'))
  t.notOk(cmds.some(c => c.includes('vxlan')), 'its traffic cannot leave the node in the kernel')
})

t.test('what is as wanted is left alone (adopted after a restart)', async t => {
  t.same(linkCommands(programmed(), [NET]), [])
})

t.test('differences only: a VIP gone and one new, a wrong MTU, a VXLAN device on another port remade', async t => {
  const want = { ...NET, vips: ['10.0.0.3', '10.0.0.4'], mtu: 1400 }
  const cur = programmed()
  cur[2]!.linkinfo!.info_data!.port = 8472
  t.same(linkCommands(cur, [want]), [
    'link set swbr4096 mtu 1400',
    'addr del 10.0.0.2/32 dev swbr4096',
    'addr add 10.0.0.4/32 dev swbr4096',
    'link del swvx4096',
    'link add swvx4096 type vxlan id 4096 dstport 4789 local 192.0.2.1 nolearning proxy',
    'link set swvx4096 master swbr4096 mtu 1400 up',
  ])
})

t.test("when the node's address is not the primary one, the addresses are set again in order", async t => {
  const cur = programmed()
  cur[1]!.addr_info = [{ family: 'inet', local: '10.0.0.1', prefixlen: 24 }]
  t.same(linkCommands(cur, [NET]).slice(0, 3), ['addr flush dev swbr4096', 'addr add 10.0.0.254/24 dev swbr4096', 'addr add 10.0.0.1/24 dev swbr4096'])
})

t.test("swarmd's links no network wants go; others' are never touched", async t => {
  const cur = [...programmed(), { ifname: 'eth0', mtu: 1500 }, { ifname: 'docker0', mtu: 1500, linkinfo: { info_kind: 'bridge' } }, { ifname: 'swtp0123456789a', mtu: 1450 }]
  t.same(linkCommands(cur, []), ['link del swbr4096', 'link del swvx4096'])
})

t.test("the overlays' MTU: the underlay's less VXLAN's 50 bytes", async t => {
  const links: LinkState[] = [
    { ifname: 'lo', mtu: 65536, addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
    { ifname: 'eth0', mtu: 1400, addr_info: [{ family: 'inet', local: '192.0.2.1', prefixlen: 24 }] },
    { ifname: 'eth1', mtu: 9000, addr_info: [{ family: 'inet', local: '198.51.100.1', prefixlen: 24 }] },
  ]
  t.equal(overlayMtu(links, '192.0.2.1'), 1350)
  t.equal(overlayMtu(links, '198.51.100.1'), 1450, 'never above 1450: tasks on other nodes may sit on 1500 links')
  t.equal(overlayMtu(links, '0.0.0.0'), 1450)
})
