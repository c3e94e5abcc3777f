import { Command, CommanderError } from 'commander'
import { VERSION } from '../version.js'

/**
 * swarmctl: the operator CLI. The swarm, node and service commands arrive
 * with the daemon's local API; today it only reports its version.
 */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('swarmctl').description('Control a swarmd cluster').version(VERSION).exitOverride()
  try {
    await program.parseAsync(argv, { from: 'user' })
    if (argv.length === 0) program.outputHelp()
    return 0
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2
    throw e
  }
}
