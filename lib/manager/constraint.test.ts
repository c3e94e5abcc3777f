import fc from 'fast-check'
import t, { type Test } from 'tap'
import { SwarmError } from '../types/errors.js'
import { swarmError } from '../test-helpers.test-helper.js'
import { labelReader, matches, parseConstraints } from './constraint.js'
import type { SchedNode } from './sched-node.js'

const node = (over: Partial<SchedNode> = {}): SchedNode => ({
  id: 'n1abc',
  hostname: 'Worker-1',
  role: 'worker',
  addr: '10.1.2.3',
  ready: true,
  availability: 'active',
  labels: { zone: 'EU-West', Disk: 'ssd' },
  engineLabels: { storage: 'fast' },
  platform: { os: 'linux', arch: 'x86_64' },
  resources: { nanoCPUs: 4e9, memoryBytes: 8 << 30 },
  ...over,
})

const ok = (expr: string, n: SchedNode = node()): boolean => matches(parseConstraints([expr]), n)

function rejects(t: Test, expr: string, message: string): void {
  t.throws(() => parseConstraints([expr]), swarmError('invalid_argument', message), expr)
}

t.test('syntax errors carry swarmkit texts prefixed with the bad expression', async (t) => {
  rejects(t, 'node.role=manager', 'invalid constraint "node.role=manager": constraint expected one operator from ==, !=')
  rejects(t, 'no de==x', `invalid constraint "no de==x": key 'no de' is invalid`)
  rejects(t, 'x==y', `invalid constraint "x==y": key 'x' is invalid`)
  rejects(t, 'node.role==', `invalid constraint "node.role==": value '' is invalid`)
  rejects(t, 'node.role==a>b', `invalid constraint "node.role==a>b": value 'a>b' is invalid`)
  // "==" is looked for first, so the rest of the expression becomes the value.
  rejects(t, 'node.role==a!=b', `invalid constraint "node.role==a!=b": value 'a!=b' is invalid`)
  const err = t.throws(() => parseConstraints(['node.id==a', 'bogus']))
  t.ok(err instanceof SwarmError)
})

t.test('unknown keys and malformed addresses are rejected up front', async (t) => {
  t.throws(() => parseConstraints(['node.label.zone==a']), swarmError('invalid_argument', /^invalid constraint "node\.label\.zone==a": invalid constraint key 'node\.label\.zone'/))
  t.throws(
    () => parseConstraints(['node.labels.==a']),
    swarmError('invalid_argument', /invalid constraint key 'node\.labels\.'/),
    'a label prefix without a name',
  )
  rejects(t, 'node.ip==10.0.0', `invalid constraint "node.ip==10.0.0": '10.0.0' is not an IP address or CIDR subnet`)
  rejects(t, 'node.ip==10.0.0.0/33', `invalid constraint "node.ip==10.0.0.0/33": '10.0.0.0/33' is not an IP address or CIDR subnet`)
  rejects(t, 'node.ip==10.0.0.0/', `invalid constraint "node.ip==10.0.0.0/": '10.0.0.0/' is not an IP address or CIDR subnet`)
})

t.test('whitespace around key and value is allowed; keys are case-insensitive', async (t) => {
  const [c] = parseConstraints(['  node.role  !=  manager '])
  t.same({ key: c?.key, op: c?.op, value: c?.value }, { key: 'node.role', op: '!=', value: 'manager' })
  t.ok(ok('NODE.ROLE == worker'))
  t.ok(ok('Node.Labels.zone==eu-west'))
})

t.test('node fields compare case-insensitively', async (t) => {
  t.ok(ok('node.id==N1ABC'))
  t.notOk(ok('node.id!=n1abc'))
  t.ok(ok('node.hostname==worker-1'))
  t.notOk(ok('node.hostname==worker-2'))
  t.ok(ok('node.role==WORKER'))
  t.notOk(ok('node.role==manager'))
  t.ok(ok('node.role==manager', node({ role: 'manager' })))
  t.ok(ok('node.platform.os==Linux'))
  t.ok(ok('node.platform.arch!=aarch64'))
  t.notOk(ok('node.platform.arch==aarch64'))
})

t.test('labels: names are case-sensitive, values are not, missing means empty', async (t) => {
  t.ok(ok('node.labels.zone==eu-west'))
  t.notOk(ok('node.labels.Zone==eu-west'), 'label name case matters')
  t.ok(ok('node.labels.Disk==SSD'))
  t.ok(ok('node.labels.gpu!=true'), 'a missing label is not equal to a value')
  t.notOk(ok('node.labels.gpu==true'))
  t.ok(ok('engine.labels.storage==FAST'))
  t.notOk(ok('engine.labels.storage==fast', node({ engineLabels: {} })))
  t.notOk(ok('engine.labels.zone==eu-west'), 'engine labels are not node labels')
})

t.test('node.ip matches an address or a subnet', async (t) => {
  t.ok(ok('node.ip==10.1.2.3'))
  t.notOk(ok('node.ip==10.1.2.4'))
  t.ok(ok('node.ip==10.1.0.0/16'))
  t.ok(ok('node.ip==10.1.2.0/24'))
  t.notOk(ok('node.ip==10.2.0.0/16'))
  t.ok(ok('node.ip!=192.168.0.0/16'))
  t.notOk(ok('node.ip!=10.0.0.0/8'))
  t.ok(ok('node.ip==0.0.0.0/0'))
  const v6 = node({ addr: '2001:db8::2' })
  t.ok(ok('node.ip==2001:0db8:0:0::2', v6))
  t.ok(ok('node.ip==2001:db8::/32', v6))
  t.notOk(ok('node.ip==10.0.0.0/8', v6))
  const unknown = node({ addr: '' })
  t.notOk(ok('node.ip==10.1.2.3', unknown))
  t.ok(ok('node.ip!=10.1.2.3', unknown), 'like swarmkit, an unparsable node address is "not equal"')
})

t.test('all constraints must hold', async (t) => {
  const cs = parseConstraints(['node.role==worker', 'node.labels.zone==eu-west', 'node.hostname!=worker-1'])
  t.notOk(matches(cs, node()))
  t.ok(matches(cs, node({ hostname: 'worker-2' })))
  t.ok(matches([], node()))
})

t.test('labelReader reads spread descriptors', async (t) => {
  t.equal(labelReader('node.labels.zone')?.(node()), 'EU-West')
  t.equal(labelReader('engine.labels.storage')?.(node()), 'fast')
  t.equal(labelReader('node.labels.rack')?.(node()), '')
  t.equal(labelReader('node.hostname'), undefined)
})

t.test('property: a label constraint holds exactly when the values are equal ignoring case', async () => {
  const value = fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,10}$/)
  fc.assert(
    fc.property(value, value, fc.boolean(), (want, have, eq) => {
      const n = node({ labels: { k: have } })
      const expected = (want.toLowerCase() === have.toLowerCase()) === eq
      return ok(`node.labels.k${eq ? '==' : '!='}${want}`, n) === expected
    }),
  )
})
