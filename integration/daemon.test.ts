/**
 * The swarmd daemon driven by the real docker CLI over its unix socket:
 * init, node ls / inspect / update, join tokens and their rotation, leave,
 * bad requests, and kill -9 with nothing lost. Each test has its own loopback
 * address (127.0.0.5, .6) for gossip (7946) and the control plane (2377), so
 * other test files can run beside it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startDaemon } from './helpers/daemon.js'
import { DOCKER, dockerCliMissing, testNeeding } from './helpers/prerequisites.js'
import { run, type ManagedProcess } from './helpers/procs.js'

function api(sock: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path, headers: { 'Content-Type': 'application/json' } }, res => {
      let data = ''
      res.on('data', d => (data += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: /json/.test(res.headers['content-type'] ?? '') && data ? JSON.parse(data) : data }))
    })
    req.on('error', reject)
    req.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body))
  })
}

testNeeding(t, 'the docker CLI drives a single-manager swarm', dockerCliMissing, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-daemon-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sock = join(dir, 'swarmd.sock')
  const env = { ...process.env, DOCKER_CONFIG: join(dir, 'docker-config') }
  let daemon: ManagedProcess
  const start = async (): Promise<void> => {
    daemon = await startDaemon({ dataDir: join(dir, 'data'), sock, hostname: 'docker-swarm-3' })
  }
  t.teardown(() => daemon.stop())
  const dk = (...args: string[]) => run(DOCKER!, ['-H', `unix://${sock}`, ...args], { env, timeoutMs: 30_000 })
  await start()

  let r = await dk('node', 'ls')
  t.not(r.code, 0)
  t.match(r.stderr, 'Error response from daemon: This node is not part of a swarm')

  r = await dk('swarm', 'init', '--advertise-addr', '127.0.0.5', '--listen-addr', '127.0.0.5:2377')
  t.equal(r.code, 0, r.stderr)
  const id = /Swarm initialized: current node \(([0-9a-z]{25})\) is now a manager\./.exec(r.stdout)?.[1]
  t.ok(id, r.stdout)
  t.match(r.stdout, /To add a worker to this swarm, run the following command:\n\n {4}docker swarm join --token SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25} 127\.0\.0\.5:2377\n/)

  r = await dk('swarm', 'init', '--advertise-addr', '127.0.0.5')
  t.match(r.stderr, 'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.')

  r = await dk('node', 'ls')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION\n/)
  t.match(r.stdout, new RegExp(`${id} \\*\\s+docker-swarm-3\\s+Ready\\s+Active\\s+Leader`))

  t.equal((await dk('node', 'update', '--availability', 'drain', '--label-add', 'zone=a', 'docker-swarm-3')).code, 0)
  r = await dk('node', 'inspect', '--format', '{{.Spec.Availability}} {{.Spec.Labels.zone}} {{.Status.State}}', id!.slice(0, 6))
  t.equal(r.stdout.trim(), 'drain a ready', 'by ID prefix')

  const token1 = (await dk('swarm', 'join-token', '-q', 'worker')).stdout.trim()
  t.match(token1, /^SWMTKN-1-/)
  r = await dk('swarm', 'join-token', '--rotate', '-q', 'worker')
  const token2 = r.stdout.trim().split('\n').pop()!
  t.not(token2, token1, 'rotation replaces the worker token')
  t.equal((await dk('swarm', 'join-token', '-q', 'manager')).stdout.trim().slice(0, 60), token1.slice(0, 60), 'same CA digest')

  // Bad input: Docker-style errors.
  t.equal((await api(sock, 'POST', `/v1.41/nodes/${id}/update?version=x`, {})).status, 400)
  t.equal((await api(sock, 'POST', `/v1.41/nodes/${id}/update?version=1`, { Availability: 'sometimes' })).status, 400)
  const notFound = await api(sock, 'GET', '/v1.41/nodes/nosuchnode')
  t.same([notFound.status, notFound.json], [404, { message: 'node nosuchnode not found' }])
  t.equal((await api(sock, 'POST', '/v1.41/swarm/init', '{not json')).status, 400)
  t.not((await dk('node', 'inspect', 'nosuchnode')).code, 0)

  // kill -9: nothing acknowledged is lost.
  daemon!.kill('SIGKILL')
  await daemon!.exited
  await start()
  r = await dk('node', 'ls')
  t.match(r.stdout, new RegExp(`${id} \\*\\s+docker-swarm-3\\s+Ready\\s+Drain\\s+Leader`), 'node, availability after kill -9')
  t.equal((await dk('swarm', 'join-token', '-q', 'worker')).stdout.trim(), token2, 'the rotated token after kill -9')

  r = await dk('swarm', 'leave')
  t.match(r.stderr, 'Removing the last manager erases all current state of the swarm')
  r = await dk('swarm', 'leave', '--force')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, 'Node left the swarm.')
  t.match((await dk('node', 'ls')).stderr, 'This node is not part of a swarm')
})

t.test('swarmctl speaks docker\'s commands, output and errors', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-ctl-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sock = join(dir, 'swarmd.sock')
  const daemon = await startDaemon({ dataDir: join(dir, 'data'), sock, hostname: 'docker-swarm-1' })
  t.teardown(() => daemon.stop())
  const CTL = fileURLToPath(new URL('../bin/swarmctl.js', import.meta.url))
  const ctl = (...args: string[]) => run(process.execPath, [CTL, ...args], { env: { ...process.env, SWARMD_HOST: `unix://${sock}` }, timeoutMs: 30_000 })

  let r = await ctl('node', 'ls')
  t.same([r.code, r.stderr], [1, 'Error response from daemon: This node is not part of a swarm\n'])
  r = await ctl('swarm', 'init', '--advertise-addr', '127.0.0.6', '--listen-addr', '127.0.0.6:2377')
  t.equal(r.code, 0, r.stderr)
  const id = /^Swarm initialized: current node \(([0-9a-z]{25})\) is now a manager\.\n\nTo add a worker to this swarm, run the following command:\n\n {4}swarmctl swarm join --token SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25} 127\.0\.0\.6:2377\n\nTo add a manager to this swarm, run 'swarmctl swarm join-token manager' and follow the instructions\.\n\n$/.exec(r.stdout)?.[1]
  t.ok(id, r.stdout)
  r = await ctl('node', 'ls')
  t.equal(
    r.stdout,
    'ID                            HOSTNAME         STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n' +
      `${id} *   docker-swarm-1   Ready     Active         Leader           0.1.0\n`,
  )
  t.equal((await ctl('node', 'ls', '-q')).stdout, `${id}\n`)
  r = await ctl('node', 'update', '--availability', 'drain', '--label-add', 'zone=b', 'docker-swarm-1')
  t.same([r.code, r.stdout], [0, 'docker-swarm-1\n'])
  t.match((await ctl('node', 'inspect', '--pretty', 'self')).stdout, /^ID:\t\t\t[0-9a-z]{25}\nLabels:\n - zone=b\nHostname: +\tdocker-swarm-1\n[^]*Availability: +\tDrain\n[^]*Leader:\t\tYes\n/)
  t.equal(JSON.parse((await ctl('node', 'inspect', id!)).stdout)[0].Spec.Availability, 'drain')
  r = await ctl('swarm', 'join-token', 'everyone')
  t.equal(r.code, 2, 'a usage error')
  t.match(r.stderr, 'unknown role everyone')
  r = await ctl('node', 'update', '--availability', 'sometimes', 'docker-swarm-1')
  t.same([r.code, r.stderr], [1, 'Error response from daemon: invalid Availability: "sometimes"\n'], "the daemon's text, as docker's CLI passes the value on")
  t.same([(await ctl('node', 'inspect', 'nosuch')).stderr], ['Error response from daemon: node nosuch not found\n'])
  r = await ctl('-H', `unix://${join(dir, 'nothing.sock')}`, 'node', 'ls')
  t.same([r.code, r.stderr], [1, `Cannot connect to the swarmd daemon at unix://${join(dir, 'nothing.sock')}. Is the daemon running?\n`])
  t.same([(await ctl('swarm', 'leave', '--force')).stdout], ['Node left the swarm.\n'])
})
