import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { etcdClient } from '../lib/manager/etcd/client.js'
import { Election } from '../lib/manager/etcd/election.js'
import { EtcdStore, type Fence } from '../lib/manager/etcd/etcd-store.js'
import { EtcdMember } from '../lib/manager/etcd/member.js'
import { EtcdCA } from '../lib/manager/etcd/pki.js'
import { etcdMissing, testNeeding } from './helpers/prerequisites.js'

const log = pino({ level: process.env.SWARMD_TEST_LOG ?? 'silent' })
const IP = '127.0.0.91'

/** One etcd member on IP (its own ports), with two stores on clients of it, as two managers would have. */
async function setup(t: Test, base: number) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-etcd-'))
  const ca = await EtcdCA.create('test')
  const tls = { ca: ca.certPem, ...(await ca.issue({ nodeId: 'm1', ip: IP, ttlMs: 3_600_000 })) }
  const member = await EtcdMember.start({
    dataDir: join(dir, 'etcd'),
    name: 'm1',
    ip: IP,
    clientPort: base,
    peerPort: base + 1,
    initialCluster: `m1=https://${IP}:${base + 1}`,
    state: 'new',
    token: 'test',
    tls,
    log,
  })
  const clients = [etcdClient({ url: member.clientUrl, tls }), etcdClient({ url: member.clientUrl, tls })]
  // Each store's commits as its onCommit hook saw them: landed or not.
  const commits: boolean[] = []
  const stores = await Promise.all(clients.map(c => EtcdStore.open(c, log, (_ms, ok) => commits.push(ok))))
  t.teardown(async () => {
    for (const s of stores) await s.close()
    for (const c of clients) c.close()
    await member.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  return { member, clients, stores, tls, commits }
}

testNeeding(t, 'commits are compare-and-set on what each copy holds; copies follow by watch', etcdMissing, async t => {
  const { stores, commits } = await setup(t, 28401)
  const [a, b] = stores as [EtcdStore, EtcdStore]
  await a.commit([{ op: 'put', table: 'services', id: 's1', value: { v: 1 } }])
  t.same(a.get('services', 's1'), { v: 1 }, 'read your writes')
  await b.sync()
  t.same(b.get('services', 's1'), { v: 1 }, 'the other copy has it after sync')
  await a.commit([{ op: 'put', table: 'services', id: 's1', value: { v: 2 } }])
  // b has not seen v2 yet only if it is slow; either way a write based on v1 must lose.
  const stale = b.get<{ v: number }>('services', 's1')!.v === 1
  if (stale) await t.rejects(b.commit([{ op: 'put', table: 'services', id: 's1', value: { v: 3 } }]), { code: 'E_OUT_OF_SEQUENCE' })
  await b.sync()
  t.same(b.get('services', 's1'), { v: 2 })
  // Two managers creating the same object, or updating the same version of one, at once: exactly one wins.
  for (const [what, change] of [
    ['create', (i: number) => [{ op: 'put' as const, table: 'services', id: 'new', value: i }]],
    ['update', (i: number) => [{ op: 'put' as const, table: 'services', id: 's1', value: { v: 10 + i } }]],
  ] as const) {
    await Promise.all([a.sync(), b.sync()])
    const results = await Promise.allSettled([a.commit(change(1)), b.commit(change(2))])
    t.same(results.map(r => r.status).sort(), ['fulfilled', 'rejected'], `${what}: one wins`)
    t.match((results.find(r => r.status === 'rejected') as PromiseRejectedResult).reason, { code: 'E_OUT_OF_SEQUENCE', message: 'rpc error: code = Unknown desc = update out of sequence' })
  }
  await Promise.all([a.sync(), b.sync()])
  t.same(a.get('services', 'new'), b.get('services', 'new'))
  await a.commit([{ op: 'delete', table: 'services', id: 'new' }])
  await b.sync()
  t.equal(b.get('services', 'new'), undefined)
  t.same(b.ids('services').sort(), ['s1'])
  t.same([commits.filter(ok => ok).length, commits.filter(ok => !ok).length], [5, stale ? 3 : 2], 'every commit observed: the five that landed, and those that lost')
})

testNeeding(t, 'the election: one leader, its fence, and a fenced write failing once it resigned', etcdMissing, async t => {
  const { clients, stores } = await setup(t, 28411)
  const events: string[] = []
  let fence: Fence | undefined
  const mk = (i: number) =>
    new Election({
      client: clients[i]!,
      nodeId: `m${i}`,
      ttlS: 2,
      log,
      on: { elected: f => ((fence = f), events.push(`elected m${i}`)), deposed: () => events.push(`deposed m${i}`), leaderChanged: id => events.push(`leader ${id}`) },
    })
  const e0 = mk(0)
  const e1 = mk(1)
  await e0.start()
  await new Promise(r => setTimeout(r, 300))
  await e1.start()
  await new Promise(r => setTimeout(r, 300))
  t.ok(e0.isLeader)
  t.notOk(e1.isLeader)
  t.equal(e1.leader, 'm0')
  await stores[0]!.commit([{ op: 'put', table: 'tasks', id: 't', value: 1 }], fence)
  const old = fence!
  const t0 = Date.now()
  await e0.resign()
  while (!e1.isLeader && Date.now() - t0 < 5_000) await new Promise(r => setTimeout(r, 20))
  t.ok(e1.isLeader, `m1 took over ${Date.now() - t0} ms after m0 resigned`)
  await t.rejects(stores[0]!.commit([{ op: 'put', table: 'tasks', id: 't', value: 2 }], old), { code: 'E_NOT_LEADER' }, "the old leader's fence no longer holds")
  await e0.close()
  await e1.close()
  t.same(events.filter(e => e.startsWith('elected') || e.startsWith('deposed')), ['elected m0', 'deposed m0', 'elected m1', 'deposed m1'], 'never two leaders at once')
})
