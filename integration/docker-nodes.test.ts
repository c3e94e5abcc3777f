/**
 * Swarm hosts as containers: three containers docker-swarm-1..3 on a
 * user-defined bridge network of a private engine, from an image the harness
 * builds from this machine's node and the built project, each running swarmd
 * with the process executor (tasks are processes inside the container). The
 * seed's walkthrough (init, join, node ls, create helloworld, inspect, ps,
 * scale to 5, logs), then faults done to containers: `docker pause` of a
 * worker (Down, its tasks elsewhere; unpaused: Ready and exactly five tasks),
 * `docker network disconnect` of one (a partition; connected again: the same)
 * and `docker kill` of one (Down, its tasks elsewhere), then rm; and a fourth
 * node with the docker executor beside them, running a global service. Timings
 * are printed as JSON lines.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ApiClient } from '../lib/api/client.js'
import type { Task } from '../lib/types/task.js'
import { runningTasks, swarmctl } from './helpers/daemon.js'
import { createNetwork, execSwarmctl, nodeImage, nodeImageUnavailable, startNode, startNodeInEngineNetns, type DockerNode } from './helpers/docker-nodes.js'
import { dockerdUnavailable, startDockerd, TEST_IMAGE } from './helpers/dockerd.js'
import { testNeeding } from './helpers/prerequisites.js'
import { sleep, waitUntil, type ManagedProcess } from './helpers/procs.js'

const unavailable = dockerdUnavailable() ?? nodeImageUnavailable()

/** What the tests read of Docker's Node object. */
interface Node {
  ID: string
  Description: { Hostname: string }
  Status: { State: string; Addr: string }
}

