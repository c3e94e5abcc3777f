/**
 * A stalled worker and a crashed manager on three hosts (network namespaces,
 * the manager on docker-swarm-3), a service of five replicas: a worker
 * stopped with SIGSTOP for 20 s (time to Down, time until all five run
 * elsewhere; resumed: Ready, exactly five task processes) and the manager
 * killed -9 and restarted on its data dir (nodes, service and tasks intact,
 * the workers back by themselves, exactly five). Each fault's timings print
 * as one JSON line; swarm's are ~15 s to Down and 20-25 s until tasks run
 * elsewhere.
 */
import t from 'tap'
import { Hosts, hostsMissing, secondsSince, type Host } from './helpers/hosts.js'
import { testNeeding } from './helpers/prerequisites.js'
import { sleep } from './helpers/procs.js'

const LOOP = ['alpine', 'sh', '-c', 'while true; do echo hello world; sleep 1; done']
const REPLICAS = 5
const STALL_MS = 20_000

testNeeding(t, 'a stalled worker and a crashed manager on three hosts', hostsMissing, async t => {
  const tFile = performance.now()
  const c = await Hosts.create(t, 3)
  const [h1, h2, mgr] = c.hosts as [Host, Host, Host]
  await c.formSwarm(mgr)
  await c.ctlOk(mgr, 'service', 'create', '-d', '--replicas', String(REPLICAS), '--name', 'web', ...LOOP)
  await c.waitSteady(mgr, 'web', REPLICAS, performance.now(), 30_000)
  t.comment(`swarm and service ready in ${secondsSince(tFile)} s`)

  await t.test('a worker stalled (SIGSTOP) for 20 s', async t => {
    const victim = c.taskCounts('web').perHost[h1.name]! >= c.taskCounts('web').perHost[h2.name]! ? h1 : h2
    t.ok(c.taskCounts('web').perHost[victim.name]! > 0, `${victim.name} runs tasks`)
    const t0 = performance.now()
    c.stall(victim)
    const down = await c.waitNodeState(mgr, victim, 'down', t0, STALL_MS)
    const away = await c.waitTasksAway(mgr, 'web', REPLICAS, [victim], t0, 60_000)
    await sleep(Math.max(0, STALL_MS - (performance.now() - t0)))
    const t1 = performance.now()
    c.resume(victim)
    const ready = await c.waitNodeState(mgr, victim, 'ready', t1)
    const exact = await c.waitSteady(mgr, 'web', REPLICAS, t1)
    t.comment(JSON.stringify({ fault: 'SIGSTOP worker 20 s', downS: down, tasksElsewhereS: away, resume: { readyS: ready, exactReplicasS: exact } }))
    await sleep(2_000)
    t.equal(c.taskCounts('web').total, REPLICAS, `exactly ${REPLICAS} task processes after the stall ${JSON.stringify(c.taskCounts('web').perHost)}`)
    t.equal((await c.runningTasks(mgr, 'web')).size, REPLICAS)
  })

  await t.test('the manager killed -9 and restarted', async t => {
    const nodesBefore = (await c.nodes(mgr)).map(r => r.id).sort()
    const svcBefore = JSON.parse(await c.ctlOk(mgr, 'service', 'inspect', 'web'))[0]
    const tasksBefore = await c.runningTasks(mgr, 'web')
    const t0 = performance.now()
    await c.kill9(mgr)
    await sleep(2_000)
    const t1 = performance.now()
    await c.start(mgr)
    const apiUp = secondsSince(t1)
    const steady = await c.waitSteady(mgr, 'web', REPLICAS, t1)
    t.comment(JSON.stringify({ fault: 'kill -9 manager (restarted after 2 s)', downS: null, restart: { apiUpS: apiUp, allReadyAndExactReplicasS: steady }, totalS: secondsSince(t0) }))
    t.same((await c.nodes(mgr)).map(r => r.id).sort(), nodesBefore, 'the same nodes')
    t.ok((await c.nodes(mgr)).every(r => r.status === 'Ready'), 'the workers are back by themselves')
    const svcAfter = JSON.parse(await c.ctlOk(mgr, 'service', 'inspect', 'web'))[0]
    t.same([svcAfter.ID, svcAfter.Spec, svcAfter.Version.Index >= svcBefore.Version.Index], [svcBefore.ID, svcBefore.Spec, true], 'the same service')
    const tasksAfter = await c.runningTasks(mgr, 'web')
    const kept = [...tasksBefore.keys()].filter(id => tasksAfter.has(id)).length
    t.comment(`${kept} of ${REPLICAS} tasks kept their IDs across the manager restart: before ${JSON.stringify([...tasksBefore])}, after ${JSON.stringify([...tasksAfter])}`)
    const onWorkers = [...tasksBefore].filter(([, host]) => host !== mgr.name).map(([id]) => id)
    // Swarm gives nodes a grace period after a manager starts (Unknown, 6 heartbeats); swarmd reschedules at once.
    t.ok(onWorkers.every(id => tasksAfter.has(id)), "the workers' tasks were not replaced")
    await sleep(2_000)
    t.equal(c.taskCounts('web').total, REPLICAS, `exactly ${REPLICAS} task processes ${JSON.stringify(c.taskCounts('web').perHost)}`)
  })

  await c.ctlOk(mgr, 'service', 'rm', 'web')
  t.comment(`file total ${secondsSince(tFile)} s`)
})
