/**
 * 10 % random packet loss (nftables, in and out of one worker's eth0) for a
 * minute on three hosts (network namespaces, the manager on docker-swarm-3):
 * no node is ever declared Down (Lifeguard keeps gossip from flapping and the
 * control session rides TCP), checked every second; the service keeps its
 * replicas.
 */
import t from 'tap'
import { Hosts, lossMissing, secondsSince, type Host } from './helpers/hosts.js'
import { testNeeding } from './helpers/prerequisites.js'
import { sleep } from './helpers/procs.js'

const LOOP = ['alpine', 'sh', '-c', 'while true; do echo hello world; sleep 1; done']
const LOSS_MS = 60_000

testNeeding(t, '10 % loss on one host for a minute', lossMissing, async t => {
  const tFile = performance.now()
  const c = await Hosts.create(t, 3)
  const [h1, , mgr] = c.hosts as [Host, Host, Host]
  await c.formSwarm(mgr)
  await c.ctlOk(mgr, 'service', 'create', '-d', '--replicas', '3', '--name', 'web', ...LOOP)
  await c.waitSteady(mgr, 'web', 3, performance.now(), 30_000)
  const tasksBefore = [...(await c.runningTasks(mgr, 'web')).keys()].sort()
  t.comment(`swarm and service ready in ${secondsSince(tFile)} s`)

  await c.loss(h1, 10)
  t.match(await c.lossRuleset(h1), /numgen random mod 100 < 10 drop/, 'the loss rules are in place')
  const t0 = performance.now()
  const downs: string[] = []
  let checks = 0
  let nodeLs = 0
  while (performance.now() - t0 < LOSS_MS) {
    const tick = performance.now()
    const states = await c.nodeStates(mgr)
    checks++
    for (const [name, s] of states) if (s !== 'ready') downs.push(`${name} ${s} at ${secondsSince(t0)} s`)
    // The CLI's view too, every ten seconds (a swarmctl process costs about a second on a busy machine).
    if (checks % 10 === 0) {
      const rows = await c.nodes(mgr)
      nodeLs++
      for (const r of rows) if (r.status !== 'Ready') downs.push(`${r.hostname} ${r.status} in node ls at ${secondsSince(t0)} s`)
    }
    await sleep(Math.max(0, 1_000 - (performance.now() - tick)))
  }
  const ruleset = await c.lossRuleset(h1)
  await c.clearLoss(h1)
  t.same(downs, [], `no node declared Down in ${checks} checks over ${secondsSince(t0)} s (${nodeLs} of them by node ls too)`)
  t.ok(checks >= LOSS_MS / 2_000, `checked about every second (${checks} times; a loaded machine slows the API)`)
  t.same([...(await c.runningTasks(mgr, 'web')).keys()].sort(), tasksBefore, 'the same three tasks still run: none was rescheduled')
  t.equal(c.taskCounts('web').total, 3)
  t.comment(JSON.stringify({ fault: '10% loss on one worker for 60 s', downs: downs.length, checks }))
  t.comment(`nft after the minute:\n${ruleset}`)
  await c.ctlOk(mgr, 'service', 'rm', 'web')
  t.comment(`file total ${secondsSince(tFile)} s`)
})
