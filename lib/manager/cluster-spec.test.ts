import t from 'tap'
import { swarmError } from '../test-helpers.test-helper.js'
import type { ClusterRecord } from '../types/node.js'
import { certExpiryMs, clusterSettings, clusterSpec } from './cluster-spec.js'

const record = (o: Partial<ClusterRecord> = {}): ClusterRecord => ({
  id: 'c1',
  version: 3,
  createdAt: '',
  updatedAt: '',
  caKey: '',
  tokens: { worker: 'w', manager: 'm' },
  gossipKeys: [],
  listenAddr: '',
  advertiseAddr: '',
  dataPathPort: 4789,
  ...o,
})

t.test("clusterSpec: swarm's defaults, then what was set", async t => {
  const s = clusterSpec(record())
  t.same(s.Orchestration, { TaskHistoryRetentionLimit: 5 })
  t.same(s.Dispatcher, { HeartbeatPeriod: 5e9 })
  t.same(s.CAConfig, { NodeCertExpiry: 90 * 24 * 3600e9 })
  t.same(s.EncryptionConfig, { AutoLockManagers: false })
  const set = clusterSpec(record({ taskHistory: 10, heartbeatMs: 12_000, certTtlMs: 3_600_000, unlockKeySealed: 'x', labels: { a: 'b' } }))
  t.same([set.Orchestration, set.Dispatcher, set.CAConfig, set.EncryptionConfig, set.Labels], [
    { TaskHistoryRetentionLimit: 10 },
    { HeartbeatPeriod: 12e9 },
    { NodeCertExpiry: 3600e9 },
    { AutoLockManagers: true },
    { a: 'b' },
  ])
})

t.test('clusterSettings: what `swarm update` sends back, changed by its flags', async t => {
  const c = record()
  const spec = clusterSpec(c)
  t.same(clusterSettings(spec, c), { taskHistory: 5, heartbeatMs: 5000, certTtlMs: 90 * 24 * 3_600_000, labels: {}, autolock: false }, 'as it is')
  const changed = clusterSettings({ ...spec, Orchestration: { TaskHistoryRetentionLimit: 2 }, Dispatcher: { HeartbeatPeriod: 2e9 }, CAConfig: { NodeCertExpiry: 7200e9 }, EncryptionConfig: { AutoLockManagers: true } }, c)
  t.same(changed, { taskHistory: 2, heartbeatMs: 2000, certTtlMs: 7_200_000, labels: {}, autolock: true })
  t.same(clusterSettings({}, record({ taskHistory: -1, heartbeatMs: 9000, unlockKeySealed: 'k' })), { taskHistory: -1, heartbeatMs: 9000, certTtlMs: 90 * 24 * 3_600_000, labels: {}, autolock: true }, 'what a request leaves out keeps its value')
  t.equal(clusterSettings({ Dispatcher: { HeartbeatPeriod: 0 } }, record({ heartbeatMs: 9000 })).heartbeatMs, undefined, 'zero: the default period')
  t.throws(() => clusterSettings({ Name: 'other' }, c), swarmError('invalid_argument', 'rpc error: code = InvalidArgument desc = modification of cluster name is not allowed'))
  t.throws(() => clusterSettings({ Dispatcher: { HeartbeatPeriod: -1 } }, c), swarmError('invalid_argument', 'rpc error: code = InvalidArgument desc = heartbeat time period cannot be a negative duration'))
  t.throws(() => clusterSettings({ Orchestration: { TaskHistoryRetentionLimit: 1.5 } }, c), swarmError('invalid_argument', /TaskHistoryRetentionLimit must be an integer/))
  t.throws(() => clusterSettings({ CAConfig: { NodeCertExpiry: 5 } }, c), swarmError('invalid_argument', /it must be at least 1s/))
  t.throws(() => clusterSettings({ EncryptionConfig: { AutoLockManagers: 'yes' } }, c), swarmError('invalid_argument', /AutoLockManagers must be true or false/))
})

t.test('clusterSettings: what swarmd does not have is refused, not ignored', async t => {
  const c = record()
  const spec = clusterSpec(c) as { Raft: Record<string, number> }
  t.throws(() => clusterSettings({ ...spec, Raft: { ...spec.Raft, KeepOldSnapshots: 3 } }, c), swarmError('invalid_argument', /does not support raft's settings \(Raft.KeepOldSnapshots\)/))
  t.throws(() => clusterSettings({ CAConfig: { ExternalCAs: [{ URL: 'https://ca' }] } }, c), swarmError('invalid_argument', /external CAs/))
  t.throws(() => clusterSettings({ CAConfig: { ForceRotate: 1 } }, c), swarmError('invalid_argument', /rotating the root CA/))
  t.throws(() => clusterSettings({ TaskDefaults: { LogDriver: { Name: 'syslog' } } }, c), swarmError('invalid_argument', /default log driver/))
  t.throws(() => clusterSettings({ Dispatcher: { HeartbeatPeriod: 1e6 } }, c), swarmError('invalid_argument', /heartbeat shorter than 100ms/))
})

t.test('certExpiryMs', async t => {
  t.equal(certExpiryMs(3e9), 3000)
  t.throws(() => certExpiryMs(0.5e9), swarmError('invalid_argument', 'invalid CAConfig.NodeCertExpiry 500000000: it must be at least 1s (in nanoseconds)'))
  t.throws(() => certExpiryMs('1h'), swarmError('invalid_argument', /invalid CAConfig.NodeCertExpiry 1h/))
})
