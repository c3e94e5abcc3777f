import type { Etcd3, Lease } from 'etcd3'
import type { Logger } from 'pino'
import type { Fence } from './etcd-store.js'
import { ROOT } from './etcd-store.js'

/** The leader's key; its value is the leader's node ID, its lease the leader's life. */
export const LEADER_KEY = `${ROOT}leader`

export interface ElectionEvents {
  /** This manager won: `fence` is its token, what its leader-only writes are fenced by. */
  elected(fence: Fence): void
  /** This manager is no longer the leader (it resigned, or could not keep its lease alive). */
  deposed(): void
  /** Who leads changed (undefined: nobody now). */
  leaderChanged(nodeId: string | undefined): void
}

/**
 * The swarmd leader, elected through etcd: the leader key is created in a
 * transaction only where it is absent, under a lease of `ttlS` seconds that
 * the leader keeps alive. The leader steps down on a local deadline (the
 * last acknowledged keep-alive plus the TTL, less half a second), not when
 * etcd3 reports the lease lost, which it may do up to two TTLs late: a
 * leader never believes it leads after etcd may have given the key to
 * another. Its writes are fenced by the key's create revision besides.
 */
export class Election {
  private lease: Lease | undefined
  private fence: Fence | undefined
  private holder: string | undefined
  private closed = false
  private lastAck = 0
  private deadline: NodeJS.Timeout | undefined
  private watcher: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | undefined
  private wake: (() => void) | undefined
  /** Something happened the loop must look at (the key went, this manager stepped down), even if it was not waiting yet. */
  private poked = false
  /** After resigning, this manager leaves the others a head start before it campaigns again. */
  private holdOffUntil = 0
  private loop: Promise<void> | undefined

  private watchdog: NodeJS.Timeout | undefined
  private goneFor = 0

  constructor(
    private readonly d: {
      client: Etcd3
      nodeId: string
      ttlS: number
      log: Logger
      on: ElectionEvents
      /**
       * Whether the leader's host is gone (its etcd member refuses
       * connections): a follower that sees it twice, half a second apart,
       * revokes the dead leader's lease instead of waiting for it to expire.
       */
      leaderGone?: (nodeId: string) => Promise<boolean>
    },
  ) {}

  /** The node ID of the current leader, as this manager last saw it. */
  get leader(): string | undefined {
    return this.holder
  }

  get isLeader(): boolean {
    return this.fence !== undefined
  }

  async start(): Promise<void> {
    const w = await this.d.client.watch().key(LEADER_KEY).create()
    this.watcher = w
    w.on('put', kv => this.setHolder(kv.value.toString()))
    w.on('delete', () => {
      this.setHolder(undefined)
      this.poke()
    })
    const cur = await this.d.client.get(LEADER_KEY).string()
    this.setHolder(cur ?? undefined)
    this.loop = this.run()
    if (this.d.leaderGone) {
      this.watchdog = setInterval(() => void this.checkLeader().catch(e => this.d.log.debug({ err: e }, 'leader check failed')), 500)
      this.watchdog.unref()
    }
  }

  /**
   * A dead leader's lease outlives it by its TTL, and by the TTL again
   * when etcd's leader died with it (a new etcd leader renews every lease):
   * 4-5 s with a 2 s TTL. Its host refusing connections says it is gone
   * sooner; revoking its lease then is safe, since every leader-only write
   * is fenced by the leader key it created.
   */
  private async checkLeader(): Promise<void> {
    const holder = this.holder
    if (!holder || holder === this.d.nodeId || this.fence) return void (this.goneFor = 0)
    this.goneFor = (await this.d.leaderGone!(holder)) ? this.goneFor + 1 : 0
    if (this.goneFor < 2) return
    this.goneFor = 0
    const r = await this.d.client.kv.range({ key: Buffer.from(LEADER_KEY) })
    const kv = r.kvs[0]
    if (!kv || kv.value.toString() !== holder || kv.lease === '0') return
    this.d.log.warn({ leader: holder }, "the leader's host is gone: revoking its lease")
    await this.d.client.leaseClient.leaseRevoke({ ID: kv.lease }).catch(e => this.d.log.info({ err: e }, 'revoking the dead leader\'s lease failed'))
  }

  private setHolder(id: string | undefined): void {
    if (this.holder === id) return
    this.holder = id
    this.d.on.leaderChanged(id)
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        await this.campaign()
      } catch (e) {
        this.d.log.info({ err: e }, 'leader election: etcd did not answer')
        await this.stepDown()
        await new Promise(r => setTimeout(r, 500).unref())
        continue
      }
      // Wait for the leader key to go (a follower), or for this manager to step down (the leader).
      if (!this.poked) await new Promise<void>(r => (this.wake = r))
      this.poked = false
      this.wake = undefined
    }
  }

  private async campaign(): Promise<void> {
    if (this.fence || this.closed) return
    const wait = this.holdOffUntil - Date.now()
    if (wait > 0) await new Promise(r => setTimeout(r, wait).unref())
    if (this.closed || (this.holder && this.holder !== this.d.nodeId)) return
    const lease = this.d.client.lease(this.d.ttlS, { autoKeepAlive: true })
    this.lease = lease
    const id = await lease.grant()
    lease.on('keepaliveSucceeded', () => (this.lastAck = Date.now()))
    lease.on('lost', () => void this.stepDown())
    this.lastAck = Date.now()
    const r = await this.d.client.kv.txn({
      compare: [{ key: Buffer.from(LEADER_KEY), target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key: Buffer.from(LEADER_KEY), value: Buffer.from(this.d.nodeId), lease: id } }],
      failure: [],
    })
    if (!r.succeeded) {
      lease.release()
      await lease.revoke().catch(() => undefined)
      this.lease = undefined
      return
    }
    this.fence = { key: LEADER_KEY, revision: r.header.revision }
    this.deadline = setInterval(() => {
      if (Date.now() > this.lastAck + this.d.ttlS * 1000 - 500) {
        this.d.log.warn('leader: the lease was not renewed in time, stepping down')
        void this.stepDown()
      }
    }, 100)
    this.d.log.info({ fence: this.fence.revision }, 'elected leader')
    this.d.on.elected(this.fence)
  }

  private async stepDown(): Promise<void> {
    if (this.deadline) clearInterval(this.deadline)
    this.deadline = undefined
    const wasLeader = this.fence !== undefined
    this.fence = undefined
    const lease = this.lease
    this.lease = undefined
    if (lease) {
      lease.release()
      await lease.revoke().catch(() => undefined)
    }
    if (wasLeader) this.d.on.deposed()
    this.poke()
  }

  private poke(): void {
    this.poked = true
    this.wake?.()
  }

  /** Gives the leadership up at once (the leader key goes with its lease), so another manager takes over without waiting for the TTL. */
  async resign(): Promise<void> {
    this.holdOffUntil = Date.now() + this.d.ttlS * 1000
    await this.stepDown()
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.watchdog) clearInterval(this.watchdog)
    await this.stepDown()
    this.poke()
    await this.watcher?.cancel().catch(() => undefined)
    await this.loop
  }
}
