import { createHash } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { LogLine } from '../types/logs.js'
import type { ExecutorTask, TaskEvent } from './executor.js'
import { ProcessExecutor, type ProcessExecutorOptions } from './process-executor.js'
import { groupAlive } from './task-dir.js'
import type { TaskLogOptions } from './task-log.js'

/** A temp data dir and an executor on it; teardown kills every task started there and removes the files. */
function setup(t: Test, log?: TaskLogOptions): { root: string; ex: ProcessExecutor; make: (o?: Partial<ProcessExecutorOptions>) => ProcessExecutor } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmd-pe-'))
  const dir = path.join(root, 'exec')
  const made: ProcessExecutor[] = []
  const make = (o: Partial<ProcessExecutorOptions> = {}): ProcessExecutor => {
    const ex = new ProcessExecutor({ dir, pollMs: 50, log, ...o })
    made.push(ex)
    return ex
  }
  const ex = make()
  t.teardown(async () => {
    const cleaner = new ProcessExecutor({ dir })
    for (const ex of made) await ex.close()
    for (const id of fs.readdirSync(dir)) await cleaner.remove(id)
    await cleaner.close()
    fs.rmSync(root, { recursive: true, force: true })
    fs.rmSync(secretsBase(dir), { recursive: true, force: true })
  })
  return { root, ex, make }
}

/** The executor's secrets base for `dir`, named here only to clean up after a failed test. */
function secretsBase(dir: string): string {
  return path.join('/dev/shm', `swarmd-${createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 16)}`)
}

let seq = 0
function task(argv: string[], over: Partial<ExecutorTask> = {}, spec: Partial<ExecutorTask['spec']['ContainerSpec']> = {}): ExecutorTask {
  seq++
  return {
    id: `task${seq}x${process.pid}`,
    serviceId: 'svc1',
    serviceName: 'web',
    slot: seq,
    nodeId: 'node1',
    nodeHostname: 'host1',
    spec: { ContainerSpec: { Image: 'ignored', Command: argv, ...spec } },
    ports: [],
    secrets: [],
    ...over,
  }
}

