/**
 * Worker faults on three hosts (network namespaces, the manager on
 * docker-swarm-3), a service of five replicas: a worker killed -9 (time to
 * Down, time until all five run elsewhere; restarted on its data dir: Ready,
 * its stale tasks stopped, exactly five task processes) and a worker
 * partitioned by its link going down (Down, tasks elsewhere; healed: Ready,
 * exactly five). Each fault's timings print as one JSON line; swarm's are
 * ~15 s to Down and 20-25 s until tasks run elsewhere.
 */
import t from 'tap'
import { Hosts, hostsMissing, secondsSince, type Host } from './helpers/hosts.js'
import { testNeeding } from './helpers/prerequisites.js'
import { sleep } from './helpers/procs.js'

const LOOP = ['alpine', 'sh', '-c', 'while true; do echo hello world; sleep 1; done']
const REPLICAS = 5

testNeeding(t, 'worker faults on three hosts', hostsMissing, async t => {
  const tFile = performance.now()
  const c = await Hosts.create(t, 3)
  const [h1, h2, mgr] = c.hosts as [Host, Host, Host]
  await c.formSwarm(mgr)
  await c.ctlOk(mgr, 'service', 'create', '-d', '--replicas', String(REPLICAS), '--name', 'web', ...LOOP)
  await c.waitSteady(mgr, 'web', REPLICAS, performance.now(), 30_000)
  t.comment(`swarm and service ready in ${secondsSince(tFile)} s`)

  /** Exactly `REPLICAS` processes, one per running task the manager knows, and it stays so. */
  const checkExact = async (what: string): Promise<void> => {
    await sleep(2_000)
    const counts = c.taskCounts('web')
    t.equal(counts.total, REPLICAS, `${what}: exactly ${REPLICAS} task processes ${JSON.stringify(counts.perHost)}`)
    const running = await c.runningTasks(mgr, 'web')
    t.equal(running.size, REPLICAS, `${what}: the manager sees ${REPLICAS} running`)
    const procs = c.taskProcesses('web')
    for (const [id, host] of running) t.ok(procs.get(host)?.has(id), `task ${id.slice(0, 12)} runs on ${host} as the manager says`)
    const slots = (await c.ps(mgr, 'web')).filter(r => r.desired === 'Running').map(r => r.name)
    t.equal(new Set(slots).size, REPLICAS, `${what}: no slot twice`)
  }

  await t.test('kill -9 of a worker, then restart', async t => {
    const onH1 = c.taskCounts('web').perHost[h1.name]!
    t.ok(onH1 > 0, `${h1.name} runs ${onH1} tasks`)
    const t0 = performance.now()
    await c.kill9(h1)
    const down = await c.waitNodeState(mgr, h1, 'down', t0)
    const away = await c.waitTasksAway(mgr, 'web', REPLICAS, [h1], t0)
    t.ok(c.taskCounts('web').perHost[h1.name]! > 0, "the killed daemon's task processes still run (nobody stopped them)")
    const t1 = performance.now()
    await c.start(h1)
    const ready = await c.waitNodeState(mgr, h1, 'ready', t1)
    const exact = await c.waitSteady(mgr, 'web', REPLICAS, t1)
    t.comment(JSON.stringify({ fault: 'kill -9 worker', downS: down, tasksElsewhereS: away, restart: { readyS: ready, exactReplicasS: exact } }))
    await checkExact('after the restart')
  })

  await t.test('a partitioned worker, then healed', async t => {
    const victim = c.taskCounts('web').perHost[h2.name]! > 0 ? h2 : h1
    const before = c.taskProcesses('web').get(victim.name)!
    t.ok(before.size > 0, `${victim.name} runs ${before.size} tasks`)
    const t0 = performance.now()
    await c.linkDown(victim)
    const down = await c.waitNodeState(mgr, victim, 'down', t0)
    const away = await c.waitTasksAway(mgr, 'web', REPLICAS, [victim], t0)
    const stillThere = c.taskProcesses('web').get(victim.name)!.size
    t.comment(`while cut off, ${victim.name} still runs ${stillThere} of its ${before.size} tasks (swarm's agent keeps them until it reaches a manager)`)
    const t1 = performance.now()
    await c.linkUp(victim)
    const ready = await c.waitNodeState(mgr, victim, 'ready', t1)
    const exact = await c.waitSteady(mgr, 'web', REPLICAS, t1)
    t.comment(JSON.stringify({ fault: 'partition worker', downS: down, tasksElsewhereS: away, heal: { readyS: ready, exactReplicasS: exact } }))
    await checkExact('after the heal')
  })

  await c.ctlOk(mgr, 'service', 'rm', 'web')
  t.comment(`file total ${secondsSince(tFile)} s`)
})
