import { Command, CommanderError } from 'commander'
import { VERSION } from '../types/version.js'
import { exitQuietlyOnEpipe } from './epipe.js'
import { addDaemonOptions, type DaemonFlags, runDaemon } from './daemon.js'
import { gossipCommand } from './gossip-agent.js'

/** swarmd: the daemon (its options on the root command) and the standalone gossip agent (`swarmd gossip`). */
export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnEpipe()
  let code = 0
  const program = addDaemonOptions(
    new Command('swarmd')
      .description('swarmd: a Swarm-mode runtime (gossip membership, routing mesh, control plane)')
      .version(VERSION)
      .exitOverride()
      .configureOutput({ writeErr: s => process.stderr.write(s) }),
  ).action(async (o: DaemonFlags) => {
    code = await runDaemon(o)
  })
  program.addCommand(gossipCommand(c => (code = c)))
  try {
    await program.parseAsync(argv, { from: 'user' })
    return code
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2
    throw e
  }
}
