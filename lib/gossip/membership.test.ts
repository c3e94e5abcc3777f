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
