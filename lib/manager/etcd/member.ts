import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Logger } from 'pino'
import { SwarmdError } from '../../types/errors.js'

export class EtcdError extends SwarmdError {}

/** How one manager's etcd member runs. */
export interface MemberConfig {
  /** The member's data dir (under the daemon's --data-dir). */
  dataDir: string
  /** The member's name: the manager's node ID. */
  name: string
  /** The manager's advertise address: etcd listens there, nowhere else. */
  ip: string
  clientPort: number
  peerPort: number
  /** `name=https://ip:port,...`: the members etcd starts with. */
  initialCluster: string
  state: 'new' | 'existing'
  /** The swarm's cluster ID: member IDs derive from it, so another swarm's members never match. */
  token: string
  tls: { ca: string; cert: string; key: string }
  /** Once, to recover from a lost quorum: the member starts as a cluster of one with its data. */
  forceNewCluster?: boolean
  log: Logger
}

/** Why a member stopped, when etcd said so. */
export type ExitReason = 'removed' | 'address-in-use' | 'disk-full' | 'data-dir' | undefined

const LISTENING = /^(serving client traffic securely|ready to serve client requests)$/

/** The message etcd's zap logger wrote on a line (it logs JSON on stderr), or the line itself. */
function messageOf(line: string): { msg: string; level: string; fields: Record<string, unknown> } {
  try {
    const o = JSON.parse(line) as Record<string, unknown>
    return { msg: String(o.msg ?? ''), level: String(o.level ?? 'info'), fields: o }
  } catch {
    return { msg: line, level: 'info', fields: {} }
  }
}

function reasonOf(msg: string, fields: Record<string, unknown>): ExitReason {
  const err = `${msg} ${String(fields.error ?? '')}`
  if (/permanently removed from the cluster/.test(err)) return 'removed'
  if (/address already in use/.test(err)) return 'address-in-use'
  if (/no space left on device|failed to preallocate space/.test(err)) return 'disk-full'
  if (/member .* has already been bootstrapped|data-dir used by this member must be removed|cannot access data directory/.test(err)) return 'data-dir'
  return undefined
}

/**
 * One manager's etcd member (Debian's etcd-server 3.4), supervised by the
 * daemon: an explicit argv and a clean environment (an inherited ETCD_*
 * variable that repeats a flag is fatal to etcd), mutual TLS on both ports
 * from the managers' etcd CA, and `setpriv --pdeathsig KILL`, so the member
 * never outlives its daemon, `kill -9` included.
 */
export class EtcdMember {
  private reason: ExitReason
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; reason: ExitReason }>

  private constructor(
    private readonly child: ChildProcess,
    readonly config: MemberConfig,
  ) {
    this.exited = new Promise(resolve => child.once('exit', (code, signal) => resolve({ code, signal, reason: this.reason })))
  }

  get clientUrl(): string {
    return `https://${this.config.ip}:${this.config.clientPort}`
  }

  get peerUrl(): string {
    return peerUrl(this.config.ip, this.config.peerPort)
  }

  /** Starts the member and resolves once it serves clients; rejects with etcd's reason if it exits first. */
  static async start(c: MemberConfig, opts: { readyTimeoutMs?: number } = {}): Promise<EtcdMember> {
    const etcd = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find(p => existsSync(p))
    if (!etcd) throw new EtcdError('E_ETCD_MISSING', 'several managers need etcd: install Debian\'s etcd-server (apt-get install etcd-server)')
    mkdirSync(c.dataDir, { recursive: true, mode: 0o700 })
    const tlsDir = join(c.dataDir, '..', 'etcd-tls')
    mkdirSync(tlsDir, { recursive: true, mode: 0o700 })
    const file = (name: string, data: string): string => {
      const p = join(tlsDir, name)
      writeFileSync(`${p}.tmp`, data, { mode: 0o600 })
      renameSync(`${p}.tmp`, p)
      return p
    }
    const ca = file('ca.crt', c.tls.ca)
    const cert = file('member.crt', c.tls.cert)
    const key = file('member.key', c.tls.key)
    const client = `https://${c.ip}:${c.clientPort}`
    const peer = peerUrl(c.ip, c.peerPort)
    const args = [
      '--name', c.name,
      '--data-dir', c.dataDir,
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', c.initialCluster,
      '--initial-cluster-state', c.state,
      '--initial-cluster-token', c.token,
      '--cert-file', cert, '--key-file', key, '--trusted-ca-file', ca, '--client-cert-auth',
      '--peer-cert-file', cert, '--peer-key-file', key, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth',
      // Peers connect from whatever source address the kernel picks; the dedicated CA is what admits them.
      '--experimental-peer-skip-client-san-verification',
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--pre-vote',
      '--snapshot-count', '10000', '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '10000',
      '--quota-backend-bytes', String(2 * 1024 ** 3), '--max-txn-ops', '4096', '--max-request-bytes', String(8 * 1024 ** 2),
      '--logger', 'zap', '--log-outputs', 'stderr',
      ...(c.forceNewCluster ? ['--force-new-cluster'] : []),
    ]
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', etcd, ...args], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: ['ignore', 'ignore', 'pipe'] })
    const m = new EtcdMember(child, c)
    const log = c.log.child({ layer: 'etcd' })
    let ready!: () => void
    const listening = new Promise<void>(r => (ready = r))
    createInterface({ input: child.stderr! }).on('line', line => {
      const { msg, level, fields } = messageOf(line)
      m.reason ??= reasonOf(msg, fields)
      if (LISTENING.test(msg)) ready()
      if (level === 'error' || level === 'fatal' || level === 'panic' || level === 'warn') log.warn({ etcd: fields }, `etcd: ${msg}`)
      else log.debug({ etcd: fields }, `etcd: ${msg}`)
    })
    const timeout = opts.readyTimeoutMs ?? 30_000
    const outcome = await Promise.race([
      listening.then(() => 'ready' as const),
      m.exited.then(e => e),
      new Promise<'timeout'>(r => setTimeout(() => r('timeout'), timeout).unref()),
    ])
    if (outcome === 'ready') {
      log.info({ name: c.name, client, peer, state: c.state }, 'etcd member serving')
      return m
    }
    if (outcome === 'timeout') {
      await m.stop()
      throw new EtcdError('E_ETCD_START', `etcd did not serve clients within ${timeout} ms`)
    }
    throw new EtcdError('E_ETCD_START', `etcd exited (${outcome.code ?? outcome.signal})${outcome.reason ? `: ${outcome.reason}` : ''}`)
  }

  /** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone (its ports and data dir free). */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(t)
  }
}

export const peerUrl = (ip: string, port: number): string => `https://${ip}:${port}`

/**
 * A member removed from its cluster must never start again on its old data
 * (etcd would exit at once, or worse rejoin a cluster it forked from): its
 * data dir is moved aside, kept for the operator.
 */
export function moveAside(dataDir: string): string | undefined {
  if (!existsSync(dataDir)) return undefined
  const to = `${dataDir}.old-${new Date().toISOString().replace(/[:.]/g, '-')}`
  renameSync(dataDir, to)
  return to
}
