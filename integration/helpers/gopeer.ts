/**
 * A real hashicorp/memberlist peer: integration/mlpeer/main.go built against
 * Debian's memberlist 0.2.2 source in GOPATH mode, driven over stdin/stdout
 * (one JSON object per line, see main.go).
 */
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runOk, spawnManaged, which, type ManagedProcess } from './procs.js'

/** Debian's system GOPATH (golang-github-hashicorp-memberlist-dev and its dependencies). */
export const SYSTEM_GOPATH = '/usr/share/gocode'
const MEMBERLIST_SRC = join(SYSTEM_GOPATH, 'src/github.com/hashicorp/memberlist')

function goBinary(): string | undefined {
  return which('go', ['/usr/lib/go/bin/go'])
}

/** True when a Go toolchain and Debian's memberlist source are installed. */
export function goAvailable(): boolean {
  return goBinary() !== undefined && existsSync(join(MEMBERLIST_SRC, 'memberlist.go'))
}

/** The repository root, found from the source tree or from dist/. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'integration'))) return dir
    const up = dirname(dir)
    if (up === dir) throw new Error('swarmd repository root not found')
    dir = up
  }
}

const builds = new Map<string, Promise<string>>()

/** Builds integration/mlpeer (the interop peer) once per process. */
export function buildGoPeer(): Promise<string> {
  return buildGoProgram('integration/mlpeer')
}

/**
 * Builds the Go program in `dir` (relative to the repository, one main.go)
 * against Debian's memberlist, once per process, and returns the binary's
 * path. The source is copied into a fresh temp GOPATH layered over the
 * system one (removed after the build). The binary lands in
 * <os tmp>/swarmd-go/<name>-<hash of main.go>, replaced atomically, so
 * concurrent processes never see a half-written file and nothing piles up.
 * Go's build cache ($GOCACHE or <os tmp>/swarmd-gocache) makes every build
 * after the first take well under a second.
 */
export function buildGoProgram(dir: string): Promise<string> {
  let b = builds.get(dir)
  if (!b) {
    b = doBuild(dir).catch(err => {
      builds.delete(dir)
      throw err
    })
    builds.set(dir, b)
  }
  return b
}

async function doBuild(dir: string): Promise<string> {
  const go = goBinary()
  if (!go || !goAvailable()) throw new Error(`Go toolchain or ${MEMBERLIST_SRC} missing; run scripts/setup.sh`)
  const src = join(repoRoot(), dir, 'main.go')
  const name = basename(dir)
  const tag = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12)
  const outDir = join(tmpdir(), 'swarmd-go')
  mkdirSync(outDir, { recursive: true })
  const bin = join(outDir, `${name}-${tag}`)
  const work = mkdtempSync(join(tmpdir(), `swarmd-${name}-build-`))
  const partial = join(work, name)
  try {
    mkdirSync(join(work, 'src', name), { recursive: true })
    copyFileSync(src, join(work, 'src', name, 'main.go'))
    await runOk(go, ['build', '-o', partial, name], {
      cwd: work,
      timeoutMs: 180_000,
      env: {
        ...process.env,
        GO111MODULE: 'off',
        GOPATH: `${work}:${SYSTEM_GOPATH}`,
        GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'swarmd-gocache'),
        GOFLAGS: '',
        CGO_ENABLED: '0',
      },
    })
    // Atomic: both paths are directly under tmpdir(), hence on one file system.
    renameSync(partial, bin)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return bin
}

// ---------------------------------------------------------------------------

export type GoNodeState = 'alive' | 'suspect' | 'dead' | 'left'

/** A parsed stdout line of the Go peer. */
export interface GoPeerEvent {
  /** 'join' | 'leave' | 'update' (EventDelegate) or 'msg' (user message). */
  event?: 'join' | 'leave' | 'update' | 'msg'
  /** Local node that observed the event / answered the command. */
  self?: string
  node?: string
  addr?: string
  state?: GoNodeState
  incarnation?: number
  vsn?: number[]
  /** User message text (event 'msg'). */
  data?: string
  /** Command this line answers. */
  reply?: string
  error?: string
  /** A stdout line that was not a JSON object. */
  raw?: string
  [key: string]: unknown
}

export interface GoMember {
  name: string
  addr: string
  state: GoNodeState
  /** null only if the peer could not read memberlist's internal state. */
  incarnation: number | null
  /** [pMin, pMax, pCur, dMin, dMax, dCur] */
  vsn: number[]
}

export interface GoPeerOptions {
  name: string
  port: number
  /** Default 127.0.0.1. */
  bind?: string
  /** Base64 key of 16, 24 or 32 bytes. */
  key?: string
  /** host:port addresses to join at start. */
  join?: string | readonly string[]
  profile?: 'local' | 'lan'
  /** Nodes in this process (ports port..port+n-1, named name-0..). Default 1. */
  n?: number
  /** Default 15000. */
  readyTimeoutMs?: number
}

