import t from 'tap'
import { swarmError } from '../test-helpers.test-helper.js'
import type { NodeRecord } from '../types/node.js'
import type { Service } from '../types/service.js'
import { acceptFilters, argsMatch, CONFIG_FILTERS, filterNamed, filterNodes, filterServices, kvListMatch, SECRET_FILTERS } from './filters.js'
import { matchLabels } from './label-filter.js'

const f = (o: Record<string, string[]>) => new Map(Object.entries(o))

function node(id: string, hostname: string, role: 'manager' | 'worker', labels: Record<string, string> = {}): NodeRecord {
  const at = '2026-01-01T00:00:00.000Z'
  return { id, version: 1, createdAt: at, updatedAt: at, hostname, addr: '127.0.0.1', spec: { Labels: labels, Role: role, Availability: 'active' } }
}

t.test('acceptFilters: the first unknown key, in Docker 20.10 words', async t => {
  t.doesNotThrow(() => acceptFilters(f({ id: ['x'], name: [] }), ['id', 'name']))
  t.throws(() => acceptFilters(f({ id: ['x'], foo: ['1'] }), ['id', 'name']), swarmError('invalid_argument', "Invalid filter 'foo'"))
})

t.test('matchLabels (swarmkit) and kvListMatch (Docker) differ on an empty value', async t => {
  t.ok(matchLabels([], {}), 'no filter: everything')
  t.ok(matchLabels(['a'], { a: 'x' }))
  t.ok(matchLabels(['a='], { a: 'x' }), 'swarmkit: `a=` is any value of a')
  t.notOk(kvListMatch(['a='], { a: 'x' }), 'Docker: `a=` is the empty value')
  t.ok(kvListMatch(['a='], { a: '' }))
  t.ok(matchLabels(['a=x', 'b'], { a: 'x', b: '' }))
  t.notOk(matchLabels(['a=x', 'c'], { a: 'x' }), 'every one must match')
  t.notOk(matchLabels(['a'], {}))
  t.ok(kvListMatch([], {}))
  t.notOk(kvListMatch(['a'], {}))
})

t.test('argsMatch: exactly, or as a regexp found anywhere', async t => {
  t.ok(argsMatch(['web'], 'web'))
  t.ok(argsMatch(['^we'], 'web'))
  t.ok(argsMatch(['e'], 'web'))
  t.notOk(argsMatch(['('], 'web'), 'a bad regexp matches nothing')
})

t.test('filterNodes: moby daemon/cluster/filters.go and swarmkit ListNodes', async t => {
  const nodes = [node('aaa1', 'docker-swarm-1', 'worker', { zone: 'a' }), node('aab2', 'docker-swarm-2', 'worker', { zone: 'b', ssd: '' }), node('bbb3', 'mgr', 'manager')]
  const ids = (o: Record<string, string[]>) => filterNodes(nodes, f(o), () => ({})).map(n => n.id)
  t.same(ids({}), ['aaa1', 'aab2', 'bbb3'])
  t.same(ids({ id: ['aa'] }), ['aaa1', 'aab2'], 'ID prefix')
  t.same(ids({ name: ['docker-swarm'] }), ['aaa1', 'aab2'], 'hostname prefix')
  t.same(ids({ name: ['mgr', 'docker-swarm-2'] }), ['aab2', 'bbb3'], 'any of the values')
  t.same(ids({ role: ['manager'] }), ['bbb3'])
  t.same(ids({ role: ['WORKER'] }), ['aaa1', 'aab2'], 'roles in any case')
  t.same(ids({ role: ['manager', 'worker'] }).length, 3)
  t.throws(() => ids({ role: ['boss'] }), swarmError('invalid_argument', "Invalid role filter: 'boss'"))
  t.same(ids({ membership: ['accepted'] }).length, 3, 'every node swarmd lists is accepted')
  t.same(ids({ membership: ['pending'] }), [])
  t.throws(() => ids({ membership: ['maybe'] }), swarmError('invalid_argument', "Invalid membership filter: 'maybe'"))
  t.same(ids({ 'node.label': ['zone'] }), ['aaa1', 'aab2'], "the node's labels")
  t.same(ids({ 'node.label': ['zone=b'] }), ['aab2'])
  t.same(ids({ 'node.label': ['zone=b', 'ssd'] }), ['aab2'])
  t.same(ids({ label: ['zone'] }), [], 'label is the engine labels, which swarmd nodes have none of')
  t.same(filterNodes(nodes, f({ label: ['os=linux'] }), (n): Record<string, string> => (n.id === 'bbb3' ? { os: 'linux' } : {})).map(n => n.id), ['bbb3'])
  t.same(ids({ role: ['worker'], 'node.label': ['zone=a'] }), ['aaa1'], 'filters combine')
  t.throws(() => ids({ hostname: ['mgr'] }), swarmError('invalid_argument', "Invalid filter 'hostname'"))
})

t.test('filterServices: name, id, label, mode, runtime', async t => {
  const svc = (ID: string, Name: string, mode: Service['Spec']['Mode'], Labels?: Record<string, string>) => ({ ID, Spec: { Name, Mode: mode, ...(Labels ? { Labels } : {}) } }) as Service
  const list = [svc('s1', 'web', { Replicated: { Replicas: 1 } }, { tier: 'front' }), svc('s2', 'webapi', { Global: {} }), svc('t3', 'db', { Replicated: {} }, { tier: 'back' })]
  const ids = (o: Record<string, string[]>) => filterServices(list, f(o)).map(s => s.ID)
  t.same(ids({ name: ['web'] }), ['s1', 's2'], 'name prefix')
  t.same(ids({ id: ['t'] }), ['t3'])
  t.same(ids({ label: ['tier'] }), ['s1', 't3'])
  t.same(ids({ label: ['tier=back'] }), ['t3'])
  t.same(ids({ mode: ['global'] }), ['s2'])
  t.same(ids({ mode: ['replicated'] }), ['s1', 't3'])
  t.same(ids({ mode: ['replicated-job'] }), [])
  t.same(ids({ runtime: ['container'] }).length, 3)
  t.same(ids({ runtime: ['plugin'] }), [])
  t.throws(() => ids({ status: ['running'] }), swarmError('invalid_argument', "Invalid filter 'status'"))
})

t.test('filterNamed: secrets (names exact) and configs', async t => {
  const x = (ID: string, Name: string, Labels?: Record<string, string>) => ({ ID, Spec: { Name, ...(Labels ? { Labels } : {}) } })
  const list = [x('a1', 'db_password', { env: 'prod' }), x('a2', 'db'), x('b3', 'tls')]
  const ids = (o: Record<string, string[]>, accepted: readonly string[] = SECRET_FILTERS) => filterNamed(list, f(o), accepted).map(s => s.ID)
  t.same(ids({ name: ['db'] }), ['a1', 'a2'], 'name is a prefix')
  t.same(ids({ names: ['db'] }), ['a2'], 'names is exact')
  t.same(ids({ id: ['a'] }), ['a1', 'a2'])
  t.same(ids({ label: ['env=prod'] }), ['a1'])
  t.throws(() => ids({ names: ['db'] }, CONFIG_FILTERS), swarmError('invalid_argument', "Invalid filter 'names'"), 'configs have no `names`')
})
