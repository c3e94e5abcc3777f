/**
 * Certificates renew before they expire: a swarm initialized with 3 s node
 * certificates keeps its worker Ready and its heartbeats accepted for
 * several lifetimes. Addresses 127.0.0.21-22 belong to this file.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startDaemon, swarmctl } from './helpers/daemon.js'
import { sleep, waitUntil, type ManagedProcess } from './helpers/procs.js'

t.test('node certificates renew before expiry', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-renewal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const procs: ManagedProcess[] = []
  t.teardown(() => Promise.all(procs.map(p => p.stop())))
  const m = { sock: join(dir, 'm.sock'), ip: '127.0.0.21' }
  const w = { sock: join(dir, 'w.sock'), ip: '127.0.0.22' }
  procs.push(await startDaemon({ dataDir: join(dir, 'm'), sock: m.sock, hostname: 'renew-manager', logLevel: 'info' }))
  procs.push(await startDaemon({ dataDir: join(dir, 'w'), sock: w.sock, hostname: 'renew-worker', logLevel: 'info' }))
  t.equal((await swarmctl(m.sock, 'swarm', 'init', '--advertise-addr', m.ip, '--listen-addr', `${m.ip}:2377`, '--cert-expiry', '3s')).code, 0)
  t.match((await swarmctl(m.sock, 'swarm', 'init', '--cert-expiry', 'soon')).stderr, 'invalid duration "soon"')
  const token = (await swarmctl(m.sock, 'swarm', 'join-token', '-q', 'worker')).stdout.trim()
  t.equal((await swarmctl(w.sock, 'swarm', 'join', '--token', token, '--advertise-addr', w.ip, `${m.ip}:2377`)).code, 0)
  await waitUntil(async () => /renew-worker\s+Ready/.test((await swarmctl(m.sock, 'node', 'ls')).stdout), { timeoutMs: 30_000, what: 'the worker Ready' })
  await sleep(10_000)
  const renewed = (p: ManagedProcess): number => p.stderrTail(Infinity).split('\n').filter(l => l.includes('certificate renewed')).length
  t.ok(renewed(procs[1]!) >= 3, `the worker renewed ${renewed(procs[1]!)} times in 10 s`)
  t.ok(renewed(procs[0]!) >= 3, `the manager renewed its own ${renewed(procs[0]!)} times`)
  t.notMatch(procs[0]!.stderrTail(Infinity), /expired/, 'no call was refused for an expired certificate')
  t.match((await swarmctl(m.sock, 'node', 'ls')).stdout, /renew-worker\s+Ready/)
})
