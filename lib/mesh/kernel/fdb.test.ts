import t from 'tap'
import { fdbCommands, peerEntries } from './fdb.js'
import { inSubnet, macOf } from './names.js'

t.test("MACs derive from addresses, as Docker's", async t => {
  t.equal(macOf('10.0.1.5'), '02:42:0a:00:01:05')
  t.equal(macOf('192.168.255.254'), '02:42:c0:a8:ff:fe')
  t.throws(() => macOf('10.0.1'), RangeError)
  t.ok(inSubnet('10.0.1.5', '10.0.1.0/24'))
  t.notOk(inSubnet('10.0.2.5', '10.0.1.0/24'))
  t.notOk(inSubnet('127.0.0.1', '10.0.1.0/24'), "a userspace node's endpoint is not on the overlay")
  t.ok(inSubnet('10.9.9.9', '0.0.0.0/0'))
})

t.test('one entry per address, whatever the number of ports a task has', async t => {
  t.same(
    peerEntries('swvx4096', [
      { ip: '10.0.0.5', vtep: '192.0.2.2' },
      { ip: '10.0.0.5', vtep: '192.0.2.2' },
      { ip: '10.0.0.6', vtep: '192.0.2.3' },
    ]),
    [
      { device: 'swvx4096', ip: '10.0.0.5', mac: '02:42:0a:00:00:05', vtep: '192.0.2.2' },
      { device: 'swvx4096', ip: '10.0.0.6', mac: '02:42:0a:00:00:06', vtep: '192.0.2.3' },
    ],
  )
})

const want = peerEntries('swvx4096', [
  { ip: '10.0.0.5', vtep: '192.0.2.2' },
  { ip: '10.0.0.6', vtep: '192.0.2.3' },
])

t.test('from nothing: FDB entries, then neighbours, all permanent; no flood entry', async t => {
  t.same(fdbCommands([], [], want), {
    bridge: ['fdb append 02:42:0a:00:00:05 dev swvx4096 dst 192.0.2.2 self permanent', 'fdb append 02:42:0a:00:00:06 dev swvx4096 dst 192.0.2.3 self permanent'],
    ip: ['neigh replace 10.0.0.5 lladdr 02:42:0a:00:00:05 dev swvx4096 nud permanent', 'neigh replace 10.0.0.6 lladdr 02:42:0a:00:00:06 dev swvx4096 nud permanent'],
  })
})

t.test("a node gone: its entries go (FDB first), a moved address is pointed at its new node; the bridge's own and others' devices are left", async t => {
  const fdb = [
    { mac: '02:42:0a:00:00:05', ifname: 'swvx4096', dst: '192.0.2.2', state: 'permanent' },
    { mac: '02:42:0a:00:00:06', ifname: 'swvx4096', dst: '192.0.2.9', state: 'permanent' },
    { mac: '02:42:0a:00:00:07', ifname: 'swvx4096', dst: '192.0.2.4', state: 'permanent' },
    { mac: '7a:71:92:01:55:a4', ifname: 'swvx4096', state: 'permanent' },
    { mac: '02:42:0a:00:00:08', ifname: 'vxlan0', dst: '192.0.2.4', state: 'permanent' },
  ]
  const neigh = [
    { dst: '10.0.0.5', dev: 'swvx4096', lladdr: '02:42:0a:00:00:05', state: ['PERMANENT'] },
    { dst: '10.0.0.6', dev: 'swvx4096', lladdr: '02:42:0a:00:00:06', state: ['PERMANENT'] },
    { dst: '10.0.0.7', dev: 'swvx4096', lladdr: '02:42:0a:00:00:07', state: ['PERMANENT'] },
    { dst: '192.0.2.4', dev: 'eth0', lladdr: 'aa:bb:cc:dd:ee:ff', state: ['REACHABLE'] },
  ]
  t.same(fdbCommands(fdb, neigh, want), {
    bridge: ['fdb del 02:42:0a:00:00:06 dev swvx4096 dst 192.0.2.9 self', 'fdb del 02:42:0a:00:00:07 dev swvx4096 dst 192.0.2.4 self', 'fdb append 02:42:0a:00:00:06 dev swvx4096 dst 192.0.2.3 self permanent'],
    ip: ['neigh del 10.0.0.7 dev swvx4096'],
  })
})

t.test('as wanted: nothing to do', async t => {
  const fdb = want.map(w => ({ mac: w.mac, ifname: w.device, dst: w.vtep, state: 'permanent' }))
  const neigh = want.map(w => ({ dst: w.ip, dev: w.device, lladdr: w.mac, state: ['PERMANENT'] }))
  t.same(fdbCommands(fdb, neigh, want), { bridge: [], ip: [] })
})
