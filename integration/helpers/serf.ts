/**
 * Debian's `serf` agent as a real memberlist peer. Never started with
 * `-discover` (that would start mDNS); peers are joined explicitly.
 */
import { runOk, spawnManaged, waitUntil, which, type ManagedProcess } from './procs.js'

function serfBinary(): string | undefined {
  return which('serf')
}

/** True when the `serf` binary is installed. */
export function serfAvailable(): boolean {
  return serfBinary() !== undefined
}

export interface SerfOptions {
  name: string
  /** host:port for gossip (TCP and UDP), e.g. '127.0.0.1:27920'. */
  bind: string
  /** RPC port, bound on the host of `bind`. */
  rpcPort: number
  /** Base64 key (serf documents 32 bytes; 16 also works). */
  key?: string
  /** Default 'local'. */
  profile?: 'local' | 'lan' | 'wan'
  tags?: Record<string, string>
  /** Passed as -log-level (default 'debug'). */
  logLevel?: string
  /** Default 15000. */
  readyTimeoutMs?: number
}

export interface SerfMember {
  name: string
  /** host:port */
  addr: string
  /** 'alive' | 'leaving' | 'left' | 'failed' */
  status: string
  port?: number
  tags?: Record<string, string>
  protocol?: { min: number; max: number; version: number }
}

export interface SerfAgent {
  readonly name: string
  /** Gossip host:port. */
  readonly addr: string
  readonly rpcAddr: string
  readonly pid: number
  readonly proc: ManagedProcess
  /** Make this agent join `addr` (host:port); resolves with serf's reply. */
  join(addr: string | readonly string[]): Promise<string>
  /** `serf members -format json`, every status. */
  members(): Promise<SerfMember[]>
  /** `serf leave`: graceful leave, after which the agent exits. */
  leave(): Promise<void>
  kill(signal?: NodeJS.Signals): void
  /** SIGTERM (no graceful leave: others see it failed), SIGKILL after 5 s. */
  stop(): Promise<void>
  /** Agent log so far. */
  logs(): string
}

export async function startSerf(opts: SerfOptions): Promise<SerfAgent> {
  const serf = serfBinary()
  if (!serf) throw new Error('serf is not installed; run scripts/setup.sh')
  const colon = opts.bind.lastIndexOf(':')
  if (colon <= 0) throw new Error(`bind must be host:port, got ${opts.bind}`)
  const host = opts.bind.slice(0, colon)
  const rpcAddr = `${host}:${opts.rpcPort}`
  const args = [
    'agent',
    '-node', opts.name,
    '-bind', opts.bind,
    '-rpc-addr', rpcAddr,
    '-profile', opts.profile ?? 'local',
    '-log-level', opts.logLevel ?? 'debug',
  ]
  if (opts.key) args.push('-encrypt', opts.key)
  for (const [k, v] of Object.entries(opts.tags ?? {})) args.push('-tag', `${k}=${v}`)

  const proc = spawnManaged(serf, args, { label: `serf ${opts.name}`, mergeStderr: true })
  const rpc = (sub: string, ...rest: string[]) => runOk(serf, [sub, '-rpc-addr', rpcAddr, ...rest], { timeoutMs: 15_000 })

  const exitedEarly = (): Error | undefined =>
    proc.exitStatus ? new Error(`serf ${opts.name} exited during start-up:\n${proc.stderrTail(2000)}`) : undefined
  try {
    // Check that the agent answering is ours (not another one on rpcPort).
    const isSelf = (m: SerfMember): boolean => m.name === opts.name && m.addr === opts.bind
    await waitUntil(async () => parseMembers((await rpc('members', '-format', 'json')).stdout).some(isSelf), {
      timeoutMs: opts.readyTimeoutMs ?? 15_000,
      intervalMs: 100,
      what: `serf ${opts.name} RPC on ${rpcAddr}`,
      giveUp: exitedEarly,
    })
  } catch (err) {
    await proc.stop({ signal: 'SIGKILL' })
    throw err
  }

  return {
    name: opts.name,
    addr: opts.bind,
    rpcAddr,
    pid: proc.pid,
    proc,
    async join(addr) {
      const list = typeof addr === 'string' ? [addr] : [...addr]
      return (await rpc('join', ...list)).stdout.trim()
    },
    async members() {
      return parseMembers((await rpc('members', '-format', 'json')).stdout)
    },
    async leave() {
      await rpc('leave')
      await proc.stop({ signal: null, graceMs: 10_000 })
    },
    kill(signal = 'SIGTERM') {
      proc.kill(signal)
    },
    async stop() {
      await proc.stop({ signal: 'SIGTERM', graceMs: 5000 })
    },
    logs() {
      return proc.lines.join('\n')
    },
  }
}

function parseMembers(json: string): SerfMember[] {
  const parsed = JSON.parse(json) as { members?: SerfMember[] }
  return parsed.members ?? []
}
