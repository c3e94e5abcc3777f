/**
 * UDP flows in the kernel data plane leave a removed task (two hosts in
 * network namespaces, every daemon with --data-plane kernel). Conntrack
 * keeps a UDP flow on the backend its first datagram was translated to, and
 * every datagram restarts its timeout: a client sending from a fixed port
 * would keep sending to a stopped task for as long as it keeps sending. The
 * plane deletes those entries when the task leaves the ruleset, so the next
 * datagram picks a live task. Shown with both tasks on one host and clients
 * sending from fixed source ports: to a published port from the other host
 * (translated there, to tasks across VXLAN: the endpoint leaves by gossip),
 * and to the VIP from the tasks' host (translated to local tasks). The VIP's
 * client is on the tasks' host since a host keeps a network, and its VIP,
 * only while it runs a task on it. With the deletion switched off, the
 * ports that were on the removed task got no answer at all for the 10 s
 * this test waits.
 */
import t from 'tap'
import { Hosts, hostsMissing, secondsSince, type Host } from './helpers/hosts.js'
import { conntrackMissing, testNeeding } from './helpers/prerequisites.js'
import { waitUntil } from './helpers/procs.js'

/** Answers every datagram with its task's ID. */
const ECHO = 'const s=require("dgram").createSocket("udp4");s.on("message",(m,r)=>s.send(process.env.SWARMD_TASK_ID,r.port,r.address));s.bind(9000)'

/** One datagram from each fixed source port to its target, at once: the answer (a task ID) or "" within 700 ms, per port. */
const ASK = `
  const dgram = require('dgram')
  const asks = JSON.parse(process.argv[1])
  Promise.all(asks.map(a => new Promise(res => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true })
    let over = false
    const done = v => { if (over) return; over = true; clearTimeout(timer); s.close(); res(v) }
    const timer = setTimeout(() => done(''), 700)
    s.on('message', m => done(m.toString()))
    s.on('error', () => done(''))
    s.bind(a.from, () => s.send('?', a.port, a.addr))
  }))).then(out => process.stdout.write(JSON.stringify(out)))`

interface Ask {
  /** Where the client runs. */
  on: Host
  addr: string
  port: number
  from: number
}

testNeeding(t, 'UDP flows of a removed task go to the remaining one', hostsMissing ?? conntrackMissing, async t => {
  const tFile = performance.now()
  const c = await Hosts.create(t, 2, { dataPlane: 'kernel' })
  const [h1, mgr] = c.hosts as [Host, Host]
  const ctl = (...args: string[]): Promise<string> => c.ctlOk(mgr, ...args)
  await c.formSwarm(mgr)
  /** The answers in the order of `asks`, each host's clients at once. */
  const ask = async (asks: Ask[]): Promise<string[]> => {
    const out = new Map<Ask, string>()
    await Promise.all(
      c.hosts.map(async h => {
        const mine = asks.filter(a => a.on === h)
        if (!mine.length) return
        const r = await c.execOk(h, process.execPath, ['-e', ASK, JSON.stringify(mine.map(({ addr, port, from }) => ({ addr, port, from })))], { timeoutMs: 10_000 })
        ;(JSON.parse(r.stdout) as string[]).forEach((answer, i) => out.set(mine[i]!, answer))
      }),
    )
    return asks.map(a => out.get(a)!)
  }

  await ctl('network', 'create', '-d', 'overlay', 'udpnet')
  await ctl('service', 'create', '--name', 'echo', '--replicas', '2', '--network', 'udpnet', '--constraint', `node.hostname==${mgr.name}`, '--publish', 'published=28611,target=9000,protocol=udp', 'node', 'node', '-e', ECHO)
  t.same(c.taskCounts('echo').perHost, { [h1.name]: 0, [mgr.name]: 2 }, `both tasks on ${mgr.name}`)
  const svc = JSON.parse(await ctl('service', 'inspect', 'echo'))[0]
  const net = JSON.parse(await ctl('network', 'inspect', 'udpnet'))[0]
  const vip: string = svc.Endpoint.VirtualIPs.find((v: { NetworkID: string }) => v.NetworkID === net.Id).Addr.split('/')[0]
  const tasks = [...(await c.runningTasks(mgr, 'echo')).keys()]
  await waitUntil(async () => (await ask([{ on: h1, addr: h1.ip, port: 28611, from: 0 }, { on: mgr, addr: vip, port: 9000, from: 0 }])).every(a => tasks.includes(a)), { timeoutMs: 20_000, what: 'the published port and the VIP answering' })

  // 16 source ports per way in: both tasks get some (numgen random), each keeps its task.
  const asks: Ask[] = [
    ...Array.from({ length: 16 }, (_, i) => ({ on: h1, addr: h1.ip, port: 28611, from: 41000 + i })),
    ...Array.from({ length: 16 }, (_, i) => ({ on: mgr, addr: vip, port: 9000, from: 42000 + i })),
  ]
  const pinned = await ask(asks)
  t.ok(pinned.every(a => tasks.includes(a)), 'every port answered by a task')
  for (const way of [asks.slice(0, 16), asks.slice(16)]) t.same(new Set(pinned.filter((_, i) => way.includes(asks[i]!))), new Set(tasks), `${way[0]!.addr}:${way[0]!.port} from ${way[0]!.on.name}: both tasks answer, to different source ports`)
  t.same(await ask(asks), pinned, 'each source port, asked again, reaches the same task (its conntrack entry)')

  const t0 = performance.now()
  await ctl('service', 'scale', 'echo=1')
  const [kept] = await waitUntil(async () => {
    const now = [...(await c.runningTasks(mgr, 'echo')).keys()]
    return now.length === 1 && now
  }, { timeoutMs: 20_000, what: 'one echo task left' })
  const tGone = secondsSince(t0)
  const removed = tasks.find(x => x !== kept)!
  const moved = asks.filter((_, i) => pinned[i] === removed)
  t.comment(`${moved.length} of ${asks.length} source ports were on ${removed}, scaled away (not running ${tGone} s after the scale command); ${kept} remains`)
  let last: string[] = []
  await waitUntil(async () => (last = await ask(moved)).every(a => a === kept), { timeoutMs: 10_000, intervalMs: 100, what: `the ports that were on ${removed} answered by ${kept}` }).catch(e => {
    t.comment(`last answers: ${JSON.stringify(last)}`)
    throw e
  })
  t.pass(`the next datagrams from the same source ports reach ${kept}, ${secondsSince(t0)} s after the scale command (${(secondsSince(t0) - tGone).toFixed(1)} s after the manager had the task stopped)`)
  t.same(await ask(asks), asks.map(() => kept), 'and every port stays there')
  t.comment(`file total ${secondsSince(tFile)} s`)
})
