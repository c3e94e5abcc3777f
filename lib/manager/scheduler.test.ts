import { deepStrictEqual } from 'node:assert/strict'
import fc from 'fast-check'
import t from 'tap'
import { parseConstraints } from './constraint.js'
import type { SchedNode } from './sched-node.js'
import { type Batch, type ScheduleResult, Scheduler } from './scheduler.js'

const GB = 2 ** 30

function node(id: string, over: Partial<SchedNode> = {}): SchedNode {
  return {
    id,
    hostname: `host-${id}`,
    role: 'worker',
    addr: '10.0.0.1',
    ready: true,
    availability: 'active',
    labels: {},
    engineLabels: {},
    platform: { os: 'linux', arch: 'x86_64' },
    resources: { nanoCPUs: 4e9, memoryBytes: 8 * GB },
    ...over,
  }
}

let taskSeq = 0
function batch(count: number, over: Partial<Batch> = {}): Batch {
  return {
    serviceId: 'web',
    taskIds: Array.from({ length: count }, () => `task${++taskSeq}`),
    constraints: [],
    preferences: [],
    reservations: { nanoCPUs: 0, memoryBytes: 0 },
    hostPorts: [],
    maxReplicas: 0,
    ...over,
  }
}

function withNodes(...nodes: SchedNode[]): Scheduler {
  const s = new Scheduler()
  for (const n of nodes) s.upsertNode(n)
  return s
}

/** Tasks placed per node by one schedule() call. */
function spread(r: ScheduleResult): Record<string, number> {
  const out: Record<string, number> = {}
  for (const id of r.nodeIds) if (id !== undefined) out[id] = (out[id] ?? 0) + 1
  return out
}

t.test('spread: fewest tasks of the service, then fewest tasks, then node id', async (t) => {
  const s = withNodes(node('a'), node('b'), node('c'))
  const r = s.schedule(batch(7))
  t.same(spread(r), { a: 3, b: 2, c: 2 })
  t.equal(r.placed, 7)
  t.equal(r.error, undefined)
  t.same(spread(s.schedule(batch(2))), { b: 1, c: 1 }, 'the next batch evens out')
  t.equal(s.taskCount('a', 'web'), 3)
  t.equal(s.taskCount('b'), 3)

  const s2 = withNodes(node('a'), node('b'), node('c'))
  s2.addTask({ id: 'x1', nodeId: 'a', serviceId: 'db' })
  s2.addTask({ id: 'x2', nodeId: 'a', serviceId: 'db' })
  s2.addTask({ id: 'x3', nodeId: 'b', serviceId: 'web' })
  t.same(spread(s2.schedule(batch(1))), { c: 1 }, 'equal service counts: fewer tasks in total wins')
  t.same(spread(s2.schedule(batch(1))), { a: 1 }, 'fewer tasks of the service beats fewer tasks in total')
  t.same(spread(s2.schedule(batch(4))), { a: 1, b: 2, c: 1 }, 'the remainder goes to the least loaded')
})

t.test('ready filter: down, paused and drained nodes get nothing', async (t) => {
  const s = withNodes(
    node('down', { ready: false }),
    node('paused', { availability: 'pause' }),
    node('drained', { availability: 'drain' }),
    node('ok'),
  )
  t.same(spread(s.schedule(batch(3))), { ok: 3 })
  s.upsertNode(node('ok', { availability: 'drain' }))
  const r = s.schedule(batch(2))
  t.same(r.nodeIds, [undefined, undefined])
  t.equal(r.placed, 0)
  t.equal(r.error, 'no suitable node (4 nodes not available for new tasks)')
  t.equal(s.taskCount('ok'), 3, 'an availability change keeps accounted tasks')
  const one = withNodes(node('x', { ready: false }))
  t.equal(one.schedule(batch(1)).error, 'no suitable node (1 node not available for new tasks)')
  t.equal(new Scheduler().schedule(batch(1)).error, 'no suitable node', 'no nodes at all')
})

