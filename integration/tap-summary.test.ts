/**
 * scripts/tap-summary.mjs, the line CI reads: on crafted runner streams (a
 * killed file, a bailout, a non-zero exit after passing assertions, skips and
 * TODOs), then on real tap runs of tiny test files in a temp dir.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { run } from './helpers/procs.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SUMMARY = join(ROOT, 'scripts/tap-summary.mjs')
const TAP = join(ROOT, 'node_modules/tap/dist/esm/run.mjs')

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-tap-summary-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The summary of a runner stream (and a file list), with its exit code and notes. */
async function summarize(t: Test, stream: string | undefined, files?: string[]): Promise<{ line: string; code: number | null; notes: string }> {
  const dir = tempDir(t)
  const args = [SUMMARY, join(dir, 'run.tap')]
  if (stream !== undefined) writeFileSync(args[1]!, stream)
  if (files) {
    args.push(join(dir, 'files.txt'))
    writeFileSync(args[2]!, files.join('\n') + '\n')
  }
  const r = await run(process.execPath, args, { timeoutMs: 30_000 })
  return { line: r.stdout.trimEnd(), code: r.code, notes: r.stderr }
}

/** A file's subtest in the runner's stream, closed by tap's verdict. */
const file = (id: number, name: string, body: string, verdict: string): string =>
  `# Subtest: ${name}\n${body.replace(/^(?=.)/gm, '    ')}${verdict.replace('#', String(id))}\n\n`
const exited = (code: number | null, signal: string | null): string => `  ---\n  externalID: x\n  exitCode: ${code}\n  signal: ${signal}\n  ...\n`

t.test('a file killed by a signal is failed, whatever it passed before', async t => {
  const killed = file(1, 'k.test.ts', 'ok 1 - one\n# Subtest: long\n    ok 1 - two\n', `not ok # - k.test.ts # time=900ms\n${exited(null, 'SIGKILL')}`)
  const s = await summarize(t, killed)
  t.equal(s.line, '2 passed, 1 failed, 0 skipped')
  t.equal(s.code, 1)
  t.match(s.notes, /^failed: k\.test\.ts: killed by SIGKILL$/m)
})

t.test('a bailout fails the file that bailed and every file that never ran', async t => {
  const bailed = `${file(1, 'a.test.ts', 'ok 1 - one\nBail out! no database\n', 'Bail out! no database\n').trimEnd()}\n# { total: 1, pass: 1 }\n`
  const s = await summarize(t, bailed, ['a.test.ts', 'b.test.ts', 'c.test.ts'])
  t.equal(s.line, '1 passed, 3 failed, 0 skipped')
  t.match(s.notes, /^failed: a\.test\.ts: bailed out \(no database\)$/m)
  t.match(s.notes, /^failed: c\.test\.ts: no result/m)
})

t.test('a non-zero exit after passing assertions is a failure', async t => {
  const stream = file(1, 'e.test.ts', 'ok 1 - one\nok 2 - two\n1..2\n', `not ok # - e.test.ts # time=10ms\n${exited(3, null)}`) + file(2, 'p.test.ts', 'ok 1 - fine\n1..1\n', 'ok # - p.test.ts # time=5ms\n')
  const s = await summarize(t, stream, ['e.test.ts', 'p.test.ts'])
  t.equal(s.line, '3 passed, 1 failed, 0 skipped')
  t.match(s.notes, /^failed: e\.test\.ts: exit code 3$/m)
})

t.test('a subtest that failed without a failing assertion (a timeout) counts one failure', async t => {
  const body = '# Subtest: slow\n    ok 1 - started\nnot ok 1 - slow # timeout!\n1..1\n'
  const s = await summarize(t, file(1, 's.test.ts', body, `not ok # - s.test.ts\n${exited(1, null)}`))
  t.equal(s.line, '1 passed, 1 failed, 0 skipped')
  t.match(s.notes, /^failed: s\.test\.ts > slow: failed$/m)
})

t.test('a subtest without assertions counts as one pass, as tap counts it', async t => {
  const body = '# Subtest: a property\n    1..0\nok 1 - a property\nok 2 - one\n1..2\n'
  t.equal((await summarize(t, file(1, 'p.test.ts', body, 'ok # - p.test.ts\n'))).line, '2 passed, 0 failed, 0 skipped')
})

