/**
 * `npm run demo` (scripts/demo.mjs): the walkthrough runs to the end with
 * --no-wait and prints docker's outputs, the mesh answering from all three
 * hosts; Ctrl-C in the middle tears down too. Either way nothing is left:
 * no daemon, no task process, no namespace or bridge, no temp dir. As root
 * the hosts are namespaces on a subnet of their own (a free 10.99.x.0/24);
 * otherwise loopback addresses no other test uses (127.0.0.71-76).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { taskProcesses } from './helpers/daemon.js'
import { run, spawnManaged, which, type ExitStatus, type ManagedProcess } from './helpers/procs.js'

const DEMO = fileURLToPath(new URL('../scripts/demo.mjs', import.meta.url))
const ip = which('ip', ['/usr/sbin/ip', '/sbin/ip'])
const netns = process.getuid?.() === 0 && !!ip
const tag = (process.pid % 200) + 20

/** The node IDs in the demo's `node ls`. */
const nodeIds = (out: string): string[] => [...out.matchAll(/^([0-9a-z]{25}) (?:\*| ) +docker-swarm-\d/gm)].map(m => m[1]!)

/** What one run left behind, found from what it printed. */
async function leftovers(out: string): Promise<string[]> {
  const found: string[] = []
  const dir = /state, sockets and logs in (\S+)/.exec(out)?.[1]
  if (!dir) return ['no temp dir printed']
  if (existsSync(dir)) found.push(`temp dir ${dir}`)
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'latin1').includes(dir)) found.push(`process ${d}: ${readFileSync(`/proc/${d}/cmdline`, 'latin1').replaceAll('\0', ' ')}`)
    } catch {
      // gone
    }
  }
  for (const p of taskProcesses(nodeIds(out))) found.push(`task process ${p.pid} (task ${p.task})`)
  if (netns) {
    const names = [...out.matchAll(/network namespace (\S+)\)/g)].map(m => m[1]!)
    const listed = (await run(ip!, ['netns', 'list'])).stdout
    for (const n of names) if (listed.split('\n').some(l => l.split(' ')[0] === n)) found.push(`namespace ${n}`)
    for (const id of nodeIds(out)) for (const n of readdirSync('/run/netns').filter(x => x.startsWith(`swarmd-${id}-`))) found.push(`task namespace ${n}`)
    const bridge = /on bridge (\S+)/.exec(out)?.[1]
    if (bridge && (await run(ip!, ['link', 'show', bridge])).code === 0) found.push(`bridge ${bridge}`)
  }
  return found
}

/**
 * Starts the demo; should the test itself fail, whatever it left is removed.
 * Without tap's NODE_OPTIONS: its process-info hook in each of the demo's
 * many node processes doubles the run, for coverage the services and mesh
 * tests already give.
 */
function startDemo(t: Test, args: string[]): ManagedProcess {
  const { NODE_OPTIONS: _, ...env } = process.env
  const p = spawnManaged(process.execPath, [DEMO, ...args], { label: 'demo', mergeStderr: true, env })
  t.teardown(async () => {
    await p.stop({ signal: 'SIGINT', graceMs: 20_000 })
    if (!netns) return
    const out = p.lines.join('\n')
    for (const m of out.matchAll(/network namespace (\S+)\)/g)) await run(ip!, ['netns', 'delete', m[1]!])
    const bridge = /on bridge (\S+)/.exec(out)?.[1]
    if (bridge) await run(ip!, ['link', 'delete', bridge])
  })
  return p
}

