/**
 * Test files whose prerequisite is missing, run as tap runs them: outside CI
 * each of their tests is a skip that says why; under SWARMD_REQUIRE_PEERS=1
 * each fails, saying what is missing. serf is hidden by an empty PATH; root
 * by running the file as nobody.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { testNeeding } from './helpers/prerequisites.js'
import { run } from './helpers/procs.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TS = pathToFileURL(`${ROOT}/node_modules/@tapjs/typescript/dist/esm/import.mjs`).href

/**
 * Runs one test file on its own (outside the tap runner), in a bare
 * environment, from a directory of its own (where tap's process info goes,
 * nobody may write there too); its top-level results.
 */
async function runFile(t: Test, file: string, o: { required: boolean; path: string; asNobody: boolean }): Promise<{ code: number | null; top: string[]; out: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'swarmd-prereq-'))
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
  chmodSync(cwd, 0o777)
  const env = { HOME: cwd, PATH: o.path, ...(o.required ? { SWARMD_REQUIRE_PEERS: '1' } : {}) }
  const node = [process.execPath, `--import=${TS}`, join(ROOT, file)]
  const [cmd, ...args] = o.asNobody ? ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...node] : node
  const r = await run(cmd!, args, { cwd, env, timeoutMs: 60_000 })
  return { code: r.code, top: r.stdout.split('\n').filter(l => /^(not )?ok \d+ - /.test(l)), out: r.stdout + r.stderr }
}

const cases = [
  { file: 'integration/serf.test.ts', missing: 'serf not installed (run scripts/setup.sh as root)', tests: 3, path: '/nonexistent', asNobody: false },
  { file: 'integration/hosts-loss.test.ts', missing: 'needs root (network namespaces)', tests: 1, path: '/usr/bin:/bin', asNobody: true },
  { file: 'integration/capture.test.ts', missing: 'capturing needs root', tests: 1, path: '/usr/bin:/bin', asNobody: true },
]

for (const c of cases) {
  testNeeding(t, `${c.file} without its prerequisite`, c.asNobody && process.getuid?.() !== 0 ? 'running a file as nobody needs root' : undefined, async t => {
    const outside = await runFile(t, c.file, { ...c, required: false })
    t.equal(outside.top.length, c.tests, `${c.tests} tests outside CI`, { output: outside.out })
    t.ok(outside.top.every(l => l.startsWith('ok ') && l.endsWith(` # SKIP ${c.missing}`)), `each skipped, saying why: ${outside.top.join(' | ')}`)
    t.equal(outside.code, 0, 'the file exits 0', { output: outside.out })

    const ci = await runFile(t, c.file, { ...c, required: true })
    t.equal(ci.top.length, c.tests, `${c.tests} tests under SWARMD_REQUIRE_PEERS=1`, { output: ci.out })
    t.ok(ci.top.every(l => l.startsWith('not ok ')), `each failed: ${ci.top.join(' | ')}`)
    t.equal(ci.out.split(`not ok 1 - SWARMD_REQUIRE_PEERS=1 but this test cannot run here: ${c.missing}\n`).length - 1, c.tests, 'saying what is missing')
    t.not(ci.code, 0, 'and the file exits non-zero')
  })
}
