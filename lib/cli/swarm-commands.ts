import { type Command, InvalidArgumentError } from 'commander'
import { SwarmdError } from '../types/errors.js'
import type { ApiClient } from '../api/client.js'
import { parseDuration } from './daemon.js'
import type { InfoObj, NodeObj } from './node-commands.js'
import { out } from './service-commands.js'
import { parseGoDuration } from './service-flags.js'
import { CONTROL_PORT } from '../types/defaults.js'

/** swarmctl swarm: init, join, join-token, leave, with docker's output. */

interface SwarmObj {
  Version: { Index: number }
  Spec: SwarmSpec
  JoinTokens: { Worker: string; Manager: string }
  TLSInfo?: { TrustRoot?: string }
}

interface SwarmSpec {
  Orchestration?: { TaskHistoryRetentionLimit?: number }
  Raft?: { SnapshotInterval?: number; KeepOldSnapshots?: number }
  Dispatcher?: { HeartbeatPeriod?: number }
  CAConfig?: { NodeCertExpiry?: number }
  EncryptionConfig?: { AutoLockManagers?: boolean }
}

/** docker's printUnlockCommand. */
const unlockCommand = (key: string): string =>
  'To unlock a swarm manager after it restarts, run the `swarmctl swarm unlock`\ncommand and provide the following key:\n\n' +
  `    ${key}\n\n` +
  'Remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n'

/** pflag's bool value: bare means true, else Go's strconv.ParseBool. */
function parseBool(v: string | boolean): boolean {
  if (v === true) return true
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(String(v))) return true
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(String(v))) return false
  throw new InvalidArgumentError(`strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`)
}

const parseInteger = (v: string): number => {
  const n = Number(v)
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`strconv.ParseInt: parsing ${JSON.stringify(v)}: invalid syntax`)
  return n
}

/** The key `swarm unlock` reads: the rest of a line on stdin (docker prompts for it on a terminal). */
async function readKey(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Enter unlock key: ')
  let data = ''
  for await (const chunk of process.stdin) {
    data += String(chunk)
    if (data.includes('\n')) break
  }
  return data.split('\n')[0]!.trim()
}


async function joinCommand(c: ApiClient, role: 'worker' | 'manager', quiet: boolean): Promise<void> {
  const swarm = await c.call<SwarmObj>('GET', '/swarm')
  const token = role === 'worker' ? swarm.JoinTokens.Worker : swarm.JoinTokens.Manager
  if (quiet) {
    out(token + '\n')
    return
  }
  const info = await c.call<InfoObj>('GET', '/info')
  const self = await c.call<NodeObj>('GET', `/nodes/${info.Swarm.NodeID}`)
  out(`To add a ${role} to this swarm, run the following command:\n\n    swarmctl swarm join --token ${token} ${self.ManagerStatus?.Addr ?? ''}\n\n`)
}

