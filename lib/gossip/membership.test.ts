import fc from 'fast-check'
import t from 'tap'
import { Membership, type MemberEvent } from './membership.js'
import { SimNetwork } from './sim-network.js'
import { VirtualClock } from './virtual-clock.js'

/** A cluster of n members on the simulated network, all joined through the first. */
async function cluster(n: number, opts: { keys?: Buffer[]; loss?: number } = {}) {
  const clock = new VirtualClock()
  let seed = 42
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  const net = new SimNetwork(clock, { latencyMs: 1, loss: opts.loss ?? 0 }, random)
  const members: Membership[] = []
  const events: MemberEvent[][] = []
  for (let i = 0; i < n; i++) {
    const addr = { ip: '10.0.0.' + (i + 1), port: 7946 }
    const evs: MemberEvent[] = []
    events.push(evs)
    members.push(
      await Membership.create({
        name: `n${i}`,
        transport: net.attach(addr),
        clock,
        random,
        profile: 'lan',
        ...(opts.keys ? { keys: opts.keys } : {}),
        onEvent: e => evs.push(e),
      }),
    )
  }
  for (const m of members.slice(1)) {
    const joined = m.join(['10.0.0.1:7946'])
    await clock.advance(10)
    t.equal(await joined, 1)
  }
  return { clock, net, members, events }
}

t.test('members converge and a failed member is declared dead by all', async t => {
  const { clock, net, members, events } = await cluster(8)
  await clock.advance(5_000)
  for (const m of members) t.equal(m.numMembers(), 8, `${m.name} sees 8`)
  const victim = members[7]!
  net.setDown(victim.address, true)
  const t0 = clock.now()
  await clock.advance(30_000)
  for (const [i, m] of members.slice(0, 7).entries()) {
    const dead = events[i]!.find(e => e.type === 'dead' && e.member.name === 'n7')
    t.ok(dead, `${m.name} saw n7 dead`)
    t.ok(dead && dead.ts - t0 < 30_000)
    t.equal(m.numMembers(), 7)
  }
  t.ok(events[0]!.some(e => e.type === 'suspect' && e.member.name === 'n7'), 'suspect came first')
  for (const m of members) await m.shutdown()
})

t.test('a graceful leave shows as left, not dead', async t => {
  const { clock, members, events } = await cluster(4, { keys: [Buffer.alloc(32, 1)] })
  await clock.advance(3_000)
  const leaving = members[3]!.leave()
  await clock.advance(2_000)
  await leaving
  await members[3]!.shutdown()
  for (let i = 0; i < 3; i++) {
    t.ok(events[i]!.some(e => e.type === 'left' && e.member.name === 'n3'), `n${i} saw n3 leave`)
    t.notOk(events[i]!.some(e => e.type === 'dead' && e.member.name === 'n3'))
  }
  for (const m of members.slice(0, 3)) await m.shutdown()
})

t.test('a suspected member refutes and stays alive', async t => {
  const { clock, net, members, events } = await cluster(5)
  await clock.advance(3_000)
  // Cut n4 off for a moment: long enough to be suspected, shorter than the suspicion timeout.
  net.setDown(members[4]!.address, true)
  await clock.advance(3_500)
  net.setDown(members[4]!.address, false)
  await clock.advance(20_000)
  const suspected = events.some(evs => evs.some(e => e.type === 'suspect' && e.member.name === 'n4'))
  t.ok(suspected, 'n4 was suspected')
  for (const m of members) t.equal(m.members().find(x => x.name === 'n4')?.state, 'alive')
  t.ok(members[0]!.members().find(x => x.name === 'n4')!.incarnation > 1, 'refuted with a higher incarnation')
  t.ok(members[4]!.counters.refutations >= 1, 'n4 counted its refutation')
  t.ok(members.slice(0, 4).every(m => m.counters.suspicions >= 1), 'every other member counted n4 suspected')
  t.ok(members.slice(0, 4).some(m => m.counters.probes.failed >= 1), 'a probe of n4 failed')
  for (const m of members) await m.shutdown()
})

t.test('probes by outcome and UDP messages by type are counted', async t => {
  const { clock, net, members } = await cluster(5)
  await clock.advance(3_000)
  // A lossy member: some direct probes of it fail where an indirect one through another member gets through.
  net.setHostLoss(members[4]!.address, 0.5)
  await clock.advance(30_000)
  const sum = (f: (m: Membership) => number): number => members.reduce((n, m) => n + f(m), 0)
  t.ok(sum(m => m.counters.probes.ack) > 50, 'direct acks')
  t.ok(sum(m => m.counters.probes.indirect_ack) >= 1, 'acks through another member')
  const c = members[0]!.counters
  // Every probe is a ping, and every ping this member answered is an ack: the counts follow the protocol.
  t.ok(c.sent.messages.ping! >= c.probes.ack + c.probes.indirect_ack + c.probes.tcp_ack + c.probes.failed, JSON.stringify(c.sent.messages))
  t.ok(c.received.messages.ping! > 0 && c.sent.messages.ack! >= c.received.messages.ping!, 'each ping received is acked')
  t.ok(c.sent.messages.indirect_ping! >= 1, 'indirect probes asked for')
  t.ok(c.sent.bytes.ping! > c.sent.messages.ping! * 20, 'bytes counted by type')
  t.notOk('compound' in c.sent.messages || 'compound' in c.received.messages, 'compounds are counted by their parts')
  for (const m of members) await m.shutdown()
})

