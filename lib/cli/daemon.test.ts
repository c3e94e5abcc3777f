/**
 * The built daemon (bin/swarmd.js, so build first) on a prepared data dir:
 * its files are its owner's alone whatever the umask and the modes found,
 * and a damaged store stops it with E_STORE_CORRUPT instead of starting an
 * empty swarm. Gossip and the control plane on 127.0.0.174.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { pingSocket, startDaemon } from '../../integration/helpers/daemon.js'
import { spawnManaged } from '../../integration/helpers/procs.js'

const SWARMD = fileURLToPath(new URL('../../bin/swarmd.js', import.meta.url))
const IP = '127.0.0.174'

function post(sock: string, path: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method: 'POST', path, headers: { 'Content-Type': 'application/json' } }, res => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

/** Every file and folder under `dir` with its permission bits, as `path: mode` in octal. */
function modes(dir: string, under = ''): Record<string, string> {
  const out: Record<string, string> = {}
  for (const e of readdirSync(join(dir, under), { withFileTypes: true })) {
    const rel = join(under, e.name)
    out[rel] = (statSync(join(dir, rel)).mode & 0o777).toString(8)
    if (e.isDirectory()) Object.assign(out, modes(dir, rel))
  }
  return out
}

t.test('a swarm in a pre-made 0755 data dir, under umask 0, keeps its keys to its owner', async t => {
  const root = mkdtempSync(join(tmpdir(), 'swarmd-perm-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const data = join(root, 'data')
  mkdirSync(join(data, 'state'), { recursive: true })
  chmodSync(data, 0o755)
  chmodSync(join(data, 'state'), 0o755)
  writeFileSync(join(data, 'notes.txt'), 'left by hand', { mode: 0o644 })
  const old = process.umask(0)
  t.teardown(() => process.umask(old))
  const sock = join(root, 'swarmd.sock')
  const daemon = await startDaemon({ dataDir: data, sock, hostname: 'perm-node' })
  t.teardown(() => daemon.stop())
  t.equal(await post(sock, '/v1.41/swarm/init', { ListenAddr: `${IP}:2377`, AdvertiseAddr: IP }), 200)
  await daemon.stop()
  const found = modes(data)
  t.equal((statSync(data).mode & 0o777).toString(8), '700', 'the data dir')
  t.ok(found['node.key'], 'the node key is there')
  for (const [p, m] of Object.entries(found)) {
    // The process executor's own tree keeps the modes tasks ask for; its root is still the owner's.
    if (p.startsWith('tasks/')) continue
    t.equal(m, statSync(join(data, p)).isDirectory() ? '700' : '600', p)
  }
  t.ok(Object.keys(found).some(p => /^state\/wal-\d+\.log$/.test(p)), 'the log is there')
})

t.test('a damaged store stops the daemon with E_STORE_CORRUPT, and it starts no swarm', async t => {
  const root = mkdtempSync(join(tmpdir(), 'swarmd-corrupt-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const data = join(root, 'data')
  const sock = join(root, 'swarmd.sock')
  const first = await startDaemon({ dataDir: data, sock, hostname: 'corrupt-node' })
  t.teardown(() => first.stop())
  t.equal(await post(sock, '/v1.41/swarm/init', { ListenAddr: `${IP}:2377`, AdvertiseAddr: IP }), 200)
  await first.stop()
  const state = join(data, 'state')
  const log = join(state, readdirSync(state).find(f => f.endsWith('.log'))!)
  const bytes = readFileSync(log)
  t.ok(bytes.length > 8 + bytes.readUInt32BE(0), 'more than one record')
  bytes[20]! ^= 0x04
  writeFileSync(log, bytes)

  const second = spawnManaged(process.execPath, [SWARMD, '--data-dir', data, '-H', `unix://${sock}`, '--hostname', 'corrupt-node', '--log-level', 'info'], { label: 'corrupt-node' })
  t.teardown(() => second.stop())
  const st = await Promise.race([second.exited, new Promise<undefined>(r => setTimeout(() => r(undefined), 20_000))])
  t.ok(st, 'it exits by itself')
  t.equal(st?.code, 1, second.stderrTail())
  const fatal = second
    .stderrTail()
    .split('\n')
    .filter(Boolean)
    .map(l => JSON.parse(l) as { level: number; code?: string; msg: string })
    .find(l => l.level === 60)
  t.equal(fatal?.code, 'E_STORE_CORRUPT')
  t.match(fatal?.msg, `${log} at byte 0: a record whose checksum does not match`)
  t.match(fatal?.msg, 'restore the data dir from a backup that holds a later snapshot')
  t.ok(readFileSync(log).equals(bytes), 'the log is as it was')
  t.notOk(await pingSocket(sock), 'no API came up')
})
