import { type Constraint, labelReader, matches } from './constraint.js'
import type { Reservations, SchedNode } from './sched-node.js'

/**
 * Task placement with swarmkit's semantics (manager/scheduler): the filter
 * pipeline, the spread strategy and spread placement preferences. Pure: the
 * caller feeds it nodes and task placements from the store and writes its
 * decisions back.
 *
 * Spread places each task on the node with the fewest tasks of the service,
 * then the fewest tasks in total. Placing a task raises both counts by one, so
 * a node's "other tasks" count is fixed during a batch and the greedy order is
 * (service count, other tasks, node id). A batch of identical tasks is
 * therefore a water-filling problem over nodes whose capacity for the batch
 * (resources, host ports, max replicas) is known up front: it is solved in
 * O(nodes · log tasks) plus O(tasks) to record the placements, instead of a
 * heap operation per task. Placement preferences apply the same water-filling
 * to the label values at each level, as swarmkit's decision tree does.
 */

export interface HostPort {
  protocol: 'tcp' | 'udp' | 'sctp'
  port: number
}

/** What the filters and the strategy need to know about a task. */
export interface TaskGroupSpec {
  serviceId: string
  constraints: readonly Constraint[]
  /** Spread descriptors, outermost first: 'node.labels.zone', 'engine.labels.rack'. */
  preferences: readonly string[]
  reservations: Reservations
  /** Ports published in host mode. */
  hostPorts: readonly HostPort[]
  /** Per-node limit on tasks of the service; 0 = none. */
  maxReplicas: number
  /** Nodes ranked last, e.g. those with repeated recent failures of this service. */
  avoidNodes?: ReadonlySet<string>
}

/** N identical tasks of one service; task ids are unique. */
export interface Batch extends TaskGroupSpec {
  taskIds: readonly string[]
}

/** A task that holds a node's resources and counts towards its load. */
export interface PlacedTask {
  id: string
  nodeId: string
  serviceId: string
  reservations?: Reservations
  hostPorts?: readonly HostPort[]
}

export interface ScheduleResult {
  /** Node per task, aligned with Batch.taskIds; undefined = not placed. */
  readonly nodeIds: (string | undefined)[]
  readonly placed: number
  /** Task status Err of unplaced tasks: `no suitable node (...)`. */
  readonly error: string | undefined
}

// Filters in pipeline order; a failure is reported as the negative code.
const READY = 1
const RESOURCES = 2
const CONSTRAINTS = 3
const HOST_PORT = 4
const MAX_REPLICAS = 5

const plural = (what: string, n: number): string => (n === 1 ? `${what} 1 node` : `${what} ${n} nodes`)
const EXPLAIN: Record<number, (n: number) => string> = {
  [READY]: (n) => (n === 1 ? '1 node not available for new tasks' : `${n} nodes not available for new tasks`),
  [RESOURCES]: (n) => plural('insufficient resources on', n),
  [CONSTRAINTS]: (n) => plural('scheduling constraints not satisfied on', n),
  [HOST_PORT]: (n) => plural('host-mode port already in use on', n),
  [MAX_REPLICAS]: () => 'max replicas per node limit exceed',
}

const PROTOCOLS = { tcp: 0, udp: 1, sctp: 2 } as const

interface NodeState {
  /** Undefined while tasks are still accounted to a node that was removed. */
  info: SchedNode | undefined
  total: number
  byService: Map<string, number>
  nanoCPUs: number
  memoryBytes: number
  /** protocol·65536 + port → tasks using it. */
  ports: Map<number, number>
}

interface TaskRecord {
  nodeId: string
  serviceId: string
  nanoCPUs: number
  memoryBytes: number
  ports: readonly number[]
}

interface Prepared {
  serviceId: string
  constraints: readonly Constraint[]
  nanoCPUs: number
  memoryBytes: number
  ports: number[]
  maxReplicas: number
}

/** One value of a placement preference at one level, or a leaf of nodes. */
interface Branch {
  key: string
  /** Tasks of the service under this branch, on any node. */
  tasks: number
  /** All tasks under this branch; breaks ties between branches. */
  total: number
  /** How many more tasks of the batch fit under this branch. */
  cap: number
  children: Map<string, Branch> | undefined
  /** Indices of eligible nodes (leaves only). */
  members: number[]
}

export class Scheduler {
  readonly #nodes = new Map<string, NodeState>()
  readonly #tasks = new Map<string, TaskRecord>()

