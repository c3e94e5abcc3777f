import type { Logger } from 'pino'
import { needsRenewal, type NodeCertificate } from '../control/ca.js'
import { callRpc } from '../control/rpc.js'
import { every, type Clock } from '../gossip/clock.js'
import type { CheckInAnswer } from '../types/session.js'
import type { ManagerLink } from './manager-link.js'


/**
 * A worker's check-in with its manager (swarmkit's agent heartbeat): every
 * period the manager asked for, it renews its certificate once two thirds of
 * its life are gone, then checks in; the answer carries the swarm's current
 * gossip keys and the period to keep.
 */
export class CheckIn {
  private periodMs = 1_000
  private stop: (() => void) | undefined

  constructor(
    private readonly d: ManagerLink & {
      /** A renewed certificate, to keep (write-ahead) before it is used. */
      renewed: (cert: NodeCertificate) => Promise<void>
      /** The manager's answer. */
      answered: (a: CheckInAnswer) => Promise<void>
      clock: Clock
      log: Logger
    },
  ) {}

  async once(): Promise<void> {
    const { control, caPublicKey } = this.d
    const to = this.d.manager()
    if (needsRenewal(this.d.cert().body, Date.now())) {
      const cert = await callRpc<NodeCertificate>(control, to, this.d.cert(), caPublicKey, 'renew')
      await this.d.renewed(cert)
      this.d.log.info({ notAfter: new Date(cert.body.notAfter).toISOString() }, 'certificate renewed')
    }
    let a: CheckInAnswer
    try {
      a = await callRpc<CheckInAnswer>(control, to, this.d.cert(), caPublicKey, 'heartbeat')
    } catch (e) {
      this.d.failed()
      throw e
    }
    if (Number.isFinite(a.periodMs) && a.periodMs >= 100) this.periodMs = a.periodMs
    await this.d.answered(a)
  }

  start(): void {
    this.stop ??= every(this.d.clock, () => this.periodMs, () => this.once(), e => this.d.log.info({ err: e }, 'check-in with the manager failed'))
  }

  close(): void {
    this.stop?.()
    this.stop = undefined
  }
}
