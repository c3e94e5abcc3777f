import { type Command, InvalidArgumentError } from 'commander'
import type { ApiClient } from '../api/client.js'
import { parseDuration } from './daemon.js'
import type { InfoObj, NodeObj } from './node-commands.js'
import { out } from './service-commands.js'
import { CONTROL_PORT } from '../types/defaults.js'

/** swarmctl swarm: init, join, join-token, leave, with docker's output. */

interface SwarmObj {
  Version: { Index: number }
  Spec: unknown
  JoinTokens: { Worker: string; Manager: string }
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
    .command('leave')
    .description('Leave the swarm')
    .option('-f, --force', 'force this node to leave the swarm, ignoring warnings')
    .action(async (o: { force?: boolean }) => {
      await client().call('POST', `/swarm/leave?force=${o.force ? 'true' : 'false'}`)
      out('Node left the swarm.\n')
    })

}
