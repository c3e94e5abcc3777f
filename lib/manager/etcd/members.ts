import type { Etcd3 } from 'etcd3'
import type { Logger } from 'pino'
import { SwarmError } from '../../types/errors.js'
import { etcdClient } from './client.js'

/** An etcd member as the managers see it. IDs are uint64 decimal strings (beyond 2^53): never numbers. */
export interface Member {
  id: string
  /** The manager's node ID (empty for a learner that has not started yet). */
  name: string
  peerUrl: string
  clientUrl: string | undefined
  learner: boolean
}

/** `name=peerUrl,...` for etcd's --initial-cluster. */
export const initialCluster = (members: { name: string; peerUrl: string }[]): string => members.map(m => `${m.name}=${m.peerUrl}`).join(',')

/**
 * The etcd cluster's membership, as swarm's manager operations map onto it
 * (reference/ha.md §3.5): a joining manager is added as a learner, one at a
 * time, and promoted to voter once it has caught up; a demoted or removed
 * one is removed, after the leadership moved away from it.
 */
export class EtcdMembers {
  constructor(
    private readonly client: Etcd3,
    private readonly tls: { ca: string; cert: string; key: string },
    private readonly log: Logger,
  ) {}

  async list(): Promise<Member[]> {
    const r = await this.client.cluster.memberList({}, { deadline: Date.now() + 3_000 })
    return r.members.map(m => ({ id: m.ID, name: m.name, peerUrl: m.peerURLs[0] ?? '', clientUrl: m.clientURLs[0], learner: !!m.isLearner }))
  }

  /**
   * Adds a learner at `peerUrl` (or finds the one already there) and returns
   * the cluster it joins, itself named `name`. etcd takes one learner at a
   * time, and no member at all until every voter has been connected for
   * 5 s: both are waited for, up to `waitMs`.
   */
  async addLearner(name: string, peerUrl: string, waitMs = 30_000): Promise<{ member: Member; cluster: Member[] }> {
    const until = Date.now() + waitMs
    for (;;) {
      let members = await this.list()
      let me = members.find(m => m.peerUrl === peerUrl)
      const other = members.find(m => m.learner && m.peerUrl !== peerUrl)
      try {
        if (!me) {
          if (other) throw new SwarmError('E_MANAGER_STARTING', `another manager is joining (${other.name || other.peerUrl}): try again once it has`)
          const r = await this.client.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true }, { deadline: Date.now() + 5_000 })
          this.log.info({ id: r.member.ID, peerUrl }, 'etcd: learner added')
          members = r.members.map(m => ({ id: m.ID, name: m.name, peerUrl: m.peerURLs[0] ?? '', clientUrl: m.clientURLs[0], learner: !!m.isLearner }))
          me = members.find(m => m.peerUrl === peerUrl)!
        }
        return { member: me, cluster: members.map(m => (m.id === me!.id ? { ...m, name } : m)) }
      } catch (e) {
        const busy = /unhealthy cluster|too many learner|another manager is joining/.test((e as Error).message)
        if (!busy || Date.now() > until) throw e
        await new Promise(r => setTimeout(r, 500))
      }
    }
  }

  /** Promotes a learner; etcd refuses until it has caught up with the leader, so the caller retries. */
  async promote(id: string): Promise<boolean> {
    try {
      await this.client.cluster.memberPromote({ ID: id }, { deadline: Date.now() + 3_000 })
      this.log.info({ id }, 'etcd: learner promoted')
      return true
    } catch (e) {
      this.log.debug({ err: e, id }, 'etcd: learner not promoted yet')
      return false
    }
  }

  /** Removes a member; when it leads etcd, the leadership moves to another voter first. */
  async remove(m: Member, members: Member[]): Promise<void> {
    const status = await this.statusOf(m).catch(() => undefined)
    if (status && status.leader === m.id) {
      const to = members.find(x => x.id !== m.id && !x.learner)
      if (to) await this.moveLeader(m, to).catch(e => this.log.info({ err: e }, 'etcd: moving the leadership failed; removing anyway'))
    }
    await this.client.cluster.memberRemove({ ID: m.id }, { deadline: Date.now() + 5_000 })
    this.log.info({ id: m.id, name: m.name }, 'etcd: member removed')
  }

  /** The status one member reports of itself (its view of who leads). */
  private async statusOf(m: Member): Promise<{ leader: string }> {
    if (!m.clientUrl) throw new SwarmError('E_INTERNAL', `member ${m.id} has no client address`)
    const c = etcdClient({ url: m.clientUrl, tls: this.tls })
    try {
      const s = await c.maintenance.status({ deadline: Date.now() + 1_000 })
      return { leader: s.leader }
    } finally {
      c.close()
    }
  }

  /** MoveLeader must be sent to the leader itself. */
  private async moveLeader(from: Member, to: Member): Promise<void> {
    const c = etcdClient({ url: from.clientUrl!, tls: this.tls })
    try {
      await c.maintenance.moveLeader({ targetID: to.id }, { deadline: Date.now() + 3_000 })
      this.log.info({ from: from.name, to: to.name }, 'etcd: leadership moved')
    } finally {
      c.close()
    }
  }
}
