import { mkdirSync } from 'node:fs'
import { isIP } from 'node:net'
import { homedir, hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { Command, InvalidArgumentError, Option } from 'commander'
import Docker from 'dockerode'
import { pino, type Logger } from 'pino'
import { DockerExecutor } from '../agent/docker-executor.js'
import type { Executor } from '../agent/executor.js'
import { USERSPACE_DNS } from '../agent/node-dns.js'
import { ProcessExecutor } from '../agent/process-executor.js'
import { ApiServer } from '../api/http.js'
import { MetricsServer } from '../api/metrics-server.js'
import { mountRoutes } from '../api/routes.js'
import { restrictToOwner } from '../manager/owner-only.js'
import { NodeMetrics } from '../node/metrics/node-metrics.js'
import { SwarmNode } from '../node/node.js'
import { KEY_ROTATION_MS } from '../types/defaults.js'
import { SwarmdError } from '../types/errors.js'

/** Where the local API listens when -H is not given: /run for root, else the user's runtime dir. */
export function defaultSocket(): string {
  if (process.getuid?.() === 0) return '/run/swarmd.sock'
  return join(process.env.XDG_RUNTIME_DIR ?? join(homedir(), '.swarmd'), 'swarmd.sock')
}

function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/swarmd' : join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local/share'), 'swarmd')
}

/** `unix:///path` (Docker's -H form) or a bare path. */
export function socketPath(host: string): string {
  if (host.startsWith('unix://')) return host.slice('unix://'.length)
  if (host.startsWith('/')) return host
  throw new InvalidArgumentError(`only unix sockets are served: unix:///path, got "${host}"`)
}

/** Go-style durations as docker takes them: 500ms, 30s, 5m, 12h. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v)
  if (!m) throw new InvalidArgumentError(`invalid duration "${v}" (e.g. 30s, 5m, 12h)`)
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']
}

/** `IP:PORT` (`[v6]:PORT`), as Docker's --metrics-addr takes it. */
export function parseListenAddr(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(v)
  const host = m?.[1] ?? m?.[2] ?? ''
  const port = Number(m?.[3])
  if (!m || !isIP(host) || (m[1] !== undefined && isIP(host) !== 6) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`want IP:PORT, e.g. 127.0.0.1:9323 or [::1]:9323, got "${v}"`)
  }
  return { host, port }
}

export interface DaemonFlags {
  gossipKeyRotation: number
  dataDir: string
  host: string
  hostname: string
  executor: 'process' | 'docker'
  logLevel: string
  liveRestore: boolean
  ingressAddr: string
  meshIdleTimeout: number
  meshBalancing: 'round-robin' | 'least-connections'
  dataPlane: 'auto' | 'kernel' | 'userspace'
  metricsAddr?: { host: string; port: number }
  meshWorkers: number
  dnsAddr: { host: string; port: number } | null
  resolvConf: string
}

/** The daemon's options, on the root `swarmd` command. */
export function addDaemonOptions(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', 'where state lives (node key, the manager\'s store)', defaultDataDir())
    .option('-H, --host <unix://path>', 'local API socket', `unix://${defaultSocket()}`)
    .option('--hostname <name>', 'this node\'s name in the swarm', hostname())
    .addOption(new Option('--executor <kind>', 'how tasks run').choices(['process', 'docker']).default('process'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'))
    .option('--gossip-key-rotation <duration>', 'how often a manager rotates the gossip keys', parseDuration, KEY_ROTATION_MS)
    .option('--ingress-addr <ip>', 'where published ports listen on this node', '0.0.0.0')
    .option('--mesh-idle-timeout <duration>', 'close routing-mesh connections idle this long (0: never)', parseDuration, 0)
    .addOption(new Option('--mesh-balancing <strategy>', 'how the routing mesh picks a task').choices(['round-robin', 'least-connections']).default('round-robin'))
    .addOption(new Option('--data-plane <kind>', "tasks in namespaces on VXLAN overlays, VIPs and published ports in nftables (kernel: needs root, VXLAN and nftables), or the userspace mesh; auto: the kernel's where it can run").choices(['auto', 'kernel', 'userspace']).default('auto'))
    .option('--metrics-addr <ip:port>', 'serve Prometheus metrics at /metrics and, on managers, the cluster page at / (plain HTTP; default off)', parseListenAddr)
    .option('--mesh-workers <n>', 'forwarder processes beside the daemon that accept on published ports too (0: none)', parseCount, 0)
    .option('--dns-addr <ip:port|none>', "where this node's DNS answers tasks' queries for service names", parseDnsAddr, USERSPACE_DNS)
    .option('--resolv-conf <path>', "the host's resolvers, where the node's DNS forwards names outside the swarm", '/etc/resolv.conf')
    .option('--live-restore', "keep this node's tasks running while the daemon is down (they are adopted when it starts again)", false)
}

function parseCount(v: string): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || n > 64) throw new InvalidArgumentError(`expected a number of processes from 0 to 64, got "${v}"`)
  return n
}

