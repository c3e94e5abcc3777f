import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { killTasks, runningTasks, startDaemon, swarmctl } from './helpers/daemon.js'
import { httpGet } from './helpers/net.js'
import { waitUntil } from './helpers/procs.js'

const IP = '127.0.0.81'
const PORT = 28481
const SERVER = 'require("http").createServer((q,s)=>s.end(process.env.SWARMD_TASK_SLOT)).listen(process.env.PORT)'

/** The answers of `n` requests to the published port, errors counted as such. */
async function answers(n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(await httpGet(IP, PORT).catch(e => `error ${(e as NodeJS.ErrnoException).code ?? e}`))
  return out
}

t.test("a daemon killed -9 and started again: the tasks it adopts serve the published port again", async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-restart-mesh-'))
  const sock = join(dir, 'd.sock')
  const o = { dataDir: join(dir, 'data'), sock, hostname: 'restart-1', args: ['--ingress-addr', IP] }
  let proc = await startDaemon(o)
  let nodeId = ''
  t.teardown(async () => {
    await proc.stop()
    if (nodeId) killTasks([nodeId])
    rmSync(dir, { recursive: true, force: true })
  })
  const ctl = async (...args: string[]): Promise<string> => {
    const r = await swarmctl(sock, ...args)
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  await ctl('swarm', 'init', '--advertise-addr', IP, '--listen-addr', `${IP}:2377`)
  nodeId = JSON.parse(await ctl('node', 'inspect', 'self'))[0].ID
  await ctl('service', 'create', '--name', 'web', '--replicas', '3', '--publish', `${PORT}:80`, 'node', 'node', '-e', SERVER)
  await waitUntil(async () => (await answers(3)).every(a => /^[123]$/.test(a)), { timeoutMs: 30_000, what: 'the published port answering' })
  const before = runningTasks([nodeId], 'web')
  t.equal(before.size, 3)

  proc.kill('SIGKILL')
  await proc.exited
  proc = await startDaemon(o)
  await waitUntil(async () => (await ctl('service', 'ps', '-q', '--filter', 'desired-state=running', 'web')).trim().split('\n').length === 3, { timeoutMs: 30_000, what: 'three tasks running' })
  t.same(runningTasks([nodeId], 'web'), before, 'the same three task processes, adopted')
  // Connections may be refused for a moment while the mesh starts; then every request is answered by an adopted task.
  await waitUntil(async () => (await answers(1))[0] !== undefined && /^[123]$/.test((await answers(1))[0]!), { timeoutMs: 20_000, what: 'the published port answering after the restart' })
  const got = await answers(9)
  t.same(got.filter(a => /^[123]$/.test(a)).length, 9, `9 of 9 answered by the adopted tasks: ${got.join(' ')}`)
  t.same(new Set(got).size, 3, 'balanced over the three')
})
