/**
 * Quorum on hosts in network namespaces: a manager cut off by a link down
 * (Unreachable, its writes refused with swarm's text, caught up after the
 * heal); two of three managers killed (writes refused, tasks running, the
 * swarm back by itself once they restart); two lost for good (`swarm init
 * --force-new-cluster` on the third keeps every service); and five
 * managers surviving two failures.
 */
import t from 'tap'
import { Hosts, hostsMissing, secondsSince, type Host } from './helpers/hosts.js'
import { formManagers, leaderOf, managerStatus, NO_LEADER, waitManagers } from './helpers/managers.js'
import { etcdMissing, testNeeding } from './helpers/prerequisites.js'
import { waitUntil } from './helpers/procs.js'

const LOOP = ['busybox', 'sh', '-c', 'while true; do sleep 1; done']

testNeeding(t, 'three managers, losing and regaining quorum', hostsMissing ?? etcdMissing, async t => {
  const c = await Hosts.create(t, 5, { prefix: 'q-' })
  const [m1, m2, m3, w4, w5] = c.hosts as [Host, Host, Host, Host, Host]
  const managers = [m1, m2, m3]
  await formManagers(c, managers, [w4, w5])
  await c.ctlOk(m1, 'service', 'create', '-d', '--name', 'web', '--replicas', '4', ...LOOP)
  await c.waitSteady(m1, 'web', 4, performance.now(), 60_000)

  await t.test('a manager partitioned away: Unreachable, its writes refused, caught up after the heal', async t => {
    const leader = await leaderOf(c, m1)
    const cut = managers.find(m => m !== leader)!
    const other = managers.find(m => m !== leader && m !== cut)!
    const t0 = performance.now()
    await c.linkDown(cut)
    await waitUntil(async () => (await managerStatus(c, leader))[cut.name] === 'Unreachable', { timeoutMs: 60_000, intervalMs: 250, what: `${cut.name} Unreachable` })
    const unreachableS = secondsSince(t0)
    let r = await c.ctl(cut, 'service', 'create', '-d', '--name', 'from-the-island', 'busybox', 'true')
    await waitUntil(async () => (r = await c.ctl(cut, 'service', 'scale', '-d', 'web=4')).code !== 0, { timeoutMs: 30_000, intervalMs: 500, what: 'the cut-off manager refusing writes' })
    t.equal(r.stderr, `web: Error response from daemon: ${NO_LEADER}\n`, "its writes answer swarm's no-leader text")
    t.match(await c.ctlOk(cut, 'service', 'ls'), /web/, 'its reads still answer')
    await c.ctlOk(other, 'service', 'create', '-d', '--name', 'while-away', '--replicas', '0', 'busybox', 'true')
    await c.linkUp(cut)
    await waitUntil(async () => (await c.ctl(cut, 'service', 'inspect', 'while-away')).code === 0, { timeoutMs: 60_000, intervalMs: 250, what: `${cut.name} catching up` })
    await waitManagers(c, leader, 3, 60_000)
    t.comment(JSON.stringify({ fault: 'a follower partitioned', unreachableS, caughtUpS: secondsSince(t0) }))
    t.not((await c.ctl(other, 'service', 'inspect', 'from-the-island')).code, 0, 'nothing written on the island')
  })

  await t.test('two of three managers killed: writes refused, tasks running; restarted, the swarm is back by itself', async t => {
    const [a, b, survivor] = managers as [Host, Host, Host]
    const tasks = c.taskCounts('web').total
    await c.kill9(a)
    await c.kill9(b)
    const t0 = performance.now()
    let r = await c.ctl(survivor, 'service', 'scale', '-d', 'web=5')
    await waitUntil(async () => (r = await c.ctl(survivor, 'service', 'scale', '-d', 'web=5')).code !== 0, { timeoutMs: 20_000, intervalMs: 250, what: 'writes refused' })
    t.equal(r.stderr, `web: Error response from daemon: ${NO_LEADER}\n`)
    const refusedS = secondsSince(t0)
    t.equal(c.taskCounts('web').total, tasks, 'the tasks keep running')
    t.match(await c.ctlOk(survivor, 'node', 'ls'), new RegExp(survivor.name), 'reads answer')
    await c.start(a)
    await c.start(b)
    await waitUntil(async () => (await c.ctl(survivor, 'service', 'scale', '-d', 'web=5')).code === 0, { timeoutMs: 60_000, intervalMs: 500, what: 'writes again' })
    await waitManagers(c, survivor, 3, 60_000)
    await c.waitSteady(survivor, 'web', 5, t0, 60_000)
    t.comment(JSON.stringify({ fault: 'two of three managers killed, then restarted', refusedS, recoveredS: secondsSince(t0) }))
  })

  await t.test('two managers lost for good: --force-new-cluster on the third keeps every service', async t => {
    const [a, b, survivor] = managers as [Host, Host, Host]
    const before = (await c.ctlOk(survivor, 'service', 'ls', '-q')).trim().split('\n').sort()
    await c.kill9(a)
    await c.kill9(b)
    await waitUntil(async () => (await c.ctl(survivor, 'service', 'scale', '-d', 'web=4')).code !== 0, { timeoutMs: 20_000, intervalMs: 250, what: 'quorum lost' })
    const t0 = performance.now()
    t.match(await c.ctlOk(survivor, 'swarm', 'init', '--force-new-cluster', '--advertise-addr', survivor.ip), /Swarm initialized: current node \(\w+\) is now a manager/)
    await waitUntil(async () => (await c.ctl(survivor, 'service', 'scale', '-d', 'web=4')).code === 0, { timeoutMs: 60_000, intervalMs: 500, what: 'writes on the new cluster' })
    const status = await managerStatus(c, survivor)
    t.same([status[survivor.name], status[a.name], status[b.name]], ['Leader', 'Unreachable', 'Unreachable'], 'this manager leads; the lost ones are Unreachable, to be demoted')
    t.same((await c.ctlOk(survivor, 'service', 'ls', '-q')).trim().split('\n').sort(), before, 'every service is still there')
    for (const m of [a, b]) await c.ctlOk(survivor, 'node', 'demote', m.name)
    t.same(Object.keys(await managerStatus(c, survivor)), [survivor.name], 'one manager left')
    await c.waitTasksAway(survivor, 'web', 4, [a, b], t0, 90_000)
    t.comment(JSON.stringify({ fault: 'two of three managers lost for good', recoveredS: secondsSince(t0) }))
  })
})

testNeeding(t, 'five managers survive two failures', hostsMissing ?? etcdMissing, async t => {
  const c = await Hosts.create(t, 5, { prefix: 'five-' })
  await formManagers(c, c.hosts, [])
  const [a, b, x, y, z] = c.hosts as [Host, Host, Host, Host, Host]
  await c.ctlOk(x, 'service', 'create', '-d', '--name', 'web', '--replicas', '5', ...LOOP)
  await c.waitSteady(x, 'web', 5, performance.now(), 60_000)
  const t0 = performance.now()
  await c.kill9(a)
  await c.kill9(b)
  await waitUntil(async () => (await c.ctl(y, 'service', 'scale', '-d', 'web=6')).code === 0, { timeoutMs: 30_000, intervalMs: 250, what: 'a write with two of five down' })
  await waitUntil(async () => (await c.runningTasks(z, 'web')).size === 6, { timeoutMs: 60_000, intervalMs: 250, what: 'six tasks placed' })
  t.comment(JSON.stringify({ fault: 'two of five managers killed', writableS: secondsSince(t0) }))
  t.pass('writes and scheduling went on')
})
