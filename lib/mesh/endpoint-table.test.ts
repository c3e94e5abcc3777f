import t, { type Test } from 'tap'
import fc from 'fast-check'
import { SwarmdError } from '../types/errors.js'
import { mutate, thrown, type Mutation } from '../test-helpers.test-helper.js'
import {
  DELTA_MAX_BYTES,
  decodeDelta,
  decodeFullState,
  encodeDeltas,
  encodeFullState,
  EndpointDecodeError,
  EndpointTable,
  type TableEntry,
} from './endpoint-table.js'
import { type Endpoint, endpointKey } from './types.js'

const NET = 'net-ingress-0000000000001'

function ep(node: string, task: string, over: Partial<Endpoint> = {}): Endpoint {
  return { network: NET, service: 'svc1', serviceName: 'web', task, node, protocol: 'tcp', targetPort: 80, host: `10.0.0.${node.length}`, port: 30001, ...over }
}

function table(self: string, clock = { t: 0 }): EndpointTable {
  return new EndpointTable({ self, now: () => clock.t })
}

const keys = (eps: Endpoint[]): string[] => eps.map(e => endpointKey(e))
/** Replica state without local bookkeeping, in a canonical order. */
const state = (tb: EndpointTable): TableEntry[] => tb.fullState().entries.sort((a, b) => (a.network + a.key < b.network + b.key ? -1 : 1))

t.test('set and delete disseminate one entry each and bump the Lamport clock', t => {
  const a = table('a')
  const u1 = a.set(ep('a', 't1'))
  t.same(keys(u1.added), ['t1/tcp/80'])
  t.equal(u1.broadcast.length, 1)
  t.match(u1.broadcast[0], { network: NET, key: 't1/tcp/80', clock: 1, owner: 'a', value: { task: 't1' } })
  t.same(a.set(ep('a', 't1')).broadcast, [], 'setting the same value again sends nothing')
  const u2 = a.set(ep('a', 't1', { port: 30002 }))
  t.same(u2.updated.map(e => e.port), [30002])
  t.equal(u2.broadcast[0]?.clock, 2)
  const u3 = a.delete(NET, 't1/tcp/80')
  t.same(keys(u3.removed), ['t1/tcp/80'])
  t.match(u3.broadcast[0], { clock: 3, value: null })
  t.same(a.delete(NET, 't1/tcp/80').broadcast, [], 'deleting twice sends nothing')
  t.same(a.delete(NET, 'nope/tcp/1').broadcast, [])
  t.same(a.endpoints(NET), [])
  t.end()
})

t.test('set refuses endpoints of other nodes and ones too large for a message', t => {
  const a = table('a')
  t.match(thrown(t, () => a.set(ep('b', 't1'))), { code: 'E_ENDPOINT_NOT_LOCAL' })
  t.match(thrown(t, () => a.set(ep('a', 't1', { host: 'h'.repeat(256) }))), { code: 'E_ENDPOINT_FIELD' })
  const small = new EndpointTable({ self: 'a', maxMessageBytes: 100 })
  t.match(thrown(t, () => small.set(ep('a', 't1', { serviceName: 'x'.repeat(80) }))), { code: 'E_ENDPOINT_TOO_LARGE' })
  const b = table('b')
  b.apply(a.set(ep('a', 't1')).broadcast)
  t.match(thrown(t, () => b.delete(NET, 't1/tcp/80')), { code: 'E_ENDPOINT_NOT_LOCAL' })
  t.end()
})

t.test('apply: last writer wins by clock; the clock moves past every clock seen', t => {
  const a = table('a')
  const b = table('b')
  const w1 = a.set(ep('a', 't1')).broadcast
  const w2 = a.set(ep('a', 't1', { port: 2 })).broadcast
  t.same(keys(b.apply(w2).added), ['t1/tcp/80'])
  t.same(b.apply(w1), { added: [], removed: [], updated: [], broadcast: [] }, 'an older version changes nothing')
  t.equal(b.clock, 2)
  t.equal(b.endpoints(NET)[0]?.port, 2)
  t.same(b.set(ep('b', 't2')).broadcast[0]?.clock, 3)
  t.end()
})

