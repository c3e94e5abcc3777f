import t from 'tap'
import fc from 'fast-check'
import { retransmitLimit, TransmitLimitedQueue, type Broadcast } from './queue.js'

/** Broadcasts with a label, so returned buffers (compared by identity) and finished calls can be named. */
class Fixture {
  readonly finished: string[] = []
  private readonly labels = new Map<Buffer, string>()

  make(label: string, len: number, name?: string): Broadcast {
    const msg = Buffer.alloc(len)
    this.labels.set(msg, label)
    return { name, msg, finished: () => this.finished.push(label) }
  }

  names(msgs: Buffer[]): string[] {
    return msgs.map(m => this.labels.get(m) ?? '?')
  }
}

function queue(nodes = 10, mult = 4): TransmitLimitedQueue {
  return new TransmitLimitedQueue({ numNodes: () => nodes, retransmitMult: mult })
}

const ALL = 1 << 30

t.test('retransmitLimit = mult × ceil(log10(n+1))', async t => {
  const cases: [number, number, number][] = [
    [1, 4, 2],
    [9, 4, 2],
    [10, 8, 4],
    [99, 8, 4],
    [100, 12, 6],
    [1000, 16, 8],
  ]
  for (const [n, lan, local] of cases) {
    t.equal(retransmitLimit(4, n), lan, `mult 4, n=${n}`)
    t.equal(retransmitLimit(2, n), local, `mult 2, n=${n}`)
  }
  t.equal(retransmitLimit(4, 999), 12)
  t.equal(retransmitLimit(4, 0), 0)
})

t.test('order: fewer transmits, then longer, then newer first', async t => {
  const f = new Fixture()
  const q = queue()
  q.queueBroadcast(f.make('a10', 10))
  q.queueBroadcast(f.make('b10', 10))
  q.queueBroadcast(f.make('c20', 20))
  q.queueBroadcast(f.make('d5', 5))
  q.queueBroadcast(f.make('e10', 10))
  // One call with room for everything takes them in queue order.
  t.same(f.names(q.getBroadcasts(0, ALL)), ['c20', 'e10', 'b10', 'a10', 'd5'])

  const g = new Fixture()
  const q2 = queue()
  q2.queueBroadcast(g.make('a10', 10))
  q2.queueBroadcast(g.make('b10', 10))
  q2.queueBroadcast(g.make('c20', 20))
  t.same(g.names(q2.getBroadcasts(0, 20)), ['c20'], 'exactly full: stops')
  q2.queueBroadcast(g.make('d5', 5))
  t.same(g.names(q2.getBroadcasts(0, ALL)), ['b10', 'a10', 'd5', 'c20'], 'the once-sent c20 comes last')
  t.same(g.names(q2.getBroadcasts(0, ALL)), ['b10', 'a10', 'd5', 'c20'], 'all moved up a tier: c20 stays one send ahead')
})

t.test('named broadcasts replace the queued one with the same name', async t => {
  const f = new Fixture()
  const q = queue()
  q.queueBroadcast(f.make('alive-n1', 30, 'n1'))
  q.queueBroadcast(f.make('alive-n2', 30, 'n2'))
  q.queueBroadcast(f.make('user', 30))
  t.same(f.names(q.getBroadcasts(0, 30)), ['user'])
  q.queueBroadcast(f.make('suspect-n1', 40, 'n1'))
  t.same(f.finished, ['alive-n1'], 'the replaced one is finished')
  t.equal(q.numQueued(), 3)
  t.same(f.names(q.getBroadcasts(0, ALL)), ['suspect-n1', 'alive-n2', 'user'])
  // Also after it was sent: replaced whatever its transmit count.
  q.queueBroadcast(f.make('dead-n1', 20, 'n1'))
  t.same(f.finished, ['alive-n1', 'suspect-n1'])
  t.same(f.names(q.getBroadcasts(0, ALL)), ['dead-n1', 'alive-n2', 'user'])

  q.queueBroadcast(f.make('user2', 30))
  q.queueBroadcast(f.make('empty-name', 30, ''))
  q.queueBroadcast(f.make('empty-name2', 30, ''))
  t.same(f.finished, ['alive-n1', 'suspect-n1'], 'unnamed (and empty-named) broadcasts are never replaced')
  t.equal(q.numQueued(), 6)
})

