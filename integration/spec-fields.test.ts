/**
 * Issue 15's items 3, 4, 5 and 9 on three daemons on loopback (127.0.0.151-153,
 * the manager on .153), tasks as host processes, the docker CLI as the
 * reference where it formats what the API returns: healthchecks (starting
 * until healthy, an unhealthy task replaced with Docker's error), a missing
 * bind source rejected as Docker rejects it, `inspect --pretty` identical
 * to the docker CLI's, jobs (`0/1 (1/1 completed)`), the logs of crashed
 * tasks, a restart's replacement shown Ready during its delay, and `scale`
 * after an update followed to convergence.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loopbackSwarm } from './helpers/daemon.js'
import { DOCKER, dockerCliMissing, testNeeding } from './helpers/prerequisites.js'
import { run, waitUntil } from './helpers/procs.js'

t.test('spec fields, jobs, logs of ended tasks and progress on a three-node swarm', async t => {
  const { hosts, ctl } = await loopbackSwarm(t, { prefix: 'fields', name: i => `fields-${i}`, ip: i => `127.0.0.15${i}` })
  const mgr = hosts[2]
  const scratch = mkdtempSync(join(tmpdir(), 'swarmd-fields-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  /** `service ps --no-trunc` rows as {name, desired, current, error}. */
  const ps = async (svc: string): Promise<{ name: string; desired: string; current: string; error: string }[]> => {
    const lines = (await ctl('service', 'ps', '--no-trunc', svc)).trimEnd().split('\n')
    const head = lines[0]!
    const cut = (l: string, a: string, b: string): string => l.slice(head.indexOf(a), head.indexOf(b)).trim()
    return lines.slice(1).map(l => ({ name: cut(l, 'NAME', 'IMAGE'), desired: cut(l, 'DESIRED STATE', 'CURRENT STATE'), current: cut(l, 'CURRENT STATE', 'ERROR'), error: cut(l, 'ERROR', 'PORTS') }))
  }

  t.test('a healthcheck: starting until healthy; an unhealthy task is killed and replaced, with Docker\'s error', async t => {
    const flag = join(scratch, 'healthy')
    await ctl('service', 'create', '-d', '--name', 'health', '--health-cmd', `test -f ${flag}`, '--health-interval', '200ms', '--health-start-period', '60s', '--health-start-interval', '200ms', '--health-retries', '2', '--stop-grace-period', '1s', 'alpine', 'sleep', '1000')
    await waitUntil(async () => (await ps('health'))[0]?.current.startsWith('Starting'), { timeoutMs: 20_000, what: 'the task starting' })
    await new Promise(r => setTimeout(r, 1000))
    t.match((await ps('health'))[0], { desired: 'Running', current: /^Starting/ }, 'not running while its check has not passed')
    writeFileSync(flag, '')
    await waitUntil(async () => (await ps('health'))[0]?.current.startsWith('Running'), { timeoutMs: 20_000, what: 'the task running once healthy' })
    rmSync(flag)
    const failed = await waitUntil(async () => (await ps('health')).find(r => r.error.includes('unhealthy')), { timeoutMs: 20_000, what: 'the unhealthy task failed' })
    t.match(failed, { desired: 'Shutdown', current: /^Failed/, error: /^"task: non-zero exit \(\d+\): dockerexec: unhealthy container"$/ })
    const rows = await ps('health')
    t.ok(rows.length >= 2, 'a replacement in the slot')
    await ctl('service', 'rm', 'health')
  })

  t.test('a bind mount whose source does not exist is rejected as Docker rejects it', async t => {
    await ctl('service', 'create', '-d', '--name', 'nobind', '--mount', 'type=bind,source=/x-swarmd-missing,target=/data', 'alpine', 'true')
    const row = await waitUntil(async () => (await ps('nobind')).find(r => r.current.startsWith('Rejected')), { timeoutMs: 20_000, what: 'a rejected task' })
    t.equal(row.error, '"invalid mount config for type "bind": bind source path does not exist: /x-swarmd-missing"')
    await ctl('service', 'rm', 'nobind')
  })

  await testNeeding(t, 'inspect --pretty as the docker CLI prints it', dockerCliMissing, async t => {
    const dk = (...args: string[]) => run(DOCKER!, ['-H', `unix://${mgr.sock}`, ...args])
    const r = await dk(
      'service', 'create', '-d', '--name', 'pretty',
      '--health-cmd', 'true', '--health-interval', '5s', '--health-retries', '4', '--health-timeout', '2s',
      '--mount', 'type=bind,source=/etc,target=/conf,readonly', '--mount', 'type=tmpfs,target=/scratch',
      '--cap-add', 'CAP_NET_ADMIN', '--cap-drop', 'CAP_CHOWN', '--sysctl', 'net.core.somaxconn=1024', '--ulimit', 'nofile=1024:2048',
      '--log-driver', 'json-file', '--log-opt', 'max-size=1m', '--limit-pids', '20', '--stop-signal', 'SIGINT', '--read-only',
      'alpine', 'sleep', '100',
    )
    t.equal(r.code, 0, r.stderr)
    const docker = (await dk('service', 'inspect', '--pretty', 'pretty')).stdout
    const ours = await ctl('service', 'inspect', '--pretty', 'pretty')
    t.equal(ours, docker, 'swarmctl prints what the docker CLI prints')
    t.match(docker, /Mounts:\n Target:\t\/conf\n  Source:\t\/etc\n  ReadOnly:\ttrue\n  Type:\t\tbind\n/, 'the spec kept the mounts')
    t.match(docker, / Healthcheck:\n  Interval = 5s\n  Retries = 4\n/, 'and the healthcheck')
    const row = await waitUntil(async () => (await ps('pretty')).find(x => x.current.startsWith('Rejected')), { timeoutMs: 20_000, what: 'a rejected task' })
    t.match(row.error, /^"ContainerSpec\.ReadOnly is not supported by the process executor/, 'what a host process cannot have rejects the task by name')
    await ctl('service', 'rm', 'pretty')
  })

  t.test('jobs: run to completion, service ls as Docker, progress ends with job complete', async t => {
    const out = await ctl('service', 'create', '--name', 'job', '--mode', 'replicated-job', 'alpine', 'sh', '-c', 'echo job done')
    t.match(out, /job progress: 1 out of 1 complete|active tasks: 0 out of 0 tasks/)
    t.match(out, /job complete\n$/)
    t.match(await ctl('service', 'ls'), /job\s+replicated job\s+0\/1 \(1\/1 completed\)\s+alpine/)
    const rows = await ps('job')
    t.match(rows, [{ desired: 'Complete', current: /^Complete/ }], 'one task, complete')
    await ctl('service', 'create', '-d', '--name', 'gjob', '--mode', 'global-job', 'alpine', 'true')
    await waitUntil(async () => /gjob\s+global job\s+0\/0 \(3\/3 completed\)/.test(await ctl('service', 'ls')), { timeoutMs: 30_000, what: 'the global job complete on the three nodes' })
    await ctl('service', 'update', '-d', '--force', 'job')
    await waitUntil(async () => (await ps('job')).filter(x => x.current.startsWith('Complete')).length === 2, { timeoutMs: 30_000, what: 'an update runs the job again' })
    await testNeeding(t, 'the docker CLI', dockerCliMissing, async t => {
      const ls = await run(DOCKER!, ['-H', `unix://${mgr.sock}`, 'service', 'ls'])
      t.match(ls.stdout, /job\s+replicated job\s+0\/1 \(1\/1 completed\)/, ls.stderr)
    })
    await ctl('service', 'rm', 'job', 'gjob')
  })

  t.test('logs of crashed tasks stay while the history keeps them; the replacement waits at Ready', async t => {
    await ctl('service', 'create', '-d', '--name', 'crash', '--restart-delay', '3s', 'alpine', 'sh', '-c', 'echo "last words of $SWARMD_TASK_ID"; exit 1')
    const held = await waitUntil(async () => (await ps('crash')).find(r => r.desired === 'Ready'), { timeoutMs: 30_000, what: 'a replacement held at Ready' })
    t.match(held.current, /^(Ready|Preparing|Accepted|Assigned|Pending)/, 'shown as Docker shows it during the restart delay')
    await waitUntil(async () => (await ps('crash')).filter(r => r.current.startsWith('Failed')).length >= 2, { timeoutMs: 30_000, what: 'two failed tasks' })
    const logs = (await ctl('service', 'logs', '--no-task-ids', 'crash')).trim().split('\n')
    const ids = new Set(logs.map(l => /last words of (\w+)/.exec(l)?.[1]).filter(Boolean))
    t.ok(ids.size >= 2, `the output of each ended task: ${logs.join(' / ')}`)
    await testNeeding(t, 'the docker CLI', dockerCliMissing, async t => {
      const r = await run(DOCKER!, ['-H', `unix://${mgr.sock}`, 'service', 'logs', 'crash'])
      t.match(r.stdout, /^crash\.1\.\w{12}@fields-\d\s+\| last words of \w+$/m, r.stderr)
    })
    await ctl('service', 'rm', 'crash')
  })

  t.test('scale after an update is followed to convergence', async t => {
    await ctl('service', 'create', '-d', '--name', 'web', '--update-monitor', '1s', 'alpine', 'sleep', '1000')
    await ctl('service', 'update', '--env-add', 'V=2', 'web')
    const out = await ctl('service', 'scale', 'web=3')
    t.match(out, /^web scaled to 3\noverall progress: 0 out of 3 tasks\n/, 'the progress of the new convergence')
    t.match(out, /overall progress: 3 out of 3 tasks\n[\s\S]*verify: Service converged\n$/)
    await ctl('service', 'rm', 'web')
  })
})