t.test('equal clocks: owner name, then tombstone over value, then value bytes decide', t => {
  const e = (owner: string, value: Endpoint | null): TableEntry => ({ network: NET, key: 'x/tcp/80', clock: 5, owner, value })
  const x = (node: string, port: number): Endpoint => ep(node, 'x', { port })
  const orders: TableEntry[][] = [
    [e('a', x('a', 1)), e('b', x('b', 1))],
    [e('a', x('a', 1)), e('a', null)],
    [e('a', x('a', 1)), e('a', x('a', 2))],
  ]
  for (const [lo, hi] of orders) {
    const r1 = table('z')
    const r2 = table('z')
    r1.apply([lo!, hi!])
    r2.apply([hi!, lo!])
    t.same(state(r1), state(r2))
    t.same(state(r1)[0], hi)
  }
  t.end()
})

t.test('endpoints() filters by service, protocol, port and node; networks are separate', t => {
  const a = table('a')
  a.set(ep('a', 't1'))
  a.set(ep('a', 't2', { service: 'svc2', protocol: 'udp', targetPort: 53 }))
  a.set(ep('a', 't3', { network: 'other' }))
  t.same(keys(a.endpoints(NET)), ['t1/tcp/80', 't2/udp/53'])
  t.same(keys(a.endpoints(NET, { service: 'svc2' })), ['t2/udp/53'])
  t.same(keys(a.endpoints(NET, { protocol: 'tcp' })), ['t1/tcp/80'])
  t.same(keys(a.endpoints(NET, { targetPort: 53 })), ['t2/udp/53'])
  t.same(keys(a.endpoints(NET, { node: 'b' })), [])
  t.same(keys(a.endpoints('other')), ['t3/tcp/80'])
  t.same(a.endpoints('none'), [])
  t.end()
})

t.test('tombstones are reaped after the reaping period, not before', t => {
  const clock = { t: 1000 }
  const a = new EndpointTable({ self: 'a', now: () => clock.t, reapAfterMs: 30 * 60_000 })
  a.set(ep('a', 't1'))
  a.set(ep('a', 't2'))
  a.delete(NET, 't1/tcp/80')
  t.equal(a.reap(1000 + 30 * 60_000 - 1), 0)
  t.equal(a.fullState().entries.length, 2)
  clock.t += 30 * 60_000
  t.equal(a.reap(), 1)
  t.same(a.fullState().entries.map(e => e.key), ['t2/tcp/80'])
  a.delete(NET, 't2/tcp/80')
  clock.t += 30 * 60_000
  t.equal(a.reap(), 1)
  t.same(a.fullState().entries, [])
  t.end()
})

t.test('removeNode hides a dead node at once; stale copies never resurrect; fresh writes do', t => {
  const a = table('a')
  const x = table('x')
  const old = [...a.set(ep('a', 't1')).broadcast, ...a.set(ep('a', 't2')).broadcast]
  x.apply(old)
  const gone = x.removeNode('a')
  t.same(keys(gone.removed), ['t1/tcp/80', 't2/tcp/80'])
  t.same(gone.broadcast, [], 'each node applies its own membership view: nothing to send')
  t.same(x.endpoints(NET), [])
  t.same(keys(x.apply(old).added), [], 'a duplicated old delta is beaten by the tombstone at its version')
  const late = a.set(ep('a', 't3')).broadcast
  t.same(keys(x.apply(late).added), [], 'values a dead node wrote before dying stay hidden')
  x.nodeBack('a')
  t.same(x.endpoints(NET), [], 'coming back shows nothing by itself')
  const fresh = a.set(ep('a', 't4')).broadcast
  t.same(keys(x.apply(fresh).added), ['t4/tcp/80'], 'a fresh write after nodeBack shows')
  t.same(x.removeNode('x').removed, [], 'a node never removes itself')
  t.end()
})

t.test('a node wrongly declared dead refutes with higher clocks and its entries come back everywhere', t => {
  const a = table('a')
  const x = table('x')
  const y = table('y')
  const w = a.set(ep('a', 't1')).broadcast
  x.apply(w)
  y.apply(w)
  x.removeNode('a')
  // Anti-entropy: x's tombstone reaches y (which still sees a alive) and a itself.
  t.same(keys(y.mergeFullState(x.fullState()).removed), ['t1/tcp/80'])
  x.nodeBack('a')
  const r = a.mergeFullState(x.fullState())
  t.same(r.removed, [], 'the owner keeps its endpoint')
  t.equal(r.broadcast.length, 1)
  t.ok(r.broadcast[0]!.clock > w[0]!.clock)
  t.same(keys(x.apply(r.broadcast).added), ['t1/tcp/80'])
  t.same(keys(y.apply(r.broadcast).added), ['t1/tcp/80'])
  t.same(state(x), state(a))
  t.same(state(y), state(a))
  t.end()
})

