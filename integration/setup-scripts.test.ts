/**
 * scripts/setup.sh and setup-docker.sh when packages are missing: as root a
 * failed install fails the script (so pretest stops, saying why); as another
 * user it only reports what is missing. The machine's dpkg and apt are
 * stubbed by commands first on PATH that report every package missing and
 * fail every install; the root run has a private /usr/sbin (a tmpfs in a
 * mount namespace of its own), so nothing on the host changes.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { testNeeding } from './helpers/prerequisites.js'
import { run } from './helpers/procs.js'

const SCRIPTS = fileURLToPath(new URL('../scripts/', import.meta.url))

testNeeding(t, 'a failed install fails the setup scripts as root; another user only gets a report', process.getuid?.() !== 0 ? 'needs root (a mount namespace, another user)' : undefined, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-setup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  chmodSync(dir, 0o755)
  const log = join(dir, 'apt.log')
  writeFileSync(log, '', { mode: 0o666 })
  chmodSync(log, 0o666)
  writeFileSync(join(dir, 'dpkg-query'), '#!/bin/sh\nexit 1\n', { mode: 0o755 })
  writeFileSync(join(dir, 'apt-get'), `#!/bin/sh\necho "apt-get $*" >>${log}\necho "E: Unable to locate package" >&2\nexit 100\n`, { mode: 0o755 })
  const env = { ...process.env, PATH: `${dir}:/usr/bin:/bin` }

  for (const script of ['setup.sh', 'setup-docker.sh']) {
    const path = join(SCRIPTS, script)
    writeFileSync(log, '')
    const root = await run('unshare', ['-m', 'bash', '-c', 'mount -t tmpfs tmpfs /usr/sbin && exec bash "$0"', path], { env, timeoutMs: 60_000 })
    t.equal(root.code, 1, `${script} as root exits 1 when the install fails`)
    t.match(root.stderr, new RegExp(`^${script}: could not install: \\S`, 'm'), 'saying what it could not install')
    t.match(readFileSync(log, 'utf8'), /^apt-get install /m, 'after trying to install')

    writeFileSync(log, '')
    const user = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', path], { env, timeoutMs: 60_000 })
    t.equal(user.code, 0, `${script} as another user exits 0`)
    t.match(user.stderr, new RegExp(`^${script}: missing packages: \\S.*; as root run: apt-get install -y `, 'm'), 'and reports what is missing')
    t.equal(readFileSync(log, 'utf8'), '', 'without trying to install')
  }
})
