/**
 * `docker swarm update`, `swarm ca`, `swarm unlock-key` and `swarm unlock`
 * with the real docker CLI against swarmd daemons on loopback: the task
 * history limit, the dispatcher heartbeat and the certificate expiry shown
 * by `docker info` and taking effect (a crash-looping slot keeps one ended
 * task; a node that joins after the change renews its short-lived
 * certificate), what swarmd does not have refused; autolock: a restarted
 * manager locked with Docker's texts until `swarm unlock` gives the key, a
 * wrong or rotated-away key refused, the key on no disk; and with two
 * managers on etcd, each one locked after a restart, and the events of one
 * manager's writes seen on the other.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { killTasks, startDaemon } from './helpers/daemon.js'
import { DOCKER, dockerCliMissing, etcdMissing, testNeeding } from './helpers/prerequisites.js'
import { run, sleep, waitUntil, type ManagedProcess } from './helpers/procs.js'

const LOCKED = 'Error response from daemon: Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.'

interface Daemon {
  name: string
  ip: string
  sock: string
  dir: string
  proc?: ManagedProcess
}

/** Daemons of one test, started and stopped on their own data dirs; the teardown stops them and removes everything. */
async function daemons(t: Test, prefix: string, hosts: [string, string][]): Promise<{ hosts: Daemon[]; dir: string; restart(h: Daemon): Promise<void>; track(h: Daemon): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `swarmd-${prefix}-`))
  const list: Daemon[] = hosts.map(([name, ip]) => ({ name, ip, sock: join(dir, `${name}.sock`), dir: join(dir, name) }))
  // The node IDs the daemons had: the teardown's last resort kills their task processes.
  const ids: string[] = []
  t.teardown(async () => {
    await Promise.all(list.map(h => h.proc?.stop({ graceMs: 15_000 })))
    killTasks(ids)
    rmSync(dir, { recursive: true, force: true })
  })
  const start = async (h: Daemon): Promise<void> => {
    h.proc = await startDaemon({ dataDir: h.dir, sock: h.sock, hostname: h.name, logLevel: 'info', args: ['--ingress-addr', h.ip] })
  }
  for (const h of list) await start(h)
  return {
    hosts: list,
    dir,
    restart: async h => {
      await h.proc?.stop({ graceMs: 15_000 })
      await start(h)
    },
    track: async h => void ids.push((await ok(h, 'info', '--format', '{{.Swarm.NodeID}}')).trim()),
  }
}

const docker = (h: Daemon, args: string[], stdin?: string) =>
  stdin === undefined
    ? run(DOCKER!, ['-H', `unix://${h.sock}`, ...args], { timeoutMs: 60_000 })
    : run('sh', ['-c', `printf '%s\\n' "$KEY" | "$DOCKER" -H "unix://$SOCK" ${args.join(' ')}`], { env: { ...process.env, KEY: stdin, DOCKER: DOCKER!, SOCK: h.sock }, timeoutMs: 60_000 })

