import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// docs/errors.md lists every error code the sources throw: it is written from them, and must be current.
t.test('docs/errors.md lists every code the sources throw', async t => {
  const script = fileURLToPath(new URL('../scripts/errors-doc.mjs', import.meta.url))
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr || 'current')
})
