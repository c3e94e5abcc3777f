/**
 * Runs the real `swarmd gossip` agent (the built bin/swarmd.js) as a child
 * process and reads its JSON event lines.
 */
import { fileURLToPath } from 'node:url'
import { spawnManaged, type ManagedProcess } from './procs.js'

const BIN = fileURLToPath(new URL('../../bin/swarmd.js', import.meta.url))

export interface AgentEvent {
  event: 'join' | 'update' | 'suspect' | 'alive' | 'dead' | 'left'
  node: string
  addr: string
  incarnation: number
  ts: number
}

export interface Agent {
  readonly name: string
  readonly addr: string
  readonly proc: ManagedProcess
  readonly events: readonly AgentEvent[]
  /** First event (seen or arriving) matching `pred`; rejects after `timeoutMs` or when the agent exits. */
  waitFor(pred: (e: AgentEvent) => boolean, timeoutMs: number, what?: string): Promise<AgentEvent>
  /** SIGTERM: graceful leave, then exit. */
  stop(): Promise<void>
  kill(signal?: NodeJS.Signals): void
}

export interface AgentOptions {
  name: string
  /** host:port */
  bind: string
  join?: string[]
  keys?: string[]
  profile?: 'lan' | 'wan' | 'local'
  delegateVersions?: string
  label?: string
}

function parse(line: string): AgentEvent | undefined {
  try {
    const v = JSON.parse(line) as AgentEvent
    return typeof v.event === 'string' ? v : undefined
  } catch {
    return undefined
  }
}

export async function startAgent(o: AgentOptions): Promise<Agent> {
  const args = [BIN, 'gossip', '--name', o.name, '--bind', o.bind, '--profile', o.profile ?? 'local', '--log-level', 'info']
  for (const j of o.join ?? []) args.push('--join', j)
  for (const k of o.keys ?? []) args.push('--key', k)
  if (o.delegateVersions) args.push('--delegate-versions', o.delegateVersions)
  if (o.label) args.push('--label', o.label)
  const proc = spawnManaged(process.execPath, args, { label: `swarmd gossip ${o.name}` })
  const events: AgentEvent[] = []
  proc.onLine(line => {
    const e = parse(line)
    if (e) events.push(e)
  })
  for (const line of proc.lines) {
    const e = parse(line)
    if (e) events.push(e)
  }
  const agent: Agent = {
    name: o.name,
    addr: o.bind,
    proc,
    events,
    async waitFor(pred, timeoutMs, what = 'agent event') {
      const line = await proc.waitForLine(l => {
        const e = parse(l)
        return !!e && pred(e)
      }, timeoutMs, what)
      return parse(line)!
    },
    async stop() {
      await proc.stop({ signal: 'SIGTERM', graceMs: 8000 })
    },
    kill(signal = 'SIGKILL') {
      proc.kill(signal)
    },
  }
  // Started once it reports its own join (printed before any --join is attempted). Node takes a few
  // seconds to load swarmd on a loaded 2-core machine (4.3 s at load 8), and once took over 15 s.
  await agent.waitFor(e => e.event === 'join' && e.node === o.name, 30_000, `${o.name} to start`)
  return agent
}