/** `IP:PORT`, or `none` for no DNS. */
export function parseDnsAddr(v: string): { host: string; port: number } | null {
  if (v === 'none') return null
  try {
    return parseListenAddr(v)
  } catch {
    throw new InvalidArgumentError(`expected IP:PORT ([v6]:PORT) or none, got "${v}"`)
  }
}

/** The executor that runs this node's tasks: host processes (the default) or the local Docker engine (DOCKER_HOST). */
function executorFactory(f: DaemonFlags, log: Logger): (nodeId: string) => Executor {
  const logger = log.child({ layer: 'executor' })
  if (f.executor === 'docker') return nodeId => new DockerExecutor({ docker: new Docker(), nodeId, logger })
  return () => new ProcessExecutor({ dir: join(f.dataDir, 'tasks'), logger })
}

/** Runs in the foreground until SIGINT or SIGTERM; logs JSON on stderr. */
export async function runDaemon(f: DaemonFlags): Promise<number> {
  const log = pino({ level: f.logLevel }, pino.destination(2))
  const sock = socketPath(f.host)
  mkdirSync(dirname(sock), { recursive: true })
  let node: SwarmNode | undefined
  // Created first, so the node's stores are timed from the start.
  const metrics = f.metricsAddr && new NodeMetrics()
  let served: MetricsServer | undefined
  try {
    if (metrics && f.metricsAddr) {
      served = new MetricsServer({ metrics, node: () => node, log: log.child({ layer: 'metrics' }) })
      await served.listen(f.metricsAddr.host, f.metricsAddr.port)
    }
    // The node key and the store (CA key, join tokens, gossip keys) live here.
    restrictToOwner(f.dataDir)
    node = await SwarmNode.open(f.dataDir, f.hostname, log, {
      gossipKeyRotationMs: f.gossipKeyRotation,
      executor: executorFactory(f, log),
      ingressAddr: f.ingressAddr,
      meshIdleTimeoutMs: f.meshIdleTimeout,
      meshBalancing: f.meshBalancing,
      dataPlane: f.dataPlane,
      ...(metrics ? { observer: metrics.observer } : {}),
      meshWorkers: f.meshWorkers,
      dnsAddr: f.dnsAddr,
      resolvConf: f.resolvConf,
    })
    metrics?.attach(node)
  } catch (e) {
    await served?.close()
    // A damaged store, a port in use: said once, plainly, and the daemon does not start.
    if (!(e instanceof SwarmdError)) throw e
    log.fatal({ code: e.code }, e.message)
    return 1
  }
  const api = new ApiServer({ logger: log.child({ layer: 'api' }) })
  mountRoutes(api, node, f.hostname)
  await api.listen(sock)
  log.info({ socket: sock, dataDir: f.dataDir, nodeId: node.nodeId, executor: f.executor, ...(f.metricsAddr ? { metricsAddr: f.metricsAddr } : {}) }, 'swarmd is running')
  const signal = await new Promise<string>(resolve => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  log.info({ signal }, 'stopping')
  await served?.close()
  await api.close()
  // As Docker without live-restore: a daemon that stops stops its tasks (a crash leaves them, to be adopted).
  if (!f.liveRestore) await node.stopTasks()
  await node.close()
  return 0
}
