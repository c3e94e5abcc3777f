import t from 'tap'
import fc from 'fast-check'
import { Balancer, type BalancerTarget } from './balancer.js'
import { type Endpoint, endpointKey } from './types.js'

const TARGET: BalancerTarget = { network: 'ingress', service: 's1', targetPort: 80, protocol: 'tcp' }

function ep(task: string, node = 'n1', over: Partial<Endpoint> = {}): Endpoint {
  return { network: 'ingress', service: 's1', serviceName: 'web', task, node, protocol: 'tcp', targetPort: 80, host: '127.0.0.1', port: 40000, ...over }
}

function counts(b: Balancer, n: number, target = TARGET): Map<string, number> {
  const c = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const e = b.pick(target)
    const k = e ? e.task : '-'
    c.set(k, (c.get(k) ?? 0) + 1)
  }
  return c
}

t.test('round robin is even over 1,000 requests to 3 tasks, local and remote alike', t => {
  const b = new Balancer()
  b.add(ep('a', 'local'))
  b.add(ep('b', 'remote1'))
  b.add(ep('c', 'remote2'))
  const c = [...counts(b, 1000).values()]
  t.same(c.sort(), [333, 333, 334])
  t.ok(Math.max(...c) / Math.min(...c) <= 1.2)
  t.end()
})

t.test('targets are separate: network, service, port and protocol', t => {
  const b = new Balancer()
  b.add(ep('a'))
  b.add(ep('u', 'n1', { protocol: 'udp' }))
  b.add(ep('p', 'n1', { targetPort: 81 }))
  b.add(ep('s', 'n1', { service: 's2' }))
  t.equal(b.pick(TARGET)?.task, 'a')
  t.equal(b.pick({ ...TARGET, protocol: 'udp' })?.task, 'u')
  t.equal(b.pick({ ...TARGET, targetPort: 81 })?.task, 'p')
  t.equal(b.pick({ ...TARGET, service: 's2' })?.task, 's')
  t.equal(b.pick({ ...TARGET, network: 'other' }), undefined)
  t.same(b.endpoints(TARGET).map(e => e.task), ['a'])
  t.same(b.endpoints({ ...TARGET, network: 'other' }), [])
  t.end()
})

t.test('update() applies an endpoint table change; replacing an endpoint keeps its connections', t => {
  const b = new Balancer()
  b.update({ added: [ep('a'), ep('b')], updated: [], removed: [] })
  b.acquire(ep('a'))
  b.update({ added: [], updated: [ep('a', 'n1', { port: 1 })], removed: [ep('b')] })
  t.same(b.endpoints(TARGET).map(e => [e.task, e.port]), [['a', 1]])
  t.equal(b.connections(ep('a')), 1)
  b.remove(ep('a'))
  b.remove(ep('a'))
  t.same(b.endpoints(TARGET), [])
  b.release(ep('a'))
  t.equal(b.connections(ep('a')), 0)
  t.end()
})

t.test('property: round robin stays even while endpoints come and go', t => {
  type Op = { kind: 'add' | 'remove' | 'picks'; task: number; n: number }
  const op = fc.record({ kind: fc.constantFrom<Op['kind']>('add', 'remove', 'picks'), task: fc.nat(7), n: fc.integer({ min: 1, max: 25 }) })
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), ops => {
      const b = new Balancer()
      const present = new Set<string>()
      for (const o of ops) {
        if (o.kind === 'add') {
          b.add(ep(`t${o.task}`))
          present.add(`t${o.task}`)
        } else if (o.kind === 'remove') {
          b.remove(ep(`t${o.task}`))
          present.delete(`t${o.task}`)
        } else {
          // A run of picks on a stable set: every endpoint gets floor(n/size) or ceil(n/size).
          const c = counts(b, o.n)
          if (!present.size) {
            t.same([...c.keys()], ['-'])
            continue
          }
          for (const k of c.keys()) t.ok(present.has(k))
          const lo = Math.floor(o.n / present.size)
          for (const k of present) {
            const got = c.get(k) ?? 0
            if (got !== lo && got !== lo + 1) throw new Error(`${k} got ${got} of ${o.n} over ${present.size}`)
          }
        }
      }
    }),
    { numRuns: 500 },
  )
  t.end()
})

t.test('property: least-connections always picks an endpoint with the fewest open connections', t => {
  type Op = { kind: 'open' | 'close'; task: number }
  const op = fc.record({ kind: fc.constantFrom<Op['kind']>('open', 'open', 'close'), task: fc.nat(4) })
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 80 }), (size, ops) => {
      const b = new Balancer({ strategy: 'least-connections' })
      const eps = Array.from({ length: size }, (_, i) => ep(`t${i}`))
      for (const e of eps) b.add(e)
      const open = new Map<string, number>()
      for (const o of ops) {
        if (o.kind === 'open') {
          const e = b.pick(TARGET)!
          const min = Math.min(...eps.map(x => open.get(x.task) ?? 0))
          if ((open.get(e.task) ?? 0) !== min) throw new Error(`picked ${e.task} with ${open.get(e.task)} open, min ${min}`)
          b.acquire(e)
          open.set(e.task, (open.get(e.task) ?? 0) + 1)
        } else {
          const e = eps[o.task % size]!
          b.release(e)
          open.set(e.task, Math.max(0, (open.get(e.task) ?? 0) - 1))
        }
        for (const e of eps) if (b.connections(e) !== (open.get(e.task) ?? 0)) throw new Error('connection count drifted')
      }
    }),
    { numRuns: 500 },
  )
  t.end()
})