t.test('a refutation that arrives before nodeBack is hidden, and the next anti-entropy round heals it', t => {
  const a = table('a')
  const x = table('x')
  x.apply(a.set(ep('a', 't1')).broadcast)
  x.removeNode('a')
  const r = a.mergeFullState(x.fullState())
  t.same(x.apply(r.broadcast).added, [], 'a is still dead here: its values count as tombstones')
  x.nodeBack('a')
  const again = a.mergeFullState(x.fullState())
  t.equal(again.broadcast.length, 1)
  t.same(keys(x.apply(again.broadcast).added), ['t1/tcp/80'])
  t.end()
})

t.test('a restarted node kills its stale entries and its new writes win', t => {
  const a1 = table('a')
  const x = table('x')
  x.apply([...a1.set(ep('a', 't1')).broadcast, ...a1.set(ep('a', 't1', { port: 9 })).broadcast])
  // a restarts with an empty table before x noticed anything.
  const a2 = table('a')
  const r = a2.mergeFullState(x.fullState())
  t.same(r.added, [], 'its own stale entry is not shown')
  t.match(r.broadcast, [{ key: 't1/tcp/80', value: null, owner: 'a' }])
  t.same(keys(x.apply(r.broadcast).removed), ['t1/tcp/80'])
  const fresh = a2.set(ep('a', 't2')).broadcast
  t.ok(fresh[0]!.clock > r.broadcast[0]!.clock)
  t.same(keys(x.apply(fresh).added), ['t2/tcp/80'])
  t.same(a2.apply(x.fullState().entries).broadcast, [], 'echoes of its own writes change nothing')
  t.end()
})

// ---------------------------------------------------------------- codec

const name = fc.string({ minLength: 0, maxLength: 30 })
const endpointArb = fc.record({
  network: name,
  service: name,
  serviceName: name,
  task: name,
  node: name,
  protocol: fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'),
  targetPort: fc.integer({ min: 0, max: 65535 }),
  host: name,
  port: fc.integer({ min: 0, max: 65535 }),
})
const clockArb = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }))
const entryArb: fc.Arbitrary<TableEntry> = fc.oneof(
  fc.record({ e: endpointArb, clock: clockArb }).map(({ e, clock }) => ({ network: e.network, key: endpointKey(e), clock, owner: e.node, value: e })),
  fc.record({ network: name, key: name, clock: clockArb, owner: name }).map(r => ({ ...r, value: null })),
)

t.test('a delta has the documented layout', t => {
  const e: TableEntry = { network: 'n', key: 'k', clock: 300, owner: 'o', value: null }
  t.same(encodeDeltas([e]), [Buffer.from([1, 1, 0, 0xac, 0x02, 1, 0x6e, 1, 0x6f, 1, 0x6b])])
  const v = ep('o', 't', { network: 'n', service: 's', serviceName: 'w', host: 'h', targetPort: 80, port: 258, protocol: 'udp' })
  t.same(encodeDeltas([{ network: 'n', key: endpointKey(v), clock: 1, owner: 'o', value: v }])[0], Buffer.from([1, 1, 1, 1, 1, 0x6e, 1, 0x6f, 1, 0x73, 1, 0x77, 1, 0x74, 1, 0, 80, 1, 0x68, 1, 2]))
  t.end()
})

t.test('encode∘decode is the identity for deltas and full states', t => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 40 }), entries => {
      const msgs = encodeDeltas(entries)
      for (const m of msgs) if (m.length > DELTA_MAX_BYTES) throw new Error(`message of ${m.length} bytes`)
      t.same(msgs.flatMap(m => decodeDelta(m)), entries)
    }),
    { numRuns: 300 },
  )
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 20 }), clockArb, (entries, clock) => {
      t.same(decodeFullState(encodeFullState({ clock, entries })), { clock, entries })
    }),
    { numRuns: 200 },
  )
  t.end()
})

