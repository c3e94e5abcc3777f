/**
 * The docker executor against a real engine: a private dockerd (its own
 * roots, socket, containerd and network namespace) with a local busybox
 * image. Covers the task states, Swarm's names and labels, logs, stop and
 * remove, ports, secrets on a tmpfs, and recovery by a second executor.
 * The stream decoders are checked first, with or without an engine.
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs'
import { lstat, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import Docker from 'dockerode'
import fc from 'fast-check'
import t from 'tap'
import { DockerExecutor, LABELS, LineSplitter, parseDieEvent, StreamDemuxer } from '../lib/agent/docker-executor.js'
import type { LogLine } from '../lib/types/logs.js'
import type { ExecutorTask, TaskEvent } from '../lib/agent/executor.js'
import type { ContainerSpec } from '../lib/types/service.js'
import { dockerdUnavailable, startDockerd, TEST_IMAGE, type Dockerd } from './helpers/dockerd.js'
import { REQUIRED, testNeeding } from './helpers/prerequisites.js'
import { waitUntil } from './helpers/procs.js'

const unavailable = dockerdUnavailable()
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/
const TMPFS_MAGIC = 0x01021994
/** A directory on disk (not a tmpfs) for the secrets refusal, or undefined when none of the usual ones is. */
const diskDir = [tmpdir(), '/var/tmp'].find(d => existsSync(d) && statfsSync(d).type !== TMPFS_MAGIC)

t.test('decoders', async t => {
  t.test('demuxing is the same however the stream is cut', async t => {
    const frame = fc.record({ stream: fc.constantFrom<1 | 2>(1, 2), data: fc.uint8Array({ maxLength: 300 }) })
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (frames, cuts) => {
        const wire = Buffer.concat(
          frames.map(f => {
            const h = Buffer.alloc(8)
            h[0] = f.stream
            h.writeUInt32BE(f.data.length, 4)
            return Buffer.concat([h, Buffer.from(f.data)])
          }),
        )
        const points = [...new Set(cuts.map(c => c % (wire.length + 1)))].sort((a, b) => a - b)
        const demux = new StreamDemuxer()
        const got: { stream: string; data: string }[] = []
        let prev = 0
        for (const p of [...points, wire.length]) {
          for (const f of demux.push(wire.subarray(prev, p))) got.push({ stream: f.stream, data: f.data.toString('hex') })
          prev = p
        }
        const want = frames.map(f => ({ stream: f.stream === 2 ? 'stderr' : 'stdout', data: Buffer.from(f.data).toString('hex') }))
        return isDeepStrictEqual(got, want)
      }),
      { numRuns: 200 },
    )
    t.pass('200 random frame sequences, randomly cut')
  })

  t.test('line splitting is the same however the bytes are cut, mid-character too', async t => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: fc.constantFrom('a', 'é', '€', '𝄞', '\n', ' ') }), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 6 }), (parts, cuts) => {
        const text = parts.join('')
        const bytes = Buffer.from(text)
        const points = [...new Set(cuts.map(c => c % (bytes.length + 1)))].sort((a, b) => a - b)
        const s = new LineSplitter()
        const got: string[] = []
        let prev = 0
        for (const p of [...points, bytes.length]) {
          got.push(...s.push(bytes.subarray(prev, p)))
          prev = p
        }
        const rest = s.flush()
        if (rest !== undefined) got.push(rest)
        const want = text.split('\n')
        if (want[want.length - 1] === '') want.pop()
        return isDeepStrictEqual(got, want)
      }),
      { numRuns: 200 },
    )
    t.pass('200 random texts, randomly cut')
  })

  t.test('die events', async t => {
    const die = { Type: 'container', Action: 'die', Actor: { ID: 'abc', Attributes: { exitCode: '3', name: 'x' } } }
    t.same(parseDieEvent(JSON.stringify(die)), { containerId: 'abc', exitCode: 3 })
    t.equal(parseDieEvent(JSON.stringify({ ...die, Action: 'start' })), undefined, 'not a die event')
    t.equal(parseDieEvent(JSON.stringify({ ...die, Type: 'network' })), undefined, 'not a container')
    t.equal(parseDieEvent('{"Type":"contai'), undefined, 'a partial line is no event')
    // Two events and a half in one chunk, the rest in the next.
    const s = new LineSplitter()
    const wire = Buffer.from(`${JSON.stringify(die)}\n${JSON.stringify({ ...die, Actor: { ID: 'def', Attributes: { exitCode: '0' } } })}\n${JSON.stringify(die)}\n`)
    const cut = wire.length - 10
    const lines = [...s.push(wire.subarray(0, cut)), ...s.push(wire.subarray(cut))]
    t.same(
      lines.map(l => parseDieEvent(l)?.containerId),
      ['abc', 'def', 'abc'],
    )
  })
})

