/**
 * Services on three daemons on loopback (127.0.0.41-43, the manager on .43),
 * tasks as host processes, driven by swarmctl and the docker CLI: the seed's
 * walkthrough (create helloworld, inspect, ps, scale to 5, logs, rm), spread,
 * drain and back, kill -9 of a worker (its tasks run elsewhere; restarted, no
 * slot runs twice), a rolling update and a rollback, a global service, a
 * failing command under the restart policy, and secrets (never on disk in
 * plaintext).
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loopbackSwarm, runningTasks, secs, swarmctl, taskProcesses } from './helpers/daemon.js'
import type { TaskRow } from './helpers/hosts.js'
import { DOCKER, dockerCliMissing, testNeeding } from './helpers/prerequisites.js'
import { run, sleep, waitUntil } from './helpers/procs.js'


/** Every file under `dir`, for the plaintext check. */
function filesUnder(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir)) {
    const p = join(dir, e)
    const st = statSync(p, { throwIfNoEntry: false })
    if (!st) continue
    if (st.isDirectory()) out.push(...filesUnder(p))
    else if (st.isFile()) out.push(p)
  }
  return out
}

t.test('services on a three-node swarm', async t => {
  const { hosts, ids, start, ctl } = await loopbackSwarm(t, { prefix: 'services', name: i => `docker-swarm-${i}`, ip: i => `127.0.0.4${i}` })
  const [w1, w2, mgr] = hosts
  const ps = async (svc: string, ...flags: string[]): Promise<TaskRow[]> => {
    const out = await ctl('service', 'ps', '--no-trunc', ...flags, svc)
    const lines = out.trimEnd().split('\n')
    const head = lines[0]!
    const col = (name: string): number => head.indexOf(name)
    const cut = (l: string, a: string, b?: string): string => l.slice(col(a), b ? col(b) : undefined).trim()
    return lines.slice(1).map(l => ({
      id: cut(l, 'ID', 'NAME'),
      name: cut(l, 'NAME', 'IMAGE'),
      node: cut(l, 'NODE', 'DESIRED STATE'),
      desired: cut(l, 'DESIRED STATE', 'CURRENT STATE'),
      current: cut(l, 'CURRENT STATE', 'ERROR'),
      error: cut(l, 'ERROR', 'PORTS'),
    }))
  }
  const running = async (svc: string): Promise<TaskRow[]> => (await ps(svc)).filter(r => r.desired === 'Running' && r.current.startsWith('Running'))


  // The walkthrough: create (with docker's progress lines off a terminal), inspect, ps.
  const loop = 'while true; do echo "hello from $SWARMD_TASK_SLOT"; sleep 0.3; done'
  let out = await ctl('service', 'create', '--replicas', '1', '--name', 'helloworld', 'alpine', 'sh', '-c', loop)
  t.match(out, /^[0-9a-z]{25}\n/, 'create prints the service ID first')
  t.match(out, /overall progress: 1 out of 1 tasks/)
  t.match(out, /verify: Service converged\n$/, 'and ends when the service converged')
  out = await ctl('service', 'inspect', '--pretty', 'helloworld')
  t.match(out, /Name:\s+helloworld/)
  t.match(out, /Replicas:\s+1/)
  const inspected = JSON.parse(await ctl('service', 'inspect', 'helloworld'))
  t.equal(inspected[0].Spec.TaskTemplate.ContainerSpec.Image, 'alpine')
  let rows = await running('helloworld')
  t.equal(rows.length, 1, 'one task running')
  t.equal(runningTasks(ids(), 'helloworld').size, 1, 'as one process on the host')

  // Scale to 5: spread over the three nodes (2, 2, 1).
  out = await ctl('service', 'scale', 'helloworld=5')
  t.match(out, /^helloworld scaled to 5\n/)
  t.match(out, /verify: Service converged\n$/)
  rows = await running('helloworld')
  t.equal(rows.length, 5)
  const perNode = hosts.map(h => rows.filter(r => r.node === h.name).length).sort()
  t.same(perNode, [1, 2, 2], 'spread: fewest tasks of the service first')
  t.equal(runningTasks(ids(), 'helloworld').size, 5)

  // Logs from every node, with docker's prefix.
  out = await ctl('service', 'logs', '--tail', '2', 'helloworld')
  const logLines = out.trimEnd().split('\n')
  t.ok(logLines.length >= 5, `logs from the tasks (${logLines.length} lines)`)
  for (const l of logLines) t.match(l, /^helloworld\.[1-5]\.[0-9a-z]{12}@docker-swarm-[123]\s{4}\| hello from [1-5]$/)
  t.same(new Set(logLines.map(l => /@(docker-swarm-\d)/.exec(l)?.[1])).size, 3, 'from all three nodes')
  // The docker CLI reads the same API.
  await testNeeding(t, 'the docker CLI reads the same API', dockerCliMissing, async t => {
    const dk = (...args: string[]) => run(DOCKER!, ['-H', `unix://${mgr.sock}`, ...args])
    let r = await dk('service', 'ls')
    t.match(r.stdout, /helloworld\s+replicated\s+5\/5\s+alpine/, `docker service ls: ${r.stderr}`)
    r = await dk('service', 'ps', '-q', 'helloworld')
    t.equal(r.stdout.trim().split('\n').length, 5, 'docker service ps')
    r = await dk('service', 'inspect', '--format', '{{.Spec.Mode.Replicated.Replicas}}', 'helloworld')
    t.equal(r.stdout.trim(), '5', 'docker service inspect --format')
    r = await dk('service', 'logs', '--tail', '1', '--no-task-ids', 'helloworld')
    t.match(r.stdout, /^helloworld\.[1-5]@docker-swarm-[123]\s+\| hello from [1-5]$/m, `docker service logs: ${r.stderr}`)
    r = await dk('secret', 'create', 'dockersecret', join(import.meta.dirname, 'services.test.ts'))
    t.match(r.stdout, /^[0-9a-z]{25}\n$/, `docker secret create: ${r.stderr}`)
    t.match((await dk('secret', 'ls')).stdout, /dockersecret/)
    t.equal((await dk('secret', 'rm', 'dockersecret')).stdout, 'dockersecret\n')
  })

  // Drain moves tasks away; active again takes new ones (nothing is rebalanced back, as in swarm).
  await ctl('node', 'update', '--availability', 'drain', w1.name)
  await waitUntil(async () => {
    const r = await running('helloworld')
    return r.length === 5 && r.every(x => x.node !== w1.name)
  }, { timeoutMs: 30_000, what: 'tasks off the drained node' })
  t.pass('drain: the five tasks run on the other nodes')
  await waitUntil(() => runningTasks([w1.id!], 'helloworld').size === 0, { timeoutMs: 20_000, what: "the drained node's processes gone" })
  await ctl('node', 'update', '--availability', 'active', w1.name)

  // A worker killed -9: its tasks run elsewhere; restarted, its stale tasks stop (a slot never runs twice).
  const onW2 = (await running('helloworld')).filter(r => r.node === w2.name).length
  t.ok(onW2 > 0, `docker-swarm-2 runs ${onW2} tasks`)
  const t0 = performance.now()
  w2.proc!.kill('SIGKILL')
  await w2.proc!.exited
  await waitUntil(async () => {
    const r = await running('helloworld')
    return r.length === 5 && r.every(x => x.node !== w2.name)
  }, { timeoutMs: 60_000, what: 'all tasks running elsewhere' })
  t.comment(`kill -9 of a worker: all tasks running elsewhere after ${secs(performance.now() - t0)}`)
  t.ok(runningTasks([w2.id!], 'helloworld').size > 0, "the dead daemon's processes still run (nobody stopped them)")
  await start(w2)
  await waitUntil(() => runningTasks([w2.id!], 'helloworld').size === 0, { timeoutMs: 30_000, what: 'stale tasks on the restarted node stopped' })
  await sleep(1_000)
  t.equal(runningTasks(ids(), 'helloworld').size, 5, 'exactly five task processes after the restart')
  t.equal((await running('helloworld')).length, 5)

  // A rolling update, two at a time, then a rollback.
  out = await ctl('service', 'update', '--env-add', 'VERSION=2', '--update-parallelism', '2', 'helloworld')
  t.match(out, /verify: Service converged\n$/)
  let svc = JSON.parse(await ctl('service', 'inspect', 'helloworld'))[0]
  t.equal(svc.UpdateStatus.State, 'completed')
  t.same(svc.Spec.TaskTemplate.ContainerSpec.Env, ['VERSION=2'])
  rows = await ps('helloworld')
  t.ok(rows.some(r => r.name.startsWith('\\_ helloworld.')), 'ps shows the replaced tasks as history rows')
  t.equal(rows.filter(r => r.desired === 'Running').length, 5)
  out = await ctl('service', 'rollback', 'helloworld')
  t.match(out, /^helloworld\nrollback: manually requested rollback\n/, 'rollback prints the service and the reason')
  t.match(out, /^overall progress: rolling back update: 5 out of 5 tasks$/m)
  t.match(out, /\nverify: Service converged\n(?:rollback: rollback completed\n)?$/, 'and ends when the service converged')
  await waitUntil(async () => JSON.parse(await ctl('service', 'inspect', 'helloworld'))[0].UpdateStatus?.State === 'rollback_completed', { timeoutMs: 60_000, what: 'rollback completed' })
  svc = JSON.parse(await ctl('service', 'inspect', 'helloworld'))[0]
  t.notOk(svc.Spec.TaskTemplate.ContainerSpec.Env, 'the previous spec is back')
  const procs = taskProcesses(ids(), 'helloworld')
  t.equal(new Set(procs.map(p => p.task)).size, 5, 'five tasks run')
  t.notOk(procs.some(p => p.env.includes('VERSION=2')), 'none of them with the rolled back VERSION=2')

  // A global service: one task per node.
  out = await ctl('service', 'create', '--mode', 'global', '--name', 'agent', '-d', 'busybox', 'sleep', '600')
  await waitUntil(async () => (await running('agent')).length === 3, { timeoutMs: 30_000, what: 'the global service on every node' })
  t.same(new Set((await running('agent')).map(r => r.node)).size, 3, 'global: one task on each node')

  // A failing command: retried per the restart policy, its error in ps.
  await ctl('service', 'create', '--name', 'bad', '-d', '--restart-delay', '100ms', '--restart-max-attempts', '2', 'busybox', 'sh', '-c', 'exit 3')
  await waitUntil(async () => (await ps('bad')).filter(r => r.error.includes('task: non-zero exit (3)')).length === 3, { timeoutMs: 30_000, what: 'three failed attempts' })
  await sleep(1_000)
  rows = await ps('bad')
  t.equal(rows.length, 3, 'the first run and two restarts, then no more')
  t.match(rows[0]!.current, /^Failed/)

  // Secrets: sealed at rest, handed only to the task that uses them, as a 0400 file.
  const secret = 's3cr3t-value-7f2c9'
  execFileSync(process.execPath, [join(import.meta.dirname, '../bin/swarmctl.js'), '-H', `unix://${mgr.sock}`, 'secret', 'create', 'mysecret', '-'], { input: secret })
  t.match(await ctl('secret', 'ls'), /mysecret/)
  // The task proves it read the value by its digest: printing it would put it in the task's log file.
  await ctl('service', 'create', '--name', 'sec', '--secret', 'mysecret', 'busybox', 'sh', '-c', 'ls -l "$SWARMD_SECRETS_DIR"; sha256sum "$SWARMD_SECRETS_DIR/mysecret"; sleep 600')
  out = await ctl('service', 'logs', '--raw', 'sec')
  t.match(out, createHash('sha256').update(secret).digest('hex'), 'the task reads the secret')
  t.match(out, /-r-{8}/, 'from a file of mode 0400')
  const r = await swarmctl(mgr.sock, 'secret', 'rm', 'mysecret')
  t.match(r.stderr, /secret 'mysecret' is in use by the following service: sec/)
  for (const h of hosts) {
    for (const f of filesUnder(h.dir)) t.notOk(readFileSync(f).includes(secret), `no plaintext secret in ${f}`)
  }

  // Bad specs: Docker's 400s naming what is wrong, and nothing created.
  const bad = async (...args: string[]): Promise<string> => (await swarmctl(mgr.sock, 'service', 'create', '-d', ...args)).stderr
  t.match(await bad('--name', 'c1', '--constraint', 'node.hostname=x', 'busybox', 'true'), /^Error response from daemon: .*invalid constraint "node.hostname=x": constraint expected one operator from ==, !=/)
  t.equal(await bad('--name', 'c2', '--secret', 'nope', 'busybox', 'true'), 'secret not found: nope\n')
  t.match(await bad('--name', 'c3', '--network', 'nonet', 'busybox', 'true'), /network nonet not found/)
  await ctl('service', 'create', '-d', '--name', 'p1', '--publish', '28501:80', 'busybox', 'sleep', '600')
  t.match(await bad('--name', 'c4', '--publish', '28501:81', 'busybox', 'true'), /port '28501' is already in use by service 'p1'/)
  t.match(await bad('--name', 'helloworld', 'busybox', 'true'), /already exists/)
  t.notMatch(await ctl('service', 'ls'), /^\S+\s+c[1-4]\s/m, 'none of them was created')
  await ctl('service', 'rm', 'p1')

  // rm: the services and their processes go.
  t.equal(await ctl('service', 'rm', 'helloworld', 'agent', 'bad', 'sec'), 'helloworld\nagent\nbad\nsec\n')
  await waitUntil(() => ['helloworld', 'agent', 'sec'].every(s => runningTasks(ids(), s).size === 0), { timeoutMs: 30_000, what: 'every task process gone' })
  t.equal(await ctl('secret', 'rm', 'mysecret'), 'mysecret\n', 'an unused secret can be removed')
  t.equal(await ctl('service', 'ls', '-q'), '')
})