t.test('deltas batch several entries per message and split when large', t => {
  const a = table('node-7f3a9c2e')
  const all: TableEntry[] = []
  for (let i = 0; i < 100; i++) all.push(...a.set(ep('node-7f3a9c2e', `task-${String(i).padStart(21, '0')}`, { service: 's'.repeat(25), host: '10.0.13.200' })).broadcast)
  const msgs = encodeDeltas(all)
  const per = all.length / msgs.length
  t.ok(msgs.every(m => m.length <= DELTA_MAX_BYTES))
  t.ok(per >= 6, `${per.toFixed(1)} entries per 1 KB message`)
  t.same(msgs.flatMap(m => decodeDelta(m)), all)
  t.same(encodeDeltas([]), [])
  const big: TableEntry = { network: 'n', key: 'k'.repeat(200), clock: 1, owner: 'o', value: null }
  t.match(thrown(t, () => encodeDeltas([big], 100)), { code: 'E_ENDPOINT_TOO_LARGE' })
  t.end()
})

t.test('the encoder refuses entries whose key, network or owner disagree with the endpoint', t => {
  const v = ep('a', 't1')
  t.match(thrown(t, () => encodeDeltas([{ network: NET, key: 'other', clock: 1, owner: 'a', value: v }])), { code: 'E_ENDPOINT_FIELD' })
  t.match(thrown(t, () => encodeDeltas([{ network: NET, key: endpointKey(v), clock: 1, owner: 'b', value: v }])), { code: 'E_ENDPOINT_FIELD' })
  t.match(thrown(t, () => encodeDeltas([{ network: NET, key: 'k', clock: 0, owner: 'b', value: null }])), { code: 'E_ENDPOINT_FIELD' })
  t.end()
})

t.test('the decoder rejects malformed messages with E_ENDPOINT_DECODE', t => {
  const bad: Array<[string, number[]]> = [
    ['empty', []],
    ['unknown tag', [9, 1]],
    ['empty delta', [1, 0]],
    ['truncated', [1, 1, 0, 1]],
    ['flags', [1, 1, 2, 1, 0, 0, 0]],
    ['clock 0', [1, 1, 0, 0, 1, 0x6e, 1, 0x6f, 1, 0x6b]],
    ['overlong varint', [1, 1, 0, 0x81, 0x00, 1, 0x6e, 1, 0x6f, 1, 0x6b]],
    ['varint too long', [1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ['clock beyond 2^53', [1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 0x6e, 1, 0x6f, 1, 0x6b]],
    ['bad utf-8', [1, 1, 0, 1, 1, 0xff, 1, 0x6f, 1, 0x6b]],
    ['protocol', [1, 1, 1, 1, 1, 0x6e, 1, 0x6f, 1, 0x73, 1, 0x77, 1, 0x74, 7, 0, 80, 1, 0x68, 1, 2]],
    ['trailing', [1, 1, 0, 1, 1, 0x6e, 1, 0x6f, 1, 0x6b, 0]],
    ['string past the end', [1, 1, 0, 1, 9, 0x6e]],
    ['full state as delta', [2, 1, 0]],
  ]
  for (const [what, bytes] of bad) {
    const err = thrown(t, () => decodeDelta(Buffer.from(bytes)))
    t.ok(err instanceof EndpointDecodeError && err.code === 'E_ENDPOINT_DECODE', what)
  }
  t.match(thrown(t, () => decodeFullState(Buffer.from([1, 1, 0]))), { code: 'E_ENDPOINT_DECODE' })
  t.end()
})

t.test('fuzz: the decoders throw nothing but EndpointDecodeError, and what they accept re-encodes to the same bytes', t => {
  const check = (buf: Buffer): void => {
    for (const [dec, enc] of [
      [decodeDelta, (x: TableEntry[]) => encodeDeltas(x, 1 << 30)[0]!],
      [decodeFullState, encodeFullState],
    ] as const) {
      let out: unknown
      try {
        out = dec(buf)
      } catch (e) {
        if (!(e instanceof EndpointDecodeError)) throw e
        continue
      }
      if (!Buffer.from((enc as (v: unknown) => Buffer)(out)).equals(buf)) throw new Error(`not canonical: ${buf.toString('hex')}`)
    }
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), b => check(Buffer.from(b))), { numRuns: 2000 })
  const mutation = fc.record({ op: fc.constantFrom<Mutation['op']>('set', 'insert', 'delete', 'cut'), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) })
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 4 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), (entries, muts, full) => {
      const buf = full ? encodeFullState({ clock: 7, entries }) : encodeDeltas(entries, 1 << 30)[0]!
      check(mutate(buf, muts))
    }),
    { numRuns: 2000 },
  )
  t.end()
})

