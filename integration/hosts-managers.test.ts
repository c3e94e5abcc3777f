/**
 * Three managers and two workers on five hosts (network namespaces), the
 * managers' state in etcd: the walkthrough sent to a follower, the Leader's
 * daemon killed -9 (its etcd member dies with it, as when the host is lost),
 * a client writing without pause through three Leader kills with its
 * history checked afterwards, a worker promoted and demoted under load, and
 * a capture of the etcd ports. Timings print as JSON lines.
 */
import { request } from 'node:http'
import t from 'tap'
import { Hosts, hostsMissing, secondsSince, type Host } from './helpers/hosts.js'
import { formManagers, leaderOf, waitManagers, waitNewLeader } from './helpers/managers.js'
import { etcdMissing, testNeeding } from './helpers/prerequisites.js'
import { sleep, waitUntil } from './helpers/procs.js'

const LOOP = ['busybox', 'sh', '-c', 'while true; do sleep 1; done']

/** A call to the API on `h`'s socket: its status and JSON body (a refused or broken connection is status 0). */
function call(h: Host, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise(resolve => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const req = request({ socketPath: h.sock, method, path: `/v1.41${path}`, timeout: 20_000, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', d => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }))
    })
    req.on('error', () => resolve({ status: 0, body: undefined }))
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end(data)
  })
}

