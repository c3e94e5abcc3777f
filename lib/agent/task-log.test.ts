import fc from 'fast-check'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { LogLine, LogOptions } from '../types/logs.js'
import { formatTime, readTaskLog, TaskLog, type TaskLogOptions } from './task-log.js'

function tmp(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmd-tasklog-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function open(t: Test, opts?: TaskLogOptions): TaskLog {
  const log = new TaskLog(path.join(tmp(t), 'output.log'), opts)
  t.teardown(() => log.end())
  return log
}

async function collect(log: TaskLog, opts: LogOptions = {}): Promise<LogLine[]> {
  const lines: LogLine[] = []
  await log.read(opts, l => lines.push(l), new AbortController().signal)
  return lines
}

const texts = (ls: LogLine[]): string[] => ls.map(l => l.text)

t.test('times are RFC 3339 with nine fraction digits, in order', async t => {
  t.equal(formatTime(1_700_000_000_123_456_789n), '2023-11-14T22:13:20.123456789Z')
  t.equal(formatTime(5n), '1970-01-01T00:00:00.000000005Z')
  const log = open(t)
  log.append('stdout', Buffer.from('a\nb\nc\n'))
  const lines = await collect(log)
  t.same(texts(lines), ['a', 'b', 'c'])
  for (const l of lines) t.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/)
  t.ok(lines[0]!.time < lines[1]!.time && lines[1]!.time < lines[2]!.time)
  t.ok(Math.abs(Date.parse(lines[0]!.time) - Date.now()) < 5000, 'wall clock time')
})

t.test('lines are split on newlines across chunks; streams keep their own partial line', async t => {
  const log = open(t)
  log.append('stdout', Buffer.from('hel'))
  log.append('stderr', Buffer.from('oops\nhalf'))
  log.append('stdout', Buffer.from('lo\n\nwor'))
  log.append('stdout', Buffer.from('ld\n'))
  t.same(
    (await collect(log)).map(l => [l.stream, l.text]),
    [
      ['stderr', 'oops'],
      ['stdout', 'hello'],
      ['stdout', ''],
      ['stdout', 'world'],
    ],
  )
  log.end()
  t.same(texts(await collect(log)).at(-1), 'half', 'a partial line is flushed at the end')
})

t.test('long lines are split at maxLineBytes without cutting a UTF-8 character', async t => {
  const log = open(t, { maxLineBytes: 16 })
  log.append('stdout', Buffer.from(`${'x'.repeat(16)}\n${'y'.repeat(40)}\n`))
  log.append('stdout', Buffer.from('z'.repeat(20)))
  log.append('stdout', Buffer.from(`${'a'.repeat(11)}éb\n`))
  t.same(texts(await collect(log)), ['x'.repeat(16), 'y'.repeat(16), 'y'.repeat(16), 'y'.repeat(8), 'z'.repeat(16), 'zzzz' + 'a'.repeat(11), 'éb'])
})

t.test('property: the stored text is the input, whatever the chunking', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmd-tasklog-'))
  let n = 0
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: fc.constantFrom('a', 'b', '\n', 'é', '€') }), { maxLength: 8 }), async chunks => {
        const log = new TaskLog(path.join(dir, `p${n++}.log`), { maxLineBytes: 8 })
        for (const c of chunks) log.append('stdout', Buffer.from(c))
        log.end()
        const lines = await collect(log)
        const input = chunks.join('')
        const lastPartial = !input.endsWith('\n') && input.length > 0
        // Every piece is whole characters of at most 8 bytes.
        if (lines.some(l => Buffer.byteLength(l.text) > 8 || l.text.includes('\uFFFD'))) return false
        // Joined back, the pieces of each line give the line.
        const joined = lines.map(l => l.text).join('')
        return joined === input.replaceAll('\n', '') && (lastPartial || lines.length >= input.split('\n').length - 1)
      }),
      { numRuns: 200 },
    )
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

