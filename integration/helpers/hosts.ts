/**
 * Hosts for multi-host scenario tests: each host is its own network namespace
 * (lo up, eth0 with 10.A.B.N/24) plugged by a veth into a bridge that lives in
 * a dedicated "switch" namespace, so the root namespace only gains one veth
 * (10.A.B.254, for clients in the test process). Each host runs a swarmd
 * (`nsenter --net`, killed with the test process); its API socket is a file,
 * reachable from the root namespace. Faults are functions: kill -9 and
 * restart on the same data dir, SIGSTOP/SIGCONT, link down/up on the bridge
 * side, random packet loss with nftables inside the host. Everything is torn
 * down in a teardown, also when the test fails: daemons, every process left
 * in the namespaces (the tasks), the namespaces (and with them the bridge,
 * the veths and the nft tables), the temp dir. In the kernel data plane
 * each task has a namespace of its own (`swarmd-<node ID>-<task ID>`):
 * those of the hosts' nodes count as the host's, and go at teardown too.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { request } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { importPrivateKey, nodeIdFor } from '../../lib/control/identity.js'
import { pingSocket, swarmctl } from './daemon.js'
import { run, runOk, sleep, spawnManaged, waitUntil, which, type ManagedProcess, type RunResult, type SpawnOptions } from './procs.js'

const SWARMD = fileURLToPath(new URL('../../bin/swarmd.js', import.meta.url))
const IP = which('ip', ['/usr/sbin/ip', '/sbin/ip'])
const NFT = which('nft', ['/usr/sbin/nft', '/sbin/nft'])
const NSENTER = which('nsenter', ['/usr/bin/nsenter'])
const NS_PREFIX = 'swh-'

/** Why these tests cannot run here, or undefined (see testNeeding). */
export const hostsMissing: string | undefined = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : !IP ? 'needs iproute2' : !NSENTER ? 'needs nsenter (util-linux)' : undefined
/** Why packet loss cannot be injected here, or undefined. */
export const lossMissing: string | undefined = hostsMissing ?? (!NFT ? 'needs nft (nftables)' : undefined)

/** The part of tap's Test the harness uses. */
export interface TestLike {
  teardown(fn: () => unknown): void
  comment(...args: unknown[]): void
}

export interface Host {
  /** 1-based. */
  readonly index: number
  /** docker-swarm-N unless another prefix was asked for. */
  readonly name: string
  readonly ns: string
  readonly ip: string
  /** The veth's end on the bridge (in the switch namespace). */
  readonly port: string
  readonly sock: string
  readonly dataDir: string
  proc?: ManagedProcess
  /** The swarm node ID, once known. */
  id?: string
}

export interface NodeRow {
  id: string
  self: boolean
  hostname: string
  status: string
  availability: string
  managerStatus: string
}

export interface TaskRow {
  id: string
  name: string
  node: string
  desired: string
  current: string
  error: string
}

const ip = (...args: string[]): Promise<RunResult> => runOk(IP!, args)

let clusterSeq = 0

/** Namespaces left by a test process that no longer runs (killed before its teardown). */
async function reapStale(): Promise<void> {
  const list = (await run(IP!, ['netns', 'list'])).stdout
  for (const name of list.split('\n').map(l => l.split(' ')[0] ?? '')) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(name)
    if (!m || Number(m[1]) === process.pid || existsPid(Number(m[1]))) continue
    await killNamespace(name)
    await run(IP!, ['netns', 'delete', name])
  }
}