t.test('skips and TODOs are skips, never passes, each with its reason', async t => {
  const body = [
    'ok 1 - serf # SKIP serf not installed',
    'ok 2 - later # TODO not written yet',
    'not ok 3 - known bug # TODO',
    'ok 4 - an assertion # SKIP not here',
    '# Subtest: inner',
    '    ok 1 - inner skip # SKIP no tcpdump',
    '    ok 2 - inner pass',
    '    1..2',
    'ok 5 - inner',
    'ok 6 - real',
    '1..6',
    '',
  ].join('\n')
  const stream = file(1, 'skips.test.ts', body, 'ok # - skips.test.ts\n') + file(2, 'none.test.ts', '1..0 # needs root\n', 'ok # - none.test.ts # SKIP needs root\n')
  const s = await summarize(t, stream, ['skips.test.ts', 'none.test.ts'])
  t.equal(s.line, '2 passed, 0 failed, 6 skipped')
  t.equal(s.code, 0)
  t.match(s.notes, /^skipped: skips\.test\.ts > serf: SKIP serf not installed$/m)
  t.match(s.notes, /^skipped: skips\.test\.ts > inner > inner skip: SKIP no tcpdump$/m)
  t.match(s.notes, /^skipped: none\.test\.ts: SKIP needs root$/m)
})

t.test('no stream at all: every listed file failed, or one failure without a list', async t => {
  t.equal((await summarize(t, undefined, ['a.test.ts', 'b.test.ts'])).line, '0 passed, 2 failed, 0 skipped')
  const s = await summarize(t, undefined)
  t.equal(s.line, '0 passed, 1 failed, 0 skipped')
  t.equal(s.code, 1)
})

/** The environment of a tap run of its own: none of this test's tap variables. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^_?TAP/.test(k) && k !== 'NODE_OPTIONS'))
}

t.test('real tap runs: the line agrees with what the files did', async t => {
  const dir = tempDir(t)
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n')
  mkdirSync(join(dir, 't'))
  const fixtures: Record<string, string> = {
    'a-pass': "t.pass('one')\nt.test('sub', async t => { t.ok(true, 'two') })",
    'b-exit': "t.pass('one')\nt.teardown(() => process.exit(3))",
    'c-killed': "t.pass('one')\nt.test('long', async t => { t.pass('two'); await new Promise(r => setTimeout(r, 200)); process.kill(process.pid, 'SIGKILL') })",
    'd-skips': "t.test('serf', { skip: 'serf not installed' }, async t => { t.pass('x') })\nt.test('later', { todo: 'not yet' }, async t => {})\nt.pass('real')",
    'e-none': "t.plan(0, 'needs root')",
    'f-throws': "t.pass('one')\nsetTimeout(() => { throw new Error('after the end') }, 100)",
    'y-bail': "t.pass('one')\nt.bailout('stop')",
    'z-never': "t.pass('never runs')",
  }
  for (const [name, body] of Object.entries(fixtures)) writeFileSync(join(dir, 't', `${name}.test.mjs`), `import t from 'tap'\n${body}\n`)
  const tap = async (...args: string[]) => run(process.execPath, [TAP, ...args], { cwd: dir, env: cleanEnv(), timeoutMs: 120_000 })

  const list = await tap('list', 't')
  t.equal(list.stdout.trim().split('\n').length, 8, `tap list finds the eight files: ${list.stderr}`)
  writeFileSync(join(dir, 'files.txt'), list.stdout)
  const runs = async (out: string, files: string[]) => {
    await tap('--disable-coverage', '--jobs=1', '--output-file', join(dir, out), ...files.map(f => `t/${f}.test.mjs`))
    const r = await run(process.execPath, [SUMMARY, join(dir, out), join(dir, 'files.txt')], { timeoutMs: 30_000 })
    return { line: r.stdout.trimEnd(), notes: r.stderr }
  }
  // Passes 2, 1, 2, 1, 0, 1, 1 up to the bailout; failures: the exit, the kill, the throw, the bailout, the file never run.
  const all = await runs('all.tap', Object.keys(fixtures))
  t.equal(all.line, '8 passed, 5 failed, 3 skipped', all.notes)
  t.match(all.notes, /^failed: t\/b-exit\.test\.mjs: exit code 3$/m)
  t.match(all.notes, /^failed: t\/c-killed\.test\.mjs: killed by SIGKILL$/m)
  t.match(all.notes, /^failed: t\/y-bail\.test\.mjs: bailed out \(stop\)$/m)
  t.match(all.notes, /^failed: t\/z-never\.test\.mjs: no result/m)
  t.match(all.notes, /^skipped: t\/d-skips\.test\.mjs > serf: SKIP serf not installed$/m)
  t.match(all.notes, /^skipped: t\/e-none\.test\.mjs: SKIP needs root$/m)
})