export function addSwarmCommands(program: Command, client: () => ApiClient): void {
  const swarm = program.command('swarm').description('Manage the swarm').exitOverride()
  swarm
    .command('init')
    .description('Initialize a swarm')
    .option('--advertise-addr <ip[:port]>', 'advertised address')
    .option('--listen-addr <ip[:port]>', 'listen address', `0.0.0.0:${CONTROL_PORT}`)
    .option('--cert-expiry <duration>', 'validity period for node certificates (e.g. 2160h)', parseDuration)
    .option('--data-path-port <port>', 'port for data traffic (VXLAN)', (v: string) => {
      const n = Number(v)
      if (!Number.isInteger(n)) throw new InvalidArgumentError(`invalid port "${v}"`)
      return n
    })
    .option('--force-new-cluster', 'force create a new cluster from current state')
    .action(async (o: { advertiseAddr?: string; listenAddr: string; dataPathPort?: number; certExpiry?: number; forceNewCluster?: boolean }) => {
      const c = client()
      const id = await c.call<string>('POST', '/swarm/init', {
        ...(o.forceNewCluster ? { ForceNewCluster: true } : {}),
        ListenAddr: o.listenAddr,
        AdvertiseAddr: o.advertiseAddr ?? '',
        DataPathPort: o.dataPathPort ?? 0,
        ...(o.certExpiry ? { Spec: { CAConfig: { NodeCertExpiry: o.certExpiry * 1e6 } } } : {}),
      })
      out(`Swarm initialized: current node (${id}) is now a manager.\n\n`)
      await joinCommand(c, 'worker', false)
      out(`To add a manager to this swarm, run 'swarmctl swarm join-token manager' and follow the instructions.\n\n`)
    })
  swarm
    .command('join')
    .description('Join a swarm as a node and/or manager')
    .argument('<host:port>', 'a manager')
    .requiredOption('--token <token>', 'token for entry into the swarm')
    .option('--advertise-addr <ip[:port]>', 'advertised address')
    .option('--listen-addr <ip[:port]>', 'listen address', `0.0.0.0:${CONTROL_PORT}`)
    .action(async (remote: string, o: { token: string; advertiseAddr?: string; listenAddr: string }) => {
      const c = client()
      await c.call('POST', '/swarm/join', { ListenAddr: o.listenAddr, AdvertiseAddr: o.advertiseAddr ?? '', RemoteAddrs: [remote], JoinToken: o.token })
      const info = await c.call<{ Swarm: { ControlAvailable: boolean } }>('GET', '/info')
      out(`This node joined a swarm as a ${info.Swarm.ControlAvailable ? 'manager' : 'worker'}.\n`)
    })
  swarm
    .command('join-token')
    .description('Manage join tokens')
    .argument('<role>', 'worker or manager')
    .option('-q, --quiet', 'only display the token')
    .option('--rotate', 'rotate the join token')
    .action(async (role: string, o: { quiet?: boolean; rotate?: boolean }) => {
      if (role !== 'worker' && role !== 'manager') return swarm.error(`unknown role ${role}`)
      const c = client()
      if (o.rotate) {
        const s = await c.call<SwarmObj>('GET', '/swarm')
        const flag = role === 'worker' ? 'rotateWorkerToken' : 'rotateManagerToken'
        await c.call('POST', `/swarm/update?version=${s.Version.Index}&${flag}=true`, s.Spec)
        if (!o.quiet) out(`Successfully rotated ${role} join token.\n\n`)
      }
      await joinCommand(c, role, !!o.quiet)
    })
  swarm
    .command('update')
    .description('Update the swarm')
    .option('--autolock [bool]', 'change manager autolocking setting (true|false)', parseBool)
    .option('--cert-expiry <duration>', 'validity period for node certificates (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--dispatcher-heartbeat <duration>', 'dispatcher heartbeat period (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--task-history-limit <int>', 'task history retention limit', parseInteger)
    .option('--max-snapshots <uint>', 'number of additional Raft snapshots to retain', parseInteger)
    .option('--snapshot-interval <uint>', 'number of log entries between Raft snapshots', parseInteger)
    .action(async (o: { autolock?: boolean; certExpiry?: number; dispatcherHeartbeat?: number; taskHistoryLimit?: number; maxSnapshots?: number; snapshotInterval?: number }) => {
      if (Object.values(o).every(v => v === undefined)) return swarm.commands.find(x => x.name() === 'update')!.help()
      const c = client()
      const s = await c.call<SwarmObj>('GET', '/swarm')
      const spec = s.Spec
      const before = !!spec.EncryptionConfig?.AutoLockManagers
      if (o.taskHistoryLimit !== undefined) spec.Orchestration = { ...spec.Orchestration, TaskHistoryRetentionLimit: o.taskHistoryLimit }
      if (o.dispatcherHeartbeat !== undefined) spec.Dispatcher = { ...spec.Dispatcher, HeartbeatPeriod: o.dispatcherHeartbeat }
      if (o.certExpiry !== undefined) spec.CAConfig = { ...spec.CAConfig, NodeCertExpiry: o.certExpiry }
      if (o.maxSnapshots !== undefined) spec.Raft = { ...spec.Raft, KeepOldSnapshots: o.maxSnapshots }
      if (o.snapshotInterval !== undefined) spec.Raft = { ...spec.Raft, SnapshotInterval: o.snapshotInterval }
      if (o.autolock !== undefined) spec.EncryptionConfig = { ...spec.EncryptionConfig, AutoLockManagers: o.autolock }
      await c.call('POST', `/swarm/update?version=${s.Version.Index}`, spec)
      out('Swarm updated.\n')
      if (o.autolock && !before) out(unlockCommand((await c.call<{ UnlockKey: string }>('GET', '/swarm/unlockkey')).UnlockKey))
    })
  swarm
    .command('ca')
    .description('Display the root CA')
    .action(async () => {
      const s = await client().call<SwarmObj>('GET', '/swarm')
      if (!s.TLSInfo?.TrustRoot) throw new SwarmdError('E_USAGE', 'No CA information available')
      out(s.TLSInfo.TrustRoot.trim() + '\n')
    })
  swarm
    .command('unlock-key')
    .description('Manage the unlock key')
    .option('--rotate', 'rotate unlock key')
    .option('-q, --quiet', 'only display the key')
    .action(async (o: { rotate?: boolean; quiet?: boolean }) => {
      const c = client()
      if (o.rotate) {
        const s = await c.call<SwarmObj>('GET', '/swarm')
        if (!s.Spec.EncryptionConfig?.AutoLockManagers) throw new SwarmdError('E_USAGE', 'cannot rotate because autolock is not turned on')
        await c.call('POST', `/swarm/update?version=${s.Version.Index}&rotateManagerUnlockKey=true`, s.Spec)
        if (!o.quiet) out('Successfully rotated manager unlock key.\n')
      }
      const { UnlockKey } = await c.call<{ UnlockKey: string }>('GET', '/swarm/unlockkey')
      if (!UnlockKey) throw new SwarmdError('E_USAGE', 'no unlock key is set')
      out(o.quiet ? `${UnlockKey}\n` : unlockCommand(UnlockKey))
    })
  swarm
    .command('unlock')
    .description('Unlock swarm (the key is read from stdin)')
    .action(async () => {
      const c = client()
      const info = await c.call<InfoObj>('GET', '/info')
      if (info.Swarm.LocalNodeState === 'inactive') throw new SwarmdError('E_USAGE', 'Error: This node is not part of a swarm')
      if (info.Swarm.LocalNodeState !== 'locked') throw new SwarmdError('E_USAGE', 'Error: swarm is not locked')
      await c.call('POST', '/swarm/unlock', { UnlockKey: await readKey() })
    })
  swarm
    .command('leave')
    .description('Leave the swarm')
    .option('-f, --force', 'force this node to leave the swarm, ignoring warnings')
    .action(async (o: { force?: boolean }) => {
      await client().call('POST', `/swarm/leave?force=${o.force ? 'true' : 'false'}`)
      out('Node left the swarm.\n')
    })

}