function existsPid(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** SIGKILL every process in a namespace, until none is left. */
async function killNamespace(ns: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const pids = (await run(IP!, ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean).map(Number)
    if (pids.length === 0) return
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGCONT')
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await sleep(50)
  }
}

/** The inode of a named namespace, to match /proc/PID/ns/net against. */
function nsInode(ns: string): string {
  return `net:[${statSync(`/run/netns/${ns}`).ino}]`
}

/** The node ID of a host's daemon, from the node key in its data dir (undefined before it made one). */
export function hostNodeId(h: Host): string | undefined {
  const key = join(h.dataDir, 'node.key')
  return existsSync(key) ? nodeIdFor(importPrivateKey(readFileSync(key, 'utf8')).publicKey) : undefined
}

/** The namespaces of a host's tasks (the kernel data plane's: `swarmd-<node ID>-<task ID>`). */
export function taskNamespaces(h: Host): string[] {
  const id = hostNodeId(h)
  if (!id) return []
  try {
    return readdirSync('/run/netns').filter(n => n.startsWith(`swarmd-${id}-`))
  } catch {
    return []
  }
}

/** A free 10.A.B.0/24 for this process: A from the pid, B the first not routed in the root namespace. */
async function pickSubnet(): Promise<string> {
  const a = 80 + (process.pid % 50)
  const routes = (await ip('-4', 'route', 'show')).stdout
  for (let b = (clusterSeq * 7) % 250; ; b = (b + 1) % 250) {
    const net = `10.${a}.${b}`
    if (!routes.includes(`${net}.0/24`)) return net
  }
}

export interface HostsOptions {
  /** Host names are `${prefix}${index}` (default docker-swarm-). */
  prefix?: string
  /** swarmd's --log-level (default warn). */
  logLevel?: string
  /** More swarmd arguments. */
  args?: string[]
  /** swarmd's --data-plane (default userspace: the tests written for the routing mesh keep it; hosts-kernel asks for kernel). */
  dataPlane?: 'auto' | 'kernel' | 'userspace'
  /** More arguments and environment for one host's swarmd (e.g. `--executor docker` with the engine's DOCKER_HOST). */
  perHost?: (h: Host) => { args?: string[]; env?: NodeJS.ProcessEnv }
}

export class Hosts {
  readonly hosts: Host[]
  /** The root namespace's address on the bridge. */
  readonly gateway: string
  private readonly switchNs: string
  private readonly rootVeth: string
  private readonly dir: string

  private constructor(
    private readonly t: TestLike,
    readonly subnet: string,
    n: number,
    private readonly opts: HostsOptions,
  ) {
    const k = clusterSeq++
    this.dir = mkdtempSync(join(tmpdir(), 'swarmd-hosts-'))
    this.switchNs = `${NS_PREFIX}${process.pid}-${k}-sw`
    this.rootVeth = `swr${process.pid}x${k}`.slice(0, 15)
    this.gateway = `${subnet}.254`
    this.hosts = Array.from({ length: n }, (_, i) => {
      const name = `${opts.prefix ?? 'docker-swarm-'}${i + 1}`
      return { index: i + 1, name, ns: `${NS_PREFIX}${process.pid}-${k}-h${i + 1}`, ip: `${subnet}.${i + 1}`, port: `p${i + 1}`, sock: join(this.dir, `h${i + 1}.sock`), dataDir: join(this.dir, name) }
    })
  }

  /** Builds the namespaces and the bridge and starts a swarmd on every host (not yet in a swarm). */
  static async create(t: TestLike, n: number, opts: HostsOptions = {}): Promise<Hosts> {
    if (hostsMissing) throw new Error(hostsMissing)
    await reapStale()
    const t0 = performance.now()
    const h = new Hosts(t, await pickSubnet(), n, opts)
    t.teardown(() => h.destroy())
    await h.build()
    const built = secondsSince(t0)
    await Promise.all(h.hosts.map(x => h.start(x)))
    t.comment(`${n} hosts on ${h.subnet}.0/24: namespaces in ${built} s, daemons up in ${secondsSince(t0)} s`)
    return h
  }

  private async build(): Promise<void> {
    const sw = this.switchNs
    await ip('netns', 'add', sw)
    await ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', sw, 'link', 'set', 'br0', 'up')
    for (const h of this.hosts) {
      await ip('netns', 'add', h.ns)
      await ip('-n', sw, 'link', 'add', h.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns)
      await ip('-n', sw, 'link', 'set', h.port, 'master', 'br0', 'up')
      await ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0')
      await ip('-n', h.ns, 'link', 'set', 'eth0', 'up')
      await ip('-n', h.ns, 'link', 'set', 'lo', 'up')
    }
    await ip('link', 'add', this.rootVeth, 'type', 'veth', 'peer', 'name', 'up0', 'netns', sw)
    await ip('-n', sw, 'link', 'set', 'up0', 'master', 'br0', 'up')
    await ip('addr', 'add', `${this.gateway}/24`, 'dev', this.rootVeth)
    await ip('link', 'set', this.rootVeth, 'up')
  }

  /** A host by index (1-based) or name. */
  host(which: number | string): Host {
    const h = this.hosts.find(x => x.index === which || x.name === which)
    if (!h) throw new Error(`no host ${which}`)
    return h
  }

  /** Starts (or restarts, on the same data dir) the host's daemon and waits for its API. */
  async start(h: Host): Promise<void> {
    rmSync(h.sock, { force: true })
    // nsenter, not `ip netns exec`: the daemon keeps the host's mount namespace, as a system service does, so the task namespaces it names are seen by all (ip netns exec would give it a private one).
    const own = this.opts.perHost?.(h) ?? {}
    const p = spawnManaged(NSENTER!, [`--net=/run/netns/${h.ns}`, '--', process.execPath, SWARMD, '--data-dir', h.dataDir, '-H', `unix://${h.sock}`, '--hostname', h.name, '--log-level', this.opts.logLevel ?? 'warn', '--data-plane', this.opts.dataPlane ?? 'userspace', ...(this.opts.args ?? []), ...(own.args ?? [])], {
      label: h.name,
      env: { ...process.env, ...own.env },
    })
    h.proc = p
    await waitUntil(() => pingSocket(h.sock), { timeoutMs: 20_000, what: `${h.name}'s API socket`, giveUp: () => (p.exitStatus ? new Error(`${h.name} exited: ${p.stderrTail()}`) : undefined) })
  }

  /** swarmctl against this host's daemon. */
  ctl(h: Host, ...args: string[]): Promise<RunResult> {
    return swarmctl(h.sock, ...args)
  }

  /** swarmctl that must succeed; its stdout. */
  async ctlOk(h: Host, ...args: string[]): Promise<string> {
    const r = await swarmctl(h.sock, ...args)
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} on ${h.name} failed (${r.code}): ${r.stderr}${r.stdout}`)
    return r.stdout
  }

  /** `swarm init` on `manager`, every other host joins as a worker; waits until all are Ready and learns the node IDs. */
  async formSwarm(manager: Host): Promise<{ init: string; joins: string[] }> {
    const t0 = performance.now()
    const init = await this.ctlOk(manager, 'swarm', 'init', '--advertise-addr', manager.ip)
    const tInit = secondsSince(t0)
    const token = (await this.ctlOk(manager, 'swarm', 'join-token', '-q', 'worker')).trim()
    const joins: string[] = []
    for (const w of this.hosts) {
      if (w !== manager) joins.push(await this.ctlOk(w, 'swarm', 'join', '--token', token, '--advertise-addr', w.ip, `${manager.ip}:2377`))
    }
    const tJoin = secondsSince(t0)
    await waitUntil(async () => [...(await this.nodeStates(manager)).values()].filter(s => s === 'ready').length === this.hosts.length, { timeoutMs: 30_000, intervalMs: 250, what: 'every node Ready' })
    this.t.comment(`swarm formed in ${secondsSince(t0)} s (init ${tInit} s, joins done at ${tJoin} s)`)
    for (const n of await this.api<{ ID: string; Description: { Hostname: string } }[]>(manager, '/nodes')) {
      const h = this.hosts.find(x => x.name === n.Description.Hostname)
      if (h) h.id = n.ID
    }
    return { init, joins }
  }

  /** `node ls` on `via`, parsed by its header. */
  async nodes(via: Host): Promise<NodeRow[]> {
    const lines = (await this.ctlOk(via, 'node', 'ls')).trimEnd().split('\n')
    const head = lines[0]!
    const col = (s: string): number => head.indexOf(s)
    const cut = (l: string, a: string, b?: string): string => l.slice(col(a), b ? col(b) : undefined).trim()
    return lines.slice(1).map(l => {
      const id = cut(l, 'ID', 'HOSTNAME')
      return { id: id.replace(/\s*\*$/, ''), self: id.endsWith('*'), hostname: cut(l, 'HOSTNAME', 'STATUS'), status: cut(l, 'STATUS', 'AVAILABILITY'), availability: cut(l, 'AVAILABILITY', 'MANAGER STATUS'), managerStatus: cut(l, 'MANAGER STATUS', 'ENGINE VERSION') }
    })
  }

  /** One host's STATUS in `node ls` on `via`. */
  async status(via: Host, h: Host): Promise<string | undefined> {
    return (await this.nodes(via)).find(r => r.hostname === h.name)?.status
  }

  /** `service ps --no-trunc` on `via`, parsed by its header (history rows keep their ` \_ ` prefix in `name`). */
  async ps(via: Host, service: string, ...flags: string[]): Promise<TaskRow[]> {
    const lines = (await this.ctlOk(via, 'service', 'ps', '--no-trunc', ...flags, service)).trimEnd().split('\n')
    const head = lines[0]!
    const col = (s: string): number => head.indexOf(s)
    const cut = (l: string, a: string, b?: string): string => l.slice(col(a), b ? col(b) : undefined).trim()
    return lines.slice(1).map(l => ({ id: cut(l, 'ID', 'NAME'), name: cut(l, 'NAME', 'IMAGE'), node: cut(l, 'NODE', 'DESIRED STATE'), desired: cut(l, 'DESIRED STATE', 'CURRENT STATE'), current: cut(l, 'CURRENT STATE', 'ERROR'), error: cut(l, 'ERROR', 'PORTS') }))
  }

  /** The tasks the manager sees running (desired and current Running). */
  async running(via: Host, service: string): Promise<TaskRow[]> {
    return (await this.ps(via, service)).filter(r => r.desired === 'Running' && r.current.startsWith('Running'))
  }

  /**
   * The distinct task IDs of `service` running as processes inside each
   * host's namespace (ground truth, whatever the manager believes): a map
   * from host name to task IDs.
   */
  taskProcesses(service: string): Map<string, Set<string>> {
    const byInode = new Map<string, Host>()
    for (const h of this.hosts) {
      byInode.set(nsInode(h.ns), h)
      for (const ns of taskNamespaces(h)) {
        try {
          byInode.set(nsInode(ns), h)
        } catch {
          // Removed meanwhile.
        }
      }
    }
    const out = new Map<string, Set<string>>(this.hosts.map(h => [h.name, new Set<string>()]))
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue
      let env: string
      let h: Host | undefined
      try {
        h = byInode.get(readlinkSync(`/proc/${d}/ns/net`))
        if (!h) continue
        env = readFileSync(`/proc/${d}/environ`, 'latin1')
      } catch {
        continue
      }
      const vars = env.split('\0')
      if (!vars.includes(`SWARMD_SERVICE_NAME=${service}`)) continue
      const task = vars.find(v => v.startsWith('SWARMD_TASK_ID='))?.slice('SWARMD_TASK_ID='.length)
      if (task) out.get(h.name)!.add(task)
    }
    return out
  }

  /** How many distinct tasks of `service` run as processes, over all hosts, and per host. */
  taskCounts(service: string): { total: number; perHost: Record<string, number> } {
    const perHost: Record<string, number> = {}
    let total = 0
    for (const [name, s] of this.taskProcesses(service)) {
      perHost[name] = s.size
      total += s.size
    }
    return { total, perHost }
  }

  /** GET on the host's API socket (cheaper than a swarmctl process, for tight polling); the parsed JSON. */
  api<T = unknown>(h: Host, path: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: h.sock, path, timeout: 5_000 }, res => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', d => (body += d))
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`${path}: ${res.statusCode} ${body}`))))
      })
      req.on('error', reject)
      req.on('timeout', () => req.destroy(new Error(`${path}: timeout`)))
      req.end()
    })
  }

  /** Node state ('ready' | 'down') by hostname, from the API of `via`. */
  async nodeStates(via: Host): Promise<Map<string, string>> {
    const nodes = await this.api<{ Description: { Hostname: string }; Status: { State: string } }[]>(via, '/nodes')
    return new Map(nodes.map(n => [n.Description.Hostname, n.Status.State]))
  }

  /** The service's tasks the manager `via` believes run (desired and observed running): task ID → hostname. */
  async runningTasks(via: Host, service: string): Promise<Map<string, string>> {
    const filters = encodeURIComponent(JSON.stringify({ service: [service] }))
    const tasks = await this.api<{ ID: string; NodeID: string; DesiredState: string; Status: { State: string } }[]>(via, `/tasks?filters=${filters}`)
    const byId = new Map(this.hosts.map(h => [h.id, h.name]))
    return new Map(tasks.filter(x => x.DesiredState === 'running' && x.Status.State === 'running').map(x => [x.ID, byId.get(x.NodeID) ?? x.NodeID]))
  }

  /** Polls until `h` is `state` ('ready' | 'down') in `via`'s view; the seconds it took from `t0`. */
  async waitNodeState(via: Host, h: Host, state: string, t0: number, timeoutMs = 60_000): Promise<number> {
    await waitUntil(async () => (await this.nodeStates(via)).get(h.name) === state, { timeoutMs, intervalMs: 250, what: `${h.name} ${state}` })
    return secondsSince(t0)
  }

  /**
   * Polls until `replicas` tasks of `service` run away from `away`: the
   * manager says so and as many distinct task processes run on the other
   * hosts. The seconds it took from `t0`.
   */
  async waitTasksAway(via: Host, service: string, replicas: number, away: readonly Host[], t0: number, timeoutMs = 90_000): Promise<number> {
    const others = this.hosts.filter(h => !away.includes(h)).map(h => h.name)
    await waitUntil(
      async () => {
        const procs = this.taskProcesses(service)
        const n = others.reduce((sum, name) => sum + procs.get(name)!.size, 0)
        if (n !== replicas) return false
        const running = [...(await this.runningTasks(via, service)).values()]
        return running.length === replicas && running.every(name => others.includes(name))
      },
      { timeoutMs, intervalMs: 250, what: `${replicas} ${service} tasks running away from ${away.map(h => h.name).join(', ')}` },
    )
    return secondsSince(t0)
  }

  /** Polls until every node is ready and exactly `replicas` task processes of `service` run (and the manager agrees); seconds from `t0`. */
  async waitSteady(via: Host, service: string, replicas: number, t0: number, timeoutMs = 90_000): Promise<number> {
    await waitUntil(
      async () => {
        const states = await this.nodeStates(via)
        if (![...states.values()].every(s => s === 'ready') || states.size !== this.hosts.length) return false
        if (this.taskCounts(service).total !== replicas) return false
        return (await this.runningTasks(via, service)).size === replicas
      },
      { timeoutMs, intervalMs: 250, what: `all nodes ready and exactly ${replicas} ${service} tasks` },
    )
    return secondsSince(t0)
  }

  // ---- faults ---------------------------------------------------------------------------------

  /** kill -9 of the host's daemon (its task processes keep running, as after a daemon crash). */
  async kill9(h: Host): Promise<void> {
    h.proc?.kill('SIGKILL')
    await h.proc?.exited
  }

  /** The daemon stalls (SIGSTOP): sockets stay open, nothing answers. */
  stall(h: Host): void {
    h.proc?.kill('SIGSTOP')
  }

  resume(h: Host): void {
    h.proc?.kill('SIGCONT')
  }

  /** A partition: the host's port on the bridge goes down. */
  async linkDown(h: Host): Promise<void> {
    await ip('-n', this.switchNs, 'link', 'set', h.port, 'down')
  }

  async linkUp(h: Host): Promise<void> {
    await ip('-n', this.switchNs, 'link', 'set', h.port, 'up')
  }

  /** Drops `percent` % of the packets in and out of the host's eth0, at random (nftables in its namespace). */
  async loss(h: Host, percent: number): Promise<void> {
    if (!NFT) throw new Error('nft is not installed')
    await this.clearLoss(h)
    const rules = [
      'table inet swarmdloss {',
      `  chain input { type filter hook input priority 0; policy accept; iifname "eth0" numgen random mod 100 < ${percent} drop; }`,
      `  chain output { type filter hook output priority 0; policy accept; oifname "eth0" numgen random mod 100 < ${percent} drop; }`,
      '}',
    ].join('\n')
    // From a file: run() spawns without a stdin pipe.
    const file = join(this.dir, `loss-${h.index}.nft`)
    writeFileSync(file, rules)
    await this.execOk(h, NFT, ['-f', file])
  }

  async clearLoss(h: Host): Promise<void> {
    if (!NFT) return
    await this.exec(h, NFT, ['delete', 'table', 'inet', 'swarmdloss'])
  }

  /** The loss table as nft lists it. */
  async lossRuleset(h: Host): Promise<string> {
    return (await this.execOk(h, NFT!, ['list', 'table', 'inet', 'swarmdloss'])).stdout
  }

  // ---- running things inside a host -------------------------------------------------------------

  /** Runs a command inside the host's namespace to completion. */
  exec(h: Host, cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return run(IP!, ['netns', 'exec', h.ns, cmd, ...args], opts)
  }

  async execOk(h: Host, cmd: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    const r = await this.exec(h, cmd, args, opts)
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${h.name} failed (${r.code}): ${r.stderr}${r.stdout}`)
    return r
  }

  /** Starts a long-running command inside the host's namespace (killed at teardown with the namespace). */
  spawnIn(h: Host, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
    return spawnManaged(IP!, ['netns', 'exec', h.ns, cmd, ...args], { label: `${h.name}: ${cmd}`, ...opts })
  }

  /** HTTP GETs from inside a host (by a node process there): one body (or `error:CODE`) per URL. */
  async httpGetIn(h: Host, urls: readonly string[]): Promise<string[]> {
    const script = `
      const http = require('http')
      const urls = JSON.parse(process.argv[1])
      const get = u => new Promise(res => {
        const q = http.get(u, { agent: false, timeout: 5000 }, r => { let b = ''; r.setEncoding('utf8'); r.on('data', d => (b += d)); r.on('end', () => res(b)) })
        q.on('error', e => res('error:' + e.code)); q.on('timeout', () => q.destroy(Object.assign(new Error('t'), { code: 'TIMEOUT' })))
      })
      ;(async () => { const out = []; for (const u of urls) out.push(await get(u)); process.stdout.write(JSON.stringify(out)) })()`
    const r = await this.execOk(h, process.execPath, ['-e', script, JSON.stringify(urls)], { timeoutMs: 10_000 + urls.length * 5_000 })
    return JSON.parse(r.stdout) as string[]
  }

  /** A packet capture on the host's eth0 (Ethernet framing); `stop()` ends it and returns the pcap. */
  async capture(h: Host, filter: string[]): Promise<{ stop(): Promise<Buffer> }> {
    const tcpdump = which('tcpdump', ['/usr/bin/tcpdump', '/usr/sbin/tcpdump'])
    if (!tcpdump) throw new Error('tcpdump is not installed')
    const file = join(this.dir, `cap-${h.index}-${Date.now()}.pcap`)
    // --immediate-mode: without it packets wait in the kernel's ring until a block fills or times out, and a short capture can come back empty.
    // -Z root: the file is in a directory only root may write.
    const p = this.spawnIn(h, tcpdump, ['-i', 'eth0', '--immediate-mode', '-U', '-Z', 'root', '-n', '-s', '0', '-w', file, ...filter], { mergeStderr: true })
    await p.waitForLine(l => l.includes('listening on'), 15_000, 'tcpdump')
    return {
      stop: async () => {
        await sleep(300)
        await p.stop({ signal: 'SIGINT' })
        return readFileSync(file)
      },
    }
  }

  // ---- teardown -----------------------------------------------------------------------------------

  private async destroy(): Promise<void> {
    for (const h of this.hosts) h.proc?.kill('SIGCONT')
    await Promise.all(this.hosts.map(h => h.proc?.stop({ graceMs: 2_000 })))
    const tasks = this.hosts.flatMap(taskNamespaces)
    for (const ns of [...this.hosts.map(h => h.ns), ...tasks]) await killNamespace(ns).catch(() => undefined)
    for (const ns of [...this.hosts.map(h => h.ns), ...tasks, this.switchNs]) await run(IP!, ['netns', 'delete', ns])
    for (const ns of tasks) rmSync(join('/etc/netns', ns), { recursive: true, force: true })
    // Deleting the switch namespace took the root veth's peer and so the root veth; be sure.
    await run(IP!, ['link', 'delete', this.rootVeth])
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Payloads, concatenated, of the IPv4 TCP or UDP packets (to or from `port` if given) in a pcap with Ethernet framing. */
export function pcapPayloads(pcap: Buffer, port?: number, proto: 'tcp' | 'udp' | 'both' = 'both'): Buffer {
  const out: Buffer[] = []
  const want = new Set(proto === 'both' ? [6, 17] : [proto === 'tcp' ? 6 : 17])
  for (let off = 24; off + 16 <= pcap.length; ) {
    const len = pcap.readUInt32LE(off + 8)
    const pkt = pcap.subarray(off + 16, off + 16 + len)
    off += 16 + len
    if (pkt.length < 34 || pkt.readUInt16BE(12) !== 0x0800 || !want.has(pkt[23]!)) continue
    const ipHdr = pkt.subarray(14)
    const l4 = ipHdr.subarray((ipHdr[0]! & 0x0f) * 4)
    if (l4.length < 8 || (port !== undefined && l4.readUInt16BE(0) !== port && l4.readUInt16BE(2) !== port)) continue
    out.push(pkt[23] === 6 ? l4.subarray((l4[12]! >> 4) * 4) : l4.subarray(8))
  }
  return Buffer.concat(out)
}

/** Seconds since `t0` (a performance.now()), one decimal. */
export const secondsSince = (t0: number): number => Math.round((performance.now() - t0) / 100) / 10
