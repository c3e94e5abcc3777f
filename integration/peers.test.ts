/**
 * Proves the integration helpers against real peers only (no swarmd code):
 * Go memberlist peers (Debian's memberlist 0.2.2) and Debian's serf agent.
 * Ports 27900-27999 belong to this file.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { buildGoPeer, goAvailable, startGoPeer, type GoMember, type GoPeer } from './helpers/gopeer.js'
import { testNeeding } from './helpers/prerequisites.js'
import { waitUntil } from './helpers/procs.js'
import { serfAvailable, startSerf, type SerfAgent, type SerfMember } from './helpers/serf.js'

const HOST = '127.0.0.1'
const JOIN_DEADLINE_MS = 15_000
const FAILURE_DEADLINE_MS = 30_000

const goMissing = goAvailable() ? undefined : 'go or Debian memberlist source not installed (run scripts/setup.sh as root)'
const serfMissing = serfAvailable() ? undefined : 'serf not installed (run scripts/setup.sh as root)'

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`

async function goState(peer: GoPeer, name: string): Promise<GoMember | undefined> {
  return (await peer.members()).find(m => m.name === name)
}

async function serfStatus(agent: SerfAgent, name: string): Promise<SerfMember | undefined> {
  return (await agent.members()).find(m => m.name === name)
}

testNeeding(t, 'Go memberlist peers', goMissing, async t => {
  const t0 = performance.now()
  const bin = await buildGoPeer()
  t.comment(`go build of mlpeer: ${secs(performance.now() - t0)} (${bin})`)

  const cases = [
    { label: 'plaintext', key: undefined, port: 27900 },
    { label: '16-byte key', key: randomBytes(16).toString('base64'), port: 27910 },
  ]
  for (const c of cases) {
    t.test(c.label, async t => {
      const a = await startGoPeer({ name: `ga-${c.port}`, port: c.port, key: c.key })
      t.teardown(() => a.stop())
      const b = await startGoPeer({ name: `gb-${c.port}`, port: c.port + 1, key: c.key, join: a.addr })
      t.teardown(() => b.stop())
      t.equal(b.startupJoins[0]?.['joined'], 1, 'b contacted a at start-up')

      for (const [self, other] of [[a, b], [b, a]] as const) {
        const m = await waitUntil(async () => {
          const s = await goState(self, other.name)
          return s?.state === 'alive' ? s : undefined
        }, { timeoutMs: JOIN_DEADLINE_MS, what: `${self.name} to list ${other.name} alive` })
        t.equal(m.addr, other.addr, `${self.name} has ${other.name}'s address`)
        t.same(m.vsn, [1, 5, 2, 0, 0, 0], 'protocol versions of memberlist 0.2.2 without delegate versions')
        t.type(m.incarnation, 'number')
      }
      t.ok(a.events.some(e => e.event === 'join' && e.node === b.name), 'a saw a join event for b')

      // User messages both ways.
      await a.send(b.name, `hello from ${a.name}`)
      const msg = await b.waitFor(e => e.event === 'msg', 5000)
      t.equal(msg.data, `hello from ${a.name}`, 'b received a user message')

      // Kill b: a must mark it dead within the local profile's suspicion time.
      const killedAt = performance.now()
      b.kill('SIGKILL')
      // Poll members() meanwhile to see the suspect phase (no event for it).
      let suspectMs: number | undefined
      let polling = true
      const poller = (async () => {
        while (polling) {
          const s = await goState(a, b.name).catch(() => undefined)
          if (s?.state === 'suspect' && suspectMs === undefined) suspectMs = performance.now() - killedAt
          await new Promise(r => setTimeout(r, 100))
        }
      })()
      const dead = await a.waitFor(e => e.event === 'leave' && e.node === b.name, FAILURE_DEADLINE_MS).finally(() => {
        polling = false
      })
      const detectMs = performance.now() - killedAt
      await poller
      t.equal(dead.state, 'dead', 'a reports b dead (not left)')
      t.ok(suspectMs !== undefined, 'b was suspect before dead')
      t.comment(`${c.label}: SIGKILL -> suspect after ${suspectMs === undefined ? '?' : secs(suspectMs)}, dead after ${secs(detectMs)}`)
      const listed = await goState(a, b.name)
      t.equal(listed?.state, 'dead', 'members() lists b as dead')
    })
  }

  t.test('graceful leave', async t => {
    const a = await startGoPeer({ name: 'gl-a', port: 27920 })
    t.teardown(() => a.stop())
    const b = await startGoPeer({ name: 'gl-b', port: 27921 })
    t.teardown(() => b.stop())
    t.equal(await b.join(a.addr), 1, 'join command contacted one node')
    await waitUntil(async () => (await goState(a, b.name))?.state === 'alive', { timeoutMs: JOIN_DEADLINE_MS, what: 'a to list b' })
    t.equal(await b.leave(), true, 'leave succeeded')
    const left = await a.waitFor(e => e.event === 'leave' && e.node === b.name, 10_000)
    t.equal(left.state, 'left', 'a reports b left')
  })

  t.test('several nodes in one process', async t => {
    const p = await startGoPeer({ name: 'gm', port: 27930, n: 3 })
    t.teardown(() => p.stop())
    t.same(p.names, ['gm-0', 'gm-1', 'gm-2'])
    t.same(p.startupJoins.map(e => e['joined']), [1, 1], 'gm-1 and gm-2 joined gm-0 at start-up')
    const members = await waitUntil(async () => {
      const ms = await p.members(2)
      return ms.length === 3 && ms.every(m => m.state === 'alive') ? ms : undefined
    }, { timeoutMs: JOIN_DEADLINE_MS, what: 'gm-2 to list all three alive' })
    t.same(members.map(m => m.addr), [`${HOST}:27930`, `${HOST}:27931`, `${HOST}:27932`])
  })
})

testNeeding(t, 'serf agents', serfMissing, async t => {
  const cases = [
    { label: 'plaintext', key: undefined, port: 27950 },
    { label: '32-byte key', key: randomBytes(32).toString('base64'), port: 27960 },
  ]
  for (const c of cases) {
    t.test(c.label, async t => {
      const t0 = performance.now()
      const s1 = await startSerf({ name: `s1-${c.port}`, bind: `${HOST}:${c.port}`, rpcPort: c.port + 5, key: c.key })
      t.teardown(() => s1.stop())
      const s2 = await startSerf({ name: `s2-${c.port}`, bind: `${HOST}:${c.port + 1}`, rpcPort: c.port + 6, key: c.key })
      t.teardown(() => s2.stop())
      t.comment(`two serf agents answering RPC after ${secs(performance.now() - t0)}`)

      t.match(await s2.join(s1.addr), /Successfully joined/, 's2 joined s1')
      for (const [self, other] of [[s1, s2], [s2, s1]] as const) {
        const m = await waitUntil(async () => {
          const s = await serfStatus(self, other.name)
          return s?.status === 'alive' ? s : undefined
        }, { timeoutMs: JOIN_DEADLINE_MS, what: `${self.name} to list ${other.name} alive` })
        t.equal(m.addr, other.addr, `${self.name} lists ${other.name} at its bind address`)
      }

      const killedAt = performance.now()
      s2.kill('SIGKILL')
      await waitUntil(async () => (await serfStatus(s1, s2.name))?.status === 'failed', {
        timeoutMs: FAILURE_DEADLINE_MS,
        intervalMs: 250,
        what: `${s1.name} to mark ${s2.name} failed`,
      })
      t.pass(`${s1.name} marked ${s2.name} failed`)
      t.comment(`${c.label}: SIGKILL -> failed after ${secs(performance.now() - killedAt)}`)
    })
  }

  t.test('graceful leave', async t => {
    const s1 = await startSerf({ name: 'sl-1', bind: `${HOST}:27970`, rpcPort: 27975 })
    t.teardown(() => s1.stop())
    const s2 = await startSerf({ name: 'sl-2', bind: `${HOST}:27971`, rpcPort: 27976 })
    t.teardown(() => s2.stop())
    await s1.join(s2.addr)
    await waitUntil(async () => (await serfStatus(s2, s1.name))?.status === 'alive', { timeoutMs: JOIN_DEADLINE_MS, what: 'join' })
    await s1.leave()
    t.ok(s1.proc.exitStatus, 'agent exited after leave')
    const st = await waitUntil(async () => {
      const s = (await serfStatus(s2, s1.name))?.status
      return s === 'left' ? s : undefined
    }, { timeoutMs: 10_000, what: 'left' })
    t.equal(st, 'left')
  })
})