t.test('user messages: best effort and reliable', async t => {
  const { clock, members } = await cluster(2)
  const got: string[] = []
  members[1]!.on('message', (b: Buffer) => got.push(b.toString()))
  await members[0]!.sendBestEffort('n1', Buffer.from('udp'))
  const rel = members[0]!.sendReliable('n1', Buffer.from('tcp'))
  await clock.advance(100)
  await rel
  await clock.advance(100)
  t.same(got.sort(), ['tcp', 'udp'])
  for (const m of members) await m.shutdown()
})

t.test('garbage packets are counted and dropped', async t => {
  const { clock, net, members } = await cluster(2)
  const target = members[0]!.address
  for (const p of [Buffer.from([]), Buffer.from([0xff]), Buffer.from([7, 9, 0]), Buffer.from([4, 0x85]), Buffer.from([12, 0, 0, 0, 0, 4])]) {
    net.deliverPacket(p, { ip: '10.9.9.9', port: 1 }, target)
  }
  await clock.advance(10)
  const d = members[0]!.counters.dropped
  t.ok(Object.values(d).reduce((a, b) => a + b, 0) >= 5, JSON.stringify(d))
  for (const m of members) await m.shutdown()
})

t.test('keys rotate while running, as swarm does, without a flap', async t => {
  const k1 = Buffer.alloc(16, 1)
  const k2 = Buffer.alloc(16, 2)
  const { clock, members, events } = await cluster(4, { keys: [k1] })
  await clock.advance(3_000)
  for (const m of members) m.installKey(k2)
  await clock.advance(2_000)
  for (const m of members) m.useKey(k2)
  await clock.advance(2_000)
  for (const m of members) m.removeKey(k1)
  await clock.advance(10_000)
  for (const m of members) t.equal(m.numMembers(), 4)
  t.notOk(events.flat().some(e => e.type === 'suspect' || e.type === 'dead'), 'nobody suspected during rotation')
  t.throws(() => members[0]!.removeKey(k2), { code: 'E_KEY_PRIMARY' })
  for (const m of members) await m.shutdown()
})

t.test('a node with a keyring refuses a plaintext node', async t => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock)
  const a = await Membership.create({ name: 'a', transport: net.attach({ ip: '10.0.0.1', port: 7946 }), clock, keys: [Buffer.alloc(32, 3)] })
  const b = await Membership.create({ name: 'b', transport: net.attach({ ip: '10.0.0.2', port: 7946 }), clock })
  const refused = t.rejects(b.join(['10.0.0.1:7946']), { code: 'E_JOIN' })
  await clock.advance(100)
  await refused
  t.equal(a.counters.dropped.decrypt, 1)
  t.equal(a.numMembers(), 1)
  await a.shutdown()
  await b.shutdown()
})

t.test('labels keep clusters apart', async t => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock)
  const mk = (name: string, ip: string, label: string) => Membership.create({ name, transport: net.attach({ ip, port: 7946 }), clock, label })
  const a = await mk('a', '10.0.0.1', 'blue')
  const b = await mk('b', '10.0.0.2', 'blue')
  const c = await mk('c', '10.0.0.3', 'green')
  const ok = b.join(['10.0.0.1:7946'])
  const refused = t.rejects(c.join(['10.0.0.1:7946']), { code: 'E_JOIN' })
  await clock.advance(100)
  t.equal(await ok, 1)
  await refused
  await clock.advance(5_000)
  t.same(a.members().map(m => m.name).sort(), ['a', 'b'])
  t.ok((a.counters.dropped.label ?? 0) >= 1)
  for (const m of [a, b, c]) await m.shutdown()
})

t.test('UDP blocked to one node: the TCP fallback ping keeps it alive', async t => {
  const { clock, net, members, events } = await cluster(3)
  await clock.advance(3_000)
  net.setHostLoss(members[2]!.address, 1)
  await clock.advance(20_000)
  t.notOk(events.flat().some(e => e.type === 'dead'), 'nobody declared dead')
  for (const m of members.slice(0, 2)) t.equal(m.members().find(x => x.name === 'n2')?.state, 'alive')
  t.ok(members.slice(0, 2).some(m => m.counters.probes.tcp_ack >= 1), 'a probe was answered only over TCP')
  for (const m of members) await m.shutdown()
})

