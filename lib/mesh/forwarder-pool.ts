import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Server, Socket } from 'node:net'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { SwarmdError } from '../types/errors.js'
import type { BalancerTarget } from './balancer.js'
import type { FromWorker, ToWorker, WorkerConfig } from './forwarder-protocol.js'
import type { Endpoint } from './types.js'

export class ForwarderError extends SwarmdError {}

/** The worker's module beside this one, compiled (.js) or, under a TypeScript loader, as source. */
const WORKER = fileURLToPath(new URL(`./forwarder-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url))
const ACK_TIMEOUT_MS = 10_000

/** A connection a worker gives back, for the published port `key`, to `endpoint` when it chose one. */
type Back = (key: string, client: Socket, endpoint?: Endpoint) => void

interface Worker {
  proc: ChildProcess
  counters: { connections: number; retries: number }
}

/**
 * Forwarder processes beside the Mesh's own: each accepts on the Mesh's
 * published TCP ports (the listening sockets are shared, so connections
 * spread over the processes' cores) and forwards to this node's tasks
 * itself; a connection for another node's task comes back to the Mesh
 * (`onBack`). The pool sends each worker the endpoint lists it balances
 * over; a worker that dies is replaced, and given the ports again.
 */
export class ForwarderPool {
  private readonly workers: Worker[] = []
  /** Every worker process, ready or still starting: close() ends them all. */
  private readonly procs = new Set<ChildProcess>()
  private readonly listening = new Map<string, Server>()
  private readonly lists = new Map<string, { target: BalancerTarget; endpoints: Endpoint[] }>()
  private nextId = 1
  private closed = false

  private constructor(
    private readonly cfg: WorkerConfig,
    private readonly onBack: Back,
    private readonly logger?: Logger,
  ) {}

  static async start(n: number, cfg: WorkerConfig, onBack: Back, logger?: Logger): Promise<ForwarderPool> {
    if (!Number.isInteger(n) || n < 1) throw new ForwarderError('E_MESH_WORKERS', `workers must be a positive integer, got ${n}`, { kind: 'invalid_argument' })
    const pool = new ForwarderPool(cfg, onBack, logger)
    await Promise.all(Array.from({ length: n }, () => pool.spawn()))
    return pool
  }

  private async spawn(): Promise<Worker> {
    const proc = fork(WORKER, [JSON.stringify(this.cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.procs.add(proc)
    proc.once('exit', () => this.procs.delete(proc))
    const w: Worker = { proc, counters: { connections: 0, retries: 0 } }
    proc.on('message', (m: FromWorker, handle?: Socket) => {
      if (m.t === 'back' && handle) this.onBack(m.key, handle, m.endpoint)
      else if (m.t === 'counters') w.counters = { connections: m.connections, retries: m.retries }
    })
    const [ready] = (await Promise.race([once(proc, 'message'), once(proc, 'exit').then(([code]) => Promise.reject(new ForwarderError('E_MESH_WORKERS', `a forwarder worker exited (${code}) before it was ready`)))])) as [FromWorker]
    if (ready.t !== 'ready') throw new ForwarderError('E_MESH_WORKERS', `a forwarder worker said ${ready.t} first`)
    if (this.closed) throw new ForwarderError('E_MESH_WORKERS', 'the pool closed while a worker started')
    // The pool never keeps the program alive: close() ends the workers, and they end when this process does.
    proc.unref()
    proc.channel?.unref()
    this.workers.push(w)
    proc.once('exit', code => void this.replace(w, code))
    return w
  }

  private async replace(w: Worker, code: number | null): Promise<void> {
    this.workers.splice(this.workers.indexOf(w), 1)
    if (this.closed) return
    this.logger?.error({ code }, 'mesh: a forwarder worker died; starting another')
    try {
      const fresh = await this.spawn()
      for (const [key, server] of this.listening) await this.tell(fresh, { t: 'listen', id: this.nextId++, key }, server)
      for (const [key, l] of this.lists) fresh.proc.send({ t: 'endpoints', key, ...l } satisfies ToWorker)
    } catch (err) {
      this.logger?.error({ err }, 'mesh: no forwarder worker could replace the one that died')
    }
  }

  /** Sends one message that the worker acknowledges. */
  private async tell(w: Worker, m: Extract<ToWorker, { id: number }>, server?: Server): Promise<void> {
    const acked = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ForwarderError('E_MESH_WORKERS', `a forwarder worker did not acknowledge ${m.t} ${m.key}`)), ACK_TIMEOUT_MS)
      const onMessage = (a: FromWorker): void => {
        if (a.t !== 'ack' || a.id !== m.id) return
        clearTimeout(timer)
        w.proc.off('message', onMessage)
        resolve()
      }
      w.proc.on('message', onMessage)
    })
    w.proc.send(m, server)
    await acked
  }

  /** Every worker accepts on `server` too, for the published port `key`. */
  async listen(key: string, server: Server): Promise<void> {
    this.listening.set(key, server)
    await Promise.all(this.workers.map(w => this.tell(w, { t: 'listen', id: this.nextId++, key }, server)))
  }

  async unlisten(key: string): Promise<void> {
    if (!this.listening.delete(key)) return
    this.lists.delete(key)
    await Promise.all(this.workers.map(w => this.tell(w, { t: 'unlisten', id: this.nextId++, key })))
  }

  /** The usable endpoints of a published port's target; sent when they changed. */
  endpoints(key: string, target: BalancerTarget, endpoints: Endpoint[]): void {
    const next = { target, endpoints }
    const before = this.lists.get(key)
    if (before && JSON.stringify(before) === JSON.stringify(next)) return
    this.lists.set(key, next)
    for (const w of this.workers) w.proc.send({ t: 'endpoints', key, ...next } satisfies ToWorker)
  }

  /** The published ports the workers accept on. */
  keys(): string[] {
    return [...this.listening.keys()]
  }

  /** Connections the workers forwarded themselves, and their retries, as they last reported. */
  counters(): { connections: number; retries: number } {
    return this.workers.reduce((s, w) => ({ connections: s.connections + w.counters.connections, retries: s.retries + w.counters.retries }), { connections: 0, retries: 0 })
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.all(
      [...this.procs].map(async proc => {
        const exited = once(proc, 'exit')
        if (proc.connected) proc.disconnect()
        const timer = setTimeout(() => proc.kill('SIGKILL'), 2_000)
        await exited
        clearTimeout(timer)
      }),
    )
  }
}
