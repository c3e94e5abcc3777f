/**
 * The seed walkthrough on three hosts (network namespaces on a bridge,
 * docker-swarm-1..3, the manager on 3): init, join twice, node ls, a
 * helloworld service created, inspected (pretty and JSON), listed, scaled to
 * five, its logs, removed, with docker's output shapes; then node
 * availability: pause (nothing new placed there, what runs keeps running),
 * drain (its tasks stop and run elsewhere), active again (nothing moves back,
 * new tasks go there first).
 */
import t from 'tap'
import { Hosts, hostsMissing, secondsSince, type Host } from './helpers/hosts.js'
import { testNeeding } from './helpers/prerequisites.js'
import { sleep, waitUntil } from './helpers/procs.js'

const HELLO = ['alpine', 'sh', '-c', 'while true; do echo hello world; sleep 1; done']

testNeeding(t, 'walkthrough and availability on three hosts', hostsMissing, async t => {
  const t0 = performance.now()
  const c = await Hosts.create(t, 3)
  const [h1, h2, mgr] = c.hosts as [Host, Host, Host]
  const ctl = (...args: string[]): Promise<string> => c.ctlOk(mgr, ...args)

  const { init, joins } = await c.formSwarm(mgr)
  t.match(init, new RegExp(`^Swarm initialized: current node \\(${mgr.id}\\) is now a manager\\.\\n`), 'init: docker\'s first line')
  t.match(init, new RegExp(`To add a worker to this swarm, run the following command:\\n\\n    (docker|swarmctl) swarm join --token SWMTKN-1-\\S+ ${mgr.ip.replace(/\./g, '\\.')}:2377\\n`))
  t.same(joins, ['This node joined a swarm as a worker.\n', 'This node joined a swarm as a worker.\n'])
  const ls = (await ctl('node', 'ls')).trimEnd().split('\n')
  t.match(ls[0], /^ID {28}HOSTNAME {9}STATUS {4}AVAILABILITY {3}MANAGER STATUS {3}ENGINE VERSION$/, 'node ls header')
  t.equal(ls.length, 4)
  t.match(ls.find(l => l.includes('docker-swarm-3')), /^[0-9a-z]{25} \* {3}docker-swarm-3 {3}Ready {5}Active {9}Leader {11}\S+$/, 'the manager: self, Leader')
  for (const w of [h1, h2]) t.match(ls.find(l => l.includes(w.name)), new RegExp(`^${w.id} {5}${w.name} {3}Ready {5}Active {26}\\S+$`), `${w.name} Ready, a worker`)
  t.comment(`swarm of three formed in ${secondsSince(t0)} s`)

  // create, inspect, ps
  let out = await ctl('service', 'create', '--replicas', '1', '--name', 'helloworld', ...HELLO)
  t.match(out, /^[0-9a-z]{25}\noverall progress: /, 'create: the ID, then progress')
  t.match(out, /\noverall progress: 1 out of 1 tasks\n/)
  t.match(out, /verify: Service converged\n$/)
  const svcId = out.split('\n')[0]!
  out = await ctl('service', 'inspect', '--pretty', 'helloworld')
  t.match(out, new RegExp(`^\\nID:\\t\\t${svcId}\\nName:\\t\\thelloworld\\nService Mode:\\tReplicated\\n Replicas:\\t1\\n`), 'inspect --pretty: blank line, ID, Name, mode, replicas')
  t.match(out, /\nContainerSpec:\n Image:\t\talpine\n/)
  t.match(out, /\n Args:\t\tsh -c while true; do echo hello world; sleep 1; done/)
  const json = JSON.parse(await ctl('service', 'inspect', 'helloworld'))
  t.equal(json.length, 1)
  t.match(json[0], { ID: svcId, Spec: { Name: 'helloworld', Mode: { Replicated: { Replicas: 1 } }, TaskTemplate: { ContainerSpec: { Image: 'alpine', Args: HELLO.slice(1) } } } })
  t.ok(json[0].Version.Index > 0 && Date.parse(json[0].CreatedAt) > 0, 'Version and CreatedAt')
  const psOut = (await ctl('service', 'ps', 'helloworld')).trimEnd().split('\n')
  t.match(psOut[0], /^ID {13}NAME {11}IMAGE {5}NODE {13}DESIRED STATE {3}CURRENT STATE {3,}ERROR {5}PORTS$/, 'ps header (CURRENT STATE is as wide as its longest value)')
  t.match(psOut[1], /^[0-9a-z]{12} {3}helloworld\.1 {3}alpine {4}docker-swarm-[123] {3}Running {9}Running (less than a second|\d+ seconds?) ago *$/, 'ps row')
  t.equal(c.taskCounts('helloworld').total, 1, 'one task process')

  // scale to 5: spread over the three hosts
  out = await ctl('service', 'scale', 'helloworld=5')
  t.match(out, /^helloworld scaled to 5\noverall progress: /)
  t.match(out, /\noverall progress: 5 out of 5 tasks\n/)
  t.match(out, /verify: Service converged\n$/)
  const rows = await c.running(mgr, 'helloworld')
  t.equal(rows.length, 5)
  t.same(c.hosts.map(h => rows.filter(r => r.node === h.name).length).sort(), [1, 2, 2], 'spread 2, 2, 1')
  const counts = c.taskCounts('helloworld')
  t.same(counts.total, 5, `five task processes: ${JSON.stringify(counts.perHost)}`)
  for (const h of c.hosts) t.equal(counts.perHost[h.name], rows.filter(r => r.node === h.name).length, `processes on ${h.name} match ps`)
  t.match(await ctl('service', 'ls'), /^ID {13}NAME {9}MODE {9}REPLICAS {3}IMAGE {5}PORTS\n[0-9a-z]{12} {3}helloworld {3}replicated {3}5\/5 {8}alpine {4}\n$/, 'service ls')

  // logs from every host, docker's prefix
  await sleep(1_500)
  const logs = (await ctl('service', 'logs', 'helloworld')).trimEnd().split('\n')
  for (const l of logs) t.match(l, /^helloworld\.[1-5]\.[0-9a-z]{12}@docker-swarm-[123] {4}\| hello world$/)
  t.equal(new Set(logs.map(l => /@(docker-swarm-\d)/.exec(l)?.[1])).size, 3, `logs from all three hosts (${logs.length} lines)`)
  t.equal(new Set(logs.map(l => l.split('.')[1])).size, 5, 'from all five slots')

  // rm
  t.equal(await ctl('service', 'rm', 'helloworld'), 'helloworld\n')
  await waitUntil(() => c.taskCounts('helloworld').total === 0, { timeoutMs: 20_000, what: 'every helloworld process gone' })
  t.equal(await ctl('service', 'ls', '-q'), '')
  t.comment(`walkthrough done at ${secondsSince(t0)} s`)

  // ---- availability ----
  const t1 = performance.now()
  await ctl('service', 'create', '-d', '--replicas', '3', '--name', 'avail', ...HELLO)
  await waitUntil(() => c.taskCounts('avail').total === 3, { timeoutMs: 20_000, what: 'three avail tasks' })
  t.same(Object.values(c.taskCounts('avail').perHost), [1, 1, 1], 'one per host')
  const onH1 = c.taskProcesses('avail').get(h1.name)!

  // pause: what runs there keeps running, nothing new goes there
  await ctl('node', 'update', '--availability', 'pause', h1.name)
  t.equal((await c.nodes(mgr)).find(r => r.hostname === h1.name)?.availability, 'Pause')
  await ctl('service', 'scale', '-d', 'avail=6')
  await waitUntil(() => c.taskCounts('avail').total === 6, { timeoutMs: 20_000, what: 'six avail tasks' })
  await sleep(1_000)
  let per = c.taskCounts('avail').perHost
  t.equal(per[h1.name], 1, `paused: its task still runs and nothing new went there (${JSON.stringify(per)})`)
  t.same(c.taskProcesses('avail').get(h1.name), onH1, 'the very same task')
  t.equal(per[h2.name]! + per[mgr.name]!, 5, 'the three new tasks went to the others')

  // drain: its tasks stop and run elsewhere; ps keeps them as Shutdown on the drained node
  const t2 = performance.now()
  await ctl('node', 'update', '--availability', 'drain', h1.name)
  t.equal((await c.nodes(mgr)).find(r => r.hostname === h1.name)?.availability, 'Drain')
  await waitUntil(async () => c.taskCounts('avail').perHost[h1.name] === 0 && c.taskCounts('avail').total === 6 && (await c.running(mgr, 'avail')).length === 6, { timeoutMs: 30_000, what: 'the drained host empty, six tasks elsewhere' })
  t.comment(`drain: tasks elsewhere after ${secondsSince(t2)} s`)
  const ps = await c.ps(mgr, 'avail')
  t.ok(ps.some(r => r.node === h1.name && r.desired === 'Shutdown' && r.name.startsWith('\\_ avail.')), 'the drained task is a Shutdown history row on docker-swarm-1')
  t.notOk(ps.some(r => r.node === h1.name && r.desired === 'Running'), 'nothing desired Running on the drained node')

  // active: nothing moves back (as in swarm), new tasks go to the emptiest node first
  await ctl('node', 'update', '--availability', 'active', h1.name)
  t.equal((await c.nodes(mgr)).find(r => r.hostname === h1.name)?.availability, 'Active')
  await sleep(2_000)
  t.equal(c.taskCounts('avail').perHost[h1.name], 0, 'active again: no rebalancing')
  await ctl('service', 'scale', '-d', 'avail=8')
  await waitUntil(() => c.taskCounts('avail').total === 8, { timeoutMs: 20_000, what: 'eight avail tasks' })
  per = c.taskCounts('avail').perHost
  t.equal(per[h1.name], 2, `the two new tasks went to the reactivated node (${JSON.stringify(per)})`)
  await ctl('service', 'rm', 'avail')
  await waitUntil(() => c.taskCounts('avail').total === 0, { timeoutMs: 20_000, what: 'every avail process gone' })
  t.comment(`availability done in ${secondsSince(t1)} s; file total ${secondsSince(t0)} s`)
})