t.test('packing: small messages fill the gaps big ones leave', async t => {
  const f = new Fixture()
  const q = queue()
  for (const len of [60, 50, 30, 10, 5]) q.queueBroadcast(f.make(`m${len}`, len))
  // Overhead 2, limit 100: 60 (62 used), then 30 (94), then nothing fits in 4.
  t.same(f.names(q.getBroadcasts(2, 100)), ['m60', 'm30'])
  // Tier 0 first: 50 (52), 10 (64), 5 (71); the sent 60 and 30 no longer fit in 27.
  t.same(f.names(q.getBroadcasts(2, 100)), ['m50', 'm10', 'm5'])
  t.same(f.names(q.getBroadcasts(2, 100)), ['m60', 'm30'])
  t.same(f.names(q.getBroadcasts(2, 2)), [], 'no free space')
  t.same(f.names(q.getBroadcasts(2, 52)), ['m50'], 'free space exactly 50: 50 fits, then stop')
  q.queueBroadcast(f.make('huge', 1000))
  // Tier 0 holds only 'huge'; tier 1: 10, 5; tier 2: 60, 50, 30.
  t.same(f.names(q.getBroadcasts(2, 100)), ['m10', 'm5', 'm60'], 'too big is skipped, not blocking')
})

t.test('empty queue: no broadcasts, NumNodes not consulted', async t => {
  let calls = 0
  const q = new TransmitLimitedQueue({ numNodes: () => ++calls, retransmitMult: 4 })
  t.same(q.getBroadcasts(2, 1400), [])
  t.equal(calls, 0)
})

t.test('never exceeds the limit (property)', async t => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 60 }),
      fc.integer({ min: 0, max: 5 }),
      fc.array(fc.integer({ min: -5, max: 800 }), { minLength: 1, maxLength: 10 }),
      (lens, overhead, limits) => {
        const f = new Fixture()
        const q = queue(50, 3)
        lens.forEach((len, i) => q.queueBroadcast(f.make(`b${i}`, len)))
        for (const limit of limits) {
          const got = q.getBroadcasts(overhead, limit)
          const used = got.reduce((sum, m) => sum + overhead + m.length, 0)
          if (used > limit && got.length > 0) return false
          if (new Set(got).size !== got.length) return false
        }
        return true
      },
    ),
  )
})

t.test('each broadcast is sent exactly retransmitLimit times, then finished once', async t => {
  for (const [nodes, mult] of [
    [10, 2],
    [9, 4],
    [150, 4],
  ] as const) {
    const f = new Fixture()
    const q = queue(nodes, mult)
    const limit = retransmitLimit(mult, nodes)
    const sent = new Map<string, number>()
    let lenSeed = 7
    for (let i = 0; i < 200; i++) {
      lenSeed = (lenSeed * 1103515245 + 12345) % 2147483648
      q.queueBroadcast(f.make(`b${i}`, 1 + (lenSeed % 120)))
    }
    let polls = 0
    let sentAfterFinish = 0
    while (q.numQueued() > 0 && polls++ < 100000) {
      const done = new Set(f.finished)
      for (const label of f.names(q.getBroadcasts(2, 1398))) {
        sent.set(label, (sent.get(label) ?? 0) + 1)
        if (done.has(label)) sentAfterFinish++
      }
    }
    t.equal(sentAfterFinish, 0, 'never sent once finished')
    t.equal(q.numQueued(), 0, `n=${nodes} mult=${mult}: drained`)
    t.equal(sent.size, 200)
    t.ok([...sent.values()].every(c => c === limit), `every one sent ${limit} times`)
    t.equal(f.finished.length, 200)
    t.equal(new Set(f.finished).size, 200, 'finished once each')
    t.same(q.getBroadcasts(2, 1398), [])
  }
})

