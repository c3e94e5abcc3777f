/**
 * What crosses the wire: a capture (tcpdump on lo, taken by the test) of the
 * control plane (2377) and gossip (7946) while a worker joins a manager and
 * the cluster runs. None of the node names, IDs, tokens or JSON that went
 * through may appear in it. Addresses 127.0.0.11-12 belong to this file.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startDaemon, swarmctl } from './helpers/daemon.js'
import { captureMissing, TCPDUMP, testNeeding } from './helpers/prerequisites.js'
import { sleep, spawnManaged, waitUntil, type ManagedProcess } from './helpers/procs.js'


testNeeding(t, 'no plaintext on 2377 or 7946', captureMissing, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-capture-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pcap = join(dir, 'swarm.pcap')
  const cap = spawnManaged(TCPDUMP!, ['-i', 'lo', '-U', '-n', '-s', '0', '-w', pcap, '(host 127.0.0.11 or host 127.0.0.12) and (port 2377 or port 7946)'], { label: 'tcpdump', mergeStderr: true })
  t.teardown(() => cap.stop({ signal: 'SIGINT' }))
  await cap.waitForLine(l => l.includes('listening on'), 15_000, 'tcpdump to listen')

  const procs: ManagedProcess[] = []
  t.teardown(() => Promise.all(procs.map(p => p.stop())))
  const hosts = [
    { name: 'capture-manager-xq', ip: '127.0.0.11', sock: join(dir, 'm.sock') },
    { name: 'capture-worker-zk', ip: '127.0.0.12', sock: join(dir, 'w.sock') },
  ] as const
  for (const h of hosts) procs.push(await startDaemon({ dataDir: join(dir, h.name), sock: h.sock, hostname: h.name }))
  const [m, w] = hosts
  const ctl = swarmctl
  t.equal((await ctl(m.sock, 'swarm', 'init', '--advertise-addr', m.ip, '--listen-addr', `${m.ip}:2377`)).code, 0)
  const token = (await ctl(m.sock, 'swarm', 'join-token', '-q', 'worker')).stdout.trim()
  t.equal((await ctl(w.sock, 'swarm', 'join', '--token', token, '--advertise-addr', w.ip, `${m.ip}:2377`)).code, 0)
  await waitUntil(async () => /capture-worker-zk\s+Ready/.test((await ctl(m.sock, 'node', 'ls')).stdout), { timeoutMs: 30_000, what: 'the worker Ready' })
  const ids = (await ctl(m.sock, 'node', 'ls', '-q')).stdout.trim().split('\n')
  t.equal(ids.length, 2)
  // Some gossip and heartbeats to capture.
  await sleep(3_000)
  await cap.stop({ signal: 'SIGINT' })

  const bytes = readFileSync(pcap)
  t.ok(bytes.length > 10_000, `captured ${bytes.length} bytes`)
  const secret = token.slice(-25)
  for (const needle of [m.name, w.name, ...ids, token, secret, token.slice(9, 59), '"Availability"', '"hostname"', '"gossipKeys"', 'SWMTKN']) {
    t.equal(bytes.indexOf(needle), -1, `no "${needle.slice(0, 30)}" on the wire`)
  }
})
