/**
 * The real docker CLI against three daemons on loopback (127.0.18.1-3, the
 * manager on .3), tasks as host processes, where Docker's behaviour is the
 * reference: list filters (node ls, service ls, service ps) and Docker's
 * "Invalid filter" text; `docker events` (the kept ones with --since and
 * --until, filters, a live stream) for services, nodes, secrets and
 * networks; `docker ps`, `docker inspect` and `docker logs` on a worker
 * listing its process tasks as containers; Docker's texts for a duplicate
 * service name and a bad availability; `node inspect --pretty` with its
 * Engine and TLS Info blocks; and a node that leaves and joins again
 * coming back with a new node ID.
 */
import t from 'tap'
import { loopbackSwarm, swarmctl } from './helpers/daemon.js'
import { DOCKER, dockerCliMissing, testNeeding } from './helpers/prerequisites.js'
import { run, spawnManaged, waitUntil } from './helpers/procs.js'

const LOOP = ['alpine', 'sh', '-c', 'while true; do echo "hello from $SWARMD_TASK_SLOT"; sleep 0.3; done']

testNeeding(t, 'the docker CLI on a three-node swarm', dockerCliMissing, async t => {
  const { hosts, ids, ctl } = await loopbackSwarm(t, { prefix: 'docker-cli', name: i => `docker-swarm-${i}`, ip: i => `127.0.18.${i}` })
  const [w1, w2, mgr] = hosts
  const dockerOn = (sock: string) => async (...args: string[]) => run(DOCKER!, ['-H', `unix://${sock}`, ...args], { timeoutMs: 60_000 })
  const dk = dockerOn(mgr.sock)
  const ok = async (...args: string[]): Promise<string> => {
    const r = await dk(...args)
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return r.stdout
  }
  const lines = (s: string): string[] => s.trim().split('\n').filter(Boolean)

  // A live stream of the swarm's events from before anything below happens.
  const live = spawnManaged(DOCKER!, ['-H', `unix://${mgr.sock}`, 'events', '--format', '{{json .}}'], { label: 'docker events' })
  t.teardown(() => live.stop())
  const since = String(Math.floor(Date.now() / 1000) - 1)

  await t.test('node ls filters, as moby filters nodes', async t => {
    await ok('node', 'update', '--label-add', 'zone=east', w1.name)
    t.same(lines(await ok('node', 'ls', '-q', '-f', 'role=manager')), [mgr.id])
    t.same(lines(await ok('node', 'ls', '-q', '-f', 'role=worker')).sort(), [w1.id, w2.id].sort())
    t.same(lines(await ok('node', 'ls', '-q', '-f', `id=${w2.id!.slice(0, 6)}`)), [w2.id])
    t.same(lines(await ok('node', 'ls', '-q', '-f', 'name=docker-swarm-1')), [w1.id], 'name: a hostname prefix')
    t.same(lines(await ok('node', 'ls', '-q', '-f', 'node.label=zone=east')), [w1.id])
    t.same(lines(await ok('node', 'ls', '-q', '-f', 'node.label=zone=west')), [])
    t.same(lines(await ok('node', 'ls', '-q', '-f', 'membership=accepted')).length, 3)
    t.same(lines(await ok('node', 'ls', '-q', '-f', 'label=zone')), [], 'label: engine labels, none on swarmd nodes')
    let r = await dk('node', 'ls', '-f', 'foo=bar')
    t.same([r.code, r.stderr.trim()], [1, "Error response from daemon: Invalid filter 'foo'"], "Docker 20.10's text")
    r = await dk('node', 'ls', '-f', 'role=boss')
    t.equal(r.stderr.trim(), "Error response from daemon: Invalid role filter: 'boss'")
    const viaCtl = await swarmctl(mgr.sock, 'node', 'ls', '-q', '-f', 'role=manager')
    t.equal(viaCtl.stdout, `${mgr.id}\n`, 'swarmctl node ls --filter too')
  })

  await t.test('service ls and service ps filters', async t => {
    await ok('service', 'create', '-d', '--name', 'web', '--label', 'tier=front', '--replicas', '3', ...LOOP)
    await ok('service', 'create', '-d', '--name', 'api', '--mode', 'global', ...LOOP)
    t.same(lines(await ok('service', 'ls', '--format', '{{.Name}}', '-f', 'label=tier=front')), ['web'])
    t.same(lines(await ok('service', 'ls', '--format', '{{.Name}}', '-f', 'mode=global')), ['api'])
    t.same(lines(await ok('service', 'ls', '--format', '{{.Name}}', '-f', 'name=we')), ['web'], 'a name prefix')
    t.equal((await dk('service', 'ls', '-f', 'status=running')).stderr.trim(), "Error response from daemon: Invalid filter 'status'")
    await waitUntil(async () => lines(await ok('service', 'ps', '-q', '-f', 'desired-state=running', 'web')).length === 3, { timeoutMs: 30_000, what: 'three tasks of web' })
    const onW1 = lines(await ok('service', 'ps', '-q', '-f', `node=${w1.name}`, 'web', 'api'))
    t.ok(onW1.length >= 2, `node=${w1.name}: a task of api and at least one of web (${onW1.length})`)
    t.same(lines(await ok('service', 'ps', '--format', '{{.Name}}', '-f', 'name=web.2', 'web')), ['web.2'])
    t.same(lines(await ok('service', 'ps', '-q', '-f', 'desired-state=shutdown', 'web')), [])
    t.equal((await dk('service', 'ps', '-f', 'desired-state=sleeping', 'web')).stderr.trim(), "Error response from daemon: Invalid desired-state filter: 'sleeping'")
    t.equal((await dk('service', 'ps', '-f', 'bogus=1', 'web')).stderr.trim(), "Error response from daemon: Invalid filter 'bogus'")
  })

  await t.test('docker ps, inspect and logs on a worker list its process tasks as containers', async t => {
    const wk = dockerOn(w1.sock)
    let names: string[] = []
    await waitUntil(
      async () => {
        names = lines((await wk('ps', '--format', '{{.Names}}')).stdout)
        return names.some(n => n.startsWith('api.')) && names.some(n => n.startsWith('web.'))
      },
      { timeoutMs: 30_000, what: "a task of each service in the worker's docker ps" },
    )
    const mine = lines(await ok('service', 'ps', '-q', '--no-trunc', '-f', `node=${w1.name}`, '-f', 'desired-state=running', 'web', 'api'))
    t.same(names.map(n => n.split('.')[2]).sort(), mine.sort(), "the worker's running tasks, and only those")
    const web = names.find(n => n.startsWith('web.'))!
    t.match(web, /^web\.[1-3]\.[0-9a-z]{25}$/, 'named <service>.<slot>.<task id>')
    t.match(names.find(n => n.startsWith('api.'))!, new RegExp(`^api\\.${w1.id}\\.[0-9a-z]{25}$`), 'a global task named by its node')
    const table = lines((await wk('ps')).stdout)
    t.match(table[0], /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/)
    t.match(table.find(l => l.endsWith(web)), /^[0-9a-z]{12}\s+alpine(:latest)?\s+"sh -c while true; d…"\s+.+ ago\s+Up .+\s+web\.\d\./)
    const inspected = JSON.parse((await wk('inspect', web)).stdout)[0]
    t.equal(inspected.Name, `/${web}`)
    t.equal(inspected.State.Status, 'running')
    t.match(inspected.Config.Labels, {
      'com.docker.swarm.service.name': 'web',
      'com.docker.swarm.task.name': web,
      'com.docker.swarm.task.id': web.split('.')[2],
      'com.docker.swarm.node.id': w1.id,
      'com.docker.swarm.task': '',
    })
    t.same(inspected.Config.Entrypoint, null)
    t.same([inspected.Path, inspected.Args[0]], ['sh', '-c'])
    // A task that has just started may have printed one line so far.
    await waitUntil(async () => lines((await wk('logs', web)).stdout).length >= 2, { timeoutMs: 10_000, what: 'two lines of output' })
    const logs = await wk('logs', '--tail', '2', web)
    t.match(logs.stdout, /^hello from [1-3]\nhello from [1-3]\n$/, `docker logs: ${logs.stderr}`)
    t.same(lines((await wk('ps', '-q', '-f', 'label=com.docker.swarm.service.name=api')).stdout).length, 1)
    t.equal((await wk('logs', 'nosuch')).stderr.trim(), 'Error response from daemon: No such container: nosuch')
    t.equal((await wk('ps', '-f', 'ancestor=alpine')).code, 1, 'a filter swarmd cannot apply is refused, not ignored')
    // The seed's last step on the manager too: it runs tasks as well.
    t.ok(lines((await dk('ps', '-q')).stdout).length >= 1)
  })

  await t.test("Docker's texts", async t => {
    let r = await dk('service', 'create', '-d', '--name', 'web', 'alpine', 'true')
    t.equal(r.stderr.trim(), 'Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists')
    r = await dk('node', 'update', '--availability', 'foo', w2.name)
    t.equal(r.stderr.trim(), 'Error response from daemon: invalid Availability: "foo"')
    r = await swarmctl(mgr.sock, 'node', 'update', '--availability', 'foo', w2.name)
    t.equal(r.stderr.trim(), 'Error response from daemon: invalid Availability: "foo"', 'swarmctl alike')
    t.equal((await ok('node', 'update', '--availability', 'DRAIN', w2.name)).trim(), w2.name, 'in any case, as moby')
    t.equal((await ok('node', 'inspect', '--format', '{{.Spec.Availability}}', w2.name)).trim(), 'drain')
    await ok('node', 'update', '--availability', 'active', w2.name)
  })

  await t.test('node inspect --pretty: the Engine and TLS Info blocks', async t => {
    const out = await ok('node', 'inspect', '--pretty', w1.name)
    t.match(out, /\nPlugins:\n Network:\t\toverlay\nEngine Version:\t\t0\.1\.0\n/)
    t.match(out, /\nTLS Info:\n TrustRoot:\n-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n\n Issuer Subject:\t\n Issuer Public Key:\t[A-Za-z0-9+/=]+\n/)
    const trust = (await ok('swarm', 'ca')).trim()
    t.ok(out.includes(trust), 'the trust root `swarm ca` prints')
    t.equal((await swarmctl(mgr.sock, 'node', 'inspect', '--pretty', w1.name)).stdout.trim(), out.trim(), 'swarmctl prints the same')
  })

  await t.test('docker events: services, nodes, secrets and networks, with --since, --until and filters', async t => {
    await ok('service', 'scale', '-d', 'web=4')
    await ok('service', 'update', '-d', '--image', 'alpine:3', 'web')
    await ok('secret', 'create', 'pw', '/etc/hostname')
    await ok('secret', 'rm', 'pw')
    await ok('network', 'create', '-d', 'overlay', 'backend')
    await ok('network', 'rm', 'backend')
    await ok('service', 'rm', 'api')
    const past = async (...filters: string[]): Promise<string[]> => lines(await ok('events', '--since', since, '--until', '0s', ...filters.flatMap(f => ['-f', f])))
    let evs: string[] = []
    await waitUntil(async () => (evs = await past()).some(l => / service remove .* \(name=api\)$/.test(l)), { timeoutMs: 10_000, what: 'the removal of api among the kept events' })
    const text = evs.join('\n')
    t.match(text, /^\S+Z service create [0-9a-z]{25} \(name=web\)$/m, 'service create, with the time docker prints')
    t.match(text, / service update [0-9a-z]{25} \(name=web, replicas\.new=4, replicas\.old=3\)$/m, 'a scale says the replicas')
    t.match(text, / service update [0-9a-z]{25} \(image\.new=alpine:3, image\.old=alpine(:latest)?, name=web, updatestate\.new=updating\)$/m, 'an update its image and update state')
    t.match(text, / secret create [0-9a-z]{25} \(name=pw\)$/m)
    t.match(text, / secret remove [0-9a-z]{25} \(name=pw\)$/m)
    t.match(text, / network create [0-9a-z]{25} \(name=backend\)$/m)
    t.match(text, / network remove [0-9a-z]{25} \(name=backend\)$/m)
    t.match(text, new RegExp(` node update ${w2.id} \\(availability\\.new=drain, availability\\.old=active, name=${w2.name}\\)$`, 'm'))
    t.same((await past('type=secret')).map(l => l.split(' ')[2]), ['create', 'remove'], 'type filter')
    t.ok((await past('event=remove')).every(l => / remove /.test(l)), 'event filter')
    t.same((await past('service=api', 'type=service')).map(l => l.split(' ').slice(1, 3).join(' ')), ['service create', 'service remove'], 'by name')
    t.ok((await past('scope=swarm')).length >= evs.length, 'every one is scope swarm')
    t.same(await past('scope=local'), [])
    const json = JSON.parse(lines(await ok('events', '--since', since, '--until', '0s', '-f', 'type=network', '--format', '{{json .}}'))[0]!)
    t.match(json, { Type: 'network', Action: 'create', Actor: { Attributes: { name: 'backend' } }, scope: 'swarm' })
    t.ok(json.timeNano > 1e18, 'timeNano in nanoseconds')
    await waitUntil(() => live.lines.some(l => l.includes('"Action":"remove"') && l.includes('"name":"api"')), { timeoutMs: 10_000, what: 'the live stream saw the removal too' })
    const streamed = live.lines.map(l => JSON.parse(l) as { Type: string; Action: string; Actor: { Attributes: { name: string } } })
    t.ok(['service create web', 'secret create pw', 'network remove backend', 'service remove api'].every(x => streamed.some(e => `${e.Type} ${e.Action} ${e.Actor.Attributes.name}` === x)), 'the live stream, as it happened')
    const viaCtl = await swarmctl(mgr.sock, 'events', '--since', since, '--until', '0s', '-f', 'type=secret')
    t.same(lines(viaCtl.stdout).map(l => l.split(' ').slice(1, 3).join(' ')), ['secret create', 'secret remove'], 'swarmctl events prints docker\'s lines')
  })

  await t.test('after a rolling update, scale follows the new replicas to convergence', async t => {
    await waitUntil(async () => (await ok('service', 'inspect', '--format', '{{.UpdateStatus.State}}', 'web')).trim() === 'completed', { timeoutMs: 60_000, what: "web's update completed" })
    const r = await dk('service', 'scale', 'web=2')
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /^web scaled to 2\n[^]*overall progress: 2 out of 2 tasks[^]*verify: Service (web )?converged/, 'progress, not an instant return (docker 28 names the service)')
    t.equal((await ok('service', 'inspect', '--format', '{{json .UpdateStatus}}', 'web')).trim(), 'null', 'no update status, as swarmkit resets it')
    const viaCtl = await swarmctl(mgr.sock, 'service', 'scale', 'web=3')
    t.match(viaCtl.stdout, /overall progress: 3 out of 3 tasks[^]*verify: Service converged/, 'swarmctl alike')
  })

  await t.test('a node that leaves and joins again is a new node, with a new ID', async t => {
    const wk = dockerOn(w2.sock)
    const before = w2.id!
    t.equal((await wk('swarm', 'leave')).stdout.trim(), 'Node left the swarm.')
    const token = (await ok('swarm', 'join-token', '-q', 'worker')).trim()
    const r = await wk('swarm', 'join', '--token', token, '--advertise-addr', w2.ip, `${mgr.ip}:2377`)
    t.equal(r.stdout.trim(), 'This node joined a swarm as a worker.', r.stderr)
    const info = JSON.parse((await wk('info', '--format', '{{json .Swarm}}')).stdout)
    t.not(info.NodeID, before, 'a new node ID')
    await waitUntil(async () => /Ready/.test(await ok('node', 'ls', '-f', `id=${info.NodeID}`)), { timeoutMs: 30_000, what: 'the new node Ready' })
    t.match(await ok('node', 'ls', '-f', `id=${before}`), /Down/, 'the old one is Down, as Docker shows it until it is removed')
    const down = new RegExp(` node update ${before} \\(name=${w2.name}, state\\.new=down, state\\.old=ready\\)$`, 'm')
    await waitUntil(async () => down.test(await ok('events', '--since', since, '--until', '0s', '-f', 'type=node', '-f', `node=${before}`)), { timeoutMs: 10_000, what: 'the event of the old node going down' })
    t.pass('an event said it went down')
    w2.id = info.NodeID
    t.ok(ids().includes(info.NodeID))
  })
})
