import type { Mutation } from './store.js'

/**
 * The swarm's state as the manager's parts read and write it: tables of
 * JSON objects by ID, read from memory, written by atomic commits that
 * resolve once durable. One manager keeps it in its write-ahead log
 * (store.ts); several keep it in etcd (etcd/etcd-store.ts), where a commit
 * also fails with "update out of sequence" when another manager wrote one
 * of its keys first.
 */
export interface StateStore {
  get<T>(table: string, id: string): T | undefined
  ids(table: string): string[]
  list<T>(table: string): T[]
  commit(mutations: Mutation[]): Promise<number>
}