/** Collects a task's events; `until` waits for a state. */
class Events {
  readonly list: TaskEvent[] = []
  private waiters: { state: string; resolve: (e: TaskEvent) => void }[] = []
  readonly emit = (e: TaskEvent): void => {
    this.list.push(e)
    for (const w of this.waiters.filter(w => w.state === e.state)) w.resolve(e)
  }
  get states(): string[] {
    return this.list.map(e => e.state)
  }
  get last(): TaskEvent | undefined {
    return this.list.at(-1)
  }
  until(state: string, ms = 10_000): Promise<TaskEvent> {
    const seen = this.list.find(e => e.state === state)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${state} within ${ms} ms (saw ${this.states.join(',')})`)), ms)
      this.waiters.push({ state, resolve: e => (clearTimeout(timer), resolve(e)) })
    })
  }
  /** The terminal event. */
  end(ms?: number): Promise<TaskEvent> {
    return Promise.race(['complete', 'failed', 'rejected', 'shutdown'].map(s => this.until(s, ms)))
  }
}

async function allLogs(ex: ProcessExecutor, id: string, opts = {}): Promise<LogLine[]> {
  const lines: LogLine[] = []
  await ex.logs(id, opts, l => lines.push(l), new AbortController().signal)
  return lines
}

/** Follows the task's output until a line contains `text`. */
async function waitForLine(ex: ProcessExecutor, id: string, text: string, ms = 10_000): Promise<void> {
  const ac = new AbortController()
  let found = false
  const timer = setTimeout(() => ac.abort(), ms)
  await ex.logs(
    id,
    { follow: true },
    l => {
      if (l.text.includes(text)) {
        found = true
        ac.abort()
      }
    },
    ac.signal,
  )
  clearTimeout(timer)
  if (!found) throw new Error(`no line with ${JSON.stringify(text)}`)
}

const texts = (ls: LogLine[]): string[] => ls.map(l => l.text)

const groupGone = (pgid: number): boolean => !groupAlive(pgid)

t.test('env, placeholders, workdir and the states of a task that completes', async t => {
  const { ex, root } = setup(t)
  process.env.SWARMD_TEST_LEAK = 'leaked'
  t.teardown(() => delete process.env.SWARMD_TEST_LEAK)
  const ev = new Events()
  const tk = task(
    ['sh', '-c', 'echo "A=$A"; echo "B=$B"; echo "leak=$SWARMD_TEST_LEAK"; echo "host=$HOSTNAME"; pwd; env | grep ^SWARMD_ | sort'],
    { slot: 3 },
    { Env: ['A={{.Service.Name}}-{{.Task.Slot}}', 'B={{.Task.Name}}@{{.Node.Hostname}}/{{.Node.ID}}/{{.Service.ID}}/{{.Task.ID}}'], Dir: root, Hostname: '{{.Service.Name}}-{{.Task.Slot}}' },
  )
  await ex.start(tk, ev.emit)
  const end = await ev.end()
  t.same(ev.states, ['preparing', 'starting', 'running', 'complete'])
  t.match(ev.list[2], { message: 'started', pid: Number })
  t.same(end, { state: 'complete', message: 'finished', exitCode: 0 })
  t.same(texts(await allLogs(ex, tk.id)), [
    'A=web-3',
    `B=web.3.${tk.id}@host1/node1/svc1/${tk.id}`,
    'leak=',
    'host=web-3',
    fs.realpathSync(root),
    'SWARMD_NODE_HOSTNAME=host1',
    'SWARMD_NODE_ID=node1',
    'SWARMD_SERVICE_ID=svc1',
    'SWARMD_SERVICE_NAME=web',
    `SWARMD_TASK_ID=${tk.id}`,
    'SWARMD_TASK_SLOT=3',
  ])
})

t.test('Args alone: the first is the program', async t => {
  const { ex } = setup(t)
  const ev = new Events()
  const tk = task([], {}, { Command: undefined, Args: ['echo', 'from', 'args'] })
  await ex.start(tk, ev.emit)
  await ev.end()
  t.same(texts(await allLogs(ex, tk.id)), ['from args'])
})

t.test('exit codes: non-zero fails, a signal gives 128+N', async t => {
  const { ex } = setup(t)
  const a = new Events()
  const ta = task(['sh', '-c', 'echo hi; echo err >&2; exit 3'])
  await ex.start(ta, a.emit)
  t.same(await a.end(), { state: 'failed', message: 'started', err: 'task: non-zero exit (3)', exitCode: 3 })
  t.same(
    (await allLogs(ex, ta.id)).map(l => [l.stream, l.text]),
    [
      ['stdout', 'hi'],
      ['stderr', 'err'],
    ],
  )
  const b = new Events()
  await ex.start(task(['sh', '-c', 'kill -9 $$']), b.emit)
  t.match(await b.end(), { state: 'failed', err: 'task: non-zero exit (137)', exitCode: 137 })
  const c = new Events()
  await ex.start(task(['sh', '-c', 'kill -TERM $$']), c.emit)
  t.match(await c.end(), { state: 'failed', err: 'task: non-zero exit (143)', exitCode: 143 })
})

t.test('rejected before it starts: missing program, bad workdir, no command, bad placeholder', async t => {
  const { ex, root } = setup(t)
  const cases: [ExecutorTask, RegExp][] = [
    [task(['no-such-program-swarmd']), /^exec: "no-such-program-swarmd": executable file not found in \$PATH$/],
    [task(['./nope']), /^exec: "\.\/nope": stat \.\/nope: no such file or directory$/],
    [task(['true'], {}, { Dir: path.join(root, 'missing') }), /^chdir .*missing: no such directory$/],
    [task(['true'], {}, { Dir: 'relative' }), /needs to be an absolute path/],
    [task([]), /^No command specified$/],
    [task(['true'], {}, { Env: ['X={{.Task.Nope}}'] }), /^template: expansion: .*can't evaluate field Nope/],
  ]
  for (const [tk, re] of cases) {
    const ev = new Events()
    await ex.start(tk, ev.emit)
    const end = await ev.end()
    t.equal(end.state, 'rejected', re.source)
    t.match(end.err, re)
    t.same(ev.states, ['preparing', 'rejected'])
  }
})

t.test('PORT: a free host port per target, bindable by the task, reported as port status', async t => {
  const { ex } = setup(t)
  const server = `
    const net = require('net'), dgram = require('dgram')
    const port = +process.env.PORT
    net.createServer(c => c.end('pong ' + process.env.SWARMD_PORT_80 + ' ' + process.env.SWARMD_PORT_53)).listen(port, () => {
      dgram.createSocket('udp4').bind(+process.env.SWARMD_PORT_53, () => console.log('listening'))
    })`
  const ports: ExecutorTask['ports'] = [
    { TargetPort: 80, Protocol: 'tcp', PublishMode: 'ingress', PublishedPort: 8080 },
    { TargetPort: 53, Protocol: 'udp', PublishMode: 'ingress' },
    { TargetPort: 53, Protocol: 'tcp', PublishMode: 'ingress' },
  ]
  const a = new Events()
  const b = new Events()
  const ta = task([process.execPath, '-e', server], { ports })
  const tb = task([process.execPath, '-e', server], { ports })
  await ex.start(ta, a.emit)
  await ex.start(tb, b.emit)
  const ra = await a.until('running')
  const rb = await b.until('running')
  const pa = ra.ports ?? []
  t.equal(pa.length, 3)
  t.match(pa, [
    { Protocol: 'tcp', TargetPort: 80, PublishMode: 'ingress', PublishedPort: Number },
    { Protocol: 'udp', TargetPort: 53, PublishMode: 'ingress' },
    { Protocol: 'tcp', TargetPort: 53, PublishMode: 'ingress' },
  ])
  const web = pa[0]!.PublishedPort
  const dns = pa[1]!.PublishedPort
  t.not(web, 8080, 'an ingress published port is the mesh’s, the task gets its own')
  t.equal(pa[2]!.PublishedPort, dns, 'one host port per target, whatever the protocol')
  t.not(web, dns)
  const other = (rb.ports ?? []).map(p => p.PublishedPort)
  t.notOk(other.includes(web) || other.includes(dns), 'replicas on one host do not clash')
  await waitForLine(ex, ta.id, 'listening')
  await waitForLine(ex, tb.id, 'listening')
  const reply = await new Promise<string>((resolve, reject) => {
    let data = ''
    net
      .connect(web, '127.0.0.1')
      .on('data', d => (data += d))
      .on('end', () => resolve(data))
      .on('error', reject)
  })
  t.equal(reply, `pong ${web} ${dns}`)
  await ex.stop(ta.id, 2000)
  await ex.stop(tb.id, 2000)
  t.equal(a.last?.state, 'shutdown')
})

t.test('host mode with a published port: exactly that port, rejected when taken', async t => {
  const { ex } = setup(t)
  const blocker = net.createServer()
  await new Promise<void>(r => blocker.listen(0, r))
  t.teardown(() => blocker.close())
  const taken = (blocker.address() as net.AddressInfo).port
  const ev = new Events()
  await ex.start(task(['true'], { ports: [{ TargetPort: 80, Protocol: 'tcp', PublishMode: 'host', PublishedPort: taken }] }), ev.emit)
  t.same(await ev.end(), { state: 'rejected', message: 'preparing', err: `host-mode port already in use: ${taken}/tcp` })

  const probe = net.createServer()
  await new Promise<void>(r => probe.listen(0, r))
  const free = (probe.address() as net.AddressInfo).port
  await new Promise(r => probe.close(r))
  const ok = new Events()
  const tk = task(['sh', '-c', 'echo "$PORT $SWARMD_PORT_80"'], { ports: [{ TargetPort: 80, Protocol: 'tcp', PublishMode: 'host', PublishedPort: free }] })
  await ex.start(tk, ok.emit)
  t.match((await ok.until('running')).ports, [{ PublishedPort: free, PublishMode: 'host', TargetPort: 80 }])
  await ok.end()
  t.same(texts(await allLogs(ex, tk.id)), [`${free} ${free}`])
})

t.test('stop: SIGTERM to the group, SIGKILL after the grace period', async t => {
  const { ex } = setup(t)
  const stubborn = new Events()
  const ts = task([process.execPath, '-e', `process.on('SIGTERM', () => console.log('got TERM')); setInterval(() => {}, 1000); console.log('ready')`])
  await ex.start(ts, stubborn.emit)
  const pid = (await stubborn.until('running')).pid as number
  await waitForLine(ex, ts.id, 'ready')
  const t0 = Date.now()
  await ex.stop(ts.id, 400)
  const took = Date.now() - t0
  t.ok(took >= 380 && took < 3000, `waited the grace period (${took} ms)`)
  t.match(stubborn.last, { state: 'shutdown', message: 'shutdown' })
  t.ok(groupGone(pid), 'the whole process group is gone when stop resolves')
  t.ok(texts(await allLogs(ex, ts.id)).includes('got TERM'), 'the task saw SIGTERM first')

  const polite = new Events()
  const tp = task(['sh', '-c', 'sleep 30 & sleep 30; echo unreachable'])
  await ex.start(tp, polite.emit)
  const ppid = (await polite.until('running')).pid as number
  const t1 = Date.now()
  await ex.stop(tp.id, 10_000)
  t.ok(Date.now() - t1 < 2000, 'a task that exits on SIGTERM does not wait for the grace period')
  t.same(polite.states, ['preparing', 'starting', 'running', 'shutdown'])
  t.ok(groupGone(ppid), 'its background child went too')
  await ex.stop(tp.id, 1000)
  t.same(polite.states.length, 4, 'stopping again is a no-op')
})

t.test('stop right after start: the command gets its SIGTERM even if forked after it', async t => {
  const { ex } = setup(t)
  // The wrapper may trap the SIGTERM just before it forks the command; stop must still be quick.
  const all = await Promise.all(
    Array.from({ length: 30 }, async () => {
      const ev = new Events()
      const tk = task(['sleep', '30'])
      await ex.start(tk, ev.emit)
      const t0 = Date.now()
      await ex.stop(tk.id, 20_000)
      return { took: Date.now() - t0, state: ev.last?.state }
    }),
  )
  t.same(all.filter(r => r.took > 5000), [], 'none waited for the grace period')
  t.ok(all.every(r => r.state === 'shutdown'))
})

t.test('stop while preparing: shutdown without starting', async t => {
  const { ex } = setup(t)
  const ev = new Events()
  const tk = task(['sleep', '30'])
  const started = ex.start(tk, ev.emit)
  await ex.stop(tk.id, 1000)
  await started
  t.same(ev.states, ['preparing', 'shutdown'])
})

t.test('held at ready (a restart delay): prepared, started only once released; a stop while held never starts it', async t => {
  const { ex } = setup(t)
  let release!: () => void
  const ev = new Events()
  const tk = task(['sh', '-c', 'echo up'], { hold: new Promise<void>(r => (release = r)) })
  const started = ex.start(tk, ev.emit)
  await ev.until('ready')
  await new Promise(r => setTimeout(r, 100))
  t.same(ev.states, ['preparing', 'ready'], 'prepared, and waiting')
  release()
  await started
  await ev.end()
  t.same(ev.states, ['preparing', 'ready', 'starting', 'running', 'complete'])

  const ev2 = new Events()
  const tk2 = task(['sh', '-c', 'echo never'], { hold: new Promise<void>(() => undefined) })
  const started2 = ex.start(tk2, ev2.emit)
  await ev2.until('ready')
  await ex.stop(tk2.id, 1000)
  await started2
  t.same(ev2.states, ['preparing', 'ready', 'shutdown'])
  t.same(texts(await allLogs(ex, tk2.id)), [], 'it never ran')
})

t.test('a healthcheck: starting until the first healthy probe, then running; unhealthy is stopped and fails as Docker says', async t => {
  const { ex, root } = setup(t)
  const flag = path.join(root, 'healthy')
  const ev = new Events()
  const tk = task(['sleep', '30'], {}, { Healthcheck: { Test: ['CMD-SHELL', `test -f "${flag}"`], Interval: 50e6, StartPeriod: 3e9, StartInterval: 50e6, Retries: 2 }, StopGracePeriod: 1e9 })
  await ex.start(tk, ev.emit)
  await new Promise(r => setTimeout(r, 200))
  t.same(ev.states, ['preparing', 'starting'], 'not running while no probe passed')
  fs.writeFileSync(flag, '')
  const running = await ev.until('running')
  t.ok(running.pid, 'running, with its pid, once healthy')
  fs.rmSync(flag)
  const end = await ev.end()
  t.match(end, { state: 'failed', err: /^task: non-zero exit \(\d+\): dockerexec: unhealthy container$/ })
  t.notOk(groupAlive(running.pid!), 'the process is gone')

  const ev2 = new Events()
  const never = task(['sleep', '30'], {}, { Healthcheck: { Test: ['CMD', 'false'], Interval: 30e6, Retries: 1 }, StopGracePeriod: 1e9 })
  await ex.start(never, ev2.emit)
  t.match(await ev2.end(), { state: 'failed', err: /dockerexec: unhealthy container$/ }, 'unhealthy before ever being healthy: fails from starting')
  t.notOk(ev2.states.includes('running'))

  const ev3 = new Events()
  await ex.start(task(['true'], {}, { Healthcheck: { Test: ['NONE'] } }), ev3.emit)
  t.equal((await ev3.end()).state, 'complete', 'Test NONE: no healthcheck')
  const ev4 = new Events()
  await ex.start(task(['true'], {}, { Healthcheck: { Test: ['SHELL', 'x'] } }), ev4.emit)
  t.match(await ev4.end(), { state: 'rejected', err: /unknown healthcheck type 'SHELL'/ })
})

t.test('the stop signal goes to the process group; Docker rejects an unknown one', async t => {
  const { ex } = setup(t)
  const ev = new Events()
  const tk = task(['sh', '-c', 'trap "echo got INT; exit 0" INT; trap "echo got TERM; exit 0" TERM; echo ready; while true; do sleep 0.05; done'], {}, { StopSignal: 'SIGINT' })
  await ex.start(tk, ev.emit)
  await waitForLine(ex, tk.id, 'ready')
  await ex.stop(tk.id, 5000)
  t.equal((await ev.end()).state, 'shutdown')
  t.same(texts(await allLogs(ex, tk.id)), ['ready', 'got INT'])

  const ev2 = new Events()
  const usr = task(['sh', '-c', 'trap "echo got USR1; exit 0" USR1; echo ready; while true; do sleep 0.05; done'], {}, { StopSignal: 'USR1' })
  await ex.start(usr, ev2.emit)
  await waitForLine(ex, usr.id, 'ready')
  await ex.stop(usr.id, 5000)
  t.match(await ev2.end(), { state: 'shutdown', exitCode: 0 }, 'a signal the wrapper would die of is trapped too, so the task handles it')
  t.ok(texts(await allLogs(ex, usr.id)).includes('got USR1'), 'the task handled it (its sleep, in the group too, died of it)')

  const ev3 = new Events()
  await ex.start(task(['true'], {}, { StopSignal: 'SIGBOGUS' }), ev3.emit)
  t.match(await ev3.end(), { state: 'rejected', err: 'Invalid signal: SIGBOGUS' })
})

t.test('mounts and ulimits: bind and tmpfs paths in the env, a missing bind source rejected, limits set by prlimit', async t => {
  const { ex } = setup(t)
  const ev = new Events()
  const tk = task(['sh', '-c', 'echo "$SWARMD_MOUNT_CONF"; test -d "$SWARMD_MOUNT_SCRATCH" && echo scratch; ulimit -n'], {}, {
    Mounts: [{ Type: 'bind', Source: '/etc', Target: '/conf' }, { Type: 'tmpfs', Target: '/scratch' }],
    Ulimits: [{ Name: 'nofile', Soft: 123, Hard: 456 }],
  })
  await ex.start(tk, ev.emit)
  t.equal((await ev.end()).state, 'complete')
  t.same(texts(await allLogs(ex, tk.id)), ['/etc', 'scratch', '123'])

  const ev2 = new Events()
  await ex.start(task(['true'], {}, { Mounts: [{ Type: 'bind', Source: '/x-missing', Target: '/x' }] }), ev2.emit)
  t.match(await ev2.end(), { state: 'rejected', err: 'invalid mount config for type "bind": bind source path does not exist: /x-missing' })
  const ev3 = new Events()
  await ex.start(task(['true'], {}, { ReadOnly: true }), ev3.emit)
  t.match(await ev3.end(), { state: 'rejected', err: /^ContainerSpec.ReadOnly is not supported by the process executor/ })
})

t.test('logs: tail, since, follow, long lines, partial last line, rotation bounds', async t => {
  const { ex, root } = setup(t, { maxBytes: 2000, maxFiles: 2 })
  const ev = new Events()
  const tk = task(['sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done'])
  await ex.start(tk, ev.emit)
  await ev.end()
  const lines = await allLogs(ex, tk.id)
  t.equal(lines.at(-1)?.text, 'line 199')
  t.ok(lines.length < 200 && lines.length > 20, `bounded: ${lines.length} lines kept`)
  const dir = path.join(root, 'exec', tk.id)
  const logFiles = fs.readdirSync(dir).filter(f => f.startsWith('output.log'))
  t.same(logFiles.sort(), ['output.log', 'output.log.1'])
  for (const f of logFiles) t.ok(fs.statSync(path.join(dir, f)).size <= 2000)
  t.same(texts(await allLogs(ex, tk.id, { tail: 3 })), ['line 197', 'line 198', 'line 199'])

  const big = new Events()
  const tb = task([process.execPath, '-e', `process.stdout.write('x'.repeat(40000) + '\\n' + 'no newline')`])
  const ex2 = setup(t).ex
  await ex2.start(tb, big.emit)
  await big.end()
  t.same(
    (await allLogs(ex2, tb.id)).map(l => l.text.length),
    [16384, 16384, 40000 - 2 * 16384, 'no newline'.length],
    'split at 16 KiB; the partial last line is flushed on exit',
  )

  const slow = new Events()
  const tf = task(['sh', '-c', 'echo first; sleep 0.3; echo second; sleep 0.3; echo third'])
  await ex2.start(tf, slow.emit)
  await waitForLine(ex2, tf.id, 'first')
  // Between the lines, which are 300 ms apart.
  const mid = Date.now() + 100
  const followed: string[] = []
  await ex2.logs(tf.id, { follow: true }, l => followed.push(l.text), new AbortController().signal)
  t.same(followed, ['first', 'second', 'third'], 'follow ends once the task ended and all was delivered')
  t.equal(slow.last?.state, 'complete')
  t.same(texts(await allLogs(ex2, tf.id, { since: mid })), ['second', 'third'])
})

t.test('secrets: files on tmpfs, mode 0400, removed when the task stops', async t => {
  const { ex, root } = setup(t)
  const ev = new Events()
  const tk = task(['sh', '-c', 'echo "$SWARMD_SECRETS_DIR"; cat "$SWARMD_SECRETS_DIR/db_pass"; echo; sleep 30'], {
    secrets: [
      { name: 'db_pass', data: Buffer.from('s3cret') },
      { name: 'shared', data: Buffer.from('x'), mode: 0o440 },
    ],
  })
  await ex.start(tk, ev.emit)
  await waitForLine(ex, tk.id, 's3cret')
  const [dirLine] = texts(await allLogs(ex, tk.id))
  const dir = dirLine ?? ''
  t.match(dir, new RegExp(`^/dev/shm/swarmd-[0-9a-f]{16}/${tk.id}$`))
  t.notOk(dir.startsWith(root), 'not under the data dir')
  t.equal(fs.statSync(dir).mode & 0o777, 0o700)
  t.equal(fs.statSync(path.dirname(dir)).mode & 0o777, 0o700)
  t.equal(fs.statSync(path.join(dir, 'db_pass')).mode & 0o777, 0o400)
  t.equal(fs.statSync(path.join(dir, 'shared')).mode & 0o777, 0o440)
  t.equal(fs.readFileSync(path.join(dir, 'db_pass'), 'utf8'), 's3cret')
  await ex.stop(tk.id, 1000)
  t.notOk(fs.existsSync(dir), 'removed after stop')
  t.notOk(fs.existsSync(path.dirname(dir)), 'and the base with its last task')

  const bad = new Events()
  await ex.start(task(['true'], { secrets: [{ name: '../escape', data: Buffer.from('x') }] }), bad.emit)
  t.match(await bad.end(), { state: 'rejected', err: /invalid secret file name/ })
})

t.test('configs: in $SWARMD_CONFIGS_DIR as in a container\'s root, with their mode; a target cannot climb out', async t => {
  const { ex, root } = setup(t)
  const ev = new Events()
  const tk = task(['sh', '-c', 'echo "$SWARMD_CONFIGS_DIR"; cat "$SWARMD_CONFIGS_DIR/etc/app.conf"; echo; sleep 30'], {
    configs: [
      { target: '/etc/app.conf', data: Buffer.from('listen 80'), mode: 0o444 },
      { target: 'plain', data: Buffer.from('p'), mode: 0o400 },
      { target: '../../up', data: Buffer.from('u'), mode: 0o444 },
    ],
  })
  await ex.start(tk, ev.emit)
  await waitForLine(ex, tk.id, 'listen 80')
  const dir = texts(await allLogs(ex, tk.id))[0] ?? ''
  t.equal(dir, path.join(root, 'exec', tk.id, 'configs'), 'beside the task\'s log: configs are no secret')
  t.equal(fs.statSync(path.join(dir, 'etc/app.conf')).mode & 0o777, 0o444)
  t.equal(fs.statSync(path.join(dir, 'plain')).mode & 0o777, 0o400, 'a relative target from the root, with the mode asked for')
  t.equal(fs.readFileSync(path.join(dir, 'up'), 'utf8'), 'u', '.. stays inside')
  await ex.stop(tk.id, 1000)

  const bad = new Events()
  await ex.start(task(['true'], { configs: [{ target: '/', data: Buffer.from('x'), mode: 0o444 }] }), bad.emit)
  t.match(await bad.end(), { state: 'rejected', err: 'invalid config target "/"' })
})

t.test('a daemon restart: the task keeps running and logging, the next executor adopts it', async t => {
  const { ex: a, root, make } = setup(t)
  const flags = fs.mkdtempSync(path.join(root, 'flags-'))
  const ev = new Events()
  // Writes a line when each flag file appears, then exits 5 on the last.
  const script = `echo before; for f in one two; do while [ ! -e "${flags}/$f" ]; do sleep 0.02; done; echo "after $f"; done; exit 5`
  const tk = task(['sh', '-c', script], { secrets: [{ name: 's', data: Buffer.from('x') }], ports: [{ TargetPort: 80, Protocol: 'tcp', PublishMode: 'ingress' }] })
  await a.start(tk, ev.emit)
  const running = await ev.until('running')
  await waitForLine(a, tk.id, 'before')
  await a.close()
  await t.rejects(a.start(task(['true']), () => undefined), { code: 'E_CLOSED' })

  // Output while no daemon reads it waits in the FIFO.
  fs.writeFileSync(path.join(flags, 'one'), '')
  await new Promise(r => setTimeout(r, 200))
  t.same(ev.states, ['preparing', 'starting', 'running'], 'a closed executor reports nothing')

  const b = make()
  const found = await b.recover()
  t.same(found, [{ taskId: tk.id, running: true }])
  const ev2 = new Events()
  await b.adopt(tk.id, ev2.emit)
  t.match(ev2.list, [{ state: 'running', pid: running.pid, ports: running.ports }])
  await waitForLine(b, tk.id, 'after one')
  fs.writeFileSync(path.join(flags, 'two'), '')
  t.same(await ev2.end(), { state: 'failed', message: 'started', err: 'task: non-zero exit (5)', exitCode: 5 })
  t.same(texts(await allLogs(b, tk.id)), ['before', 'after one', 'after two'])
  t.ok(groupGone(running.pid as number))
  await b.remove(tk.id)
  t.notOk(fs.existsSync(path.join(root, 'exec', tk.id)), 'remove deletes the task dir and its logs')
  t.same(await b.recover(), [])
})

t.test('after a restart: tasks that ended meanwhile, and stopping one that was not adopted', async t => {
  const { ex: a, make } = setup(t)
  const quick = task(['sh', '-c', 'sleep 0.2; exit 0'])
  const long = task(['sleep', '30'])
  const aq = new Events()
  const al = new Events()
  await a.start(quick, aq.emit)
  await a.start(long, al.emit)
  const longPid = (await al.until('running')).pid as number
  await a.close()
  await new Promise(r => setTimeout(r, 500))

  const b = make()
  const found = (await b.recover()).sort((x, y) => x.taskId.localeCompare(y.taskId))
  t.same(found, [
    { taskId: quick.id, running: false },
    { taskId: long.id, running: true },
  ].sort((x, y) => x.taskId.localeCompare(y.taskId)))
  const ev = new Events()
  await b.adopt(quick.id, ev.emit)
  t.same(await ev.end(), { state: 'complete', message: 'finished', exitCode: 0 }, 'the exit status written while no daemon watched')
  await t.rejects(b.adopt(quick.id, () => undefined), { code: 'E_TASK_EXISTS' })
  await t.rejects(b.adopt('nosuchtask', () => undefined), { code: 'E_NO_SUCH_TASK' })

  await b.stop(long.id, 1000)
  t.ok(groupGone(longPid), 'a recovered task that is not adopted can be stopped')
  await b.remove(long.id)
  await b.remove(quick.id)
  t.same(await b.recover(), [])
})
