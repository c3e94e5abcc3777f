/** One change to the state. Values must survive JSON. */
export type Mutation = { op: 'put'; table: string; id: string; value: unknown } | { op: 'delete'; table: string; id: string }

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

/**
 * A row changed: its table and ID, what it held before and what it holds
 * now (undefined: absent). After etcd's watch broke and the state was listed
 * again, one call with `'*'` for both stands for every row.
 */
export type ChangeListener = (table: string, id: string, before?: unknown, after?: unknown) => void

/** A state whose changes can be watched: every commit of the write-ahead store; with etcd, every manager's, as its watch brings them. */
export interface WatchedState extends StateStore {
  onChange(l: ChangeListener): () => void
}
