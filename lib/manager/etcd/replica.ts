import type { Etcd3 } from 'etcd3'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT } from '../../types/defaults.js'
import type { CommitObserver } from '../commit-timing.js'
import type { SecretBox } from '../secret-box.js'
import { etcdClient } from './client.js'
import { EtcdStore } from './etcd-store.js'
import { EtcdMember, moveAside } from './member.js'
import { EtcdMembers, type Member } from './members.js'

/** What a manager keeps locally of its etcd member (table `ha` of its own store): enough to start it again. */
export interface HaRecord {
  /** The member's name: the manager's node ID. */
  name: string
  ip: string
  /** The swarm's cluster ID. */
  token: string
  initialCluster: string
  state: 'new' | 'existing'
  /** The managers' etcd CA and this member's certificate; the key sealed under the data key. */
  tls: { ca: string; cert: string; keySealed: string }
}

/** How often a manager asks its member whether etcd has a leader, and refreshes the member list. */
const WATCHDOG_MS = 500
/** Consecutive answers without a leader before writes fail at once. */
const NO_LEADER_AFTER = 3

/**
 * A manager's share of the replicated state: its etcd member, supervised;
 * a client of it; the state in memory (EtcdStore); the membership; and a
 * watchdog that asks the member every half second whether etcd has a
 * leader, so that writes without a quorum fail at once with swarm's text
 * rather than after etcd's own 7 s, and that keeps the member list the
 * manager statuses are read from.
 */
export class Replica {
  private timer: NodeJS.Timeout | undefined
  private noLeaderCount = 0
  private cached: Member[] = []
  private lastOk = Date.now()
  /** Clients of the other members, for memberGone. */
  private readonly probes = new Map<string, Etcd3>()

  private constructor(
    readonly member: EtcdMember,
    readonly client: Etcd3,
    readonly store: EtcdStore,
    readonly members: EtcdMembers,
    private readonly tls: { ca: string; cert: string; key: string },
    private readonly log: Logger,
  ) {}

  static async open(o: { record: HaRecord; dataDir: string; box: SecretBox; log: Logger; forceNewCluster?: boolean; onCommit?: CommitObserver }): Promise<Replica> {
    const r = o.record
    const tls = { ca: r.tls.ca, cert: r.tls.cert, key: o.box.open(r.tls.keySealed).toString() }
    const member = await EtcdMember.start({
      dataDir: etcdDataDir(o.dataDir),
      name: r.name,
      ip: r.ip,
      clientPort: ETCD_CLIENT_PORT,
      peerPort: ETCD_PEER_PORT,
      initialCluster: r.initialCluster,
      state: r.state,
      token: r.token,
      tls,
      ...(o.forceNewCluster ? { forceNewCluster: true } : {}),
      log: o.log,
    })
    const client = etcdClient({ url: member.clientUrl, tls })
    try {
      const store = await EtcdStore.open(client, o.log.child({ layer: 'state' }), o.onCommit)
      const rep = new Replica(member, client, store, new EtcdMembers(client, tls, o.log), tls, o.log)
      await rep.check()
      rep.timer = setInterval(() => void rep.check(), WATCHDOG_MS)
      rep.timer.unref()
      return rep
    } catch (e) {
      client.close()
      await member.stop()
      throw e
    }
  }

  private async check(): Promise<void> {
    try {
      const s = await this.client.maintenance.status({ deadline: Date.now() + 1_000 })
      this.noLeaderCount = s.leader === '0' ? this.noLeaderCount + 1 : 0
      if (s.leader !== '0') {
        this.lastOk = Date.now()
        this.cached = await this.members.list()
      }
    } catch {
      this.noLeaderCount++
    }
    const lost = this.noLeaderCount >= NO_LEADER_AFTER
    if (lost !== this.store.noLeader) this.log.warn({ quorum: !lost }, lost ? 'etcd has no leader: writes are refused' : 'etcd has a leader again')
    this.store.noLeader = lost
  }

  /** Whether etcd has a leader (a quorum of members), as the watchdog last saw. */
  get quorum(): boolean {
    return !this.store.noLeader
  }

  /** The members as the watchdog last listed them (while etcd had a leader). */
  memberList(): Member[] {
    return this.cached
  }

  /**
   * Whether a member's host is gone: its client port refuses or does not
   * answer within 400 ms. (A member that answers at all is taken for alive.)
   */
  async memberGone(name: string): Promise<boolean> {
    const m = this.cached.find(x => x.name === name)
    if (!m?.clientUrl) return false
    let c = this.probes.get(m.clientUrl)
    if (!c) this.probes.set(m.clientUrl, (c = etcdClient({ url: m.clientUrl, tls: this.tls })))
    try {
      await c.maintenance.status({ deadline: Date.now() + 400 })
      return false
    } catch {
      return true
    }
  }

  /** Milliseconds since etcd last answered with a leader. */
  get sinceQuorum(): number {
    return Date.now() - this.lastOk
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    for (const c of this.probes.values()) c.close()
    await this.store.close()
    this.client.close()
    await this.member.stop()
  }
}

export const etcdDataDir = (dataDir: string): string => join(dataDir, 'etcd')

/** A member this manager no longer is (demoted, left, removed): its data goes aside, never to be started again. */
export function retireMember(dataDir: string, log: Logger): void {
  const to = moveAside(etcdDataDir(dataDir))
  if (to) log.info({ to }, "etcd: this manager's member data moved aside")
}