// ---------------------------------------------------------------- convergence

type Op = { at: number; kind: 'set' | 'delete'; task: number; port: number }
const opArb = fc.record({ at: fc.nat(2), kind: fc.constantFrom<'set' | 'delete'>('set', 'set', 'delete'), task: fc.nat(4), port: fc.nat(3) })
const NODES = ['n0', 'n1', 'n2']

/**
 * Runs writes on 3 replicas (tasks shared between nodes, so owners race on
 * keys); `sent` sees each delta message as it is produced, by replica index.
 */
function run(ops: Op[], sent: (from: number, msg: Buffer, replicas: EndpointTable[]) => void): EndpointTable[] {
  const replicas = NODES.map(n => table(n))
  for (const op of ops) {
    const r = replicas[op.at]!
    const node = NODES[op.at]!
    const task = `t${op.task}`
    let u
    if (op.kind === 'set') u = r.set(ep(node, task, { port: op.port }))
    else {
      const cur = r.endpoints(NET).find(e => e.task === task)
      if (cur?.node !== node) continue
      u = r.delete(NET, endpointKey(cur))
    }
    for (const m of encodeDeltas(u.broadcast)) sent(op.at, m, replicas)
  }
  return replicas
}

function converged(t: Test, replicas: EndpointTable[]): void {
  const s0 = state(replicas[0]!)
  for (const r of replicas) t.same(state(r), s0)
  for (const r of replicas) t.same(r.endpoints(NET), replicas[0]!.endpoints(NET))
}

t.test('CRDT convergence: deltas in any order, duplicated, some delivered while writes go on', t => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), fc.infiniteStream(fc.nat()), (ops, rnd) => {
      const it = rnd[Symbol.iterator]()
      const next = (n: number): number => (it.next().value as number) % n
      const msgs: Buffer[] = []
      const replicas = run(ops, (from, m, rs) => {
        msgs.push(m)
        // Some messages arrive at once (so later writes see higher clocks), the rest later.
        for (let j = 0; j < rs.length; j++) if (j !== from && next(2) === 0) rs[j]!.apply(decodeDelta(m))
      })
      for (const r of replicas) {
        const todo = msgs.flatMap(m => (next(3) === 0 ? [m, m] : [m]))
        for (let k = todo.length - 1; k > 0; k--) {
          const j = next(k + 1)
          ;[todo[k], todo[j]] = [todo[j]!, todo[k]!]
        }
        for (const m of todo) if (r.apply(decodeDelta(m)).broadcast.length) throw new Error('refuted without a reason')
      }
      converged(t, replicas)
    }),
    { numRuns: 300 },
  )
  t.end()
})

t.test('CRDT convergence: lost deltas are repaired by push/pull anti-entropy', t => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), fc.infiniteStream(fc.boolean()), (ops, rnd) => {
      const it = rnd[Symbol.iterator]()
      const replicas = run(ops, (from, m, rs) => {
        for (let j = 0; j < rs.length; j++) if (j !== from && it.next().value) rs[j]!.apply(decodeDelta(m))
      })
      // Push/pull around the ring, through the wire format: two rounds reach everyone.
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < replicas.length; i++) {
          const a = replicas[i]!
          const b = replicas[(i + 1) % replicas.length]!
          b.mergeFullState(decodeFullState(encodeFullState(a.fullState())))
          a.mergeFullState(decodeFullState(encodeFullState(b.fullState())))
        }
      }
      converged(t, replicas)
    }),
    { numRuns: 300 },
  )
  t.end()
})

t.test('SwarmdError is the base of the decode error', t => {
  t.ok(new EndpointDecodeError('x') instanceof SwarmdError)
  t.end()
})
