import { Command, CommanderError } from 'commander'
import { VERSION } from '../version.js'
import { gossipCommand } from './gossip-agent.js'

/** swarmd: the daemon. Today it has one subcommand, the standalone gossip agent. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('swarmd')
    .description('swarmd: a Swarm-mode runtime (gossip membership, routing mesh, control plane)')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: s => process.stderr.write(s) })
  let code = 0
  program.addCommand(gossipCommand(c => (code = c)))
  try {
    await program.parseAsync(argv, { from: 'user' })
    if (argv.length === 0) program.outputHelp()
    return code
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2
    throw e
  }
}