t.test('resource filter: reservations exhaust a node', async (t) => {
  const s = withNodes(node('a', { resources: { nanoCPUs: 2e9, memoryBytes: 8 * GB } }))
  const cpu = { reservations: { nanoCPUs: 1e9, memoryBytes: 0 } }
  const first = batch(3, cpu)
  const r = s.schedule(first)
  t.same(spread(r), { a: 2 })
  t.equal(r.nodeIds[2], undefined)
  t.equal(r.error, 'no suitable node (insufficient resources on 1 node)')
  t.equal(s.removeTask(first.taskIds[0]!), true)
  t.same(spread(s.schedule(batch(1, cpu))), { a: 1 }, 'removing a task frees its reservation')

  const m = withNodes(node('a', { resources: { nanoCPUs: 4e9, memoryBytes: 3 * GB } }), node('b'))
  m.addTask({ id: 'big', nodeId: 'b', serviceId: 'db', reservations: { nanoCPUs: 0, memoryBytes: 7 * GB } })
  const mem = m.schedule(batch(4, { reservations: { nanoCPUs: 0, memoryBytes: GB } }))
  t.same(spread(mem), { a: 3, b: 1 }, 'accounted reservations count')
  t.equal(mem.error, undefined)
  t.equal(
    m.schedule(batch(1, { reservations: { nanoCPUs: 0, memoryBytes: GB } })).error,
    'no suitable node (insufficient resources on 2 nodes)',
  )
  t.same(spread(m.schedule(batch(2))), { b: 2 }, 'tasks without reservations still fit, by spread')
  const none = withNodes(node('z', { resources: { nanoCPUs: 0, memoryBytes: 0 } }))
  t.equal(none.schedule(batch(1, cpu)).error, 'no suitable node (insufficient resources on 1 node)')
})

t.test('constraint filter', async (t) => {
  const s = withNodes(
    node('m1', { role: 'manager', labels: { zone: 'a' } }),
    node('w1', { labels: { zone: 'a' } }),
    node('w2', { labels: { zone: 'b' } }),
  )
  t.same(spread(s.schedule(batch(4, { constraints: parseConstraints(['node.role==worker']) }))), { w1: 2, w2: 2 })
  t.same(
    spread(s.schedule(batch(2, { constraints: parseConstraints(['node.role!=manager', 'node.labels.zone==A']) }))),
    { w1: 2 },
  )
  const r = s.schedule(batch(1, { constraints: parseConstraints(['node.labels.zone==c']) }))
  t.equal(r.error, 'no suitable node (scheduling constraints not satisfied on 3 nodes)')
})

t.test('host port filter', async (t) => {
  const s = withNodes(node('a'), node('b'), node('c'))
  s.addTask({ id: 'old', nodeId: 'c', serviceId: 'other', hostPorts: [{ protocol: 'tcp', port: 80 }] })
  const web = { hostPorts: [{ protocol: 'tcp' as const, port: 80 }] }
  const r = s.schedule(batch(3, web))
  t.same(spread(r), { a: 1, b: 1 }, 'one task per node, and not where the port is taken')
  t.equal(r.error, 'no suitable node (host-mode port already in use on 3 nodes)')
  t.same(
    spread(s.schedule(batch(3, { serviceId: 'dns', hostPorts: [{ protocol: 'udp', port: 80 }] }))),
    { a: 1, b: 1, c: 1 },
    'another protocol does not conflict',
  )
  t.ok(s.removeTask('old'))
  t.same(spread(s.schedule(batch(1, web))), { c: 1 }, 'the port is free once its task is gone')
})

t.test('max replicas per node', async (t) => {
  const s = withNodes(node('a'), node('b'))
  const r = s.schedule(batch(5, { maxReplicas: 2 }))
  t.same(spread(r), { a: 2, b: 2 })
  t.equal(r.error, 'no suitable node (max replicas per node limit exceed)')
  t.same(spread(s.schedule(batch(2, { serviceId: 'other', maxReplicas: 2 }))), { a: 1, b: 1 }, 'per service')
})