  /** Adds a node or updates its description, keeping its accounted tasks. */
  upsertNode(node: SchedNode): void {
    const state = this.#nodes.get(node.id)
    if (state) state.info = node
    else this.#nodes.set(node.id, newState(node))
  }

  /** Stops placing on a node; its tasks stay accounted until removed. */
  removeNode(nodeId: string): void {
    const state = this.#nodes.get(nodeId)
    if (!state) return
    state.info = undefined
    if (state.total === 0) this.#nodes.delete(nodeId)
  }

  /**
   * Accounts a task on its node. Idempotent for the same id and node; a task
   * seen on another node moves. The node need not be known yet.
   */
  addTask(task: PlacedTask): void {
    const old = this.#tasks.get(task.id)
    if (old?.nodeId === task.nodeId) return
    if (old) this.removeTask(task.id)
    const record: TaskRecord = {
      nodeId: task.nodeId,
      serviceId: task.serviceId,
      nanoCPUs: task.reservations?.nanoCPUs ?? 0,
      memoryBytes: task.reservations?.memoryBytes ?? 0,
      ports: portKeys(task.hostPorts ?? []),
    }
    let state = this.#nodes.get(task.nodeId)
    if (!state) {
      state = newState(undefined)
      this.#nodes.set(task.nodeId, state)
    }
    this.#tasks.set(task.id, record)
    account(state, record, 1)
  }

  /** Releases a task's node; false when the task was not accounted. */
  removeTask(taskId: string): boolean {
    const record = this.#tasks.get(taskId)
    if (!record) return false
    this.#tasks.delete(taskId)
    const state = this.#nodes.get(record.nodeId)
    if (state) {
      account(state, record, -1)
      if (!state.info && state.total === 0) this.#nodes.delete(record.nodeId)
    }
    return true
  }

  /** Accounted tasks on a node, of one service or in total. */
  taskCount(nodeId: string, serviceId?: string): number {
    const state = this.#nodes.get(nodeId)
    if (!state) return 0
    return serviceId === undefined ? state.total : (state.byService.get(serviceId) ?? 0)
  }

  /**
   * Whether one task fits a given node (global services, whose tasks are
   * created for a node): true, or swarmkit's explanation for that node, such
   * as "insufficient resources on 1 node". An unknown node is not available.
   */
  eligible(nodeId: string, spec: TaskGroupSpec): true | string {
    const state = this.#nodes.get(nodeId)
    const info = state?.info
    if (!state || !info) return EXPLAIN[READY]!(1)
    const cap = capacity(state, info, prepare(spec))
    return cap > 0 ? true : EXPLAIN[-cap]!(1)
  }