t.test('rotation keeps maxFiles files of at most maxBytes, oldest lines dropped', async t => {
  const dir = tmp(t)
  const file = path.join(dir, 'output.log')
  const log = new TaskLog(file, { maxBytes: 200, maxFiles: 3 })
  t.teardown(() => log.end())
  for (let i = 0; i < 100; i++) log.append(i % 2 ? 'stderr' : 'stdout', Buffer.from(`line ${i}\n`))
  const files = fs.readdirSync(dir).sort()
  t.same(files, ['output.log', 'output.log.1', 'output.log.2'])
  for (const f of files) t.ok(fs.statSync(path.join(dir, f)).size <= 200, `${f} within bounds`)
  const lines = await collect(log)
  t.equal(lines.at(-1)?.text, 'line 99', 'newest kept')
  t.ok(lines.length < 100 && lines.length > 6, `older lines dropped (${lines.length} kept)`)
  const nums = lines.map(l => Number(l.text.slice(5)))
  t.same(nums, nums.map((_, i) => nums[0]! + i), 'contiguous and oldest first across files')
  t.equal(lines.find(l => l.text === 'line 99')?.stream, 'stderr')

  const single = new TaskLog(path.join(dir, 'one.log'), { maxBytes: 100, maxFiles: 1 })
  for (let i = 0; i < 20; i++) single.append('stdout', Buffer.from(`entry ${i}\n`))
  single.end()
  t.ok(fs.statSync(path.join(dir, 'one.log')).size <= 100)
  t.notOk(fs.existsSync(path.join(dir, 'one.log.1')))
})

t.test('tail and since', async t => {
  const log = open(t)
  log.append('stdout', Buffer.from('1\n2\n3\n'))
  await new Promise(r => setTimeout(r, 20))
  const mid = Date.now()
  await new Promise(r => setTimeout(r, 5))
  log.append('stdout', Buffer.from('4\n5\n'))
  t.same(texts(await collect(log, { tail: 2 })), ['4', '5'])
  t.same(texts(await collect(log, { tail: 0 })), [])
  t.same(texts(await collect(log, { tail: 10 })), ['1', '2', '3', '4', '5'])
  t.same(texts(await collect(log, { since: mid })), ['4', '5'])
  t.same(texts(await collect(log, { since: mid, tail: 1 })), ['5'])
  // The same from the files alone, as for a task of an earlier life of the daemon.
  const fromFiles: LogLine[] = []
  readTaskLog(log.path, 3, { tail: 3 }, l => fromFiles.push(l))
  t.same(texts(fromFiles), ['3', '4', '5'])
})

t.test('follow streams new lines until the log ends, or until aborted', async t => {
  const log = open(t)
  log.append('stdout', Buffer.from('old\n'))
  const got: string[] = []
  const done = log.read({ follow: true, tail: 1 }, l => got.push(l.text), new AbortController().signal)
  log.append('stdout', Buffer.from('new 1\n'))
  log.append('stderr', Buffer.from('new 2\nrest'))
  log.end()
  await done
  t.same(got, ['old', 'new 1', 'new 2', 'rest'])

  const log2 = open(t)
  const ac = new AbortController()
  const got2: string[] = []
  const done2 = log2.read({ follow: true }, l => got2.push(l.text), ac.signal)
  log2.append('stdout', Buffer.from('a\n'))
  ac.abort()
  await done2
  log2.append('stdout', Buffer.from('b\n'))
  t.same(got2, ['a'], 'nothing after the abort')
})

t.test('a torn last line (the daemon died mid-write) is skipped; appending resumes', async t => {
  const dir = tmp(t)
  const file = path.join(dir, 'output.log')
  fs.writeFileSync(file, `${formatTime(1n)} stdout before\n2023-11-14T22:1`)
  const log = new TaskLog(file)
  t.teardown(() => log.end())
  log.append('stdout', Buffer.from('after\n'))
  t.same(texts(await collect(log)), ['before', 'after'])
})

t.test('property: tail (read from the end) is the last lines of the full read, with since, across rotated files', async t => {
  const log = open(t, { maxBytes: 300, maxFiles: 3 })
  for (let i = 0; i < 40; i++) log.append(i % 3 ? 'stdout' : 'stderr', Buffer.from(`l${i}\n${i % 7 === 0 ? '\n' : ''}`))
  const read = (opts: LogOptions): LogLine[] => {
    const out: LogLine[] = []
    readTaskLog(log.path, 3, opts, l => out.push(l))
    return out
  }
  const all = read({})
  t.ok(all.length > 5)
  fc.assert(
    fc.property(fc.nat(all.length + 3), fc.option(fc.nat(all.length - 1)), (tail, from) => {
      // `since` in whole ms: pick a line and take the millisecond it falls in.
      const since = from === null ? undefined : Math.floor(Date.parse(all[from]!.time))
      const full = all.filter(l => since === undefined || l.time >= formatTime(BigInt(since) * 1_000_000n))
      const want = tail === 0 ? [] : full.slice(-tail)
      t.same(read({ tail, since }), want)
      return true
    }),
    { numRuns: 100 },
  )
})
