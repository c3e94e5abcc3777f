/** The README's embedding example runs as documented (gossip on 127.0.0.201-202, the data path on 47890, a published port on 8088). */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { run } from './helpers/procs.js'

t.test('examples/mesh.ts', async t => {
  const r = await run(process.execPath, [fileURLToPath(new URL('../dist/examples/mesh.js', import.meta.url))], { timeoutMs: 60_000 })
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'through the published port: hello from the task on node-b\nthrough connect(): hello from the task on node-b\n')
})