  /**
   * Places a batch of identical tasks and accounts the placements. Tasks that
   * do not fit get swarmkit's `no suitable node (...)` error.
   */
  schedule(batch: Batch): ScheduleResult {
    const p = prepare(batch)
    const n = batch.taskIds.length
    const states: NodeState[] = []
    const caps: number[] = []
    const live: { state: NodeState; info: SchedNode; cap: number }[] = []
    const readers = batch.preferences.map(labelReader).filter((r) => r !== undefined)
    const root = newBranch('')

    for (const state of this.#nodes.values()) {
      const info = state.info
      if (!info) continue
      const cap = capacity(state, info, p)
      if (readers.length === 0) {
        if (cap > 0) {
          root.members.push(states.length)
          states.push(state)
          caps.push(cap)
        }
        continue
      }
      // The tree counts the service's tasks on every node, eligible or not.
      live.push({ state, info, cap })
    }
    for (const { state, info, cap } of live) {
      const svc = state.byService.get(p.serviceId) ?? 0
      let branch = root
      for (const read of readers) {
        branch.tasks += svc
        branch.total += state.total
        const children = (branch.children ??= new Map())
        const key = read(info)
        let next = children.get(key)
        if (!next) {
          next = newBranch(key)
          children.set(key, next)
        }
        if (cap > 0) branch.cap += cap
        branch = next
      }
      branch.tasks += svc
      branch.total += state.total
      if (cap > 0) {
        branch.cap += cap
        branch.members.push(states.length)
        states.push(state)
        caps.push(cap)
      }
    }

    const take = new Array<number>(states.length).fill(0)
    this.#allocate(root, n, p.serviceId, states, caps, take, batch.avoidNodes)

    const nodeIds = new Array<string | undefined>(n).fill(undefined)
    let placed = 0
    for (let i = 0; i < states.length; i++) {
      const x = take[i]!
      if (x === 0) continue
      const state = states[i]!
      const nodeId = state.info!.id
      for (let k = 0; k < x; k++, placed++) {
        const taskId = batch.taskIds[placed]!
        nodeIds[placed] = nodeId
        this.removeTask(taskId)
        this.#tasks.set(taskId, {
          nodeId,
          serviceId: p.serviceId,
          nanoCPUs: p.nanoCPUs,
          memoryBytes: p.memoryBytes,
          ports: p.ports,
        })
      }
      accountMany(state, p, x)
    }
    return { nodeIds, placed, error: placed < n ? this.#explain(p) : undefined }
  }

  /** Splits `n` tasks over a branch: evenly over its children, or over its nodes. */
  #allocate(
    branch: Branch,
    n: number,
    serviceId: string,
    states: NodeState[],
    caps: number[],
    take: number[],
    avoid: ReadonlySet<string> | undefined,
  ): void {
    if (n === 0) return
    if (branch.children) {
      const kids = [...branch.children.values()]
      const split = waterfill(
        n,
        kids.map((b) => b.tasks),
        kids.map((b) => b.cap),
        (a, b) => {
          const ka = kids[a]!
          const kb = kids[b]!
          return ka.total - ka.tasks - (kb.total - kb.tasks) || compareStrings(ka.key, kb.key)
        },
      )
      kids.forEach((kid, i) => this.#allocate(kid, split[i]!, serviceId, states, caps, take, avoid))
      return
    }
    const preferred = avoid ? branch.members.filter((i) => !avoid.has(states[i]!.info!.id)) : branch.members
    const last = avoid ? branch.members.filter((i) => avoid.has(states[i]!.info!.id)) : []
    let left = n
    for (const members of [preferred, last]) {
      if (left === 0 || members.length === 0) continue
      const svc = members.map((i) => states[i]!.byService.get(serviceId) ?? 0)
      const split = waterfill(
        left,
        svc,
        members.map((i) => caps[i]!),
        (a, b) => {
          const sa = states[members[a]!]!
          const sb = states[members[b]!]!
          return sa.total - svc[a]! - (sb.total - svc[b]!) || compareStrings(sa.info!.id, sb.info!.id)
        },
      )
      members.forEach((i, k) => {
        take[i] = split[k]!
        left -= split[k]!
      })
    }
  }

  /** Why the remaining tasks fit nowhere, counted over nodes after this batch's placements. */
  #explain(p: Prepared): string {
    const failures = [0, 0, 0, 0, 0, 0]
    for (const state of this.#nodes.values()) {
      if (!state.info) continue
      const cap = capacity(state, state.info, p)
      if (cap <= 0) failures[-cap]!++
    }
    const explanation = failures
      .map((count, code) => ({ count, code }))
      .filter((f) => f.count > 0)
      .sort((a, b) => b.count - a.count || a.code - b.code)
      .map((f) => EXPLAIN[f.code]!(f.count))
      .join('; ')
    return explanation === '' ? 'no suitable node' : `no suitable node (${explanation})`
  }
}

/**
 * How many tasks of the batch a node can take (≥ 1, possibly Infinity), or
 * minus the code of the first filter it fails, in swarmkit's pipeline order.
 */
function capacity(state: NodeState, info: SchedNode, p: Prepared): number {
  if (!info.ready || info.availability !== 'active') return -READY
  let cap = Infinity
  if (p.nanoCPUs > 0) cap = Math.floor((info.resources.nanoCPUs - state.nanoCPUs) / p.nanoCPUs)
  if (p.memoryBytes > 0) {
    cap = Math.min(cap, Math.floor((info.resources.memoryBytes - state.memoryBytes) / p.memoryBytes))
  }
  if (cap < 1) return -RESOURCES
  if (!matches(p.constraints, info)) return -CONSTRAINTS
  if (p.ports.length > 0) {
    for (const key of p.ports) if (state.ports.has(key)) return -HOST_PORT
    cap = 1
  }
  if (p.maxReplicas > 0) {
    const room = p.maxReplicas - (state.byService.get(p.serviceId) ?? 0)
    if (room < 1) return -MAX_REPLICAS
    cap = Math.min(cap, room)
  }
  return cap
}

/**
 * Gives `n` units to items, each time to the item with the lowest level
 * (base + units so far), ties broken by `rank`, never beyond its cap. Finds
 * the final water level by bisection instead of placing units one by one.
 */
