/**
 * A swarmd node whose tasks run as Docker containers (`--executor docker`) on
 * a real, private engine: a service's containers named and labelled as
 * swarm's, its logs, a missing image rejected with Docker's text, kill -9 of
 * the daemon with its containers adopted (no duplicate), and rm.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startDaemon, swarmctl } from './helpers/daemon.js'
import { dockerdUnavailable, startDockerd, TEST_IMAGE } from './helpers/dockerd.js'
import { testNeeding } from './helpers/prerequisites.js'
import { sleep, waitUntil, type ManagedProcess } from './helpers/procs.js'

const unavailable = dockerdUnavailable()

testNeeding(t, 'services on the docker executor', unavailable && `no private dockerd: ${unavailable}`, async t => {
  const engine = await startDockerd()
  t.teardown(() => engine.stop())
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-docker-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sock = join(dir, 'd.sock')
  let proc: ManagedProcess | undefined
  const start = async (): Promise<void> => {
    proc = await startDaemon({ dataDir: join(dir, 'data'), sock, hostname: 'docker-node', args: ['--executor', 'docker'], env: { DOCKER_HOST: `unix://${engine.socket}` } })
  }
  t.teardown(() => proc?.stop())
  const ctl = async (...args: string[]): Promise<string> => {
    const r = await swarmctl(sock, ...args)
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  /** Running containers as the engine lists them: name → ID. */
  const containers = async (): Promise<Map<string, string>> => {
    const r = await engine.cli(['ps', '--format', '{{.Names}} {{.ID}}'])
    return new Map(r.stdout.trim().split('\n').filter(Boolean).map(l => l.split(' ') as [string, string]))
  }
  await start()
  await ctl('swarm', 'init', '--advertise-addr', '127.0.0.45', '--listen-addr', '127.0.0.45:2377')

  const out = await ctl('service', 'create', '--name', 'web', '--replicas', '2', '--env', 'SLOT={{.Task.Slot}}', TEST_IMAGE, 'sh', '-c', 'echo "hello from $SLOT"; sleep 600')
  t.match(out, /verify: Service converged\n$/)
  let running = await containers()
  t.equal(running.size, 2, 'two containers')
  for (const name of running.keys()) t.match(name, /^web\.[12]\.[0-9a-z]{25}$/, 'named <service>.<slot>.<task id>')
  const [first] = running.keys()
  const labels = JSON.parse((await engine.cli(['inspect', '--format', '{{json .Config.Labels}}', first!])).stdout)
  t.equal(labels['com.docker.swarm.service.name'], 'web')
  t.match(labels['com.docker.swarm.task.id'], /^[0-9a-z]{25}$/)

  const logs = await ctl('service', 'logs', 'web')
  t.match(logs, /^web\.1\.[0-9a-z]{12}@docker-node\s{4}\| hello from 1$/m)
  t.match(logs, /^web\.2\.[0-9a-z]{12}@docker-node\s{4}\| hello from 2$/m)

  // A missing image: rejected with Docker's text, retried per the restart policy, never running.
  await ctl('service', 'create', '--name', 'nope', '-d', '--restart-delay', '200ms', 'nope:latest')
  await waitUntil(async () => /Rejected.*"No such image: nope:latest"/.test(await ctl('service', 'ps', '--no-trunc', 'nope')), { timeoutMs: 30_000, what: 'the rejected task in ps' })
  t.pass('ps shows "No such image: nope:latest"')
  await ctl('service', 'rm', 'nope')

  // kill -9 of the daemon: the containers keep running; restarted, it adopts them (no duplicates).
  proc!.kill('SIGKILL')
  await proc!.exited
  t.same([...(await containers()).values()].sort(), [...running.values()].sort(), 'the containers outlive the daemon')
  await start()
  await sleep(3_000)
  const after = await containers()
  t.same([...after.values()].sort(), [...running.values()].sort(), 'adopted: the same two containers, no new ones')
  running = after

  t.equal(await ctl('service', 'rm', 'web'), 'web\n')
  await waitUntil(async () => (await containers()).size === 0, { timeoutMs: 30_000, what: 'containers stopped' })
  const all = await engine.cli(['ps', '-a', '-q'])
  t.equal(all.stdout.trim(), '', 'and removed')
})