/** Records a task's events; `until` waits for one in the given state. */
function recorder() {
  const events: TaskEvent[] = []
  const emit = (e: TaskEvent): void => {
    events.push(e)
  }
  const until = (state: TaskEvent['state'], timeoutMs = 20_000): Promise<TaskEvent> =>
    waitUntil(() => events.find(e => e.state === state), { timeoutMs, intervalMs: 25, what: `state ${state} (have ${events.map(e => e.state).join(', ')})` })
  return { events, emit, until, states: () => events.map(e => e.state) }
}

let seq = 0
/** A task of service `svc` in `slot` on `nodeId`, with a unique 25-char id as swarm's. */
function task(spec: Partial<ContainerSpec>, over: Partial<ExecutorTask> = {}): ExecutorTask {
  const id = (randomBytes(16).toString('hex') + String(++seq)).slice(-25)
  return {
    id,
    serviceId: 'svc0000000000000000000001',
    serviceName: 'svc',
    slot: 1,
    nodeId: 'node000000000000000000001',
    nodeHostname: 'host1',
    spec: { ContainerSpec: { Image: TEST_IMAGE, ...spec } },
    ports: [],
    secrets: [],
    ...over,
  }
}

const sh = (script: string): Partial<ContainerSpec> => ({ Command: ['sh', '-c'], Args: [script] })

async function collectLogs(ex: DockerExecutor, taskId: string, opts: Parameters<DockerExecutor['logs']>[1] = {}): Promise<LogLine[]> {
  const lines: LogLine[] = []
  await ex.logs(taskId, opts, l => lines.push(l), new AbortController().signal)
  return lines
}