function waterfill(n: number, base: number[], cap: number[], rank: (a: number, b: number) => number): number[] {
  const m = base.length
  const take = new Array<number>(m).fill(0)
  let room = 0
  let low = Infinity
  let high = -Infinity
  for (let j = 0; j < m; j++) {
    if (cap[j]! <= 0) continue
    room += cap[j]!
    low = Math.min(low, base[j]!)
    high = Math.max(high, base[j]!)
  }
  if (room <= n) {
    for (let j = 0; j < m; j++) take[j] = Math.max(0, cap[j]!)
    return take
  }
  // Units below level L; the answer is the highest L with below(L) ≤ n.
  const below = (level: number): number => {
    let sum = 0
    for (let j = 0; j < m; j++) {
      const c = cap[j]!
      const b = base[j]!
      if (c > 0 && level > b) sum += Math.min(c, level - b)
    }
    return sum
  }
  let hi = high + n
  while (low < hi) {
    const mid = Math.ceil((low + hi) / 2)
    if (below(mid) <= n) low = mid
    else hi = mid - 1
  }
  const level = low
  let given = 0
  const atLevel: number[] = []
  for (let j = 0; j < m; j++) {
    const c = cap[j]!
    const b = base[j]!
    if (c <= 0) continue
    const x = Math.min(c, Math.max(0, level - b))
    take[j] = x
    given += x
    if (b <= level && level < b + c) atLevel.push(j)
  }
  for (const j of smallest(atLevel, n - given, rank)) take[j]!++
  return take
}

/** The k smallest items by `rank`, in O(items · log k): a batch is often far smaller than the node count. */
function smallest(items: number[], k: number, rank: (a: number, b: number) => number): number[] {
  if (k <= 0) return []
  if (k >= items.length) return items
  // Max-heap of the k best so far; its root is the worst of them.
  const heap = items.slice(0, k)
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let top = i
      if (l < k && rank(heap[l]!, heap[top]!) > 0) top = l
      if (r < k && rank(heap[r]!, heap[top]!) > 0) top = r
      if (top === i) return
      const tmp = heap[i]!
      heap[i] = heap[top]!
      heap[top] = tmp
      i = top
    }
  }
  for (let i = (k >> 1) - 1; i >= 0; i--) down(i)
  for (let i = k; i < items.length; i++) {
    if (rank(items[i]!, heap[0]!) < 0) {
      heap[0] = items[i]!
      down(0)
    }
  }
  return heap
}

function prepare(spec: TaskGroupSpec): Prepared {
  return {
    serviceId: spec.serviceId,
    constraints: spec.constraints,
    nanoCPUs: spec.reservations.nanoCPUs,
    memoryBytes: spec.reservations.memoryBytes,
    ports: portKeys(spec.hostPorts),
    maxReplicas: spec.maxReplicas,
  }
}

function portKeys(ports: readonly HostPort[]): number[] {
  return [...new Set(ports.filter((p) => p.port !== 0).map((p) => PROTOCOLS[p.protocol] * 65536 + p.port))]
}

function newState(info: SchedNode | undefined): NodeState {
  return { info, total: 0, byService: new Map(), nanoCPUs: 0, memoryBytes: 0, ports: new Map() }
}

function newBranch(key: string): Branch {
  return { key, tasks: 0, total: 0, cap: 0, children: undefined, members: [] }
}

function account(state: NodeState, t: TaskRecord, sign: 1 | -1): void {
  state.total += sign
  const svc = (state.byService.get(t.serviceId) ?? 0) + sign
  if (svc === 0) state.byService.delete(t.serviceId)
  else state.byService.set(t.serviceId, svc)
  state.nanoCPUs += sign * t.nanoCPUs
  state.memoryBytes += sign * t.memoryBytes
  for (const key of t.ports) {
    const users = (state.ports.get(key) ?? 0) + sign
    if (users === 0) state.ports.delete(key)
    else state.ports.set(key, users)
  }
}

/** Accounts `x` tasks of a batch at once. */
function accountMany(state: NodeState, p: Prepared, x: number): void {
  state.total += x
  state.byService.set(p.serviceId, (state.byService.get(p.serviceId) ?? 0) + x)
  state.nanoCPUs += x * p.nanoCPUs
  state.memoryBytes += x * p.memoryBytes
  for (const key of p.ports) state.ports.set(key, (state.ports.get(key) ?? 0) + x)
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