export interface GoPeer {
  /** Node names (one per local node; just `name` when n = 1). */
  readonly names: readonly string[]
  readonly name: string
  /** host:port of node 0. */
  readonly addr: string
  readonly pid: number
  readonly proc: ManagedProcess
  /** Every JSON line printed so far, parsed, in order. */
  readonly events: readonly GoPeerEvent[]
  /** Results of the joins done at start-up (-join targets; nodes 1.. also join node 0). */
  readonly startupJoins: readonly GoPeerEvent[]
  /** First event (already seen or arriving) matching `pred`. Default timeout 10 s. */
  waitFor(pred: (e: GoPeerEvent) => boolean, timeoutMs?: number): Promise<GoPeerEvent>
  /** Members as local node `node` (default 0) sees them, all states. */
  members(node?: number): Promise<GoMember[]>
  /** Join more peers; resolves with the number contacted (rejects if 0 and error). */
  join(addrs: string | readonly string[], node?: number): Promise<number>
  /** memberlist Leave(5s); resolves true when it succeeded. */
  leave(node?: number): Promise<boolean>
  /** SendReliable a user message to live member `target`. */
  send(target: string, text: string, node?: number): Promise<void>
  kill(signal?: NodeJS.Signals): void
  /** "quit" (Shutdown), SIGKILL if it does not exit within 3 s. */
  stop(): Promise<void>
}

const COMMAND_TIMEOUT_MS = 15_000

export async function startGoPeer(opts: GoPeerOptions): Promise<GoPeer> {
  const bin = await buildGoPeer()
  const bind = opts.bind ?? '127.0.0.1'
  const joins = opts.join === undefined ? [] : typeof opts.join === 'string' ? [opts.join] : [...opts.join]
  const count = opts.n ?? 1
  const args = ['-name', opts.name, '-bind', bind, '-port', String(opts.port), '-profile', opts.profile ?? 'local']
  if (count !== 1) args.push('-n', String(count))
  if (opts.key) args.push('-key', opts.key)
  if (joins.length) args.push('-join', joins.join(','))

  const proc = spawnManaged(bin, args, { label: `mlpeer ${opts.name}`, stdin: true })
  // One entry per stdout line, so event indices and line indices coincide.
  const parse = (line: string): GoPeerEvent => {
    try {
      const v: unknown = JSON.parse(line)
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as GoPeerEvent
    } catch {
      // fall through
    }
    return { raw: line }
  }
  const events: GoPeerEvent[] = proc.lines.map(parse)
  proc.onLine(line => {
    events.push(parse(line))
  })

  const waitFor = async (pred: (e: GoPeerEvent) => boolean, timeoutMs = 10_000, from = 0, what = 'event'): Promise<GoPeerEvent> =>
    parse(await proc.waitForLine(line => pred(parse(line)), timeoutMs, what, from))

  try {
    const readyTimeout = opts.readyTimeoutMs ?? 15_000
    await waitFor(e => e['ready'] === true, readyTimeout, 0, 'ready')
    // Node 0 joins the -join targets (if any); nodes 1.. join node 0 and them.
    for (let i = joins.length ? 0 : 1; i < count; i++) {
      const self = nameOf(opts.name, count, i)
      await waitFor(e => e['startup_join'] === true && e.self === self, readyTimeout, 0, `start-up join of ${self}`)
    }
  } catch (err) {
    await proc.stop({ signal: 'SIGKILL' })
    throw err
  }
  const ready = events.find(e => e['ready'] === true)!
  const names = (ready['nodes'] as string[] | undefined) ?? [opts.name]

  // Commands are answered in order; serialise them so replies match.
  let queue: Promise<unknown> = Promise.resolve()
  const command = (node: number, line: string, reply: string): Promise<GoPeerEvent> => {
    if (/[\r\n]/.test(line)) return Promise.reject(new Error('command must be a single line'))
    if (!Number.isInteger(node) || node < 0 || node >= names.length) return Promise.reject(new Error(`no local node ${node}`))
    const p = queue.then(() => {
      const from = events.length
      proc.writeLine(node === 0 ? line : `@${node} ${line}`)
      return waitFor(e => e.reply === reply && e.self === names[node], COMMAND_TIMEOUT_MS, from, `reply to ${reply}`)
    })
    queue = p.catch(() => {})
    return p
  }

  const peer: GoPeer = {
    names,
    name: names[0]!,
    addr: `${bind}:${opts.port}`,
    pid: proc.pid,
    proc,
    events,
    startupJoins: events.filter(e => e['startup_join'] === true),
    waitFor: (pred, timeoutMs) => waitFor(pred, timeoutMs),
    async members(node = 0) {
      const r = await command(node, 'members', 'members')
      return r['members'] as GoMember[]
    },
    async join(addrs, node = 0) {
      const list = typeof addrs === 'string' ? [addrs] : [...addrs]
      const r = await command(node, `join ${list.join(',')}`, 'join')
      const n = r['joined'] as number
      if (n === 0 && r.error) throw new Error(`mlpeer ${names[node]}: join ${list.join(',')}: ${r.error}`)
      return n
    },
    async leave(node = 0) {
      const r = await command(node, 'leave', 'leave')
      return r['left'] === true
    },
    async send(target, text, node = 0) {
      const r = await command(node, `send ${target} ${text}`, 'send')
      if (r['sent'] !== true) throw new Error(`mlpeer ${names[node]}: send to ${target}: ${r.error ?? 'failed'}`)
    },
    kill(signal = 'SIGTERM') {
      proc.kill(signal)
    },
    async stop() {
      if (!proc.exitStatus) {
        try {
          proc.writeLine('quit')
        } catch {
          // stdin already closed
        }
      }
      await proc.stop({ signal: null, graceMs: 3000 })
    },
  }
  return peer
}

function nameOf(base: string, count: number, i: number): string {
  return count === 1 ? base : `${base}-${i}`
}
