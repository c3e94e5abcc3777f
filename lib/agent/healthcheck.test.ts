import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { healthcheckEnabled, HealthMonitor, probeArgv, runProbe, type ProbeResult } from './healthcheck.js'

const MS = 1e6
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' }

t.test('tests: NONE and empty disable it; CMD and CMD-SHELL give the argv; anything else is refused', async t => {
  t.notOk(healthcheckEnabled(undefined))
  t.notOk(healthcheckEnabled({ Test: [] }))
  t.notOk(healthcheckEnabled({ Test: ['NONE'] }))
  t.ok(healthcheckEnabled({ Test: ['CMD', 'true'] }))
  t.same(probeArgv(['CMD', 'test', '-f', '/x']), ['test', '-f', '/x'])
  t.same(probeArgv(['CMD-SHELL', 'curl -f localhost || exit 1']), ['/bin/sh', '-c', 'curl -f localhost || exit 1'])
  t.throws(() => probeArgv(['SHELL', 'x']), { message: "unknown healthcheck type 'SHELL' (expected 'CMD' or 'CMD-SHELL' with a command)" })
  t.throws(() => probeArgv(['CMD']), { code: 'E_HEALTHCHECK' })
})

t.test('a probe runs in the given environment; one past its timeout is killed and fails', async t => {
  const ok = await runProbe(['/bin/sh', '-c', 'echo "$WHO"; exit 3'], { env: { ...env, WHO: 'probe' }, timeoutMs: 5000 })
  t.same(ok, { exitCode: 3, output: 'probe\n' })
  const began = Date.now()
  const slow = await runProbe(['/bin/sh', '-c', 'sleep 30'], { env, timeoutMs: 200 })
  t.same(slow, { exitCode: -1, output: 'Health check exceeded timeout (0.2s)' })
  t.ok(Date.now() - began < 5000, 'killed, not waited for')
  const missing = await runProbe(['/nonexistent/probe'], { env, timeoutMs: 1000 })
  t.equal(missing.exitCode, -1)
})

t.test('healthy once a probe passes; unhealthy after Retries failures in a row; the start period forgives', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmd-health-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const flag = path.join(dir, 'up')
  const changes: [string, ProbeResult][] = []
  const m = new HealthMonitor({ Test: ['CMD', 'test', '-f', flag], Interval: 50 * MS, Timeout: 1000 * MS, Retries: 3 }, { env, onChange: (s, r) => changes.push([s, r]) })
  t.teardown(() => m.stop())
  await new Promise(r => setTimeout(r, 120))
  t.equal(m.current, 'starting', 'failures below Retries leave it starting')
  fs.writeFileSync(flag, '')
  await waitFor(() => m.current === 'healthy')
  fs.rmSync(flag)
  await waitFor(() => m.current === 'unhealthy')
  t.same(
    changes.map(c => c[0]),
    ['healthy', 'unhealthy'],
  )
  t.equal(changes[1]![1].exitCode, 1)

  const forgiving = new HealthMonitor({ Test: ['CMD', 'false'], Interval: 20 * MS, StartPeriod: 400 * MS, StartInterval: 20 * MS, Retries: 1 }, { env, onChange: () => undefined })
  t.teardown(() => forgiving.stop())
  await new Promise(r => setTimeout(r, 200))
  t.equal(forgiving.current, 'starting', 'failures within the start period do not count')
  await waitFor(() => forgiving.current === 'unhealthy')
})

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(r => setTimeout(r, 10))
  }
}