t.test('Lifeguard: a node that hears nothing raises its own health score', async t => {
  const { clock, net, members } = await cluster(5)
  await clock.advance(3_000)
  t.equal(members[0]!.healthScore(), 0)
  // Cut off entirely (TCP too, or the fallback ping would vouch for the peers): no acks, no nacks.
  net.setDown(members[0]!.address, true)
  await clock.advance(6_000)
  t.ok(members[0]!.healthScore() > 0, `health score ${members[0]!.healthScore()} after missing acks and nacks`)
  for (const m of members) await m.shutdown()
})

t.test('meta updates reach every member', async t => {
  const { clock, members, events } = await cluster(3)
  await clock.advance(2_000)
  members[1]!.setMeta(Buffer.from('role=web'))
  await clock.advance(2_000)
  for (const i of [0, 2]) {
    t.ok(events[i]!.some(e => e.type === 'update' && e.member.name === 'n1'))
    t.equal(members[i]!.members().find(m => m.name === 'n1')?.meta.toString(), 'role=web')
  }
  t.throws(() => members[1]!.setMeta(Buffer.alloc(513)), { code: 'E_META_SIZE' })
  for (const m of members) await m.shutdown()
})

t.test('fuzz: mutated real packets and random streams never break a node', async t => {
  const { clock, net, members } = await cluster(3, { keys: [Buffer.alloc(16, 9)] })
  const plain = await cluster(2)
  const captured: Buffer[] = []
  const orig = net.deliverPacket.bind(net)
  net.deliverPacket = (p, from, to) => {
    if (captured.length < 200) captured.push(Buffer.from(p))
    orig(p, from, to)
  }
  await clock.advance(3_000)
  t.ok(captured.length > 20, `captured ${captured.length} packets`)
  const target = members[0]!.address
  const ptarget = plain.members[0]!.address
  fc.assert(
    fc.property(fc.nat(captured.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.boolean(), (i, flips, truncate) => {
      const p = Buffer.from(captured[i]!)
      for (const [pos, v] of flips) p[pos % p.length] = v
      const pkt = truncate ? p.subarray(0, p.length >> 1) : p
      net.deliverPacket(pkt, { ip: '10.9.9.9', port: 9 }, target)
      plain.net.deliverPacket(pkt, { ip: '10.9.9.9', port: 9 }, ptarget)
    }),
    { numRuns: 500 },
  )
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), bytes => {
      plain.net.deliverPacket(Buffer.from(bytes), { ip: '10.9.9.9', port: 9 }, ptarget)
    }),
    { numRuns: 500 },
  )
  for (const bytes of fc.sample(fc.uint8Array({ minLength: 1, maxLength: 200 }), 50)) {
    const opening = plain.net.openStream({ ip: '10.9.9.9', port: 9 }, ptarget, 100)
    await plain.clock.advance(2)
    const s = await opening
    s.on('error', () => {})
    s.end(Buffer.from(bytes))
    await plain.clock.advance(2)
  }
  await clock.advance(5_000)
  await plain.clock.advance(5_000)
  const dropped = Object.values(members[0]!.counters.dropped).reduce((a, b) => a + b, 0)
  t.ok(dropped > 100, `encrypted node dropped ${dropped}: ${JSON.stringify(members[0]!.counters.dropped)}`)
  t.ok(Object.keys(plain.members[0]!.counters.dropped).length > 2, JSON.stringify(plain.members[0]!.counters.dropped))
  for (const m of members) t.equal(m.numMembers(), 3, `${m.name} still sees everyone`)
  for (const m of [...members, ...plain.members]) await m.shutdown()
})

t.test('local-state hooks travel on every push/pull, join included', async t => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock)
  const merged: [string, string, boolean][] = []
  const mk = (name: string, ip: string) =>
    Membership.create({
      name,
      transport: net.attach({ ip, port: 7946 }),
      clock,
      delegate: {
        localState: join => Buffer.from(`${name}:${join ? 'join' : 'sync'}`),
        mergeRemoteState: (state, join) => merged.push([name, state.toString(), join]),
      },
    })
  const a = await mk('a', '10.0.0.1')
  const b = await mk('b', '10.0.0.2')
  const joined = b.join(['10.0.0.1:7946'])
  await clock.advance(10)
  await joined
  t.same(merged.sort(), [
    ['a', 'b:join', true],
    ['b', 'a:join', true],
  ])
  merged.length = 0
  await clock.advance(65_000)
  t.ok(merged.some(([, s, join]) => s.endsWith(':sync') && !join), `periodic push/pull carried the state: ${JSON.stringify(merged)}`)
  await a.shutdown()
  await b.shutdown()
})