testNeeding(t, 'docker executor against a private dockerd', unavailable && `no private dockerd: ${unavailable}`, async t => {
  let d: Dockerd
  try {
    d = await startDockerd({ liveRestore: true })
  } catch (err) {
    if (REQUIRED) throw err
    t.plan(0, `dockerd did not start: ${(err as Error).message.split('\n')[0]}`)
    return
  }
  t.teardown(() => d.stop())
  t.comment(`dockerd answered /_ping after ${d.timings.startMs.toFixed(0)} ms; ${TEST_IMAGE} built in ${d.timings.imageMs.toFixed(0)} ms`)

  const secretsRoot = mkdtempSync('/dev/shm/swarmd-test-secrets-')
  t.teardown(() => rmSync(secretsRoot, { recursive: true, force: true }))
  const docker = new Docker({ socketPath: d.socket })
  const nodeId = 'node000000000000000000001'
  const configsRoot = mkdtempSync('/dev/shm/swarmd-test-configs-')
  t.teardown(() => rmSync(configsRoot, { recursive: true, force: true }))
  const ex = new DockerExecutor({ docker, nodeId, secretsRoot, configsRoot })
  t.teardown(() => ex.close())

  t.test('a task that prints its env and exits 0 completes; name, labels and spec fields as swarm', async t => {
    const rec = recorder()
    const tk = task(
      {
        ...sh('echo "FOO=$FOO SLOT=$SLOT"; pwd; hostname; id -un; echo oops >&2'),
        Env: ['FOO=bar', 'SLOT={{.Task.Slot}}'],
        Dir: '/tmp',
        Hostname: 'h-{{.Task.Slot}}',
        User: 'nobody',
        Labels: { mine: 'yes' },
      },
      { slot: 2 },
    )
    await ex.start(tk, rec.emit)
    const done = await rec.until('complete')
    t.same(rec.states(), ['preparing', 'ready', 'starting', 'running', 'complete'])
    t.equal(done.exitCode, 0)
    const running = rec.events.find(e => e.state === 'running')!
    t.match(running.containerId, /^[0-9a-f]{64}$/, 'running carries the container id')

    const lines = await collectLogs(ex, tk.id)
    // The engine copies stdout and stderr on their own, so only the order within each is kept.
    t.same(
      lines.filter(l => l.stream === 'stdout').map(l => l.text),
      ['FOO=bar SLOT=2', '/tmp', 'h-2', 'nobody'],
      'env with placeholders expanded, working dir, hostname, user',
    )
    t.same(
      lines.filter(l => l.stream === 'stderr').map(l => l.text),
      ['oops'],
      'stderr apart',
    )
    t.ok(lines.every(l => TIMESTAMP.test(l.time)), 'RFC 3339 timestamps with nanoseconds')

    const info = await docker.getContainer(running.containerId!).inspect()
    t.equal(info.Name, `/svc.2.${tk.id}`, 'named <service>.<slot>.<task id>')
    t.same(info.Config.Labels, {
      mine: 'yes',
      [LABELS.task]: '',
      [LABELS.serviceId]: tk.serviceId,
      [LABELS.serviceName]: 'svc',
      [LABELS.taskId]: tk.id,
      [LABELS.taskName]: `svc.2.${tk.id}`,
      [LABELS.nodeId]: nodeId,
      [LABELS.managed]: 'true',
    })
    t.same(info.Config.Entrypoint, ['sh', '-c'], 'Command is the entrypoint')
    await ex.remove(tk.id)

    // A global service's task has no slot: the node id stands in.
    const g = recorder()
    const gt = task({ Command: ['true'] }, { slot: 0, serviceName: 'glob' })
    await ex.start(gt, g.emit)
    const gid = (await g.until('running')).containerId!
    t.equal((await docker.getContainer(gid).inspect()).Name, `/glob.${nodeId}.${gt.id}`, 'global: <service>.<node id>.<task id>')
    await g.until('complete')
    await ex.remove(gt.id)
  })

  t.test('exit 3 fails with swarm error text', async t => {
    const rec = recorder()
    const tk = task(sh('echo about to fail; exit 3'))
    await ex.start(tk, rec.emit)
    const failed = await rec.until('failed')
    t.equal(failed.err, 'task: non-zero exit (3)')
    t.equal(failed.exitCode, 3)
    t.same(rec.states(), ['preparing', 'ready', 'starting', 'running', 'failed'])
    await ex.remove(tk.id)
  })

  t.test('a missing image is rejected, never pulled, and leaves no container', async t => {
    for (const image of ['nope:latest', 'nope']) {
      const rec = recorder()
      const tk = task({ Image: image })
      await ex.start(tk, rec.emit)
      const rejected = await rec.until('rejected')
      t.equal(rejected.err, 'No such image: nope:latest', `image ${image}`)
      t.same(rec.states(), ['preparing', 'rejected'])
      const left = await docker.listContainers({ all: true, filters: { label: [`${LABELS.taskId}=${tk.id}`] } })
      t.equal(left.length, 0)
      await ex.remove(tk.id)
    }
  })

  t.test('a long task: running with pid and port, logs (tail, since, follow), stop with grace, remove', async t => {
    const rec = recorder()
    const tk = task(
      sh('trap "echo bye; exit 0" TERM; echo hello > /tmp/index.html; httpd -p 80 -h /tmp; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done'),
      { ports: [{ TargetPort: 80, Protocol: 'tcp', PublishMode: 'ingress' }] },
    )
    await ex.start(tk, rec.emit)
    const running = await rec.until('running')
    t.match(running.containerId, /^[0-9a-f]{64}$/)
    t.ok(running.pid && running.pid > 1, `pid ${running.pid}`)
    const port = running.ports?.[0]
    t.ok(port && port.PublishedPort > 0, `engine-chosen host port ${port?.PublishedPort}`)
    t.match(port, { Protocol: 'tcp', TargetPort: 80, PublishMode: 'ingress' })
    const bound = (await docker.getContainer(running.containerId!).inspect()).NetworkSettings.Ports['80/tcp']?.[0]?.HostPort
    t.equal(String(port?.PublishedPort), bound, 'the port the engine bound')
    const page = await waitUntil(
      async () => {
        const r = await d.inNetns('/bin/busybox', ['wget', '-qO-', `http://127.0.0.1:${port?.PublishedPort}/`])
        return r.code === 0 && r.stdout
      },
      { timeoutMs: 10_000, what: 'the published port to answer' },
    )
    t.equal(page, 'hello\n', 'the published port reaches the task')

    await waitUntil(async () => (await collectLogs(ex, tk.id)).length >= 5, { timeoutMs: 10_000, what: '5 ticks' })
    const tail = await collectLogs(ex, tk.id, { tail: 2 })
    t.equal(tail.length, 2, 'tail 2')
    t.ok(tail.every(l => /^tick \d+$/.test(l.text)))
    const n0 = Number(tail[1]!.text.split(' ')[1])

    const since = Date.now()
    const followed: LogLine[] = []
    const ac = new AbortController()
    const following = ex.logs(tk.id, { follow: true, since }, l => {
      followed.push(l)
      if (followed.length === 3) ac.abort()
    }, ac.signal)
    await following
    t.equal(followed.length, 3, 'follow delivers new lines until aborted')
    t.ok(followed.every(l => Date.parse(l.time) >= since - 1), 'since: only lines at or after it')
    t.ok(Number(followed[0]!.text.split(' ')[1]) >= n0, 'followed lines are the newer ones')

    const t0 = performance.now()
    await ex.stop(tk.id, 5000)
    const took = performance.now() - t0
    const shut = rec.events.at(-1)!
    t.equal(shut.state, 'shutdown', 'stopped: shutdown')
    t.equal(shut.exitCode, 0, 'the trap exited 0')
    t.ok(took < 4000, `TERM handled without waiting the grace (${took.toFixed(0)} ms)`)
    t.equal((await collectLogs(ex, tk.id, { tail: 1 }))[0]?.text, 'bye', 'logs outlive the stop')
    await ex.stop(tk.id, 5000)
    t.equal(rec.events.filter(e => e.state === 'shutdown').length, 1, 'a second stop reports nothing')

    await ex.remove(tk.id)
    await t.rejects(docker.getContainer(running.containerId!).inspect(), { message: /no such container/i }, 'remove() removed the container')
    await t.rejects(collectLogs(ex, tk.id), { message: `No such task: ${tk.id}` }, 'no logs for a removed task')
  })

  t.test('a healthcheck: starting until healthy, running, then an unhealthy container is stopped and fails as Docker says', async t => {
    const rec = recorder()
    const tk = task({ ...sh('touch /tmp/ok; while true; do sleep 0.1; done'), Healthcheck: { Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 200e6, Retries: 1 }, StopGracePeriod: 1e9 })
    await ex.start(tk, rec.emit)
    await rec.until('starting')
    t.notOk(rec.states().includes('running'), 'not running before the first healthy probe')
    const running = await rec.until('running')
    const info = await docker.getContainer(running.containerId!).inspect()
    t.equal(info.State.Health?.Status, 'healthy', 'running once the engine says healthy')
    await docker.getContainer(running.containerId!).exec({ Cmd: ['rm', '/tmp/ok'] }).then(e => e.start({ Detach: true }))
    const failed = await rec.until('failed')
    t.equal(failed.err, 'task: non-zero exit (137): dockerexec: unhealthy container', 'PID 1 ignores the TERM, so the stop ends in a KILL')
    await ex.remove(tk.id)
  })

  t.test('spec fields reach the engine: mounts, stop signal, read-only root, capabilities, hosts, sysctls, ulimits, log driver', async t => {
    const rec = recorder()
    const tk = task({
      ...sh('sleep 30'),
      Mounts: [{ Type: 'tmpfs', Target: '/scratch' }, { Type: 'bind', Source: '/etc', Target: '/hostetc', ReadOnly: true }],
      StopSignal: 'SIGINT',
      ReadOnly: true,
      CapabilityDrop: ['CAP_CHOWN'],
      Hosts: ['10.9.8.7 db db.local'],
      DNSConfig: { Search: ['example.org'] },
      Sysctls: { 'net.ipv4.ip_unprivileged_port_start': '80' },
      Ulimits: [{ Name: 'nofile', Soft: 321, Hard: 654 }],
    })
    tk.spec = { ...tk.spec, LogDriver: { Name: 'json-file', Options: { 'max-size': '1m' } }, Resources: { Limits: { Pids: 50 } } }
    await ex.start(tk, rec.emit)
    const running = await rec.until('running')
    const info = await docker.getContainer(running.containerId!).inspect()
    t.equal((info.Config as { StopSignal?: string }).StopSignal, 'SIGINT')
    t.equal(info.HostConfig.ReadonlyRootfs, true)
    t.same(info.HostConfig.CapDrop, ['CAP_CHOWN'])
    t.same(info.HostConfig.ExtraHosts, ['db:10.9.8.7', 'db.local:10.9.8.7'])
    t.same(info.HostConfig.DnsSearch, ['example.org'])
    t.same(info.HostConfig.Sysctls, { 'net.ipv4.ip_unprivileged_port_start': '80' })
    t.same(info.HostConfig.Ulimits, [{ Name: 'nofile', Soft: 321, Hard: 654 }])
    t.same(info.HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-size': '1m' } })
    t.equal(info.HostConfig.PidsLimit, 50)
    // The engine lists mounts in no fixed order.
    t.match([...info.Mounts].sort((a, b) => a.Destination.localeCompare(b.Destination)), [{ Type: 'bind', Source: '/etc', Destination: '/hostetc', RW: false }, { Type: 'tmpfs', Destination: '/scratch' }])
    await ex.stop(tk.id, 5000)
    t.equal((await rec.until('shutdown')).state, 'shutdown')
    await ex.remove(tk.id)

    const missing = recorder()
    const bad = task({ ...sh('true'), Mounts: [{ Type: 'bind', Source: '/x-missing-source', Target: '/x' }] })
    await ex.start(bad, missing.emit)
    t.match(await missing.until('rejected'), { err: /invalid mount config for type "bind": bind source path does not exist: \/x-missing-source/ }, "the engine's own rejection")
    await ex.remove(bad.id)
  })

  t.test('held at ready (a restart delay): the container is created, started only once released', async t => {
    const rec = recorder()
    let release!: () => void
    const tk = task(sh('echo started'), { hold: new Promise<void>(r => (release = r)) })
    const starting = ex.start(tk, rec.emit)
    await rec.until('ready')
    const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABELS.taskId}=${tk.id}`] } })
    t.equal(c?.State, 'created', 'prepared, not started')
    release()
    await starting
    await rec.until('complete')
    t.same(rec.states(), ['preparing', 'ready', 'starting', 'running', 'complete'])
    await ex.remove(tk.id)
  })

  t.test('stop SIGKILLs after the grace period when TERM is ignored', async t => {
    const rec = recorder()
    // sleep as pid 1 has no TERM handler, so the kernel ignores TERM.
    const tk = task({ Command: ['sleep', '1000'] })
    await ex.start(tk, rec.emit)
    await rec.until('running')
    const t0 = performance.now()
    await ex.stop(tk.id, 1000)
    const took = performance.now() - t0
    t.ok(took >= 900 && took < 5000, `killed after the 1 s grace (${took.toFixed(0)} ms)`)
    t.match(rec.events.at(-1), { state: 'shutdown', exitCode: 137 })
    await ex.remove(tk.id)
  })

  t.test('secrets are on a tmpfs at /run/secrets while the task runs, and gone after', async t => {
    const plain = `s3cr3t-${randomBytes(12).toString('hex')}`
    const md5 = createHash('md5').update(plain).digest('hex')
    const rec = recorder()
    const tk = task(sh('md5sum /run/secrets/db_pass; stat -c "%a %n" /run/secrets/db_pass /run/secrets/api; touch /run/secrets/x 2>/dev/null || echo read-only; exec sleep 1000'), {
      secrets: [
        { name: 'db_pass', data: Buffer.from(plain) },
        { name: 'api', data: Buffer.from('k'), mode: 0o400 },
      ],
    })
    await ex.start(tk, rec.emit)
    await rec.until('running')
    const lines = await waitUntil(
      async () => {
        const l = await collectLogs(ex, tk.id)
        return l.length >= 4 && l.map(x => x.text)
      },
      { timeoutMs: 10_000, what: 'the secret checks' },
    )
    t.same(lines, [`${md5}  /run/secrets/db_pass`, '444 /run/secrets/db_pass', '400 /run/secrets/api', 'read-only'], 'readable inside, modes kept, read-only')
    const dir = join(secretsRoot, tk.id)
    t.ok(existsSync(dir), 'on the host while running')
    t.equal(statfsSync(dir).type, TMPFS_MAGIC, 'and on a tmpfs')
    t.equal(statSync(join(dir, 'db_pass')).mode & 0o777, 0o444)

    await ex.stop(tk.id, 0)
    t.equal(rec.events.at(-1)?.state, 'shutdown')
    t.notOk(existsSync(dir), 'removed when the task stopped')
    t.same(await grepTree(d.dataRoot, plain), [], 'the plaintext is nowhere in the engine data root')
    await ex.remove(tk.id)
  })

  t.test('configs are bind-mounted read-only at their targets, with their modes, and gone after', async t => {
    const rec = recorder()
    const tk = task(sh('cat /etc/app/app.conf; echo; cat /plain; echo; stat -c "%a %n" /etc/app/app.conf /plain; touch /etc/app/app.conf 2>/dev/null || echo read-only; exec sleep 1000'), {
      configs: [
        { target: '/etc/app/app.conf', data: Buffer.from('listen 80'), mode: 0o444 },
        { target: 'plain', data: Buffer.from('p'), mode: 0o440 },
      ],
    })
    await ex.start(tk, rec.emit)
    await rec.until('running')
    const lines = await waitUntil(
      async () => {
        const l = await collectLogs(ex, tk.id)
        return l.length >= 5 && l.map(x => x.text)
      },
      { timeoutMs: 10_000, what: 'the config checks' },
    )
    t.same(lines, ['listen 80', 'p', '444 /etc/app/app.conf', '440 /plain', 'read-only'], 'at the target (a relative one from /), modes kept, read-only')
    t.ok(existsSync(join(configsRoot, tk.id)), 'on the host while running')
    await ex.stop(tk.id, 0)
    t.notOk(existsSync(join(configsRoot, tk.id)), 'removed when the task stopped')
    await ex.remove(tk.id)
  })

  testNeeding(t, 'secrets are refused unless the secrets root is a tmpfs', diskDir ? undefined : `${tmpdir()} and /var/tmp are both tmpfs here`, async t => {
    const onDisk = mkdtempSync(join(diskDir!, 'swarmd-secrets-disk-'))
    t.teardown(() => rmSync(onDisk, { recursive: true, force: true }))
    const ex2 = new DockerExecutor({ docker, secretsRoot: onDisk })
    t.teardown(() => ex2.close())
    const rec = recorder()
    const tk = task({ Command: ['true'] }, { secrets: [{ name: 'x', data: Buffer.from('y') }] })
    await ex2.start(tk, rec.emit)
    t.match(await rec.until('rejected'), { err: /is not on a tmpfs/ })
    t.same(readdirSync(onDisk), [], 'nothing written')
  })

  t.test('the watcher outlives an engine restart: an exit while the engine was down is reported', async t => {
    const rec = recorder()
    const tk = task(sh('trap "exit 5" USR1; while :; do sleep 0.1; done'))
    await ex.start(tk, rec.emit)
    const { pid } = await rec.until('running')
    // With live-restore the container outlives the engine; it exits while no event stream exists.
    await d.restart(async () => {
      process.kill(pid!, 'SIGUSR1')
      await waitUntil(() => !existsSync(`/proc/${pid}`), { timeoutMs: 10_000, what: 'the task process to exit' })
    })
    t.match(await rec.until('failed'), { err: 'task: non-zero exit (5)', exitCode: 5 }, 'reported after the engine came back')
    await ex.remove(tk.id)

    const next = recorder()
    const after = task(sh('exit 2'))
    await ex.start(after, next.emit)
    t.match(await next.until('failed'), { exitCode: 2 }, 'and later exits are watched as before')
    await ex.remove(after.id)
  })

  t.test('a second executor recovers and adopts the first one’s containers', async t => {
    const first = new DockerExecutor({ docker, nodeId, secretsRoot })
    const running = task(sh('trap "exit 5" USR1; while :; do sleep 0.1; done'))
    const toStop = task({ Command: ['sleep', '1000'] })
    const finished = task({ Command: ['true'] })
    const otherNode = task({ Command: ['sleep', '1000'] }, { nodeId: 'node000000000000000000002' })
    const recs = new Map([running, toStop, finished, otherNode].map(tk => [tk.id, recorder()]))
    for (const tk of [running, toStop, finished, otherNode]) await first.start(tk, recs.get(tk.id)!.emit)
    await recs.get(finished.id)!.until('complete')
    await first.close()

    const second = new DockerExecutor({ docker, nodeId, secretsRoot })
    t.teardown(() => second.close())
    const found = await second.recover()
    const mine = new Map(found.map(f => [f.taskId, f.running]))
    t.equal(mine.get(running.id), true)
    t.equal(mine.get(toStop.id), true)
    t.equal(mine.get(finished.id), false, 'exited containers are recovered too')
    t.notOk(mine.has(otherNode.id), "another node's containers are not ours")

    const adopted = recorder()
    await second.adopt(finished.id, adopted.emit)
    t.match(await adopted.until('complete'), { exitCode: 0 }, 'a task that ended meanwhile is reported at adoption')

    const watched = recorder()
    await second.adopt(running.id, watched.emit)
    t.same(watched.events, [], 'a running task reports nothing at adoption')
    const name = `svc.1.${running.id}`
    await d.cli(['kill', '--signal', 'USR1', name])
    t.match(await watched.until('failed'), { err: 'task: non-zero exit (5)', exitCode: 5 }, 'its exit is seen through the re-attached watcher')

    const stopped = recorder()
    await second.adopt(toStop.id, stopped.emit)
    await second.stop(toStop.id, 0)
    t.equal(stopped.events.at(-1)?.state, 'shutdown')

    // Not adopted (the manager no longer wants it): still stoppable and removable by task id.
    await second.stop(otherNode.id, 0)
    t.equal((await docker.listContainers({ filters: { label: [`${LABELS.taskId}=${otherNode.id}`] } })).length, 0, 'stopped without adoption')
    for (const tk of [running, toStop, finished, otherNode]) await second.remove(tk.id)
    t.same(await second.recover(), [], 'all removed')
  })
})

/** Files under `root` whose bytes contain `needle`. */
async function grepTree(root: string, needle: string): Promise<string[]> {
  const hits: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const p = join(dir, name)
      const st = await lstat(p)
      if (st.isDirectory()) await walk(p)
      else if (st.isFile() && (await readFile(p)).includes(needle)) hits.push(p)
    }
  }
  await walk(root)
  return hits
}