t.test('least-connections rotates among equally loaded endpoints', t => {
  const b = new Balancer({ strategy: 'least-connections' })
  for (const k of ['a', 'b', 'c']) b.add(ep(k))
  t.same([...counts(b, 300).values()], [100, 100, 100])
  t.end()
})

t.test('property: endpoints on dead nodes are never chosen', t => {
  fc.assert(
    fc.property(
      fc.array(fc.nat(3), { minLength: 1, maxLength: 8 }),
      fc.array(fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 10 }),
      fc.constantFrom<'round-robin' | 'least-connections'>('round-robin', 'least-connections'),
      (nodesOf, views, strategy) => {
        let alive: boolean[] = []
        const b = new Balancer({ strategy, nodeAlive: n => alive[Number(n)] === true })
        nodesOf.forEach((n, i) => b.add(ep(`t${i}`, String(n))))
        for (const v of views) {
          alive = v
          const anyAlive = nodesOf.some(n => alive[n])
          for (let i = 0; i < 10; i++) {
            const e = b.pick(TARGET)
            if (anyAlive !== (e !== undefined)) throw new Error('a live endpoint was not chosen, or nothing live exists')
            if (e && !alive[Number(e.node)]) throw new Error(`chose ${e.task} on dead node ${e.node}`)
          }
        }
      },
    ),
    { numRuns: 500 },
  )
  t.end()
})

t.test('a failed endpoint is skipped for a back-off of 1 s doubling to 30 s, then tried again', t => {
  const clock = { t: 0 }
  const b = new Balancer({ now: () => clock.t })
  const a = ep('a')
  b.add(a)
  b.add(ep('b'))
  const delays: number[] = []
  for (let i = 0; i < 7; i++) {
    b.markFailed(a)
    const from = clock.t
    while (counts(b, 2).has('b') && !counts(b, 2).has('a')) clock.t += 100
    delays.push(clock.t - from)
  }
  t.same(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000])
  b.markFailed(a)
  b.markOk(a)
  t.ok(counts(b, 2).has('a'), 'a success clears the back-off')
  b.markFailed(a)
  b.markFailed(ep('b'))
  t.equal(b.pick(TARGET), undefined, 'all failed: nothing to offer')
  b.markFailed(ep('zzz'))
  b.markOk(ep('zzz'))
  t.end()
})

t.test('health: failures and back-offs by service name, forgotten with the service', t => {
  const clock = { t: 0 }
  const b = new Balancer({ now: () => clock.t })
  b.add(ep('a'))
  b.add(ep('b'))
  b.add(ep('c', 'n1', { service: 's2', serviceName: 'api' }))
  t.same([...b.health()], [], 'no failure yet')
  b.markFailed(ep('a'))
  b.markFailed(ep('a'))
  b.markFailed(ep('b'))
  b.markFailed(ep('c', 'n1', { service: 's2' }))
  t.same(Object.fromEntries(b.health()), { web: { failures: 3, backedOff: 2 }, api: { failures: 1, backedOff: 1 } })
  clock.t += 1_500
  t.same(b.health().get('web'), { failures: 3, backedOff: 1 }, "b's 1 s back-off is over, a's 2 s one is not")
  b.markOk(ep('a'))
  t.same(b.health().get('web'), { failures: 3, backedOff: 0 }, 'a success ends the back-off; the count stays')
  b.remove(ep('a'))
  t.equal(b.health().get('web')?.failures, 3, 'kept while the service has an endpoint')
  b.remove(ep('b'))
  t.same([...b.health().keys()], ['api'], 'forgotten once its last endpoint goes')
  t.end()
})

t.test('a changed address clears the failures', t => {
  const clock = { t: 0 }
  const b = new Balancer({ now: () => clock.t })
  b.add(ep('a'))
  b.markFailed(ep('a'))
  t.equal(b.pick(TARGET), undefined)
  b.add(ep('a'))
  t.equal(b.pick(TARGET), undefined, 'same address: still backing off')
  b.add(ep('a', 'n1', { port: 40001 }))
  t.equal(b.pick(TARGET)?.port, 40001)
  t.end()
})

t.test('"next, excluding these" retries elsewhere until every endpoint was tried', t => {
  const b = new Balancer()
  for (const k of ['a', 'b', 'c']) b.add(ep(k))
  const tried: Endpoint[] = []
  for (let e = b.pick(TARGET); e; e = b.pick(TARGET, tried)) tried.push(e)
  t.same(tried.map(e => endpointKey(e)).sort(), ['a/tcp/80', 'b/tcp/80', 'c/tcp/80'])
  t.end()
})

t.test('preferNode chooses local endpoints while one is usable, remote ones otherwise', t => {
  const clock = { t: 0 }
  let localAlive = true
  const b = new Balancer({ preferNode: 'me', now: () => clock.t, nodeAlive: n => n !== 'me' || localAlive })
  b.add(ep('l1', 'me'))
  b.add(ep('l2', 'me'))
  b.add(ep('r1', 'other'))
  t.same([...counts(b, 100).entries()].sort(), [['l1', 50], ['l2', 50]])
  b.markFailed(ep('l1'))
  t.same([...counts(b, 10).keys()], ['l2'])
  t.equal(b.pick(TARGET, [ep('l2', 'me')])?.task, 'r1', 'excluded locals fall back to remote')
  localAlive = false
  t.same([...counts(b, 10).keys()], ['r1'])
  t.end()
})