/** The demo's exit status, or undefined if it has not ended within `ms`. */
async function exitWithin(p: ManagedProcess, ms: number): Promise<ExitStatus | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p.exited, new Promise<undefined>(resolve => (timer = setTimeout(() => resolve(undefined), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

/** Where run `n` puts its hosts: as root a 10.99.B.0/24 nothing routes yet (the namespace tests pick theirs the same way). */
async function modeArgs(n: number): Promise<string[]> {
  if (!netns) return ['--mode', 'loopback', '--addr-base', `127.0.0.${71 + 3 * n}`, '--port', '28490']
  const routes = (await run(ip!, ['-4', 'route', 'show'])).stdout.split('\n')
  let b = tag + 3 * n
  while (routes.some(r => r.startsWith(`10.99.${b}.0/24 `))) b = (b + 1) % 250
  return ['--mode', 'netns', '--addr-base', `10.99.${b}.1`]
}

t.test('the walkthrough, then teardown (--no-wait)', async t => {
  const t0 = performance.now()
  const p = startDemo(t, ['--no-wait', ...(await modeArgs(0))])
  const st = await exitWithin(p, 150_000)
  const out = p.lines.join('\n')
  t.same(st, { code: 0, signal: null }, `the demo ends by itself, status 0\n${out.slice(-3000)}`)
  t.comment(`demo (${netns ? 'namespaces' : 'loopback'}) ran in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

  t.match(out, /^\$ swarmctl swarm init --advertise-addr \S+3 --listen-addr \S+3:2377\nSwarm initialized: current node \([0-9a-z]{25}\) is now a manager\./m)
  t.equal(out.match(/^\$ swarmctl -H unix:\/\/\S+docker-swarm-[12]\.sock swarm join --token SWMTKN-1-\S+ .*\nThis node joined a swarm as a worker\.$/gm)?.length, 2, 'both workers join')
  const nodeLs = /^\$ swarmctl node ls\n((?:.+\n){4})/m.exec(out)?.[1] ?? ''
  t.match(nodeLs, /^ID +HOSTNAME +STATUS +AVAILABILITY +MANAGER STATUS +ENGINE VERSION\n/, 'node ls')
  t.equal(nodeLs.match(/ Ready /g)?.length, 3, 'three Ready nodes')
  t.match(nodeLs, /^[0-9a-z]{25} \* +docker-swarm-3 +Ready +Active +Leader/m, 'the manager on docker-swarm-3')
  t.match(out, /^\$ swarmctl service create --name helloworld --replicas 3 --publish \d+:80 node node -e '.+'\n[0-9a-z]{25}\n(?:.*\n)*?verify: Service converged$/m, 'service create converges')
  t.match(out, /^[0-9a-z]{12} +helloworld +replicated +3\/3 +node +\*:\d+->80\/tcp$/m, 'service ls')

  const answers = [...out.matchAll(/^GET http:\/\/(\S+):\d+\/ {2}-> {2}(.*)$/gm)].map(m => ({ via: m[1]!, body: m[2]! }))
  t.equal(answers.length, 9, 'nine requests through the mesh')
  t.ok(answers.every(a => /^hello from docker-swarm-[123] \(helloworld\.[123]\)$/.test(a.body)), 'every one answered by a task')
  t.equal(new Set(answers.map(a => a.via)).size, 3, 'sent to the three hosts')
  t.equal(new Set(answers.map(a => a.body)).size, 3, 'answered by the three tasks, on three hosts')
  t.match(out, /^# answered by: docker-swarm-1 \dx, docker-swarm-2 \dx, docker-swarm-3 \dx$/m)

  t.match(out, /^\$ swarmctl service scale helloworld=5\nhelloworld scaled to 5\n/m)
  const ps = /^\$ swarmctl service scale helloworld=5\n[^]*?^\$ swarmctl service ps helloworld\n((?:.+\n)+)/m.exec(out)?.[1] ?? ''
  t.equal(ps.match(/^\S+ +helloworld\.[1-5] +node +docker-swarm-[123] +Running +Running /gm)?.length, 5, 'five tasks running after the scale')
  const logs = (/^\$ swarmctl service logs --tail 2 helloworld\n((?:.+\n)+)/m.exec(out)?.[1] ?? '').trimEnd().split('\n')
  t.ok(logs.length >= 5, `logs of the five tasks (${logs.length} lines)`)
  for (const l of logs) t.match(l, /^helloworld\.[1-5]\.[0-9a-z]{12}@docker-swarm-[123] +\| (?:GET \/|listening on \d+)$/)
  t.notMatch(out, /Cluster is up/, '--no-wait does not wait')
  t.match(out, /^Stopped the three daemons and their tasks; removed .+\.$/m)
  t.same(await leftovers(out), [], 'nothing left behind')
})

t.test('Ctrl-C in the middle of the walkthrough tears down', async t => {
  const p = startDemo(t, await modeArgs(1))
  // Printed once the service has converged: its tasks run.
  await p.waitForLine(l => l.startsWith('$ swarmctl service create'), 150_000, 'the service created')
  t.equal(new Set(taskProcesses(nodeIds(p.lines.join('\n'))).map(x => x.task)).size, 3, 'three task processes run')
  p.kill('SIGINT')
  const st = await exitWithin(p, 30_000)
  const out = p.lines.join('\n')
  t.same(st, { code: 130, signal: null }, `interrupted: status 130\n${out.slice(-2000)}`)
  t.match(out, /^Tearing down \.\.\.$/m)
  t.match(out, /^Stopped the three daemons and their tasks; removed .+\.$/m)
  t.notMatch(out, /^GET http/m, 'the walkthrough stopped')
  t.same(await leftovers(out), [], 'nothing left behind')
})