t.test('explanations: most frequent first, pipeline order on ties', async (t) => {
  const s = withNodes(
    node('d1', { ready: false }),
    node('d2', { ready: false }),
    node('d3', { availability: 'drain' }),
    node('small', { resources: { nanoCPUs: 1e9, memoryBytes: GB } }),
    node('lab', { labels: { gpu: 'no' } }),
    node('lab2', { labels: { gpu: 'no' } }),
  )
  const spec = { reservations: { nanoCPUs: 2e9, memoryBytes: 0 }, constraints: parseConstraints(['node.labels.gpu==yes']) }
  t.equal(
    s.schedule(batch(1, spec)).error,
    'no suitable node (3 nodes not available for new tasks; scheduling constraints not satisfied on 2 nodes; insufficient resources on 1 node)',
  )
  s.upsertNode(node('small2', { resources: { nanoCPUs: 1e9, memoryBytes: GB } }))
  t.equal(
    s.schedule(batch(1, spec)).error,
    'no suitable node (3 nodes not available for new tasks; insufficient resources on 2 nodes; scheduling constraints not satisfied on 2 nodes)',
  )
})

t.test('placement preferences equalise label values, then spread within', async (t) => {
  const zones = (): Scheduler =>
    withNodes(
      node('a1', { labels: { zone: 'a' } }),
      node('b1', { labels: { zone: 'b' } }),
      node('b2', { labels: { zone: 'b' } }),
      node('b3', { labels: { zone: 'b' } }),
    )
  const pref = { preferences: ['node.labels.zone'] }
  t.same(spread(zones().schedule(batch(4, pref))), { a1: 2, b1: 1, b2: 1 })
  t.same(spread(zones().schedule(batch(4))), { a1: 1, b1: 1, b2: 1, b3: 1 }, 'without preferences: plain spread')

  const s = zones()
  s.upsertNode(node('none'))
  t.same(spread(s.schedule(batch(3, pref))), { a1: 1, b1: 1, none: 1 }, 'a missing label is a group of its own')

  const counted = zones()
  counted.upsertNode(node('a2', { labels: { zone: 'a' }, ready: false }))
  counted.addTask({ id: 'old1', nodeId: 'a2', serviceId: 'web' })
  counted.addTask({ id: 'old2', nodeId: 'a2', serviceId: 'web' })
  t.same(spread(counted.schedule(batch(2, pref))), { b1: 1, b2: 1 }, 'tasks on ineligible nodes still count for their group')

  const full = zones()
  t.same(
    spread(full.schedule(batch(6, { ...pref, maxReplicas: 1 }))),
    { a1: 1, b1: 1, b2: 1, b3: 1 },
    'a full group leaves the rest to the others',
  )

  const racks = withNodes(
    node('a-r1', { labels: { zone: 'a' }, engineLabels: { rack: '1' } }),
    node('a-r2', { labels: { zone: 'a' }, engineLabels: { rack: '2' } }),
    node('a-r2b', { labels: { zone: 'a' }, engineLabels: { rack: '2' } }),
    node('b-r1', { labels: { zone: 'b' }, engineLabels: { rack: '1' } }),
  )
  t.same(
    spread(racks.schedule(batch(8, { preferences: ['node.labels.zone', 'engine.labels.rack'] }))),
    { 'a-r1': 2, 'a-r2': 1, 'a-r2b': 1, 'b-r1': 4 },
    'each level is equalised in turn',
  )
  t.same(
    spread(withNodes(node('a'), node('b')).schedule(batch(2, { preferences: ['node.hostname'] }))),
    { a: 1, b: 1 },
    'unsupported descriptors are ignored, as in swarmkit',
  )
})

t.test('nodes to avoid are used last', async (t) => {
  const s = withNodes(node('a'), node('b'), node('c'))
  const avoid = { avoidNodes: new Set(['a']), maxReplicas: 2 }
  t.same(spread(s.schedule(batch(4, avoid))), { b: 2, c: 2 })
  t.same(spread(s.schedule(batch(1, avoid))), { a: 1 }, 'but still used when nothing else fits')
})

