import { type Command, Option } from 'commander'
import type { ApiClient } from '../api/client.js'
import { out } from './service-commands.js'
import { render } from './service-format.js'
import { pretty, table } from './table.js'

/** swarmctl node: ls, inspect, update, rm, promote, demote, with docker's tables and texts. */

export interface NodeObj {
  ID: string
  Version: { Index: number }
  CreatedAt: string
  Spec: { Labels: Record<string, string>; Role: string; Availability: string; Name?: string }
  Description: { Hostname: string; Platform: { Architecture: string; OS: string }; Resources: { NanoCPUs: number; MemoryBytes: number }; Engine: { EngineVersion: string } }
  Status: { State: string; Addr: string }
  ManagerStatus?: { Leader: boolean; Reachability: string; Addr: string }
}

export interface InfoObj {
  Swarm: { NodeID: string; LocalNodeState: string }
}

function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${+n.toFixed(2)}${units[i]}`
}

function prettyNode(n: NodeObj): string {
  const lines = [`ID:\t\t\t${n.ID}`]
  const labels = Object.entries(n.Spec.Labels)
  if (labels.length) lines.push('Labels:', ...labels.map(([k, v]) => ` - ${k}=${v}`))
  lines.push(
    `Hostname:              \t${n.Description.Hostname}`,
    `Joined at:             \t${new Date(n.CreatedAt).toISOString().replace('T', ' ').replace('Z', ' +0000 utc')}`,
    'Status:',
    ` State:\t\t\t${pretty(n.Status.State)}`,
    ` Availability:         \t${pretty(n.Spec.Availability)}`,
    ` Address:\t\t${n.Status.Addr}`,
  )
  if (n.ManagerStatus) {
    lines.push('Manager Status:', ` Address:\t\t${n.ManagerStatus.Addr}`, ` Raft Status:\t\t${pretty(n.ManagerStatus.Reachability)}`, ` Leader:\t\t${n.ManagerStatus.Leader ? 'Yes' : 'No'}`)
  }
  lines.push(
    'Platform:',
    ` Operating System:\t${n.Description.Platform.OS}`,
    ` Architecture:\t\t${n.Description.Platform.Architecture}`,
    'Resources:',
    ` CPUs:\t\t\t${n.Description.Resources.NanoCPUs / 1e9}`,
    ` Memory:\t\t${humanBytes(n.Description.Resources.MemoryBytes)}`,
    `Engine Version:\t\t${n.Description.Engine.EngineVersion}`,
  )
  return lines.join('\n') + '\n'
}

function parseLabel(v: string, prev: string[] = []): string[] {
  return [...prev, v]
}

export function addNodeCommands(program: Command, client: () => ApiClient): void {
  const node = program.command('node').description('Manage swarm nodes').exitOverride()
  node
    .command('ls')
    .description('List nodes in the swarm')
    .option('-q, --quiet', 'only display IDs')
    .option('--format <template>', 'format output using a template')
    .action(async (o: { quiet?: boolean; format?: string }) => {
      const c = client()
      const [nodes, info] = await Promise.all([c.call<NodeObj[]>('GET', '/nodes'), c.call<InfoObj>('GET', '/info')])
      nodes.sort((a, b) => a.Description.Hostname.localeCompare(b.Description.Hostname))
      if (o.quiet) {
        out(nodes.map(n => n.ID + '\n').join(''))
        return
      }
      const rows = nodes.map(n => ({
        ID: n.ID,
        Self: n.ID === info.Swarm.NodeID ? '*' : '',
        Hostname: n.Description.Hostname,
        Status: pretty(n.Status.State),
        Availability: pretty(n.Spec.Availability),
        ManagerStatus: n.ManagerStatus ? (n.ManagerStatus.Leader ? 'Leader' : pretty(n.ManagerStatus.Reachability)) : '',
        EngineVersion: n.Description.Engine.EngineVersion,
      }))
      if (o.format && !o.format.startsWith('table')) {
        out(rows.map(r => render(o.format!, r) + '\n').join(''))
        return
      }
      out(
        table([
          ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ENGINE VERSION'],
          ...rows.map(r => [`${r.ID} ${r.Self || ' '}`, r.Hostname, r.Status, r.Availability, r.ManagerStatus, r.EngineVersion]),
        ]),
      )
    })
  node
    .command('inspect')
    .description('Display detailed information on one or more nodes')
    .argument('<node...>')
    .option('--pretty', 'print the information in a human friendly format')
    .action(async (refs: string[], o: { pretty?: boolean }) => {
      const c = client()
      const info = await c.call<InfoObj>('GET', '/info')
      const nodes = await Promise.all(refs.map(r => c.call<NodeObj>('GET', `/nodes/${r === 'self' ? info.Swarm.NodeID : encodeURIComponent(r)}`)))
      out(o.pretty ? nodes.map(prettyNode).join('\n') : JSON.stringify(nodes, null, 4) + '\n')
    })
  const update = async (ref: string, change: (n: NodeObj) => void): Promise<void> => {
    const c = client()
    const n = await c.call<NodeObj>('GET', `/nodes/${encodeURIComponent(ref)}`)
    change(n)
    await c.call('POST', `/nodes/${n.ID}/update?version=${n.Version.Index}`, n.Spec)
  }
  node
    .command('update')
    .description('Update a node')
    .argument('<node>')
    .addOption(new Option('--availability <availability>', 'availability of the node').choices(['active', 'pause', 'drain']))
    .option('--label-add <key=value>', 'add or update a node label (repeatable)', parseLabel)
    .option('--label-rm <key>', 'remove a node label if exists (repeatable)', parseLabel)
    .action(async (ref: string, o: { availability?: string; labelAdd?: string[]; labelRm?: string[] }) => {
      await update(ref, n => {
        if (o.availability) n.Spec.Availability = o.availability
        for (const kv of o.labelAdd ?? []) {
          const i = kv.indexOf('=')
          n.Spec.Labels[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1)
        }
        for (const k of o.labelRm ?? []) delete n.Spec.Labels[k]
      })
      out(`${ref}\n`)
    })
  node
    .command('rm')
    .description('Remove one or more nodes from the swarm')
    .argument('<node...>')
    .option('-f, --force', 'force remove a node from the swarm')
    .action(async (refs: string[], o: { force?: boolean }) => {
      const c = client()
      for (const ref of refs) {
        await c.call('DELETE', `/nodes/${encodeURIComponent(ref)}?force=${o.force ? 'true' : 'false'}`)
        out(`${ref}\n`)
      }
    })
  for (const [name, role] of [
    ['promote', 'manager'],
    ['demote', 'worker'],
  ] as const) {
    node
      .command(name)
      .description(`${name === 'promote' ? 'Promote' : 'Demote'} one or more nodes ${name === 'promote' ? 'to manager' : 'from manager'} in the swarm`)
      .argument('<node...>')
      .action(async (refs: string[]) => {
        for (const ref of refs) {
          await update(ref, n => (n.Spec.Role = role))
          out(`Node ${ref} ${name}d to a ${role} in the swarm.\n`)
        }
      })
  }

}