async function ok(h: Daemon, ...args: string[]): Promise<string> {
  const r = await docker(h, args)
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} on ${h.name} failed (${r.code}): ${r.stderr}`)
  return r.stdout
}

/** Every file under `dir`, read whole, for the check that a key is on no disk. */
function contents(dir: string): Buffer[] {
  const out: Buffer[] = []
  for (const e of readdirSync(dir)) {
    const p = join(dir, e)
    const st = statSync(p, { throwIfNoEntry: false })
    if (st?.isDirectory()) out.push(...contents(p))
    else if (st?.isFile()) out.push(readFileSync(p))
  }
  return out
}

/** Neither the key's bytes nor any of its texts in any file under `dir`. */
function keyNowhere(dir: string, human: string): boolean {
  const raw = Buffer.from(human.slice('SWMKEY-1-'.length), 'base64')
  const texts = [human, human.slice('SWMKEY-1-'.length), raw.toString('base64'), raw.toString('hex')].map(s => Buffer.from(s))
  return contents(dir).every(b => !b.includes(raw) && texts.every(s => !b.includes(s)))
}

testNeeding(t, 'swarm settings and autolock on one manager and a worker', dockerCliMissing, async t => {
  const { hosts, restart, track } = await daemons(t, 'settings', [
    ['settings-mgr', '127.0.18.21'],
    ['settings-wk', '127.0.18.22'],
  ])
  const [mgr, wk] = hosts as [Daemon, Daemon]
  await ok(mgr, 'swarm', 'init', '--advertise-addr', mgr.ip, '--listen-addr', `${mgr.ip}:2377`)
  const token = (await ok(mgr, 'swarm', 'join-token', '-q', 'worker')).trim()
  await ok(wk, 'swarm', 'join', '--token', token, '--advertise-addr', wk.ip, `${mgr.ip}:2377`)
  await Promise.all(hosts.map(track))
  await waitUntil(async () => ((await ok(mgr, 'node', 'ls')).match(/Ready/g) ?? []).length === 2, { timeoutMs: 30_000, what: 'two Ready nodes' })

  await t.test('swarm update: shown by docker info, refused for what swarmd does not have', async t => {
    t.equal(await ok(mgr, 'swarm', 'update', '--task-history-limit', '1', '--dispatcher-heartbeat', '2s', '--cert-expiry', '6s'), 'Swarm updated.\n')
    const info = await ok(mgr, 'info')
    t.match(info, /Orchestration:\n\s+Task History Retention Limit: 1\n/)
    t.match(info, /Dispatcher:\n\s+Heartbeat Period: 2 seconds\n/)
    t.match(info, /CA Configuration:\n\s+Expiry Duration: 6 seconds\n/)
    t.match(info, /Autolock Managers: false\n/)
    let r = await docker(mgr, ['swarm', 'update', '--max-snapshots', '3'])
    t.same([r.code, r.stderr.trim()], [1, "Error response from daemon: swarmd does not support raft's settings (Raft.KeepOldSnapshots): it keeps the swarm's state in its own store or etcd"])
    r = await docker(mgr, ['swarm', 'update', '--dispatcher-heartbeat', '-1s'])
    t.equal(r.stderr.trim(), 'Error response from daemon: rpc error: code = InvalidArgument desc = heartbeat time period cannot be a negative duration')
    r = await docker(mgr, ['swarm', 'ca', '--rotate', '-d'])
    t.equal(r.stderr.trim(), 'Error response from daemon: swarmd does not support rotating the root CA (swarm ca --rotate)')
    t.match(await ok(mgr, 'info'), /Task History Retention Limit: 1\n/, 'a refused update changed nothing')
    const ca = await ok(mgr, 'swarm', 'ca')
    t.match(ca, /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=]+\n-----END PUBLIC KEY-----\n$/, "swarm ca: the node CA's public key")
  })

  await t.test('the task history limit and the certificate expiry take effect', async t => {
    await ok(mgr, 'service', 'create', '-d', '--name', 'crash', '--restart-delay', '100ms', '--constraint', 'node.role==manager', 'alpine', 'sh', '-c', 'sleep 0.2; exit 1')
    const seen = new Set<string>()
    let most = 0
    await waitUntil(
      async () => {
        const ids = (await ok(mgr, 'service', 'ps', '-q', 'crash')).trim().split('\n').filter(Boolean)
        for (const id of ids) seen.add(id)
        most = Math.max(most, ids.length)
        return seen.size >= 5
      },
      { timeoutMs: 60_000, intervalMs: 300, what: 'the crashing task replaced four times' },
    )
    t.ok(most <= 2, `at most the task and one ended one listed (most ${most}, of ${seen.size} tasks seen)`)
    await ok(mgr, 'service', 'rm', 'crash')

    // A node joining now gets a six-second certificate, which it renews at two thirds of its life.
    t.equal((await ok(wk, 'swarm', 'leave')).trim(), 'Node left the swarm.')
    t.notOk(wk.proc!.stderrTail(Infinity).includes('certificate renewed'), 'its first certificate, of 90 days, was never renewed')
    await ok(wk, 'swarm', 'join', '--token', token, '--advertise-addr', wk.ip, `${mgr.ip}:2377`)
    await track(wk)
    await waitUntil(() => wk.proc!.stderrTail(Infinity).includes('certificate renewed'), { timeoutMs: 20_000, what: "the worker's certificate renewed" })
    t.pass('the new worker renewed its certificate within seconds: it was issued for 6 s, not 90 days')
    // Back to 90 days; the worker's next renewal brings it one (a six-second one would expire while the manager restarts below).
    await ok(mgr, 'swarm', 'update', '--cert-expiry', '2160h')
    const notAfter = (): number => Math.max(0, ...[...wk.proc!.stderrTail(Infinity).matchAll(/"notAfter":"([^"]+)"[^\n]*certificate renewed/g)].map(m => Date.parse(m[1]!)))
    await waitUntil(() => notAfter() > Date.now() + 86_400_000, { timeoutMs: 20_000, what: 'a renewal for 90 days' })
  })

  let key = ''
  await t.test('autolock: a restarted manager waits for swarm unlock', async t => {
    const out = await ok(mgr, 'swarm', 'update', '--autolock=true')
    const m = /^Swarm updated\.\nTo unlock a swarm manager after it restarts, run the `docker swarm unlock`\ncommand and provide the following key:\n\n {4}(SWMKEY-1-[A-Za-z0-9+/]{43})\n\nRemember to store this key in a password manager, since without it you\nwill not be able to restart the manager\.\n$/.exec(out)
    t.ok(m, `docker's text and the key: ${out}`)
    key = m?.[1] ?? ''
    t.equal((await ok(mgr, 'swarm', 'unlock-key', '-q')).trim(), key)
    t.match(await ok(mgr, 'info'), /Autolock Managers: true\n/)
    await ok(mgr, 'secret', 'create', 'pw', '/etc/hostname')
    await ok(mgr, 'service', 'create', '-d', '--name', 'keep', '--constraint', 'node.role==worker', 'alpine', 'sh', '-c', 'while true; do sleep 1; done')

    await restart(mgr)
    let r = await docker(mgr, ['node', 'ls'])
    t.same([r.code, r.stderr.trim()], [1, LOCKED], "locked, with Docker's text")
    t.equal((await ok(mgr, 'info', '--format', '{{.Swarm.LocalNodeState}}')).trim(), 'locked')
    t.ok(keyNowhere(mgr.dir, key), "the unlock key is in no file of the manager's data dir")
    r = await docker(mgr, ['swarm', 'unlock'], `SWMKEY-1-${'A'.repeat(43)}`)
    t.equal(r.stderr.trim(), 'Error response from daemon: swarm could not be unlocked: invalid key provided')
    r = await docker(mgr, ['swarm', 'unlock'], 'not a key')
    t.equal(r.stderr.trim(), 'Error response from daemon: invalid key string')
    r = await docker(mgr, ['swarm', 'unlock'], key)
    t.equal(r.code, 0, `unlocked: ${r.stderr}`)
    t.match(await ok(mgr, 'secret', 'ls'), /pw/, 'the secrets are there')
    await waitUntil(async () => /keep\s+replicated\s+1\/1/.test(await ok(mgr, 'service', 'ls')), { timeoutMs: 30_000, what: 'the service of before, its task running' })
    t.pass('and the services')
    t.equal((await docker(mgr, ['swarm', 'unlock'], key)).stderr.trim(), 'Error: swarm is not locked', 'the docker CLI asks the daemon first')
  })

  await t.test('unlock-key --rotate: the old key no longer unlocks; autolock off: no lock', async t => {
    const out = await ok(mgr, 'swarm', 'unlock-key', '--rotate')
    const rotated = /(SWMKEY-1-[A-Za-z0-9+/]{43})/.exec(out)?.[1] ?? ''
    t.match(out, /^Successfully rotated manager unlock key\.\nTo unlock a swarm manager/)
    t.not(rotated, key)
    await restart(mgr)
    t.equal((await docker(mgr, ['swarm', 'unlock'], key)).stderr.trim(), 'Error response from daemon: swarm could not be unlocked: invalid key provided', 'the old key')
    t.equal((await docker(mgr, ['swarm', 'unlock'], rotated)).code, 0, 'the new one')
    t.equal(await ok(mgr, 'swarm', 'update', '--autolock=false'), 'Swarm updated.\n')
    t.equal((await docker(mgr, ['swarm', 'unlock-key'])).stderr.trim(), 'no unlock key is set')
    await restart(mgr)
    t.match(await ok(mgr, 'node', 'ls'), /settings-mgr/, 'not locked')
  })
})