t.test('eligible() checks one node for a global task', async (t) => {
  const s = withNodes(
    node('ok'),
    node('down', { ready: false }),
    node('tiny', { resources: { nanoCPUs: 1e8, memoryBytes: GB } }),
    node('mgr', { role: 'manager' }),
  )
  s.addTask({ id: 'p', nodeId: 'ok', serviceId: 'other', hostPorts: [{ protocol: 'tcp', port: 53 }] })
  const spec = {
    serviceId: 'g',
    constraints: parseConstraints(['node.role==worker']),
    preferences: [],
    reservations: { nanoCPUs: 5e8, memoryBytes: 0 },
    hostPorts: [],
    maxReplicas: 0,
  }
  t.equal(s.eligible('ok', spec), true)
  t.equal(s.eligible('down', spec), '1 node not available for new tasks')
  t.equal(s.eligible('tiny', spec), 'insufficient resources on 1 node')
  t.equal(s.eligible('mgr', spec), 'scheduling constraints not satisfied on 1 node')
  t.equal(s.eligible('ok', { ...spec, hostPorts: [{ protocol: 'tcp', port: 53 }] }), 'host-mode port already in use on 1 node')
  t.equal(s.eligible('nope', spec), '1 node not available for new tasks')
})

t.test('task and node bookkeeping', async (t) => {
  const s = withNodes(node('a'), node('b'))
  s.addTask({ id: 'x', nodeId: 'a', serviceId: 'web' })
  s.addTask({ id: 'x', nodeId: 'a', serviceId: 'web' })
  t.equal(s.taskCount('a'), 1, 'adding the same task twice is a no-op')
  s.addTask({ id: 'x', nodeId: 'b', serviceId: 'web' })
  t.same([s.taskCount('a'), s.taskCount('b', 'web')], [0, 1], 'a task seen on another node moves')
  t.equal(s.removeTask('x'), true)
  t.equal(s.removeTask('x'), false)

  s.addTask({ id: 'early', nodeId: 'c', serviceId: 'web' })
  s.upsertNode(node('c'))
  t.equal(s.taskCount('c', 'web'), 1, 'a task may arrive before its node')
  s.removeNode('c')
  t.same(spread(s.schedule(batch(2))), { a: 1, b: 1 }, 'a removed node gets nothing')
  t.equal(s.taskCount('c'), 1, 'its tasks stay accounted until removed')
  s.upsertNode(node('c'))
  t.same(spread(s.schedule(batch(1))), { a: 1 }, 'and count again when it comes back (an empty c would win)')
  s.removeNode('b')
  s.removeNode('b')
  t.equal(s.taskCount('zzz'), 0)

  const one = batch(1)
  const placed = s.schedule(one).nodeIds[0]!
  const before = s.taskCount(placed)
  s.addTask({ id: one.taskIds[0]!, nodeId: placed, serviceId: 'web' })
  t.equal(s.taskCount(placed), before, 'a scheduled task is already accounted')
})

t.test('property: k tasks on n identical nodes, in any batches, differ by at most 1 per node', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.integer({ min: 0, max: 120 }), { maxLength: 5 }), (n, sizes) => {
      const s = new Scheduler()
      for (let i = 0; i < n; i++) s.upsertNode(node(`n${i}`))
      let placed = 0
      for (const size of sizes) placed += s.schedule(batch(size)).placed
      const counts = Array.from({ length: n }, (_, i) => s.taskCount(`n${i}`, 'web'))
      const total = sizes.reduce((a, b) => a + b, 0)
      return placed === total && Math.max(...counts) - Math.min(...counts) <= 1
    }),
  )
  t.pass('evenness held')
})

interface RefNode {
  id: string
  ready: boolean
  cpu: number
  zone: string | undefined
  svc: number
  other: number
  used: number
  port: boolean
}

