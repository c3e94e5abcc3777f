/**
 * Two hosts in network namespaces joined by a veth pair (10.77.x.1 and
 * 10.77.x.2, their own addresses and loopback), a swarmd in each: init, join
 * across the link, both Ready; the link down (a partition) makes the worker
 * Down, and up again Ready. Everything is torn down, also on failure.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { pingSocket, swarmctl } from './helpers/daemon.js'
import { runOk, spawnManaged, waitUntil, which, type ManagedProcess } from './helpers/procs.js'

const SWARMD = fileURLToPath(new URL('../bin/swarmd.js', import.meta.url))
const ip = which('ip', ['/usr/sbin/ip', '/sbin/ip'])
const root = process.getuid?.() === 0
const skip = ip && root ? false : process.env.SWARMD_REQUIRE_PEERS ? false : 'needs root and iproute2'

t.test('two hosts in network namespaces', { skip }, async t => {
  const tag = (process.pid % 200) + 20
  const ns = [`swd${process.pid}a`, `swd${process.pid}b`]
  const addr = [`10.77.${tag}.1`, `10.77.${tag}.2`]
  const veth = [`vs${process.pid}a`.slice(0, 15), `vs${process.pid}b`.slice(0, 15)]
  const sh = (...args: string[]) => runOk(ip!, args)
  t.teardown(async () => {
    for (const n of ns) await runOk(ip!, ['netns', 'delete', n]).catch(() => undefined)
  })
  for (const n of ns) await sh('netns', 'add', n)
  await sh('link', 'add', veth[0]!, 'type', 'veth', 'peer', 'name', veth[1]!)
  for (let i = 0; i < 2; i++) {
    await sh('link', 'set', veth[i]!, 'netns', ns[i]!)
    await sh('-n', ns[i]!, 'addr', 'add', `${addr[i]}/24`, 'dev', veth[i]!)
    await sh('-n', ns[i]!, 'link', 'set', veth[i]!, 'up')
    await sh('-n', ns[i]!, 'link', 'set', 'lo', 'up')
  }

  const dir = mkdtempSync(join(tmpdir(), 'swarmd-netns-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const procs: ManagedProcess[] = []
  t.teardown(() => Promise.all(procs.map(p => p.stop())))
  const socks = [join(dir, 'a.sock'), join(dir, 'b.sock')]
  const names = ['ns-manager', 'ns-worker']
  for (let i = 0; i < 2; i++) {
    procs.push(
      spawnManaged(ip!, ['netns', 'exec', ns[i]!, process.execPath, SWARMD, '--data-dir', join(dir, names[i]!), '-H', `unix://${socks[i]}`, '--hostname', names[i]!, '--log-level', 'warn'], {
        label: names[i]!,
      }),
    )
    await waitUntil(() => pingSocket(socks[i]!), { timeoutMs: 15_000, what: `${names[i]}'s socket` })
  }
  const [m, w] = socks as [string, string]
  t.equal((await swarmctl(m, 'swarm', 'init', '--advertise-addr', addr[0]!)).code, 0)
  const token = (await swarmctl(m, 'swarm', 'join-token', '-q', 'worker')).stdout.trim()
  const r = await swarmctl(w, 'swarm', 'join', '--token', token, '--advertise-addr', addr[1]!, `${addr[0]}:2377`)
  t.same([r.code, r.stdout], [0, 'This node joined a swarm as a worker.\n'], r.stderr)
  const status = async (): Promise<string | undefined> => /ns-worker\s+(\w+)/.exec((await swarmctl(m, 'node', 'ls')).stdout)?.[1]
  await waitUntil(async () => (await status()) === 'Ready', { timeoutMs: 30_000, what: 'the worker Ready across the link' })
  t.pass('joined across namespaces')

  let t0 = performance.now()
  await sh('-n', ns[1]!, 'link', 'set', veth[1]!, 'down')
  await waitUntil(async () => (await status()) === 'Down', { timeoutMs: 60_000, what: 'the partitioned worker Down' })
  t.comment(`partitioned worker Down after ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  t0 = performance.now()
  await sh('-n', ns[1]!, 'link', 'set', veth[1]!, 'up')
  await waitUntil(async () => (await status()) === 'Ready', { timeoutMs: 90_000, what: 'the healed worker Ready again' })
  t.comment(`healed worker Ready after ${((performance.now() - t0) / 1000).toFixed(1)} s`)
})