testNeeding(t, 'autolock and events with two managers on etcd', dockerCliMissing ?? etcdMissing, async t => {
  const { hosts, dir, restart, track } = await daemons(t, 'settings-ha', [
    ['ha-mgr-1', '127.0.18.31'],
    ['ha-mgr-2', '127.0.18.32'],
  ])
  const [m1, m2] = hosts as [Daemon, Daemon]
  await ok(m1, 'swarm', 'init', '--advertise-addr', m1.ip, '--listen-addr', `${m1.ip}:2377`)
  const token = (await ok(m1, 'swarm', 'join-token', '-q', 'manager')).trim()
  t.match(await ok(m2, 'swarm', 'join', '--token', token, '--advertise-addr', m2.ip, '--listen-addr', `${m2.ip}:2377`, `${m1.ip}:2377`), /as a manager/)
  const managers = async (h: Daemon): Promise<string> => (await ok(h, 'node', 'ls', '--format', '{{.ManagerStatus}}')).split('\n').filter(Boolean).sort().join(',')
  await waitUntil(async () => (await managers(m2)) === 'Leader,Reachable', { timeoutMs: 60_000, what: 'two managers, one Leader' })
  await Promise.all(hosts.map(track))

  const since = String(Math.floor(Date.now() / 1000) - 1)
  await ok(m1, 'secret', 'create', 'ha-pw', '/etc/hostname')
  await waitUntil(async () => /secret create [0-9a-z]{25} \(name=ha-pw\)/.test(await ok(m2, 'events', '--since', since, '--until', '0s', '-f', 'type=secret')), { timeoutMs: 15_000, what: "the other manager's event" })
  t.pass("a secret created through one manager is an event on the other, from etcd's watch")

  const out = await ok(m2, 'swarm', 'update', '--autolock=true')
  const key = /(SWMKEY-1-[A-Za-z0-9+/]{43})/.exec(out)?.[1] ?? ''
  t.ok(key, 'an unlock key')
  await waitUntil(async () => (await ok(m1, 'swarm', 'unlock-key', '-q')).trim() === key, { timeoutMs: 15_000, what: 'the same key on the other manager' })
  // Each manager seals its own data key under it when it sees the change.
  await waitUntil(() => m1.proc!.stderrTail(Infinity).includes('sealed under the unlock key') && m2.proc!.stderrTail(Infinity).includes('sealed under the unlock key'), { timeoutMs: 15_000, what: 'both managers sealed their data key' })
  for (const m of [m1, m2]) {
    await restart(m)
    t.equal((await docker(m, ['node', 'ls'])).stderr.trim(), LOCKED, `${m.name} restarted is locked`)
    t.equal((await docker(m, ['swarm', 'unlock'], key)).code, 0, `${m.name} unlocked`)
    await waitUntil(async () => (await managers(m)) === 'Leader,Reachable', { timeoutMs: 60_000, what: `${m.name} back among the managers` })
  }
  t.match(await ok(m1, 'secret', 'ls'), /ha-pw/)
  await sleep(500)
  t.ok(keyNowhere(dir, key), 'the unlock key is on no disk: neither data dir nor etcd holds it in the clear')
})
