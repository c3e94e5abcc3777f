import { spawn } from 'node:child_process'
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { Store, StoreCorruptError } from './store.js'

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-store-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('commits are readable at once and after reopening', async t => {
  const dir = tempDir(t)
  const s = await Store.open(dir)
  t.equal(await s.commit([{ op: 'put', table: 'nodes', id: 'a', value: { role: 'manager' } }]), 1)
  await s.commit([
    { op: 'put', table: 'nodes', id: 'b', value: { role: 'worker' } },
    { op: 'put', table: 'tokens', id: 'worker', value: 'SWMTKN-1-x' },
  ])
  await s.commit([{ op: 'delete', table: 'nodes', id: 'a' }])
  t.same(s.list('nodes'), [{ role: 'worker' }])
  await s.close()
  const r = await Store.open(dir)
  t.equal(r.index, 3)
  t.same(r.get('nodes', 'b'), { role: 'worker' })
  t.equal(r.get('nodes', 'a'), undefined)
  t.equal(r.get('tokens', 'worker'), 'SWMTKN-1-x')
  await r.close()
})

t.test('each commit is timed: on disk, or refused', async t => {
  const seen: { ms: number; ok: boolean }[] = []
  const s = await Store.open(tempDir(t), { onCommit: (ms, ok) => seen.push({ ms, ok }) })
  await s.commit([{ op: 'put', table: 'nodes', id: 'a', value: 1 }])
  await t.rejects(s.commit([{ op: 'put', table: '', id: 'x', value: 1 }]), { code: 'E_STORE_MUTATION' })
  t.same(seen.map(c => c.ok), [true, false])
  // An fsync takes some time; no commit takes seconds here.
  t.ok(seen[0]!.ms > 0 && seen[0]!.ms < 5_000, `${seen[0]!.ms} ms`)
  await s.close()
})

t.test('onChange: each row a commit changed, before and after, once applied', async t => {
  const s = await Store.open(tempDir(t))
  await s.commit([{ op: 'put', table: 'nodes', id: 'a', value: { v: 1 } }])
  const seen: unknown[] = []
  const stop = s.onChange((table, id, before, after) => seen.push([table, id, before, after, s.get(table, id)]))
  await s.commit([
    { op: 'put', table: 'nodes', id: 'a', value: { v: 2 } },
    { op: 'put', table: 'nodes', id: 'b', value: { v: 1 } },
  ])
  await s.commit([{ op: 'delete', table: 'nodes', id: 'a' }])
  t.same(seen, [
    ['nodes', 'a', { v: 1 }, { v: 2 }, { v: 2 }],
    ['nodes', 'b', undefined, { v: 1 }, { v: 1 }],
    ['nodes', 'a', { v: 2 }, undefined, undefined],
  ])
  stop()
  await s.commit([{ op: 'put', table: 'nodes', id: 'c', value: {} }])
  t.equal(seen.length, 3, 'no more once stopped')
  await s.close()
})

t.test('stored values are copies', async t => {
  const s = await Store.open(tempDir(t))
  const v = { n: 1 }
  await s.commit([{ op: 'put', table: 'x', id: '1', value: v }])
  v.n = 2
  t.same(s.get('x', '1'), { n: 1 })
  await s.close()
})

t.test('a torn tail is cut off and the log goes on after it', async t => {
  const dir = tempDir(t)
  const s = await Store.open(dir)
  for (let i = 0; i < 5; i++) await s.commit([{ op: 'put', table: 't', id: String(i), value: i }])
  await s.close()
  const log = readdirSync(dir).find(f => f.endsWith('.log'))!
  // A crash in the middle of a write: a header promising more than was written.
  appendFileSync(join(dir, log), Buffer.from([0, 0, 1, 0, 1, 2, 3, 4, 9, 9]))
  const r = await Store.open(dir)
  t.equal(r.index, 5)
  await r.commit([{ op: 'put', table: 't', id: '5', value: 5 }])
  await r.close()
  const again = await Store.open(dir)
  t.same(again.list('t'), [0, 1, 2, 3, 4, 5])
  await again.close()
})

