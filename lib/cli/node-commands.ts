import type { Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import { SwarmdError } from '../types/errors.js'
import { filterFlags, filtersQuery, out } from './service-commands.js'
import { collect } from './service-flags.js'
import { bytesSize, goTime, render } from './service-format.js'
import { pretty, table } from './table.js'

/** swarmctl node: ls, inspect, update, rm, promote, demote, with docker's tables and texts. */

export interface NodeObj {
  ID: string
  Version: { Index: number }
  CreatedAt: string
  Spec: { Labels: Record<string, string>; Role: string; Availability: string; Name?: string }
  Description: {
    Hostname: string
    Platform: { Architecture: string; OS: string }
    Resources: { NanoCPUs: number; MemoryBytes: number }
    Engine: { EngineVersion: string; Labels?: Record<string, string>; Plugins?: { Type: string; Name: string }[] }
    TLSInfo?: { TrustRoot?: string; CertIssuerSubject?: string; CertIssuerPublicKey?: string }
  }
  Status: { State: string; Addr: string; Message?: string }
  ManagerStatus?: { Leader: boolean; Reachability: string; Addr: string }
}

export interface InfoObj {
  Swarm: { NodeID: string; LocalNodeState: string }
}

/** ` - k=v` lines in key order, as a Go template ranges over a map; `k` alone for an empty value. */
const labelLines = (labels: Record<string, string> = {}): string[] =>
  Object.keys(labels)
    .sort()
    .map(k => ` - ${k}${labels[k] ? `=${labels[k]}` : ''}`)

/** docker's nodeInspectPrettyTemplate. */
export function prettyNode(n: NodeObj): string {
  const d = n.Description
  const lines = [`ID:\t\t\t${n.ID}`]
  if (n.Spec.Name) lines.push(`Name:\t\t\t${n.Spec.Name}`)
  const labels = labelLines(n.Spec.Labels)
  if (labels.length) lines.push('Labels:', ...labels)
  lines.push(`Hostname:              \t${d.Hostname}`, `Joined at:             \t${goTime(n.CreatedAt)}`, 'Status:', ` State:\t\t\t${pretty(n.Status.State)}`)
  if (n.Status.Message) lines.push(` Message:              \t${pretty(n.Status.Message)}`)
  lines.push(` Availability:         \t${pretty(n.Spec.Availability)}`)
  if (n.Status.Addr) lines.push(` Address:\t\t${n.Status.Addr}`)
  if (n.ManagerStatus) {
    lines.push('Manager Status:', ` Address:\t\t${n.ManagerStatus.Addr}`, ` Raft Status:\t\t${pretty(n.ManagerStatus.Reachability)}`, ` Leader:\t\t${n.ManagerStatus.Leader ? 'Yes' : 'No'}`)
  }
  lines.push(
    'Platform:',
    ` Operating System:\t${d.Platform.OS}`,
    ` Architecture:\t\t${d.Platform.Architecture}`,
    'Resources:',
    ` CPUs:\t\t\t${Math.floor(d.Resources.NanoCPUs / 1e9)}`,
    ` Memory:\t\t${d.Resources.MemoryBytes ? bytesSize(d.Resources.MemoryBytes) : ''}`,
  )
  const plugins = new Map<string, string[]>()
  for (const p of d.Engine.Plugins ?? []) plugins.set(p.Type, [...(plugins.get(p.Type) ?? []), p.Name])
  if (plugins.size) lines.push('Plugins:', ...[...plugins.keys()].sort().map(k => ` ${k}:\t\t${plugins.get(k)!.join(', ')}`))
  lines.push(`Engine Version:\t\t${d.Engine.EngineVersion}`)
  const engineLabels = labelLines(d.Engine.Labels)
  if (engineLabels.length) lines.push('Engine Labels:', ...engineLabels)
  const tls = d.TLSInfo ?? {}
  if (tls.TrustRoot || tls.CertIssuerSubject || tls.CertIssuerPublicKey) {
    lines.push('TLS Info:', ' TrustRoot:', `${tls.TrustRoot ?? ''}`, ` Issuer Subject:\t${tls.CertIssuerSubject ?? ''}`, ` Issuer Public Key:\t${tls.CertIssuerPublicKey ?? ''}`)
  }
  return lines.join('\n') + '\n'
}

export function addNodeCommands(program: Command, client: () => ApiClient): void {
  const node = program.command('node').description('Manage swarm nodes').exitOverride()
  node
    .command('ls')
    .description('List nodes in the swarm')
    .option('-q, --quiet', 'only display IDs')
    .option('--format <template>', 'format output using a template')
    .option('-f, --filter <filter>', 'filter output based on conditions provided', collect)
    .action(async (o: { quiet?: boolean; format?: string; filter?: string[] }) => {
      const c = client()
      const q = filtersQuery(filterFlags(o.filter))
      const [nodes, info] = await Promise.all([c.call<NodeObj[]>('GET', `/nodes${q ? `?${q}` : ''}`), c.call<InfoObj>('GET', '/info')])
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
    // As docker's: the daemon checks the role and the availability (`invalid Availability: "foo"`).
    .option('--availability <availability>', 'availability of the node ("active", "pause", "drain")')
    .option('--role <role>', 'role of the node ("worker", "manager")')
    .option('--label-add <key=value>', 'add or update a node label (repeatable)', collect)
    .option('--label-rm <key>', 'remove a node label if exists (repeatable)', collect)
    .action(async (ref: string, o: { availability?: string; role?: string; labelAdd?: string[]; labelRm?: string[] }) => {
      await update(ref, n => {
        if (o.availability !== undefined) n.Spec.Availability = o.availability
        if (o.role !== undefined) n.Spec.Role = o.role
        n.Spec.Labels ??= {}
        for (const kv of o.labelAdd ?? []) {
          const i = kv.indexOf('=')
          n.Spec.Labels[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1)
        }
        for (const k of o.labelRm ?? []) {
          if (!(k in n.Spec.Labels)) throw new SwarmdError('E_USAGE', `key ${k} doesn't exist in node's labels`)
          delete n.Spec.Labels[k]
        }
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
