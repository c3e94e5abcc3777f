import { mkdirSync } from 'node:fs'
import { homedir, hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { Command, InvalidArgumentError, Option } from 'commander'
import { pino } from 'pino'
import { ApiServer } from '../api/http.js'
import { mountRoutes } from '../api/routes.js'
import { SwarmManager } from '../manager/swarm.js'

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

export interface DaemonFlags {
  dataDir: string
  host: string
  hostname: string
  executor: 'process' | 'docker'
  logLevel: string
}

/** The daemon's options, on the root `swarmd` command. */
export function addDaemonOptions(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', 'where state lives (node key, the manager\'s store)', defaultDataDir())
    .option('-H, --host <unix://path>', 'local API socket', `unix://${defaultSocket()}`)
    .option('--hostname <name>', 'this node\'s name in the swarm', hostname())
    .addOption(new Option('--executor <kind>', 'how tasks run').choices(['process', 'docker']).default('process'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'))
}

/** Runs in the foreground until SIGINT or SIGTERM; logs JSON on stderr. */
export async function runDaemon(f: DaemonFlags): Promise<number> {
  const log = pino({ level: f.logLevel }, pino.destination(2))
  const sock = socketPath(f.host)
  mkdirSync(f.dataDir, { recursive: true, mode: 0o700 })
  mkdirSync(dirname(sock), { recursive: true })
  const manager = await SwarmManager.open(f.dataDir, f.hostname, log)
  const api = new ApiServer()
  mountRoutes(api, manager, f.hostname)
  await api.listen(sock)
  log.info({ socket: sock, dataDir: f.dataDir, nodeId: manager.nodeId, executor: f.executor }, 'swarmd is running')
  const signal = await new Promise<string>(resolve => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  log.info({ signal }, 'stopping')
  await api.close()
  await manager.close()
  return 0
}