t.test('snapshots bound the log and lose nothing', async t => {
  const dir = tempDir(t)
  const s = await Store.open(dir, { snapshotEvery: 5 })
  await Promise.all(Array.from({ length: 23 }, (_, i) => s.commit([{ op: 'put', table: 't', id: String(i), value: i }])))
  t.ok(existsSync(join(dir, 'snapshot.json')))
  t.equal(readdirSync(dir).filter(f => f.endsWith('.log')).length, 1, 'one live log')
  await s.close()
  const r = await Store.open(dir)
  t.equal(r.index, 23)
  t.equal(r.list('t').length, 23)
  await r.close()
})

t.test('kill -9: every acknowledged commit survives', async t => {
  const dir = tempDir(t)
  const storeJs = fileURLToPath(new URL('../../dist/lib/manager/store.js', import.meta.url))
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { Store } = await import(${JSON.stringify(storeJs)})
       const s = await Store.open(${JSON.stringify(dir)}, { snapshotEvery: 50 })
       for (let i = 0; ; i++) {
         s.commit([{ op: 'put', table: 't', id: String(i), value: i }]).then(() => process.stdout.write('ack ' + i + '\\n'))
         if (i % 8 === 7) await new Promise(r => setImmediate(r))
       }`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const acked: number[] = []
  let partial = ''
  await new Promise<void>(resolve => {
    child.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n')
      partial = lines.pop()!
      for (const l of lines) acked.push(Number(l.slice(4)))
      if (acked.length >= 300 && !child.killed) {
        child.kill('SIGKILL')
        resolve()
      }
    })
  })
  await new Promise(r => child.once('exit', r))
  const r = await Store.open(dir)
  const missing = acked.filter(i => r.get('t', String(i)) !== i)
  t.same(missing, [], `all ${acked.length} acknowledged commits are there (store holds ${r.list('t').length})`)
  t.ok(r.index >= acked.length)
  await r.close()
})

/** A store in `dir` with `n` commits in its log (no snapshot); the log's path. */
async function logOf(dir: string, n: number): Promise<string> {
  const s = await Store.open(dir)
  for (let i = 0; i < n; i++) await s.commit([{ op: 'put', table: 't', id: String(i), value: { n: i, pad: 'x'.repeat(40) } }])
  await s.close()
  return join(dir, readdirSync(dir).find(f => f.endsWith('.log'))!)
}

function flipBit(path: string, at: number): Buffer {
  const b = readFileSync(path)
  b[at]! ^= 0x10
  writeFileSync(path, b)
  return b
}

/** Store.open must refuse with E_STORE_CORRUPT naming the file and byte, and leave every file as it was. */
async function refuses(t: Test, dir: string, file: string, offset: number): Promise<void> {
  const before = new Map(readdirSync(dir).map(f => [f, readFileSync(join(dir, f))]))
  const e = await Store.open(dir).then(
    () => undefined,
    (err: unknown) => err,
  )
  t.ok(e instanceof StoreCorruptError, `refused: ${String(e)}`)
  const c = e as StoreCorruptError
  t.equal(c.code, 'E_STORE_CORRUPT')
  t.same([c.file, c.offset], [file, offset])
  t.match(c.message, `${file} at byte ${offset}: `)
  t.match(c.message, /restore the data dir from a backup that holds a later snapshot/)
  t.match(c.message, /--force-new-cluster/)
  const after = new Map(readdirSync(dir).map(f => [f, readFileSync(join(dir, f))]))
  t.same([...after.keys()].sort(), [...before.keys()].sort(), 'no file added or removed')
  for (const [f, b] of before) t.ok(after.get(f)!.equals(b), `${f} unchanged`)
}

t.test('a flipped bit in the first record of the log stops the store, and nothing is cut', async t => {
  const dir = tempDir(t)
  const log = await logOf(dir, 5)
  flipBit(log, 20)
  await refuses(t, dir, log, 0)
})

t.test("a flipped bit in a record's length, or in a record amid others, stops the store at that record", async t => {
  const dir = tempDir(t)
  const log = await logOf(dir, 5)
  const b = readFileSync(log)
  const second = 8 + b.readUInt32BE(0)
  flipBit(log, second + 1)
  await refuses(t, dir, log, second)
  flipBit(log, second + 1)
  flipBit(log, 3)
  await refuses(t, dir, log, 0)
})

t.test('only damage that ends the last log is a torn tail: cut off, the rest kept', async t => {
  for (const [what, damage] of [
    ['a bit flipped in the last record', (log: string, last: number) => flipBit(log, last + 12)],
    ['the last record cut short', (log: string) => writeFileSync(log, readFileSync(log).subarray(0, -7))],
    ['a header cut short', (log: string) => appendFileSync(log, Buffer.from([0, 0, 0]))],
    ['a zero-filled tail', (log: string) => appendFileSync(log, Buffer.alloc(4096))],
  ] as const) {
    const dir = tempDir(t)
    const log = await logOf(dir, 4)
    const b = readFileSync(log)
    let last = 0
    for (let off = 0; off < b.length; off += 8 + b.readUInt32BE(off)) last = off
    damage(log, last)
    const s = await Store.open(dir)
    const kept = what.startsWith('a bit') || what.startsWith('the last') ? 3 : 4
    t.equal(s.index, kept, what)
    t.equal(readFileSync(log).length, kept === 3 ? last : b.length, `${what}: cut back to the last good record`)
    await s.commit([{ op: 'put', table: 't', id: 'after', value: 1 }])
    await s.close()
    const again = await Store.open(dir)
    t.equal(again.get('t', 'after'), 1, `${what}: the log goes on after it`)
    await again.close()
  }
})

t.test('a flipped bit in the snapshot stops the store', async t => {
  const dir = tempDir(t)
  const s = await Store.open(dir, { snapshotEvery: 3 })
  for (let i = 0; i < 4; i++) await s.commit([{ op: 'put', table: 't', id: String(i), value: i }])
  await s.close()
  const snap = join(dir, 'snapshot.json')
  const b = readFileSync(snap)
  // A digit of a value: still valid JSON, so only the checksum tells.
  const at = b.indexOf('"2":2') + 4
  flipBit(snap, at)
  t.not(readFileSync(snap).toString().slice(8), b.toString().slice(8))
  await refuses(t, dir, snap, 0)
  writeFileSync(snap, b.subarray(0, b.length - 1))
  await refuses(t, dir, snap, 0)
})

t.test('a snapshot in the older bare-JSON form is still read', async t => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'snapshot.json'), JSON.stringify({ index: 7, tables: { t: { a: 1 } } }))
  const s = await Store.open(dir)
  t.same([s.index, s.get('t', 'a')], [7, 1])
  await s.close()
  writeFileSync(join(dir, 'snapshot.json'), '{"index": 7, "tab')
  await refuses(t, dir, join(dir, 'snapshot.json'), 0)
})

t.test('the store is its owner\'s alone: 0700 and 0600 whatever the umask and the modes found', async t => {
  const parent = tempDir(t)
  const dir = join(parent, 'state')
  mkdirSync(dir, { mode: 0o755 })
  chmodSync(dir, 0o755)
  writeFileSync(join(dir, 'wal-000000000000.log'), '', { mode: 0o644 })
  writeFileSync(join(dir, 'snapshot.json.tmp'), 'left by a crash', { mode: 0o666 })
  chmodSync(join(dir, 'snapshot.json.tmp'), 0o666)
  const old = process.umask(0)
  t.teardown(() => process.umask(old))
  const s = await Store.open(dir, { snapshotEvery: 2 })
  for (let i = 0; i < 5; i++) await s.commit([{ op: 'put', table: 'ca', id: String(i), value: 'key' }])
  await s.close()
  const modes = Object.fromEntries([dir, ...readdirSync(dir).map(f => join(dir, f))].map(p => [p.slice(parent.length), (statSync(p).mode & 0o777).toString(8)]))
  t.same(modes, { '/state': '700', '/state/snapshot.json': '600', '/state/wal-000000000004.log': '600' })
  // A fresh dir under umask 0, and a snapshot written over a 0666 leftover.
  const fresh = join(parent, 'fresh', 'state')
  writeFileSync(join(dir, 'snapshot.json.tmp'), 'again', { mode: 0o666 })
  const f = await Store.open(fresh, { snapshotEvery: 1 })
  await f.commit([{ op: 'put', table: 'ca', id: 'k', value: 'v' }])
  await f.close()
  t.same((statSync(fresh).mode & 0o777).toString(8), '700')
  for (const name of readdirSync(fresh)) t.equal((statSync(join(fresh, name)).mode & 0o777).toString(8), '600', name)
})
