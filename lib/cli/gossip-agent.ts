import { networkInterfaces, hostname } from 'node:os'
import { isIP } from 'node:net'
import { Command, InvalidArgumentError, Option } from 'commander'
import { pino } from 'pino'
import { type Profile, profiles } from '../gossip/config.js'
import { SerfIntents } from '../gossip/serf-intents.js'
import { Membership, type MemberEvent, parseHostPort } from '../gossip/membership.js'
import type { Address } from '../gossip/transport.js'
import { GOSSIP_PORT } from '../types/defaults.js'

/** Parsed `swarmd gossip` flags. */
export interface GossipAgentFlags {
  name: string
  bind: Address
  advertise: Address | undefined
  join: string[]
  keys: Buffer[]
  label: string | undefined
  profile: Profile
  delegateVersions: [number, number, number]
  meta: Buffer
  lifeguard: boolean
  logLevel: string
}

function parseAddr(flag: string, defaultPort: number) {
  return (value: string): Address => {
    let a: Address
    try {
      a = parseHostPort(value, defaultPort)
    } catch {
      throw new InvalidArgumentError(`${flag} wants IP:PORT, got "${value}"`)
    }
    if (!isIP(a.ip)) throw new InvalidArgumentError(`${flag} wants an IP address, got "${a.ip}"`)
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new InvalidArgumentError(`${flag}: port must be 0..65535`)
    return a
  }
}

function parseKey(value: string, prev: Buffer[] = []): Buffer[] {
  const k = Buffer.from(value, 'base64')
  if (k.toString('base64') !== value.replace(/\s/g, '') || ![16, 24, 32].includes(k.length)) {
    throw new InvalidArgumentError(`--key wants base64 of 16, 24 or 32 bytes (AES-128/192/256), got ${k.length} bytes`)
  }
  return [...prev, k]
}

function parseVersions(value: string): [number, number, number] {
  const parts = value.split(',').map(Number)
  if (parts.length !== 3 || parts.some(p => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new InvalidArgumentError(`--delegate-versions wants MIN,MAX,CUR (0..255 each), got "${value}"`)
  }
  const [min, max, cur] = parts as [number, number, number]
  if (min > max || cur < min || cur > max) throw new InvalidArgumentError(`--delegate-versions: need MIN <= CUR <= MAX, got "${value}"`)
  return [min, max, cur]
}

/** The first private IPv4 address, as memberlist picks one when bound to 0.0.0.0. */
function defaultAdvertiseIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return '127.0.0.1'
}

/** One JSON line per membership change, as the issue and `serf monitor` users expect. */
export function eventLine(e: MemberEvent): string {
  return JSON.stringify({
    event: e.type,
    node: e.member.name,
    addr: `${e.member.addr}:${e.member.port}`,
    incarnation: e.member.incarnation,
    ts: Date.now(),
  })
}

/** `swarmd gossip`: a standalone membership agent, like `serf agent`. */
export function gossipCommand(setExit: (code: number) => void): Command {
  return new Command('gossip')
    .exitOverride()
    .description('Run a standalone gossip membership agent (memberlist / serf compatible); prints one JSON line per membership change')
    .option('--name <name>', 'unique node name', hostname())
    .option('--bind <ip:port>', 'address to listen on (UDP and TCP)', parseAddr('--bind', GOSSIP_PORT), { ip: '0.0.0.0', port: GOSSIP_PORT })
    .option('--advertise <ip:port>', 'address the others dial (default: the bind address, or a private IP when bound to 0.0.0.0)', parseAddr('--advertise', GOSSIP_PORT))
    .option('--join <addr>', 'join through this member (repeatable)', (v: string, p: string[]) => [...p, v], [] as string[])
    .option('--key <base64>', 'AES-GCM gossip key, 16/24/32 bytes (repeatable; the first is primary)', parseKey)
    .option('--label <label>', 'cluster label (memberlist >= 0.3); both sides must match')
    .addOption(new Option('--profile <profile>', 'timing profile').choices(Object.keys(profiles)).default('lan'))
    .option('--delegate-versions <min,max,cur>', 'application protocol versions (serf needs e.g. 2,5,4)', parseVersions, [0, 0, 0])
    .option('--meta <text>', 'node meta (at most 512 bytes)', '')
    .option('--no-lifeguard', 'plain SWIM: no health awareness, no nacks, a fixed suspicion timeout')
    .addOption(new Option('--log-level <level>', 'log level on stderr').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('warn'))
    .action(async (o: Record<string, unknown>) => {
      const flags: GossipAgentFlags = {
        name: o.name as string,
        bind: o.bind as Address,
        advertise: o.advertise as Address | undefined,
        join: o.join as string[],
        keys: (o.key as Buffer[] | undefined) ?? [],
        label: o.label as string | undefined,
        profile: o.profile as Profile,
        delegateVersions: o.delegateVersions as [number, number, number],
        meta: Buffer.from(o.meta as string),
        lifeguard: o.lifeguard as boolean,
        logLevel: o.logLevel as string,
      }
      setExit(await runGossipAgent(flags))
    })
}

export async function runGossipAgent(f: GossipAgentFlags): Promise<number> {
  const log = pino({ level: f.logLevel }, pino.destination(2))
  const unspecified = f.bind.ip === '0.0.0.0' || f.bind.ip === '::'
  const advertise = f.advertise ?? (unspecified ? { ip: defaultAdvertiseIp(), port: f.bind.port } : undefined)
  let m: Membership
  try {
    m = await Membership.create({
      name: f.name,
      bind: f.bind,
      ...(advertise ? { advertise } : {}),
      profile: f.profile,
      keys: f.keys,
      ...(f.label ? { label: f.label } : {}),
      delegateVersions: f.delegateVersions,
      meta: f.meta,
      lifeguard: f.lifeguard,
      logger: log,
      onEvent: e => process.stdout.write(eventLine(e) + '\n'),
    })
  } catch (e) {
    process.stderr.write(`swarmd gossip: ${(e as Error).message}\n`)
    return 1
  }
  log.info({ name: f.name, addr: m.address }, 'gossip agent started')
  // Serf shows a graceful leave as "left" only after its own leave intent.
  const serf = f.delegateVersions[2] >= 2 ? new SerfIntents() : undefined
  if (serf) m.on('message', (msg: Buffer) => serf.witness(msg))
  if (f.join.length > 0) {
    try {
      const n = await m.join(f.join)
      log.info({ joined: n }, 'joined')
    } catch (e) {
      process.stderr.write(`swarmd gossip: ${(e as Error).message}\n`)
      await m.shutdown()
      return 1
    }
  }
  const signal = await new Promise<string>(resolve => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  log.info({ signal }, 'leaving')
  if (serf) {
    // Gossiped with retransmits, and sent to each member directly, before memberlist's leave.
    const intent = serf.leave(f.name)
    m.broadcast(intent, 'serf-leave')
    const others = m.members().filter(x => x.name !== f.name)
    await Promise.allSettled(others.map(x => m.sendBestEffort({ ip: x.addr, port: x.port }, intent)))
    await new Promise(r => setTimeout(r, 500))
  }
  try {
    await m.leave(5_000)
  } catch (e) {
    log.warn({ err: e }, 'leave did not complete')
  }
  await m.shutdown()
  return 0
}