t.test('prune drops the most-sent (then smallest, then oldest) first', async t => {
  const f = new Fixture()
  const q = queue()
  q.queueBroadcast(f.make('a', 10))
  q.queueBroadcast(f.make('b', 10))
  q.queueBroadcast(f.make('c', 10))
  q.queueBroadcast(f.make('d', 10))
  q.queueBroadcast(f.make('e', 20, 'e'))
  t.same(f.names(q.getBroadcasts(0, 40)), ['e', 'd', 'c'])
  t.same(f.names(q.getBroadcasts(0, 20)), ['b', 'a'])
  t.same(f.names(q.getBroadcasts(0, 20)), ['e'])
  // Now e has 2 sends; a, b, c, d have 1.
  q.queueBroadcast(f.make('f', 5))
  q.prune(10)
  t.same(f.finished, [], 'under the limit: no-op')
  q.prune(3)
  t.same(f.finished, ['e', 'a', 'b'])
  t.equal(q.numQueued(), 3)
  q.queueBroadcast(f.make('e2', 20, 'e'))
  t.same(f.finished, ['e', 'a', 'b'], 'the pruned name is forgotten')
  t.same(f.names(q.getBroadcasts(0, ALL)), ['e2', 'f', 'd', 'c'], 'the least-sent were kept')
  q.prune(0)
  t.equal(q.numQueued(), 0)
  t.same(f.finished, ['e', 'a', 'b', 'c', 'd', 'f', 'e2'])
})

t.test('reset finishes everything', async t => {
  const f = new Fixture()
  const q = queue()
  q.queueBroadcast(f.make('a', 10, 'x'))
  q.queueBroadcast(f.make('b', 20))
  q.getBroadcasts(0, 20)
  q.queueBroadcast(f.make('c', 30))
  q.reset()
  t.same(f.finished, ['c', 'a', 'b'], 'in queue order')
  t.equal(q.numQueued(), 0)
  t.same(q.getBroadcasts(0, ALL), [])
  q.queueBroadcast(f.make('d', 10, 'x'))
  t.same(f.finished, ['c', 'a', 'b'], 'names were forgotten')
  t.equal(q.numQueued(), 1)
})

t.test('a finished hook may queue again', async t => {
  const q = queue(1, 1)
  const order: string[] = []
  const again: Broadcast = { msg: Buffer.alloc(3), finished: () => order.push('again finished') }
  q.queueBroadcast({
    msg: Buffer.alloc(5),
    finished: () => {
      order.push('first finished')
      q.queueBroadcast(again)
    },
  })
  const lengths = (msgs: Buffer[]) => msgs.map(m => m.length)
  t.same(lengths(q.getBroadcasts(0, ALL)), [5], 'the hook runs after the walk: its broadcast is not in this packet')
  t.equal(q.numQueued(), 1)
  t.same(lengths(q.getBroadcasts(0, ALL)), [3])
  t.same(order, ['first finished', 'again finished'])
})

t.test('ids restart whenever the queue empties, as upstream', async t => {
  const f = new Fixture()
  const q = queue()
  q.queueBroadcast(f.make('old', 10, 'n'))
  // The replacement takes id 2 before the old entry goes, which empties the
  // queue and restarts the ids: the newer 'later' gets id 1 and sorts after.
  q.queueBroadcast(f.make('new', 10, 'n'))
  q.queueBroadcast(f.make('later', 10))
  t.same(f.names(q.getBroadcasts(0, ALL)), ['new', 'later'])
})

t.test('equal ids are both kept (upstream loses one)', async t => {
  const f = new Fixture()
  const q = queue()
  q.queueBroadcast(f.make('x1', 10, 'x'))
  q.queueBroadcast(f.make('x2', 10, 'x')) // id 2, then the ids restart
  q.queueBroadcast(f.make('y', 10, 'y')) // id 1
  q.queueBroadcast(f.make('z', 10, 'z')) // id 2 again: upstream's B-tree replaces x2 with it
  t.equal(q.numQueued(), 3)
  t.same(f.names(q.getBroadcasts(0, ALL)), ['z', 'x2', 'y'], 'equal ids: the more recently queued first')
  q.queueBroadcast(f.make('x3', 10, 'x'))
  t.same(f.finished, ['x1', 'x2'], 'the right entry is replaced')
  t.same(f.names(q.getBroadcasts(0, ALL)), ['x3', 'z', 'y'])
})

/**
 * A literal model of upstream's queue: one list kept in full order, the first
 * fitting item taken per step, ids restarting when the list empties. Where
 * upstream's B-tree would merge two entries with equal (transmits, length,
 * id), the model keeps both, the more recently queued first.
 */
class Model {
  readonly finished: string[] = []
  private items: { label: string; name: string | undefined; len: number; id: number; seq: number; transmits: number }[] =
    []
  private idGen = 0
  private seq = 0
  nodes = 10

  constructor(private readonly mult: number) {}

  private sort(): void {
    this.items.sort((a, b) => a.transmits - b.transmits || b.len - a.len || b.id - a.id || b.seq - a.seq)
  }

