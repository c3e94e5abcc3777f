import { Command, CommanderError } from 'commander'
import { ApiClient } from '../api/client.js'
import { SwarmdError } from '../types/errors.js'
import { ApiError } from '../api/api-error.js'
import { VERSION } from '../types/version.js'
import { exitQuietlyOnEpipe } from './epipe.js'
import { defaultSocket, socketPath } from './daemon.js'
import { addEventsCommand } from './events-command.js'
import { addNetworkCommands } from './network-commands.js'
import { addConfigCommands } from './config-commands.js'
import { addSecretCommands } from './secret-commands.js'
import { addServiceCommands } from './service-commands.js'
import { addStackCommands } from './stack-commands.js'
import { addSwarmCommands } from './swarm-commands.js'
import { addNodeCommands } from './node-commands.js'

/**
 * swarmctl: docker's swarm and node commands, output and errors, against
 * swarmd's local API (`-H` or SWARMD_HOST choose the daemon).
 */
export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnEpipe()
  const program = new Command('swarmctl')
    .description('Control a swarmd cluster (docker swarm / node commands)')
    .version(VERSION)
    .exitOverride()
    .option('-H, --host <unix://path>', 'daemon socket', process.env.SWARMD_HOST ?? `unix://${defaultSocket()}`)
  const client = (): ApiClient => new ApiClient(socketPath(program.opts<{ host: string }>().host))

  addSwarmCommands(program, client)
  addNodeCommands(program, client)
  addServiceCommands(program, client)
  addSecretCommands(program, client)
  addConfigCommands(program, client)
  addNetworkCommands(program, client)
  addStackCommands(program, client)
  addEventsCommand(program, client)
  try {
    await program.parseAsync(argv, { from: 'user' })
    if (argv.length === 0) program.outputHelp()
    return 0
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2
    if (e instanceof ApiError) {
      process.stderr.write(`Error response from daemon: ${e.message}\n`)
      return 1
    }
    if (e instanceof SwarmdError) {
      process.stderr.write(`${e.message}\n`)
      return 1
    }
    throw e
  }
}
