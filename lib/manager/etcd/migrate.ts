import type { Store, Mutation } from '../store.js'
import type { EtcdStore } from './etcd-store.js'

/** The swarm's tables: what moves into etcd. The other tables of a node's store are the node's own (its certificate, its data key, its worker or etcd record). */
export const REPLICATED_TABLES = ['cluster', 'nodes', 'services', 'tasks', 'secrets', 'networks', 'vips', 'attachments', 'configs'] as const

const BATCH = 500

/**
 * Copies the swarm's tables from a manager's own store into etcd (k3s's
 * migration from SQLite), in transactions of at most 500 rows, and checks
 * that etcd holds every row as it was. It may run again after a crash: a
 * row already there is overwritten with the same value.
 */
export async function copyState(from: Store, to: EtcdStore): Promise<number> {
  const rows: Mutation[] = REPLICATED_TABLES.flatMap(table => from.ids(table).map(id => ({ op: 'put' as const, table, id, value: from.get(table, id) })))
  for (let i = 0; i < rows.length; i += BATCH) await to.commit(rows.slice(i, i + BATCH))
  await to.sync()
  for (const m of rows) {
    if (m.op === 'put' && JSON.stringify(to.get(m.table, m.id)) !== JSON.stringify(m.value)) throw new Error(`etcd does not hold ${m.table}/${m.id} as copied`)
  }
  return rows.length
}

/** The mutations that drop the swarm's tables from a node's own store, once etcd holds them. */
export function dropReplicated(from: Store): Mutation[] {
  return REPLICATED_TABLES.flatMap(table => from.ids(table).map(id => ({ op: 'delete' as const, table, id })))
}
