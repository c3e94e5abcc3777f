import { spawn } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { Store } from './store.js'

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
