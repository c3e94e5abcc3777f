/**
 * Swarm hosts as containers on a private engine (integration/helpers/dockerd.ts):
 * an image the harness builds from this machine's own files (node and the
 * shared libraries it loads, busybox, and the built project with its
 * production dependencies), imported with `docker import` since there is no
 * registry; a user-defined bridge network; and one container per node running
 * swarmd with the process executor, its API socket in a host dir so the tests
 * drive it with the host's swarmctl.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pingSocket } from './daemon.js'
import type { Dockerd } from './dockerd.js'
import { spawnManaged, waitUntil, which, type ManagedProcess, type RunResult } from './procs.js'

/** The node image's name in a private engine. */
export const NODE_IMAGE = 'swarmd-node:test'

const PROJECT = fileURLToPath(new URL('../..', import.meta.url))
const SWARMD = join(PROJECT, 'bin/swarmd.js')
const BUSYBOX = '/bin/busybox'
/** Where the project lives in the image. */
const APP = '/app'
/** The container dir the host dir with the API socket is mounted on. */
const SOCK_DIR = '/run/swarmd'

export interface NodeImage {
  /** Size of the imported rootfs tar. */
  bytes: number
  /** Milliseconds to write the tar, and to import it. */
  tarMs: number
  importMs: number
}

export interface DockerNode {
  /** Container name, hostname and swarm node name alike. */
  readonly name: string
  /** Its address on the network (the advertise address). */
  readonly ip: string
  /** The host path of the daemon's API socket. */
  readonly sock: string
}

/** Why no node image can be built here, or undefined when it can. */
export function nodeImageUnavailable(): string | undefined {
  if (!which('ldd')) return 'ldd is not installed'
  if (!which('npm')) return 'npm is not installed (it lists the production dependencies)'
  try {
    statSync(join(PROJECT, 'dist/lib/cli/swarmd.js'))
  } catch {
    return 'the project is not built (npm run build)'
  }
  return undefined
}

/** The absolute paths of the shared libraries (and the loader) `exe` needs, as ldd prints them. */
function sharedLibraries(exe: string): string[] {
  const out = execFileSync('ldd', [exe], { encoding: 'utf8' })
  const libs = new Set<string>()
  for (const line of out.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)
    if (m?.[1]) libs.add(m[1])
  }
  return [...libs]
}

/** Production package dirs, relative to the project (npm's view: deduped, nested ones listed on their own). */
function productionPackages(): string[] {
  let out: string
  try {
    out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: PROJECT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch (e) {
    // npm ls exits non-zero on extraneous packages but still lists the tree.
    out = String((e as { stdout?: unknown }).stdout ?? '')
  }
  return out
    .split('\n')
    .filter(Boolean)
    .map(p => relative(PROJECT, p))
    .filter(p => p.startsWith('node_modules/'))
}

/** What of a package or the build goes into the image: no source maps, type declarations or docs. */
const wanted = (name: string): boolean => !/\.(map|d\.ts|d\.mts|d\.cts|md|markdown)$/i.test(name)

/** Files and symlinks under `dir` (relative to the project), without nested node_modules (listed separately). */
function filesOf(dir: string, out: string[]): void {
  for (const e of readdirSync(join(PROJECT, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') filesOf(rel, out)
    } else if ((e.isFile() || e.isSymbolicLink()) && wanted(e.name)) out.push(rel)
  }
}

/**
 * Writes the node image's rootfs tar into `dir`: busybox with a link per
 * applet, minimal /etc, node and its libraries at their host paths, and the
 * project under /app (package.json, bin/, dist/lib/, production node_modules).
 */
export function buildNodeRootfs(dir: string): { tar: string; bytes: number } {
  const root = join(dir, 'rootfs')
  const node = process.execPath
  const libs = sharedLibraries(node)
  const dirs = ['bin', 'etc', 'tmp', 'run', 'proc', 'sys', 'dev', 'data', 'root', SOCK_DIR.slice(1), APP.slice(1), ...[node, ...libs].map(p => dirname(p).slice(1))]
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true })
  chmodSync(join(root, 'tmp'), 0o1777)
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'))
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(a => a && a !== 'busybox')
  for (const a of applets) symlinkSync('busybox', join(root, 'bin', a))
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n')
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n')

  const app: string[] = ['package.json', 'bin/swarmd.js', 'bin/swarmctl.js']
  filesOf('dist/lib', app)
  for (const pkg of productionPackages()) filesOf(pkg, app)
  const list = join(dir, 'app.list')
  writeFileSync(list, app.join('\0'))

  const tar = join(dir, 'rootfs.tar')
  execFileSync('tar', ['-C', root, '-cf', tar, '.'])
  // Node and its libraries dereferenced (the host's may be symlinks), at the paths the loader looks in.
  execFileSync('tar', ['-C', '/', '-h', '-rf', tar, ...[node, ...libs].map(p => p.slice(1))])
  // The project under /app; symlink targets stay as they are (S).
  execFileSync('tar', ['-C', PROJECT, '-rf', tar, '--null', '-T', list, '--transform', `s,^,${APP.slice(1)}/,S`])
  rmSync(root, { recursive: true, force: true })
  rmSync(list)
  return { tar, bytes: statSync(tar).size }
}

