import { connect, type Socket } from 'node:net'
import t from 'tap'
import { CONTROL_LIMITS, ControlNode } from './control-node.js'
import { issue } from './certs.test-helper.js'
import { controlPeers } from './control-peers.test-helper.js'
import { nodeIdFor } from './identity.js'
import { callRpc, serveRpc } from './rpc.js'

const HOST = '127.0.0.246'
/** The attacker's source address; the worker dials from the kernel's default source for HOST (127.0.0.1). */
const ATTACKER = '127.0.0.247'
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

/**
 * Connections from `from` that send the multistream-select header one byte
 * every `dripMs`, reconnecting as soon as the server closes one, until
 * stopped. Records how long the server held each and how many it held at once.
 */
function slowDrip(o: { count: number; to: { ip: string; port: number }; from: string; dripMs: number }) {
  const header = Buffer.from('\x13/multistream/1.0.0\n')
  const open = new Set<{ socket: Socket; since: number }>()
  const held: number[] = []
  let heldAtOnce = 0
  let stopped = false
  const one = (): void => {
    const socket = connect({ host: o.to.ip, port: o.to.port, localAddress: o.from })
    const c = { socket, since: 0 }
    let sent = 0
    let timer: NodeJS.Timeout | undefined
    socket.on('connect', () => {
      c.since = Date.now()
      open.add(c)
      const drip = (): void => {
        if (sent < header.length) socket.write(header.subarray(sent, ++sent))
        timer = setTimeout(drip, o.dripMs)
      }
      drip()
    })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      if (open.delete(c)) held.push(Date.now() - c.since)
      if (!stopped) setTimeout(one, 50)
    })
  }
  for (let i = 0; i < o.count; i++) one()
  // Connections open for more than a second are ones the server holds in its upgrade (refused ones close at once).
  const sampler = setInterval(() => {
    const now = Date.now()
    heldAtOnce = Math.max(heldAtOnce, [...open].filter(c => now - c.since > 1_000).length)
  }, 100)
  return {
    held,
    get heldAtOnce() {
      return heldAtOnce
    },
    stop(): void {
      stopped = true
      clearInterval(sampler)
      for (const c of open) c.socket.destroy()
    },
  }
}

t.test("slow-drip connections from one address cannot deny the control plane: a worker's heartbeat is still served", async t => {
  const { ca, mgrKeys, wrkKeys, port, manager, worker } = await controlPeers(t, HOST)
  const workerCert = issue(ca, wrkKeys, 'worker')
  let served = 0
  await serveRpc(manager, {
    caPublicKey: () => ca.publicKey,
    selfCert: () => issue(ca, mgrKeys, 'manager'),
    methods: { heartbeat: { roles: ['worker'], run: () => ({ n: ++served }) } },
    role: id => (id === nodeIdFor(wrkKeys.publicKey) ? 'worker' : undefined),
    onRefused: () => undefined,
  })

  const attack = slowDrip({ count: 24, to: { ip: HOST, port }, from: ATTACKER, dripMs: 2_000 })
  t.teardown(() => attack.stop())
  await sleep(1_000)
  /** One heartbeat through `node`, answered within 5 s or not. */
  const heartbeat = async (node: ControlNode): Promise<{ ok: boolean; ms: number; err?: string }> => {
    const t0 = Date.now()
    try {
      await Promise.race([
        callRpc(node, { ip: HOST, port }, workerCert, ca.publicKey, 'heartbeat'),
        sleep(5_000).then(() => Promise.reject(new Error('no answer within 5 s'))),
      ])
      return { ok: true, ms: Date.now() - t0 }
    } catch (e) {
      return { ok: false, ms: Date.now() - t0, err: (e as Error).message }
    }
  }
  // The worker calls in every second for 15 s, each time over a connection of its own (as after a restart or a reset).
  const calls: Awaited<ReturnType<typeof heartbeat>>[] = []
  for (let i = 0; i < 15; i++) {
    const t0 = Date.now()
    const fresh = await ControlNode.create({ privateKey: wrkKeys.privateKey })
    calls.push(await heartbeat(fresh))
    await fresh.stop()
    await sleep(Math.max(0, 1_000 - (Date.now() - t0)))
  }
  // And through the long-lived node a daemon keeps.
  calls.push(await heartbeat(worker))
  attack.stop()

  const failed = calls.filter(c => !c.ok)
  t.same(failed, [], `every heartbeat answered within 5 s under the attack (${calls.length - failed.length} of ${calls.length}; slowest ${Math.max(...calls.map(c => c.ms))} ms)`)
  t.equal(served, calls.length, 'and each served by the method')
  t.ok(attack.heldAtOnce <= CONTROL_LIMITS.pendingUpgradesPerHost, `the attacker's address held at most ${CONTROL_LIMITS.pendingUpgradesPerHost} upgrades at once (${attack.heldAtOnce})`)
  const cut = attack.held.filter(ms => ms > 1_000)
  t.ok(cut.length >= CONTROL_LIMITS.pendingUpgradesPerHost, `${cut.length} dripping connections held, then cut (${attack.held.length - cut.length} refused at once)`)
  const longest = Math.max(...cut)
  t.ok(longest <= CONTROL_LIMITS.upgradeTimeoutMs + 2_000, `cut by the handshake timeout (${CONTROL_LIMITS.upgradeTimeoutMs} ms): the longest held ${longest} ms`)
})
