/**
 * Three daemons on loopback addresses (127.0.0.1-3, gossip on each one's
 * 7946, the manager's control plane on 127.0.0.3:2377), driven by swarmctl:
 * join, bad and rotated tokens, a foreign CA, a worker's view, kill -9 of a
 * worker (Down, then Ready again by itself), kill -9 of the manager (nothing
 * lost, workers back by themselves), gossip keys rotated every 2 s without a
 * flap, role checks on the control plane's RPCs, and leave.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ControlNode } from '../lib/control/control-node.js'
import { generateKeyPair, publicKeyFromRaw, rawPublicKey } from '../lib/control/identity.js'
import { requestJoin } from '../lib/control/join-protocol.js'
import { callRpc } from '../lib/control/rpc.js'
import { startDaemon, swarmctl } from './helpers/daemon.js'
import { sleep, waitUntil, type ManagedProcess } from './helpers/procs.js'

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

interface Host {
  name: string
  ip: string
  sock: string
  proc?: ManagedProcess
}

t.test('a three-node swarm on loopback', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const hosts: Host[] = [1, 2, 3].map(i => ({ name: `docker-swarm-${i}`, ip: `127.0.0.${i}`, sock: join(dir, `h${i}.sock`) }))
  const [w1, w2, mgr] = hosts as [Host, Host, Host]
  const start = async (h: Host): Promise<void> => {
    h.proc = await startDaemon({ dataDir: join(dir, h.name), sock: h.sock, hostname: h.name, logLevel: 'info', args: ['--gossip-key-rotation', '2s'] })
  }
  t.teardown(() => Promise.all(hosts.map(h => h.proc?.stop())))
  const ctl = (h: Host, ...args: string[]) => swarmctl(h.sock, ...args)
  const nodeLs = async (): Promise<string> => (await ctl(mgr, 'node', 'ls')).stdout
  const status = async (name: string): Promise<string | undefined> => new RegExp(`${name}\\s+(\\w+)`).exec(await nodeLs())?.[1]
  for (const h of hosts) await start(h)

  t.equal((await ctl(mgr, 'swarm', 'init', '--advertise-addr', mgr.ip, '--listen-addr', `${mgr.ip}:2377`)).code, 0)
  const token = (await ctl(mgr, 'swarm', 'join-token', '-q', 'worker')).stdout.trim()

  // A token for another CA: the joiner refuses the manager.
  const foreign = token.replace(/^SWMTKN-1-[0-9a-z]{50}/, `SWMTKN-1-${'0'.repeat(50)}`)
  let r = await ctl(w1, 'swarm', 'join', '--token', foreign, '--advertise-addr', w1.ip, `${mgr.ip}:2377`)
  t.match(r.stderr, `remote CA does not match fingerprint. Expected: ${'0'.repeat(50)}`)
  // The right CA, a wrong secret: the manager refuses, and nothing half-joined is left.
  r = await ctl(w1, 'swarm', 'join', '--token', token.slice(0, -5) + 'aaaaa', '--advertise-addr', w1.ip, `${mgr.ip}:2377`)
  t.same([r.code, r.stderr], [1, 'Error response from daemon: A valid join token is necessary to join this cluster\n'])
  t.notMatch(await nodeLs(), w1.name)

  for (const w of [w1, w2]) {
    r = await ctl(w, 'swarm', 'join', '--token', token, '--advertise-addr', w.ip, `${mgr.ip}:2377`)
    t.same([r.code, r.stdout], [0, 'This node joined a swarm as a worker.\n'], r.stderr)
  }
  await waitUntil(async () => (await status(w1.name)) === 'Ready' && (await status(w2.name)) === 'Ready', { timeoutMs: 30_000, what: 'both workers Ready' })
  t.match(await nodeLs(), /docker-swarm-1\s+Ready\s+Active\s+\S*\s*0\.1\.0\n[^]*docker-swarm-2\s+Ready\s+Active/)
  r = await ctl(w1, 'node', 'ls')
  t.match(r.stderr, "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.")

  // Gossip keys rotate every 2 s; heartbeats carry them to the workers: after 4 rotations nobody flapped.
  const seen = new Set<string>()
  for (let i = 0; i < 20; i++) {
    seen.add(`${await status(w1.name)} ${await status(w2.name)}`)
    await sleep(500)
  }
  t.same([...seen], ['Ready Ready'], 'workers stayed Ready through key rotations')

  // The control plane's RPCs: a worker's certificate cannot call manager methods, whatever client it uses.
  const me = generateKeyPair()
  const cn = await ControlNode.create({ privateKey: me.privateKey })
  t.teardown(() => cn.stop())
  const mgrCtl = { ip: mgr.ip, port: 2377 }
  const adm = await requestJoin(cn, { token, manager: mgrCtl, hostname: 'rogue', advertiseAddr: '127.0.0.9:7946', publicKey: rawPublicKey(me.publicKey) })
  t.equal(adm.cert.body.role, 'worker')
  const caKey = publicKeyFromRaw(Buffer.from(adm.caPublicKey, 'base64'))
  await t.rejects(
    callRpc(cn, mgrCtl, adm.cert, generateKeyPair().publicKey, 'heartbeat'),
    { message: /certificate from another CA/ },
    'the caller checks the manager\'s certificate too',
  )
  const hb = await callRpc<{ gossipKeys: string[] }>(cn, mgrCtl, adm.cert, caKey, 'heartbeat')
  t.equal(hb.gossipKeys.length, 3, 'a worker may check in')
  await t.rejects(callRpc(cn, mgrCtl, adm.cert, caKey, 'nodes.list'), { message: /This node is not a swarm manager/ }, 'but not call a manager RPC')
  await t.rejects(callRpc(cn, mgrCtl, { ...adm.cert, body: { ...adm.cert.body, role: 'manager' } }, caKey, 'nodes.list'), { message: /certificate refused: forged certificate/ })
  const other = await ControlNode.create({ privateKey: generateKeyPair().privateKey })
  t.teardown(() => other.stop())
  await t.rejects(callRpc(other, mgrCtl, adm.cert, caKey, 'heartbeat'), { message: /certificate refused: .*another key/ }, 'a stolen certificate is useless')

  // Rotation: the old token no longer admits anyone.
  await ctl(mgr, 'swarm', 'join-token', '--rotate', 'worker')
  const extra: Host = { name: 'docker-swarm-4', ip: '127.0.0.4', sock: join(dir, 'h4.sock') }
  hosts.push(extra)
  await start(extra)
  r = await ctl(extra, 'swarm', 'join', '--token', token, '--advertise-addr', extra.ip, `${mgr.ip}:2377`)
  t.match(r.stderr, 'A valid join token is necessary to join this cluster', 'the rotated-out token is refused')

  // A worker killed: Down. Restarted: Ready again by itself.
  let t0 = performance.now()
  w2.proc!.kill('SIGKILL')
  await w2.proc!.exited
  await waitUntil(async () => (await status(w2.name)) === 'Down', { timeoutMs: 60_000, what: 'docker-swarm-2 Down' })
  t.comment(`killed worker Down after ${secs(performance.now() - t0)}`)
  await start(w2)
  t0 = performance.now()
  await waitUntil(async () => (await status(w2.name)) === 'Ready', { timeoutMs: 60_000, what: 'docker-swarm-2 Ready again' })
  t.comment(`restarted worker Ready after ${secs(performance.now() - t0)}`)

  // The manager killed -9: nothing lost, workers back by themselves.
  mgr.proc!.kill('SIGKILL')
  await mgr.proc!.exited
  await start(mgr)
  t0 = performance.now()
  await waitUntil(async () => (await status(w1.name)) === 'Ready' && (await status(w2.name)) === 'Ready', { timeoutMs: 60_000, what: 'workers Ready after the manager restarted' })
  t.comment(`workers Ready ${secs(performance.now() - t0)} after the manager restarted`)
  t.equal((await nodeLs()).trim().split('\n').length, 5, 'header, the three nodes and the one the test joined by hand')

  // A worker leaves: the manager shows it Down.
  t.same([(await ctl(w1, 'swarm', 'leave')).stdout], ['Node left the swarm.\n'])
  await waitUntil(async () => (await status(w1.name)) === 'Down', { timeoutMs: 30_000, what: 'docker-swarm-1 Down after leaving' })
  t.pass('a node that left is Down')

  // node rm: a Ready node only with --force, never the manager; a Down node at once.
  r = await ctl(mgr, 'node', 'rm', w2.name)
  t.match(r.stderr, /is not down and can't be removed/)
  r = await ctl(mgr, 'node', 'rm', mgr.name)
  t.match(r.stderr, /It must be demoted to worker before removal/)
  t.same([(await ctl(mgr, 'node', 'rm', w1.name)).stdout], [`${w1.name}\n`])
  t.same([(await ctl(mgr, 'node', 'rm', '--force', 'rogue')).stdout], ['rogue\n'])
  await t.rejects(callRpc(cn, mgrCtl, adm.cert, caKey, 'heartbeat'), { message: /is not part of this swarm/ }, 'a removed node\'s certificate no longer works')
  t.notMatch(await nodeLs(), /docker-swarm-1|rogue/)
})
