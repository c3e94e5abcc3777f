import type { Logger } from 'pino'
import { openSession, type Session } from '../control/session.js'
import type { Agent } from './agent.js'
import type { ManagerLink } from './manager-link.js'

/** How long a worker waits before opening its session again after it dropped. */
const RECONNECT_MS = 1_000

/**
 * A worker's session with its manager (swarmkit's agent session): the
 * agent's messages go up and its assignments come down over it, and it is
 * opened again whenever it drops, until closed.
 */
export class WorkerSession {
  private session: Session | undefined
  private closed = false
  private loop: Promise<void> | undefined

  constructor(
    private readonly d: ManagerLink & {
      agent: Agent
      log: Logger
    },
  ) {}

  start(): void {
    this.loop ??= this.run()
  }

  private async run(): Promise<void> {
    const { agent } = this.d
    while (!this.closed) {
      try {
        const s = await openSession(this.d.control, this.d.manager(), this.d.cert(), this.d.caPublicKey, msg => agent.receive(msg))
        if (this.closed) {
          await s.close()
          return
        }
        this.session = s
        agent.connect(msg => s.send(msg))
        this.d.log.info('session with the manager open')
        await s.closed
        // Only the session that connected the agent disconnects it (the node may have connected it elsewhere since).
        if (!this.closed) agent.disconnect()
      } catch (e) {
        this.d.log.info({ err: e }, 'no session with the manager yet')
        this.d.failed()
      }
      this.session = undefined
      if (!this.closed) await new Promise(r => setTimeout(r, RECONNECT_MS).unref())
    }
  }

  async close(): Promise<void> {
    this.closed = true
    await this.session?.close()
  }
}