  private remove(label: string): void {
    this.items = this.items.filter(i => i.label !== label)
    if (this.items.length === 0) this.idGen = 0
  }

  queue(label: string, len: number, name: string | undefined): void {
    const id = ++this.idGen
    const old = name ? this.items.find(i => i.name === name) : undefined
    if (old) {
      this.finished.push(old.label)
      this.remove(old.label)
    }
    this.items.push({ label, name, len, id, seq: ++this.seq, transmits: 0 })
  }

  get(overhead: number, limit: number): string[] {
    if (this.items.length === 0) return []
    const tl = retransmitLimit(this.mult, this.nodes)
    this.sort()
    const maxTr = this.items[this.items.length - 1]!.transmits
    const out: string[] = []
    const reinsert: (typeof this.items)[number][] = []
    let used = 0
    for (let tr = this.items[0]!.transmits; tr <= maxTr; ) {
      const free = limit - used - overhead
      if (free <= 0) break
      const keep = this.items.find(i => i.transmits === tr && i.len <= free)
      if (!keep) {
        tr++
        continue
      }
      used += overhead + keep.len
      out.push(keep.label)
      this.remove(keep.label)
      if (keep.transmits + 1 >= tl) this.finished.push(keep.label)
      else reinsert.push({ ...keep, transmits: keep.transmits + 1 })
    }
    this.items.push(...reinsert)
    return out
  }

  prune(maxRetain: number): void {
    this.sort()
    while (this.items.length > maxRetain) {
      const last = this.items[this.items.length - 1]!
      this.finished.push(last.label)
      this.remove(last.label)
    }
  }

  reset(): void {
    this.sort()
    for (const i of this.items) this.finished.push(i.label)
    this.items = []
    this.idGen = 0
  }

  size(): number {
    return this.items.length
  }
}

type Op =
  | { op: 'queue'; len: number; name: string | undefined }
  | { op: 'get'; overhead: number; limit: number }
  | { op: 'prune'; max: number }
  | { op: 'nodes'; n: number }
  | { op: 'reset' }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('queue' as const),
      // Mostly a few lengths, so that ties broken by id are common.
      len: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0, 10, 20) }, fc.integer({ min: 0, max: 400 })),
      name: fc.option(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { nil: undefined }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('get' as const),
      overhead: fc.integer({ min: 0, max: 3 }),
      limit: fc.integer({ min: -2, max: 300 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('prune' as const), max: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('nodes' as const), n: fc.integer({ min: 0, max: 2000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reset' as const) }) },
)

t.test('matches a literal model of upstream on random operation sequences', async t => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 200 }), fc.constantFrom(1, 2, 4), (ops, mult) => {
      const model = new Model(mult)
      const f = new Fixture()
      const q = new TransmitLimitedQueue({ numNodes: () => model.nodes, retransmitMult: mult })
      let n = 0
      for (const o of ops) {
        switch (o.op) {
          case 'queue': {
            const label = `m${n++}`
            model.queue(label, o.len, o.name)
            q.queueBroadcast(f.make(label, o.len, o.name))
            break
          }
          case 'get':
            if (f.names(q.getBroadcasts(o.overhead, o.limit)).join() !== model.get(o.overhead, o.limit).join()) {
              return false
            }
            break
          case 'prune':
            model.prune(o.max)
            q.prune(o.max)
            break
          case 'nodes':
            model.nodes = o.n
            break
          case 'reset':
            model.reset()
            q.reset()
            break
        }
        if (q.numQueued() !== model.size() || f.finished.join() !== model.finished.join()) return false
      }
      return true
    }),
    { numRuns: 1000 },
  )
})

t.test('large queue: a packet touches only what it sends', async t => {
  const q = queue(5000, 4)
  for (let i = 0; i < 20000; i++) q.queueBroadcast({ name: `node-${i}`, msg: Buffer.alloc(40 + (i % 60)) })
  const start = performance.now()
  let sent = 0
  for (let i = 0; i < 2000; i++) sent += q.getBroadcasts(2, 1398).length
  const ms = performance.now() - start
  t.ok(sent > 2000 * 10, `${sent} messages in 2000 packets`)
  t.equal(q.numQueued(), 20000)
  // Generous bound: a full scan per call would be ~40M entry visits.
  t.ok(ms < 2000, `2000 packets from 20000 queued in ${ms.toFixed(1)} ms`)
})