const imported = new WeakMap<Dockerd, Promise<NodeImage>>()

/** Builds and imports NODE_IMAGE into `engine`, once per engine (later calls share the first). */
export function nodeImage(engine: Dockerd): Promise<NodeImage> {
  let p = imported.get(engine)
  if (!p) {
    p = (async () => {
      const dir = mkdtempSync(join(tmpdir(), 'swarmd-image-'))
      try {
        const t0 = performance.now()
        const { tar, bytes } = buildNodeRootfs(dir)
        const t1 = performance.now()
        await engine.cli(['image', 'rm', '-f', NODE_IMAGE])
        const r = await engine.cli(['import', '--change', `ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, '--change', `WORKDIR ${APP}`, tar, NODE_IMAGE])
        if (r.code !== 0) throw new Error(`docker import: ${r.stderr}`)
        return { bytes, tarMs: t1 - t0, importMs: performance.now() - t1 }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })()
    imported.set(engine, p)
  }
  return p
}

/** Creates a user-defined bridge network (containers on it reach each other directly, no NAT). */
export async function createNetwork(engine: Dockerd, name: string, subnet: string): Promise<void> {
  const r = await engine.cli(['network', 'create', '--driver', 'bridge', '--subnet', subnet, name])
  if (r.code !== 0) throw new Error(`docker network create ${name}: ${r.stderr}`)
}

/**
 * Starts a container running swarmd (process executor) on `network` at `ip`,
 * named and hostnamed `name`, with its API socket in `sockDir` on the host,
 * and waits until the API answers. --init reaps what the tasks orphan.
 */
export async function startNode(engine: Dockerd, o: { name: string; network: string; ip: string; sockDir: string; logLevel?: string }): Promise<DockerNode> {
  mkdirSync(o.sockDir, { recursive: true })
  const sock = join(o.sockDir, 'swarmd.sock')
  rmSync(sock, { force: true })
  // The command is the brief's: node runs the project's bin from the image.
  const r = await engine.cli([
    'run', '-d', '--init', '--name', o.name, '--hostname', o.name, '--network', o.network, '--ip', o.ip,
    '-v', `${o.sockDir}:${SOCK_DIR}`,
    NODE_IMAGE,
    'node', `${APP}/bin/swarmd.js`, '--data-dir', '/data', '-H', `unix://${SOCK_DIR}/swarmd.sock`, '--hostname', o.name, '--log-level', o.logLevel ?? 'info',
  ])
  if (r.code !== 0) throw new Error(`docker run ${o.name}: ${r.stderr}`)
  await waitUntil(() => pingSocket(sock), {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: `${o.name}'s API socket`,
  }).catch(async err => {
    const logs = await engine.cli(['logs', '--tail', '30', o.name])
    throw new Error(`${(err as Error).message}\n--- ${o.name} logs ---\n${logs.stdout}${logs.stderr}`)
  })
  return { name: o.name, ip: o.ip, sock }
}

/** swarmctl run inside a node's container (`docker exec`), against its own daemon. */
export function execSwarmctl(engine: Dockerd, node: DockerNode, ...args: string[]): Promise<RunResult> {
  return engine.cli(['exec', node.name, 'node', `${APP}/bin/swarmctl.js`, '-H', `unix://${SOCK_DIR}/swarmd.sock`, ...args])
}

/**
 * Starts swarmd on the host but inside the engine's network namespace (the
 * one dockerd.ts pins at <dir>/netns), so it reaches the containers on the
 * network's bridge at the bridge's own address `ip` (the gateway). With
 * `--executor docker` in `args`, its tasks are containers of the same engine.
 */
export async function startNodeInEngineNetns(engine: Dockerd, o: { name: string; ip: string; dataDir: string; sock: string; args?: string[] }): Promise<ManagedProcess> {
  const nsenter = which('nsenter', ['/usr/bin/nsenter']) ?? 'nsenter'
  const p = spawnManaged(nsenter, [`--net=${join(engine.dir, 'netns')}`, '--', process.execPath, SWARMD, '--data-dir', o.dataDir, '-H', `unix://${o.sock}`, '--hostname', o.name, '--log-level', 'info', ...(o.args ?? [])], {
    label: o.name,
    env: { ...process.env, DOCKER_HOST: `unix://${engine.socket}` },
  })
  await waitUntil(() => pingSocket(o.sock), {
    timeoutMs: 15_000,
    what: `${o.name}'s API socket`,
    giveUp: () => (p.exitStatus ? new Error(`${o.name} exited: ${p.stderrTail()}`) : undefined),
  })
  return p
}
