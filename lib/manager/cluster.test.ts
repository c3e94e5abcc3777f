import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { generateKeyPair, nodeIdFor } from '../control/identity.js'
import { swarmError } from '../test-helpers.test-helper.js'
import type { ClusterRecord } from '../types/node.js'
import { Cluster, DEFAULT_TIMINGS } from './cluster.js'
import { clusterSpec } from './cluster-spec.js'
import { dataKeyLocked, openDataKey, type KeyEncryption } from './data-key.js'
import { Store } from './store.js'

async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-cluster-'))
  const store = await Store.open(dir)
  t.teardown(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const id = generateKeyPair()
  await Cluster.bootstrap(store, { nodeKey: id.privateKey, nodePublicKey: id.publicKey, nodeId: nodeIdFor(id.publicKey), hostname: 'm', req: { AdvertiseAddr: '127.0.0.1' } })
  const keys: KeyEncryption = { nodeKey: id.privateKey }
  const cluster = new Cluster({ state: store, local: store, keys, timings: DEFAULT_TIMINGS, log: pino({ level: 'silent' }) })
  return { dir, store, keys, cluster }
}

const spec = (c: Cluster, change: (s: Record<string, Record<string, unknown>>) => void = () => undefined): unknown => {
  const s = clusterSpec(c.record()) as Record<string, Record<string, unknown>>
  change(s)
  return s
}

t.test('swarm update: the settings are kept and take effect', async t => {
  const { cluster } = await setup(t)
  t.same([cluster.heartbeatMs(), cluster.taskHistory(), cluster.certTtlMs()], [5000, 5, 90 * 24 * 3_600_000], "swarm's defaults")
  const v = cluster.record().version
  await cluster.update(
    v,
    spec(cluster, s => {
      s.Orchestration!.TaskHistoryRetentionLimit = 2
      s.Dispatcher!.HeartbeatPeriod = 2e9
      s.CAConfig!.NodeCertExpiry = 3600e9
    }),
    {},
  )
  t.same([cluster.heartbeatMs(), cluster.taskHistory(), cluster.certTtlMs()], [2000, 2, 3_600_000], "what the dispatcher, the orchestrator and the CA use")
  const cert = cluster.issueCert(generateKeyPair().publicKey, 'worker')
  t.equal(cert.body.notAfter - cert.body.notBefore, 3_600_000, 'new certificates last the new expiry')
  t.equal(cluster.record().version, v + 1)
  await t.rejects(cluster.update(v, spec(cluster), {}), swarmError('unknown', 'rpc error: code = Unknown desc = update out of sequence'))
  const tokens = cluster.record().tokens
  await cluster.update(v + 1, spec(cluster), { worker: true })
  t.not(cluster.record().tokens.worker, tokens.worker, 'the worker token rotated')
  t.equal(cluster.record().tokens.manager, tokens.manager, 'the manager token kept')
  t.same([cluster.heartbeatMs(), cluster.taskHistory()], [2000, 2], 'a rotation keeps the settings')
  await t.rejects(cluster.update(v + 2, spec(cluster, s => (s.Raft!.KeepOldSnapshots = 3)), {}), swarmError('invalid_argument', /raft's settings/))
  t.equal(cluster.record().version, v + 2, 'a refused update changes nothing')
})

t.test('autolock: the unlock key sealed in the record, this manager\'s data key sealed under it, and back', async t => {
  const { dir, store, keys, cluster } = await setup(t)
  const secret = cluster.dataKey().seal(Buffer.from('s3cr3t'))
  t.equal(cluster.unlockKey(), undefined)
  await cluster.update(cluster.record().version, spec(cluster, s => (s.EncryptionConfig!.AutoLockManagers = true)), {})
  const key = cluster.unlockKey()!
  t.equal(key.length, 32)
  t.ok(dataKeyLocked(store), 'the data key is sealed under the unlock key')
  t.same(keys.unlockKey, key, 'and this manager knows it')
  const rec = store.get<ClusterRecord>('cluster', 'default')!
  t.ok(rec.unlockKeySealed && !rec.unlockKeySealed.includes(key.toString('base64').slice(0, 20)), 'the record holds it sealed, not in the clear')
  const onDisk = readdirSync(dir).map(f => readFileSync(join(dir, f))).reduce((a, b) => Buffer.concat([a, b]))
  t.notOk(onDisk.includes(key) || onDisk.includes(Buffer.from(key.toString('base64'))), 'no file of the store holds the key')
  t.throws(() => openDataKey(store, { nodeKey: keys.nodeKey }), swarmError('unavailable', /Swarm is encrypted/), 'a restarted manager needs it')
  t.equal(openDataKey(store, { nodeKey: keys.nodeKey, unlockKey: key })!.open(secret).toString(), 's3cr3t', 'with it, the same data key')

  await cluster.update(cluster.record().version, spec(cluster), { unlockKey: true })
  const rotated = cluster.unlockKey()!
  t.notSame(rotated, key, 'rotated')
  t.same(keys.unlockKey, rotated)
  t.throws(() => openDataKey(store, { nodeKey: keys.nodeKey, unlockKey: key }), { code: 'E_SECRET_KEY_MISMATCH' }, 'the old key no longer opens it')

  await cluster.update(cluster.record().version, spec(cluster, s => (s.EncryptionConfig!.AutoLockManagers = false)), {})
  t.equal(cluster.unlockKey(), undefined)
  t.notOk(dataKeyLocked(store), 'autolock off: under the node key alone again')
  t.equal(keys.unlockKey, undefined)
  t.equal(openDataKey(store, { nodeKey: keys.nodeKey })!.open(secret).toString(), 's3cr3t')
})
