import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { encodeRecord, readLog, WalCorruptError } from './wal.js'

function logFile(t: Test, records: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-wal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'wal.log')
  writeFileSync(path, Buffer.concat(records.map(r => encodeRecord(Buffer.from(r)))))
  return path
}

t.test('a torn tail where none may be is refused, and the file left as it is', async t => {
  const path = logFile(t, ['one', 'two'])
  const torn = Buffer.concat([readFileSync(path), Buffer.from([0, 0, 0, 9, 1, 2])])
  writeFileSync(path, torn)
  t.throws(() => readLog(path, { tornTail: 'refuse' }), new WalCorruptError(path, 22, 'a record header cut short in a log that is no longer appended to'))
  t.ok(readFileSync(path).equals(torn))
  t.same(
    readLog(path, { tornTail: 'cut' }).map(r => [r.offset, r.payload.toString()]),
    [
      [0, 'one'],
      [11, 'two'],
    ],
  )
  t.equal(readFileSync(path).length, 22)
})

t.test('the log writes no empty record: a zero-filled tail is never data', async t => {
  t.throws(() => encodeRecord(Buffer.alloc(0)), { code: 'E_WAL_RECORD' })
  const path = logFile(t, ['one'])
  writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.alloc(16)]))
  t.equal(readLog(path, { tornTail: 'cut' }).length, 1)
  t.equal(readFileSync(path).length, 11)
})