/** Swarmkit's spread done the slow way: one task at a time, every filter re-evaluated. */
function referenceSpread(
  nodes: RefNode[],
  n: number,
  req: { cpu: number; max: number; port: boolean; prefs: boolean },
): Record<string, number> {
  const placed: Record<string, number> = {}
  const total = (nd: RefNode): number => nd.svc + nd.other
  for (let k = 0; k < n; k++) {
    const fits = nodes.filter(
      (nd) =>
        nd.ready &&
        (req.cpu === 0 || nd.cpu - nd.used >= req.cpu) &&
        !(req.port && nd.port) &&
        !(req.max > 0 && nd.svc >= req.max),
    )
    if (fits.length === 0) break
    let pool = fits
    if (req.prefs) {
      const groups = new Map<string, { tasks: number; total: number }>()
      for (const nd of nodes) {
        const g = groups.get(nd.zone ?? '') ?? { tasks: 0, total: 0 }
        g.tasks += nd.svc
        g.total += total(nd)
        groups.set(nd.zone ?? '', g)
      }
      const open = [...new Set(fits.map((nd) => nd.zone ?? ''))]
      open.sort((a, b) => {
        const ga = groups.get(a)!
        const gb = groups.get(b)!
        return ga.tasks - gb.tasks || ga.total - gb.total || (a < b ? -1 : 1)
      })
      pool = fits.filter((nd) => (nd.zone ?? '') === open[0])
    }
    pool.sort((a, b) => a.svc - b.svc || total(a) - total(b) || (a.id < b.id ? -1 : 1))
    const best = pool[0]!
    best.svc++
    best.used += req.cpu
    best.port ||= req.port
    placed[best.id] = (placed[best.id] ?? 0) + 1
  }
  return placed
}

t.test('property: batch placement equals one-at-a-time greedy spread', async (t) => {
  const refNode = fc.record({
    ready: fc.constantFrom(true, true, true, false),
    cpu: fc.integer({ min: 0, max: 6 }),
    zone: fc.constantFrom('a', 'b', 'c', undefined),
    svc: fc.integer({ min: 0, max: 3 }),
    other: fc.integer({ min: 0, max: 3 }),
    port: fc.constantFrom(false, false, false, true),
  })
  const request = fc.record({
    n: fc.integer({ min: 0, max: 30 }),
    cpu: fc.constantFrom(0, 0, 1, 2),
    existingCpu: fc.constantFrom(0, 1),
    max: fc.constantFrom(0, 0, 1, 2, 4),
    port: fc.constantFrom(false, false, true),
    prefs: fc.boolean(),
  })
  fc.assert(
    fc.property(fc.array(refNode, { minLength: 1, maxLength: 10 }), request, (specs, req) => {
      const s = new Scheduler()
      const ref: RefNode[] = []
      specs.forEach((spec, i) => {
        const id = `n${i}`
        s.upsertNode(
          node(id, {
            ready: spec.ready,
            resources: { nanoCPUs: spec.cpu * 1e9, memoryBytes: GB },
            labels: spec.zone === undefined ? {} : { zone: spec.zone },
          }),
        )
        const reservations = { nanoCPUs: req.existingCpu * 1e9, memoryBytes: 0 }
        for (let k = 0; k < spec.svc; k++) s.addTask({ id: `${id}-s${k}`, nodeId: id, serviceId: 'web', reservations })
        for (let k = 0; k < spec.other; k++) s.addTask({ id: `${id}-o${k}`, nodeId: id, serviceId: 'db', reservations })
        if (spec.port) s.addTask({ id: `${id}-p`, nodeId: id, serviceId: 'lb', hostPorts: [{ protocol: 'tcp', port: 80 }] })
        ref.push({
          id,
          ready: spec.ready,
          cpu: spec.cpu,
          zone: spec.zone,
          svc: spec.svc,
          other: spec.other + (spec.port ? 1 : 0),
          used: req.existingCpu * (spec.svc + spec.other),
          port: spec.port,
        })
      })
      const r = s.schedule(
        batch(req.n, {
          reservations: { nanoCPUs: req.cpu * 1e9, memoryBytes: 0 },
          maxReplicas: req.max,
          hostPorts: req.port ? [{ protocol: 'tcp', port: 80 }] : [],
          preferences: req.prefs ? ['node.labels.zone'] : [],
        }),
      )
      const want = referenceSpread(ref, req.n, req)
      const placed = Object.values(want).reduce((a, b) => a + b, 0)
      deepStrictEqual(
        { spread: spread(r), placed: r.placed, failed: r.error !== undefined },
        { spread: want, placed, failed: placed < req.n },
      )
    }),
    { numRuns: 500 },
  )
  t.pass('batch placement matched the reference')
})