testNeeding(t, 'three managers and two workers', hostsMissing ?? etcdMissing, async t => {
  const c = await Hosts.create(t, 5, { prefix: 'ha-' })
  const [m1, m2, m3, w4, w5] = c.hosts as [Host, Host, Host, Host, Host]
  const managers = [m1, m2, m3]
  const t0 = performance.now()
  await formManagers(c, managers, [w4, w5])
  t.comment(`three managers and two workers formed in ${secondsSince(t0)} s`)

  await t.test('the walkthrough, sent to a follower', async t => {
    const leader = await leaderOf(c, m1)
    const statuses = await Promise.all(managers.map(async m => (await c.nodes(m)).filter(r => r.managerStatus).map(r => `${r.hostname}:${r.managerStatus}`).sort()))
    t.equal(new Set(statuses.map(s => s.join())).size, 1, 'every manager shows the same managers')
    t.same(statuses[0]!.map(s => s.split(':')[1]).sort(), ['Leader', 'Reachable', 'Reachable'])
    const follower = managers.find(m => m !== leader)!
    const info = await c.api<{ Swarm: { Managers: number; Nodes: number; ControlAvailable: boolean } }>(follower, '/info')
    t.match(info.Swarm, { Managers: 3, Nodes: 5, ControlAvailable: true })
    const create = await c.ctlOk(follower, 'service', 'create', '--name', 'web', '--replicas', '5', ...LOOP)
    t.match(create, /verify: Service converged\n$/, 'create through a follower converges')
    t.match(await c.ctlOk(follower, 'service', 'scale', 'web=6'), /verify: Service converged\n$/)
    t.match(await c.ctlOk(follower, 'service', 'update', '--env-add', 'V=2', 'web'), /verify: Service converged\n$/)
    const svc = JSON.parse(await c.ctlOk(leader, 'service', 'inspect', 'web'))[0]
    t.same([svc.Spec.Mode.Replicated.Replicas, svc.Spec.TaskTemplate.ContainerSpec.Env], [6, ['V=2']], 'the leader has what the follower wrote')
    await c.waitSteady(leader, 'web', 6, performance.now(), 60_000)
  })

  await t.test('kill -9 of the Leader: a new Leader, writes again, its tasks elsewhere, the workers untouched', async t => {
    const leader = await leaderOf(c, m1)
    const survivor = managers.find(m => m !== leader)!
    const onWorkers = (): string[] => [...c.taskProcesses('web').entries()].filter(([h]) => h === w4.name || h === w5.name).flatMap(([, s]) => [...s]).sort()
    const workerTasks = onWorkers()
    t.ok(workerTasks.length > 0, `the workers run ${workerTasks.length} tasks`)
    const k0 = performance.now()
    await c.kill9(leader)
    let writeS = 0
    await waitUntil(async () => (await c.ctl(survivor, 'service', 'scale', '-d', 'web=6')).code === 0, { timeoutMs: 30_000, intervalMs: 100, what: 'a write after the kill' })
    writeS = secondsSince(k0)
    const newLeader = await waitNewLeader(c, survivor, leader.name)
    const leaderS = secondsSince(k0)
    // The write path that needs the new Leader itself: a scale only it can carry out (the orchestrator runs there).
    await c.ctlOk(survivor, 'service', 'scale', '-d', 'web=7')
    await waitUntil(async () => (await c.runningTasks(survivor, 'web')).size === 7, { timeoutMs: 30_000, intervalMs: 250, what: 'the new Leader placing the 7th task' })
    const scaledS = secondsSince(k0)
    await waitUntil(async () => (await c.nodes(survivor)).some(r => r.hostname === leader.name && r.status === 'Down' && r.managerStatus === 'Unreachable'), { timeoutMs: 30_000, intervalMs: 250, what: `${leader.name} Down and Unreachable` })
    const downS = secondsSince(k0)
    await c.waitTasksAway(survivor, 'web', 7, [leader], k0, 60_000)
    const awayS = secondsSince(k0)
    t.comment(JSON.stringify({ fault: 'kill -9 of the Leader daemon', writeS, newLeaderS: leaderS, newLeaderScheduledS: scaledS, downAndUnreachableS: downS, tasksElsewhereS: awayS, newLeader }))
    t.ok(leaderS <= 15, `a new Leader within 15 s (${leaderS} s; the goal is 5)`)
    t.same(onWorkers().filter(id => workerTasks.includes(id)), workerTasks, "the workers' tasks were never restarted")
    await c.start(leader)
    await waitManagers(c, survivor, 3, 60_000)
    t.pass(`${leader.name} is back, Reachable, ${secondsSince(k0)} s after the kill`)
    await c.ctlOk(survivor, 'service', 'scale', '-d', 'web=6')
  })

  await t.test('no acknowledged write lost while the Leader is killed three times', async t => {
    interface Op {
      f: 'create' | 'update'
      name: string
      value?: number
      via: string
      result: 'ok' | 'fail'
      id?: string
      at: number
      done?: number
    }
    const history: Op[] = []
    const up = new Set(managers)
    let stop = false
    let seq = 0
    const created: { name: string; id: string }[] = []
    // Three clients at once, straight to the API (a swarmctl process per call would leave few calls in the window).
    const client = async (k: number): Promise<void> => {
      while (!stop) {
        const via = [...up][(seq + k) % up.size]!
        const n = ++seq
        const at = performance.now()
        if (created.length === 0 || n % 3 === 0) {
          const name = `h${n}`
          const r = await call(via, 'POST', '/services/create', { Name: name, TaskTemplate: { ContainerSpec: { Image: 'busybox', Command: ['true'] } }, Mode: { Replicated: { Replicas: 0 } } })
          const ok = r.status === 201 || r.status === 200
          history.push({ f: 'create', name, via: via.name, result: ok ? 'ok' : 'fail', ...(ok ? { id: (r.body as { ID: string }).ID } : {}), at, done: performance.now() })
          if (ok) created.push({ name, id: (r.body as { ID: string }).ID })
        } else {
          const target = created[n % created.length]!
          const cur = await call(via, 'GET', `/services/${target.id}`)
          if (cur.status !== 200) continue
          const svc = cur.body as { Version: { Index: number }; Spec: { TaskTemplate: { ContainerSpec: { Env?: string[] } } } }
          svc.Spec.TaskTemplate.ContainerSpec.Env = [`N=${n}`]
          const r = await call(via, 'POST', `/services/${target.id}/update?version=${svc.Version.Index}`, svc.Spec)
          history.push({ f: 'update', name: target.name, value: n, via: via.name, result: r.status === 200 ? 'ok' : 'fail', at, done: performance.now() })
        }
      }
    }
    const clients = Promise.all([0, 1, 2].map(client))
    const kills: { leader: string; newLeaderS: number }[] = []
    for (let round = 0; round < 3; round++) {
      await sleep(3_000)
      const leader = await leaderOf(c, [...up][0]!)
      up.delete(leader)
      const k0 = performance.now()
      await c.kill9(leader)
      await waitNewLeader(c, [...up][0]!, leader.name)
      kills.push({ leader: leader.name, newLeaderS: secondsSince(k0) })
      await sleep(2_000)
      await c.start(leader)
      await waitManagers(c, [...up][0]!, 3, 60_000)
      up.add(leader)
    }
    stop = true
    await clients
    const via = [...up][0]!
    const all = JSON.parse(await c.ctlOk(via, 'service', 'inspect', ...history.filter(o => o.f === 'create' && o.result === 'ok').map(o => o.name)))
    const creates = history.filter(o => o.f === 'create')
    const acked = creates.filter(o => o.result === 'ok')
    const listed = (await c.api<{ ID: string; Spec: { Name: string } }[]>(via, '/services')).map(s => ({ ID: s.ID, Name: s.Spec.Name }))
    // (a) every acknowledged create exists, with the ID it returned, and no name is there twice.
    t.same(all.map((s: { ID: string }) => s.ID).sort(), acked.map(o => o.id).sort(), `all ${acked.length} acknowledged creates exist, with their IDs`)
    const names = listed.map(s => s.Name).filter(n => /^h\d+$/.test(n))
    t.equal(new Set(names).size, names.length, 'no service twice')
    t.ok(names.every(n => creates.some(o => o.name === n)), 'nothing that was never asked for')
    // (b) every acknowledged update is there, or a later one is: a service's N is its last acknowledged update or a later attempt, never an older one.
    let checked = 0
    for (const s of all as { Spec: { Name: string; TaskTemplate: { ContainerSpec: { Env?: string[] } } }; Version: { Index: number } }[]) {
      const ups = history.filter(o => o.f === 'update' && o.name === s.Spec.Name)
      const lastOk = ups.filter(o => o.result === 'ok').at(-1)
      if (!lastOk) continue
      const n = Number(s.Spec.TaskTemplate.ContainerSpec.Env?.find(e => e.startsWith('N='))?.slice(2))
      // Not overwritten by the last acknowledged update: it, or an attempt that had not ended when it began.
      const allowed = ups.filter(o => o === lastOk || (o.done ?? Infinity) >= lastOk.at).map(o => o.value)
      t.ok(allowed.includes(n), `${s.Spec.Name}: N=${n} is its last acknowledged update (${lastOk.value}) or one concurrent with or after it`)
      t.ok(s.Version.Index >= 1 + ups.filter(o => o.result === 'ok').length, `${s.Spec.Name}: its version counts every acknowledged update`)
      checked++
    }
    t.comment(JSON.stringify({ check: 'writes through three Leader kills', ops: history.length, creates: creates.length, acked: acked.length, updates: history.filter(o => o.f === 'update').length, updatesAcked: history.filter(o => o.f === 'update' && o.result === 'ok').length, servicesChecked: checked, kills }))
    t.ok(acked.length > 20 && checked > 5, 'the clients got writes through')
    await c.ctlOk(via, 'service', 'rm', ...acked.map(o => o.name))
  })

  await t.test('a worker promoted and demoted while services run', async t => {
    const via = m1
    const before = c.taskProcesses('web')
    await c.ctlOk(via, 'node', 'promote', w4.name)
    await waitManagers(c, via, 4, 60_000)
    t.match(await c.ctlOk(w4, 'node', 'ls'), /ha-4\s+Ready/, `${w4.name} answers as a manager`)
    await c.ctlOk(w4, 'service', 'scale', '-d', 'web=6')
    await c.ctlOk(via, 'node', 'demote', w4.name)
    await waitManagers(c, via, 3, 60_000)
    await waitUntil(async () => (await c.ctl(w4, 'node', 'ls')).stderr.includes("Worker nodes can't be used"), { timeoutMs: 30_000, intervalMs: 250, what: `${w4.name} a worker again` })
    const after = c.taskProcesses('web')
    t.same([...after.get(w4.name)!].sort(), [...before.get(w4.name)!].sort(), `${w4.name}'s tasks kept running through both`)
    t.equal((await c.runningTasks(via, 'web')).size, 6)
  })

  await t.test('the etcd ports carry no plaintext', async t => {
    const leader = await leaderOf(c, m1)
    const cap = await c.capture(leader, ['tcp', 'port', '2379', 'or', 'tcp', 'port', '2380'])
    const marker = 'etcd-marker-5f3b9c'
    await c.ctlOk(leader, 'service', 'create', '-d', '--name', marker, '--replicas', '0', '--label', `secret=${marker}`, 'busybox', 'true')
    await sleep(1_500)
    const pcap = await cap.stop()
    t.ok(pcap.length > 2_000, `captured ${pcap.length} bytes of etcd traffic`)
    for (const plain of [marker, '"Spec"', '"TaskTemplate"', m1.id!, w4.id!]) t.notOk(pcap.includes(plain), `no ${plain} on the wire`)
  })
})