testNeeding(t, 'a swarm of three container nodes', unavailable && `no docker nodes: ${unavailable}`, async t => {
  const began = performance.now()
  const timing = (event: string, ms: number, extra: Record<string, unknown> = {}): void => {
    t.comment(JSON.stringify({ event, ms: Math.round(ms), ...extra, at: Math.round(performance.now() - began) }))
  }
  const engine = await startDockerd()
  timing('engine up', performance.now() - began)
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-dnodes-'))
  let hostProc: ManagedProcess | undefined
  t.teardown(async () => {
    await hostProc?.stop()
    // The engine takes the containers, and with them every task process, down.
    await engine.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const image = await nodeImage(engine)
  timing('image', image.tarMs + image.importMs, { bytes: image.bytes, tarMs: Math.round(image.tarMs), importMs: Math.round(image.importMs) })
  t.ok(image.bytes < 200e6, `the image is lean (${(image.bytes / 1e6).toFixed(1)} MB)`)

  const net = 20 + (process.pid % 200)
  await createNetwork(engine, 'swarmnet', `172.30.${net}.0/24`)
  let t0 = performance.now()
  const nodes = await Promise.all(
    [1, 2, 3].map(i => startNode(engine, { name: `docker-swarm-${i}`, network: 'swarmnet', ip: `172.30.${net}.${10 + i}`, sockDir: join(dir, `n${i}`) })),
  )
  timing('containers up', performance.now() - t0)
  const [w1, w2, mgr] = nodes as [DockerNode, DockerNode, DockerNode]
  const ids = new Map<string, string>()

  const ctl = async (...args: string[]): Promise<string> => {
    const r = await swarmctl(mgr.sock, ...args)
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`)
    return r.stdout
  }
  // Polls ask the manager's API directly: a swarmctl process per poll costs a second on a loaded machine.
  const api = new ApiClient(mgr.sock)
  /** Hostname → STATUS state (ready, down) per the manager. */
  const statuses = async (): Promise<Map<string, string>> =>
    new Map((await api.call<Node[]>('GET', '/nodes')).map(n => [n.Description.Hostname, n.Status.State]))
  /** The running tasks of `svc` (desired and current state running), with their nodes' hostnames. */
  const running = async (svc = 'helloworld'): Promise<{ node: string }[]> => {
    const host = new Map((await api.call<Node[]>('GET', '/nodes')).map(n => [n.ID, n.Description.Hostname]))
    const tasks = await api.call<Task[]>('GET', `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: [svc] }))}`)
    return tasks.filter(x => x.DesiredState === 'running' && x.Status.State === 'running').map(x => ({ node: host.get(x.NodeID ?? '') ?? '' }))
  }
  const waitStatus = (n: { name: string }, status: string, timeoutMs = 60_000): Promise<unknown> =>
    waitUntil(async () => (await statuses()).get(n.name) === status, { timeoutMs, intervalMs: 100, what: `${n.name} ${status}` })
  /** Task processes of helloworld in all three containers, counted on the host (container processes are host processes). */
  const processes = (): number => runningTasks([...ids.values()], 'helloworld').size
  const elsewhere = (gone: DockerNode): Promise<unknown> =>
    waitUntil(async () => {
      const r = await running()
      return r.length === 5 && r.every(x => x.node !== gone.name)
    }, { timeoutMs: 60_000, intervalMs: 100, what: `five tasks running off ${gone.name}` })

  // init on docker-swarm-3 with its container address; workers join, one of them through swarmctl inside its container.
  t0 = performance.now()
  await ctl('swarm', 'init', '--advertise-addr', mgr.ip)
  timing('swarm init', performance.now() - t0)
  const token = (await ctl('swarm', 'join-token', '-q', 'worker')).trim()
  t0 = performance.now()
  const [viaExec, viaSock] = await Promise.all([
    execSwarmctl(engine, w1, 'swarm', 'join', '--token', token, '--advertise-addr', w1.ip, `${mgr.ip}:2377`),
    swarmctl(w2.sock, 'swarm', 'join', '--token', token, '--advertise-addr', w2.ip, `${mgr.ip}:2377`),
  ])
  t.equal(viaExec.stdout, 'This node joined a swarm as a worker.\n', `join inside the container: ${viaExec.stderr}`)
  t.equal(viaSock.stdout, 'This node joined a swarm as a worker.\n', `join through the mounted socket: ${viaSock.stderr}`)
  await waitUntil(async () => [...(await statuses()).values()].filter(s => s === 'ready').length === 3, { timeoutMs: 30_000, what: 'three Ready nodes' })
  timing('joined, three Ready', performance.now() - t0)
  const ls = await execSwarmctl(engine, mgr, 'node', 'ls')
  t.match(ls.stdout, /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION\n/, 'node ls inside the manager container')
  t.match(ls.stdout, /^[0-9a-z]{25} \*\s+docker-swarm-3\s+Ready\s+Active\s+Leader\s/m, 'the manager is docker-swarm-3, the leader')
  for (const w of [w1, w2]) t.match(ls.stdout, new RegExp(`^[0-9a-z]{25}\\s+${w.name}\\s+Ready\\s+Active\\s+\\S`, 'm'), `${w.name} a Ready worker`)
  for (const n of await api.call<Node[]>('GET', '/nodes')) {
    ids.set(n.Description.Hostname, n.ID)
    t.equal(n.Status.Addr, nodes.find(x => x.name === n.Description.Hostname)?.ip, `${n.Description.Hostname}'s address is its container's`)
  }

  // The walkthrough: helloworld is a busybox shell loop run by the process executor inside a container.
  const loop = 'while true; do echo "hello from $SWARMD_TASK_SLOT"; sleep 0.3; done'
  t0 = performance.now()
  let out = await ctl('service', 'create', '--replicas', '1', '--name', 'helloworld', 'busybox', 'sh', '-c', loop)
  timing('service create converged', performance.now() - t0)
  t.match(out, /^[0-9a-z]{25}\n/)
  t.match(out, /verify: Service converged\n$/)
  out = await ctl('service', 'inspect', '--pretty', 'helloworld')
  t.match(out, /Name:\s+helloworld/)
  t.match(out, /Replicas:\s+1/)
  t.match(await ctl('service', 'ps', 'helloworld'), /^[0-9a-z]{12}\s+helloworld\.1\s+busybox\s+docker-swarm-[123]\s+Running\s+Running /m, 'ps: one task running')
  t.equal(processes(), 1, 'as one process')

  t0 = performance.now()
  out = await ctl('service', 'scale', 'helloworld=5')
  timing('scale to 5 converged', performance.now() - t0)
  t.match(out, /verify: Service converged\n$/)
  let rows = await running()
  t.equal(rows.length, 5)
  t.same(nodes.map(n => rows.filter(x => x.node === n.name).length).sort(), [1, 2, 2], 'spread over the three containers')
  t.equal(processes(), 5)

  out = await ctl('service', 'logs', '--tail', '2', 'helloworld')
  const logLines = out.trimEnd().split('\n')
  for (const l of logLines) t.match(l, /^helloworld\.[1-5]\.[0-9a-z]{12}@docker-swarm-[123]\s{4}\| hello from [1-5]$/)
  t.equal(new Set(logLines.map(l => /@(docker-swarm-\d)/.exec(l)?.[1])).size, 3, 'logs from all three containers')

  // docker pause of the worker with the most tasks: its gossip stops, it goes Down, its tasks run elsewhere.
  const busiest = (ws: DockerNode[]): DockerNode => ws.reduce((a, b) => (rows.filter(x => x.node === b.name).length > rows.filter(x => x.node === a.name).length ? b : a))
  const paused = busiest([w1, w2])
  t0 = performance.now()
  t.equal((await engine.cli(['pause', paused.name])).code, 0, `docker pause ${paused.name}`)
  await waitStatus(paused, 'down')
  const pauseDown = performance.now() - t0
  await elsewhere(paused)
  const pauseMoved = performance.now() - t0
  t.pass(`paused ${paused.name}: Down, its tasks running elsewhere`)
  t0 = performance.now()
  t.equal((await engine.cli(['unpause', paused.name])).code, 0, `docker unpause ${paused.name}`)
  await waitStatus(paused, 'ready')
  const unpauseReady = performance.now() - t0
  // Its old tasks were replaced while it was away: it stops them, so no slot runs twice.
  await waitUntil(() => processes() === 5, { timeoutMs: 30_000, what: `five task processes (have ${processes()})` })
  const unpauseFive = performance.now() - t0
  timing('docker pause', pauseDown, { down: Math.round(pauseDown), tasksElsewhere: Math.round(pauseMoved) })
  timing('docker unpause', unpauseReady, { ready: Math.round(unpauseReady), exactlyFive: Math.round(unpauseFive) })
  await sleep(1_000)
  t.equal(processes(), 5, 'exactly five task processes after the unpause')
  t.equal((await running()).length, 5, 'and five running tasks in ps')

  // docker network disconnect of the busiest worker (a partition): Down, its tasks elsewhere;
  // connected again at the same address: Ready, and its replaced tasks stopped.
  rows = await running()
  const cut = busiest([w1, w2])
  t0 = performance.now()
  t.equal((await engine.cli(['network', 'disconnect', 'swarmnet', cut.name])).code, 0, `docker network disconnect ${cut.name}`)
  await waitStatus(cut, 'down')
  const cutDown = performance.now() - t0
  await elsewhere(cut)
  const cutMoved = performance.now() - t0
  t0 = performance.now()
  t.equal((await engine.cli(['network', 'connect', '--ip', cut.ip, 'swarmnet', cut.name])).code, 0, `docker network connect ${cut.name}`)
  await waitStatus(cut, 'ready')
  const reconnectReady = performance.now() - t0
  // Settled: five running tasks in the manager's view and five task processes, twice a second apart.
  // Any other node seen Down meanwhile is a flap the healed partition caused (reported, not failed).
  const flapped = new Set<string>()
  const settled = async (): Promise<boolean> => {
    for (const [name, st] of await statuses()) if (name !== cut.name && st === 'down') flapped.add(name)
    return (await running()).length === 5 && processes() === 5
  }
  await waitUntil(async () => (await settled()) && (await sleep(1_000), await settled()), { timeoutMs: 60_000, intervalMs: 100, what: `five tasks after the partition healed (have ${processes()} processes)` })
  timing('docker network disconnect', cutDown, { down: Math.round(cutDown), tasksElsewhere: Math.round(cutMoved) })
  timing('docker network connect', reconnectReady, { ready: Math.round(reconnectReady), settled: Math.round(performance.now() - t0 - 1_000), othersSeenDown: [...flapped] })
  t.pass('partition healed: five running tasks, five processes')

  // docker kill of the worker that has tasks now: Down, its tasks elsewhere. First all three
  // Ready for a second, so a late flap from the healed partition is not taken for the kill's Down.
  const allReady = async (): Promise<boolean> => [...(await statuses()).values()].every(x => x === 'ready')
  await waitUntil(async () => (await allReady()) && (await sleep(1_000), await allReady()), { timeoutMs: 30_000, intervalMs: 100, what: 'three Ready nodes' })
  rows = await running()
  const killed = busiest([w1, w2])
  t.ok(rows.some(x => x.node === killed.name), `${killed.name} runs tasks`)
  t0 = performance.now()
  t.equal((await engine.cli(['kill', killed.name])).code, 0, `docker kill ${killed.name}`)
  await waitStatus(killed, 'down')
  const killDown = performance.now() - t0
  await elsewhere(killed)
  timing('docker kill', killDown, { down: Math.round(killDown), tasksElsewhere: Math.round(performance.now() - t0) })
  t.equal(processes(), 5, 'five task processes on the two live containers')

  t0 = performance.now()
  t.equal(await ctl('service', 'rm', 'helloworld'), 'helloworld\n')
  await waitUntil(() => processes() === 0, { timeoutMs: 30_000, what: 'every task process gone' })
  timing('service rm, processes gone', performance.now() - t0)

  // Mixed executors: a fourth node on the host, in the engine's network namespace at the bridge's
  // address, runs its tasks as containers of the engine (--executor docker). A global service runs
  // as a process in each live container node and as a container there.
  const host = { name: 'docker-host', ip: `172.30.${net}.1`, sock: join(dir, 'host.sock') }
  t0 = performance.now()
  hostProc = await startNodeInEngineNetns(engine, { ...host, dataDir: join(dir, 'host-data'), args: ['--executor', 'docker'] })
  const j = await swarmctl(host.sock, 'swarm', 'join', '--token', token, '--advertise-addr', host.ip, `${mgr.ip}:2377`)
  t.equal(j.code, 0, `the docker-executor node joins: ${j.stderr}`)
  await waitStatus(host, 'ready', 30_000)
  timing('docker-executor node Ready', performance.now() - t0)
  const hostId = (await api.call<Node>('GET', `/nodes/${host.name}`)).ID
  t0 = performance.now()
  out = await ctl('service', 'create', '--mode', 'global', '--name', 'mixed', '--stop-grace-period', '1s', TEST_IMAGE, 'sh', '-c', 'echo "mixed on $(hostname)"; sleep 600')
  timing('global service converged', performance.now() - t0)
  t.match(out, /verify: Service converged\n$/)
  const mixed = await running('mixed')
  const live = [w1, w2].filter(w => w !== killed).map(w => w.name)
  t.same(mixed.map(x => x.node).sort(), [...live, mgr.name, host.name].sort(), 'one task on each live node')
  t.equal(runningTasks([...ids.values()], 'mixed').size, 2, 'two of them processes in the container nodes')
  const containers = (await engine.cli(['ps', '--filter', 'label=com.docker.swarm.service.name=mixed', '--format', '{{.Names}} {{.Label "com.docker.swarm.node.id"}}'])).stdout.trim().split('\n')
  t.equal(containers.length, 1, 'and one a container of the engine')
  t.match(containers[0], new RegExp(`^mixed\\.${hostId}\\.[0-9a-z]{25} ${hostId}$`), 'named <service>.<node id>.<task id> as a global task')
  const mixedLogs = await ctl('service', 'logs', '--raw', 'mixed')
  t.match(mixedLogs, /^mixed on docker-swarm-3$/m, 'logs from the process task')
  t.match(mixedLogs, /^mixed on [0-9a-f]{12}$/m, 'and from the container task (its hostname is its container ID)')
  t.equal(await ctl('service', 'rm', 'mixed'), 'mixed\n')
  await waitUntil(async () => runningTasks([...ids.values()], 'mixed').size === 0 && (await engine.cli(['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=mixed'])).stdout.trim() === '', {
    timeoutMs: 30_000,
    what: 'the mixed tasks gone',
  })
  t.equal(await ctl('service', 'ls', '-q'), '')
  timing('total', performance.now() - began)
})
