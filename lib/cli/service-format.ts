import type { PortConfig, Service } from '../types/service.js'
import type { Config } from '../types/config.js'
import type { Secret } from '../types/secret.js'
import type { Task } from '../types/task.js'
import { humanDuration } from '../types/human-duration.js'
import { formatGoDuration } from './service-flags.js'
import { pretty, table } from './table.js'

/**
 * docker/cli's service, task and secret output (service/formatter.go,
 * task/print.go, task/formatter.go, secret/formatter.go) as pure functions of
 * the API objects and the current time.
 */

/** Docker's `{{.Field}}` templates over a flat row. */
export function render(format: string, row: Record<string, string>): string {
  return format.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_, k: string) => row[k] ?? '').replace(/\\t/g, '\t')
}

/**
 * A `--format` over rows: `table ...` renders a tabwriter table with
 * docker's headers, anything else one rendered line per row.
 */
export function formatRows(format: string, headers: Record<string, string>, rows: Record<string, string>[]): string {
  if (!format.startsWith('table')) return rows.map(r => render(format, r) + '\n').join('')
  const columns = format.slice(5).trim().split(/\t|\\t/)
  return table([columns.map(c => render(c, headers)), ...rows.map(r => columns.map(c => render(c, r)))])
}

export { humanDuration }

/** formatter.TruncateID: drop an `algo:` prefix, keep 12 characters. */
export function truncateID(id: string): string {
  const i = id.indexOf(':')
  return (i >= 0 ? id.slice(i + 1) : id).slice(0, 12)
}

/** formatter.Ellipsis for display width `max` (wide characters count two). */
export function ellipsis(s: string, max: number): string {
  const chars = [...s]
  const width = (c: string): number => (/[\u1100-\u115F\u2E80-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6]|[\u{1F300}-\u{1FAFF}\u{20000}-\u{3FFFD}]/u.test(c) ? 2 : 1)
  if (max <= 0) return ''
  if (chars.reduce((w, c) => w + width(c), 0) <= max) return s
  let out = ''
  let w = 0
  for (const c of chars) {
    if (w + width(c) > max - 1) break
    out += c
    w += width(c)
  }
  return out + '…'
}

/** An image reference with a tag loses its digest and docker.io prefix, as docker shows it. */
export function familiarImage(image: string): string {
  const at = image.indexOf('@')
  const name = at >= 0 ? image.slice(0, at) : image
  const tagged = /:[\w][\w.-]{0,127}$/.test(name) && !/\//.test(name.slice(name.lastIndexOf(':')))
  if (!tagged) return image
  return name.replace(/^(?:docker\.io|index\.docker\.io)\/(?:library\/(?=[^/]+$))?/, '')
}

const isDigit = (c: string): boolean => c >= '0' && c <= '9'

/** fvbommel/sortorder NaturalLess: digit runs compare as numbers. */
export function naturalLess(a: string, b: string): boolean {
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const c1 = a[i]!
    const c2 = b[j]!
    const d1 = isDigit(c1)
    const d2 = isDigit(c2)
    if (d1 !== d2) return d1
    if (!d1) {
      if (c1 !== c2) return c1 < c2
      i++
      j++
      continue
    }
    while (i < a.length && a[i] === '0') i++
    while (j < b.length && b[j] === '0') j++
    const nz1 = i
    const nz2 = j
    while (i < a.length && isDigit(a[i]!)) i++
    while (j < b.length && isDigit(b[j]!)) j++
    if (i - nz1 !== j - nz2) return i - nz1 < j - nz2
    const n1 = a.slice(nz1, i)
    const n2 = b.slice(nz2, j)
    if (n1 !== n2) return n1 < n2
    if (nz1 !== nz2) return nz1 < nz2
  }
  return a.length < b.length
}

export const naturalCompare = (a: string, b: string): number => (naturalLess(a, b) ? -1 : naturalLess(b, a) ? 1 : 0)

/** The names `service ps` and `logs` need: service ID → name, node ID → name. */
export interface Names {
  services: Map<string, string>
  nodes: Map<string, string>
}

/** `<service>.<slot>`, or `<service>.<nodeID>` for global tasks. */
export function taskName(t: Task, names: Names): string {
  const svc = names.services.get(t.ServiceID) ?? t.ServiceID
  return t.Slot ? `${svc}.${t.Slot}` : `${svc}.${t.NodeID ?? ''}`
}

export const PS_FORMAT = 'table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}'
const PS_HEADERS = { ID: 'ID', Name: 'NAME', Image: 'IMAGE', Node: 'NODE', DesiredState: 'DESIRED STATE', CurrentState: 'CURRENT STATE', Error: 'ERROR', Ports: 'PORTS' }

/**
 * docker service ps: natural sort by name, newest first within a name;
 * older tasks of a slot get ` \_ ` in tables; errors quoted and cut to 30.
 */
export function formatTasks(tasks: Task[], names: Names, o: { now: number; trunc: boolean; quiet?: boolean; format?: string }): string {
  const named = tasks.map(t => ({ t, name: taskName(t, names) }))
  named.sort((x, y) => naturalCompare(x.name, y.name) || Date.parse(y.t.CreatedAt) - Date.parse(x.t.CreatedAt))
  if (o.quiet) return named.map(({ t }) => t.ID + '\n').join('')
  const format = o.format ?? PS_FORMAT
  const indent = format.startsWith('table') ? ' \\_ ' : ''
  let prev = ''
  const rows = named.map(({ t, name }) => {
    const shown = name === prev ? indent + name : name
    prev = name
    const err = o.trunc ? ellipsis(t.Status.Err ?? '', 30) : (t.Status.Err ?? '')
    return {
      ID: o.trunc ? truncateID(t.ID) : t.ID,
      Name: shown,
      Image: o.trunc ? familiarImage(t.Spec.ContainerSpec.Image) : t.Spec.ContainerSpec.Image,
      Node: t.NodeID ? (names.nodes.get(t.NodeID) ?? t.NodeID) : '',
      DesiredState: pretty(t.DesiredState),
      CurrentState: `${pretty(t.Status.State)} ${humanDuration(o.now - Date.parse(t.Status.Timestamp)).toLowerCase()} ago`,
      Error: err ? `"${err}"` : '',
      Ports: (t.Status.PortStatus?.Ports ?? []).map(p => `*:${p.PublishedPort}->${p.TargetPort}/${p.Protocol}`).join(','),
    }
  })
  return formatRows(format, PS_HEADERS, rows)
}

/** A service as `GET /services?status=true` returns it. */
export type ListedService = Service & { ServiceStatus?: { RunningTasks: number; DesiredTasks: number; CompletedTasks?: number } }

export const LS_FORMAT = 'table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}'
const LS_HEADERS = { ID: 'ID', Name: 'NAME', Mode: 'MODE', Replicas: 'REPLICAS', Image: 'IMAGE', Ports: 'PORTS' }

/** Ingress ports with consecutive ones collapsed: `*:80-81->80-81/tcp, *:53->53/udp`. */
export function formatPorts(ports: PortConfig[] | undefined): string {
  if (!ports) return ''
  const sorted = [...ports].sort((a, b) =>
    (a.Protocol ?? '') === (b.Protocol ?? '') ? (a.PublishedPort ?? 0) - (b.PublishedPort ?? 0) : (a.Protocol ?? '') < (b.Protocol ?? '') ? -1 : 1,
  )
  const out: string[] = []
  let pr = { pStart: 0, pEnd: 0, tStart: 0, tEnd: 0, protocol: '' }
  const str = (r: typeof pr): string =>
    `*:${r.pEnd > r.pStart ? `${r.pStart}-${r.pEnd}` : r.pStart}->${r.tEnd > r.tStart ? `${r.tStart}-${r.tEnd}` : r.tStart}/${r.protocol}`
  // Go compares these as uint32: a smaller port wraps around and counts as a gap.
  const gap = (a: number, b: number): boolean => (a - b) >>> 0 > 1
  for (const p of sorted) {
    if (p.PublishMode !== 'ingress') continue
    const pub = p.PublishedPort ?? 0
    const isRange = pr.tEnd !== pr.tStart
    if ((p.Protocol ?? '') !== pr.protocol || gap(pub, pr.pEnd) || gap(p.TargetPort, pr.tEnd) || (isRange && p.TargetPort <= pr.tEnd)) {
      if (pr.pStart > 0) out.push(str(pr))
      pr = { pStart: pub, pEnd: pub, tStart: p.TargetPort, tEnd: p.TargetPort, protocol: p.Protocol ?? '' }
      continue
    }
    pr.pEnd = pub
    pr.tEnd = p.TargetPort
  }
  if (pr.pStart > 0) out.push(str(pr))
  return out.join(', ')
}

export function serviceMode(s: Service): string {
  const m = s.Spec.Mode
  return m.Global ? 'global' : m.Replicated ? 'replicated' : m.ReplicatedJob ? 'replicated job' : m.GlobalJob ? 'global job' : ''
}

/** REPLICAS: running/desired, with `(max N per node)` when set; jobs add their completions, `0/1 (1/1 completed)`. */
export function replicas(s: ListedService): string {
  const running = s.ServiceStatus?.RunningTasks ?? 0
  const desired = s.ServiceStatus?.DesiredTasks ?? 0
  const completed = s.ServiceStatus?.CompletedTasks ?? 0
  if (s.Spec.Mode.ReplicatedJob) return `${running}/${desired} (${completed}/${s.Spec.Mode.ReplicatedJob.TotalCompletions ?? 0} completed)`
  if (s.Spec.Mode.GlobalJob) return `${running}/${desired} (${completed}/${desired + completed} completed)`
  const max = s.Spec.Mode.Replicated ? (s.Spec.TaskTemplate.Placement?.MaxReplicas ?? 0) : 0
  return max > 0 ? `${running}/${desired} (max ${max} per node)` : `${running}/${desired}`
}

/**
 * ServiceStatus from the task list, for a daemon that does not fill it:
 * running tasks on live nodes, desired replicas (or live global tasks).
 */
export function serviceStatus(s: Service, tasks: Task[], activeNodes: Set<string>): NonNullable<ListedService['ServiceStatus']> {
  let running = 0
  let globalDesired = 0
  for (const t of tasks) {
    if (t.ServiceID !== s.ID) continue
    if (t.NodeID && activeNodes.has(t.NodeID) && t.Status.State === 'running') running++
    if (t.DesiredState !== 'shutdown' && t.DesiredState !== 'remove') globalDesired++
  }
  return { RunningTasks: running, DesiredTasks: s.Spec.Mode.Replicated ? (s.Spec.Mode.Replicated.Replicas ?? 1) : globalDesired }
}

/** docker service ls, natural sort by name. */
export function formatServices(services: ListedService[], o: { quiet?: boolean; format?: string }): string {
  const sorted = [...services].sort((a, b) => naturalCompare(a.Spec.Name, b.Spec.Name))
  if (o.quiet && !o.format) return sorted.map(s => s.ID + '\n').join('')
  const rows = sorted.map(s => ({
    ID: truncateID(s.ID),
    Name: s.Spec.Name,
    Mode: serviceMode(s),
    Replicas: replicas(s),
    Image: familiarImage(s.Spec.TaskTemplate.ContainerSpec.Image),
    Ports: formatPorts(s.Endpoint?.Ports),
  }))
  return formatRows(o.format ?? LS_FORMAT, LS_HEADERS, rows)
}

/** go-units BytesSize: `%.4g` of binary multiples. */
export function bytesSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${Number(n.toPrecision(4))}${units[i]}`
}

/** A float as Go's %v prints it (2 → "2", 0.5 → "0.5"). */
const goFloat = (n: number): string => String(n)

/**
 * `service inspect --pretty`: docker's serviceInspectPrettyTemplate, for
 * the fields swarmd's ServiceSpec carries. `networks` maps network IDs to names.
 */
export function prettyService(s: Service, o: { now: number; networks?: Map<string, string> }): string {
  const spec = s.Spec
  const tt = spec.TaskTemplate
  const c = tt.ContainerSpec
  const L: string[] = ['', `ID:\t\t${s.ID}`, `Name:\t\t${spec.Name}`]
  const labels = Object.entries(spec.Labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))
  if (labels.length) L.push('Labels:', ...labels.map(([k, v]) => ` ${k}${v ? `=${v}` : ''}`))
  if (spec.Mode.Global) L.push('Service Mode:\tGlobal')
  else if (spec.Mode.Replicated) {
    L.push('Service Mode:\tReplicated')
    if (spec.Mode.Replicated.Replicas !== undefined) L.push(` Replicas:\t${spec.Mode.Replicated.Replicas}`)
  } else L.push('Service Mode:')
  const us = s.UpdateStatus
  if (us?.State) {
    L.push('UpdateStatus:', ` State:\t\t${us.State}`)
    if (us.StartedAt) L.push(` Started:\t${humanDuration(o.now - Date.parse(us.StartedAt))} ago`)
    if (us.State === 'completed' && us.CompletedAt) L.push(` Completed:\t${humanDuration(o.now - Date.parse(us.CompletedAt))} ago`)
    L.push(` Message:\t${us.Message}`)
  }
  L.push('Placement:')
  const pl = tt.Placement
  if (pl?.Constraints?.length) L.push(` Constraints:\t[${pl.Constraints.join(' ')}]`)
  if (pl?.Preferences?.length) L.push(` Preferences:   [${pl.Preferences.map(p => `spread=${p.Spread.SpreadDescriptor}`).join(' ')}]`)
  if (pl?.MaxReplicas) L.push(` Max Replicas Per Node:   ${pl.MaxReplicas}`)
  for (const [title, cfg, order] of [
    ['UpdateConfig', spec.UpdateConfig, 'Update order:     '],
    ['RollbackConfig', spec.RollbackConfig, 'Rollback order:   '],
  ] as const) {
    if (!cfg) continue
    L.push(`${title}:`, ` Parallelism:\t${cfg.Parallelism ?? 0}`)
    if ((cfg.Delay ?? 0) > 0) L.push(` Delay:\t\t${formatGoDuration(cfg.Delay!)}`)
    L.push(` On failure:\t${cfg.FailureAction ?? ''}`)
    if ((cfg.Monitor ?? 0) > 0) L.push(` Monitoring Period: ${formatGoDuration(cfg.Monitor!)}`)
    L.push(` Max failure ratio: ${goFloat(cfg.MaxFailureRatio ?? 0)}`, ` ${order} ${cfg.Order ?? ''}`)
  }
  L.push('ContainerSpec:', ` Image:\t\t${c.Image}`)
  if (c.Args?.length) L.push(` Args:\t\t${c.Args.map(a => a + ' ').join('')}`)
  if (c.Env?.length) L.push(` Env:\t\t${c.Env.map(a => a + ' ').join('')}`)
  if (c.Dir) L.push(` Dir:\t\t${c.Dir}`)
  if (c.Init !== undefined) L.push(` Init:\t\t${c.Init}`)
  if (c.User) L.push(` User: ${c.User}`)
  containerBlocks(L, s)
  if (c.Secrets?.length) L.push('Secrets:', ...c.Secrets.flatMap(r => [` Target:\t${r.File?.Name ?? ''}`, `  Source:\t${r.SecretName}`]))
  logDriverBlock(L, tt.LogDriver)
  const res = tt.Resources
  if (res) {
    L.push('Resources:')
    const r = res.Reservations
    if (r && ((r.NanoCPUs ?? 0) > 0 || (r.MemoryBytes ?? 0) > 0)) {
      L.push(' Reservations:')
      if ((r.NanoCPUs ?? 0) > 0) L.push(`  CPU:\t\t${goFloat(r.NanoCPUs! / 1e9)}`)
      if (r.MemoryBytes) L.push(`  Memory:\t${bytesSize(r.MemoryBytes)}`)
    }
    const l = res.Limits
    if (l && ((l.NanoCPUs ?? 0) > 0 || (l.MemoryBytes ?? 0) > 0 || (l.Pids ?? 0) > 0)) {
      L.push(' Limits:')
      if ((l.NanoCPUs ?? 0) > 0) L.push(`  CPU:\t\t${goFloat(l.NanoCPUs! / 1e9)}`)
      if (l.MemoryBytes) L.push(`  Memory:\t${bytesSize(l.MemoryBytes)}`)
    }
  }
  if ((res?.Limits?.Pids ?? 0) > 0) L.push(`  PIDs:\t\t${res!.Limits!.Pids}`)
  if (tt.Networks?.length) L.push(`Networks:${tt.Networks.map(n => ' ' + (o.networks?.get(n.Target) ?? n.Target)).join('')} `)
  L.push(`Endpoint Mode:\t${spec.EndpointSpec?.Mode ?? ''}`)
  const ports = s.Endpoint?.Ports ?? []
  if (ports.length) {
    L.push('Ports:')
    for (const p of ports) L.push(` PublishedPort = ${p.PublishedPort ?? 0}`, `  Protocol = ${p.Protocol ?? ''}`, `  TargetPort = ${p.TargetPort}`, `  PublishMode = ${p.PublishMode ?? ''}`)
    L[L.length - 1] += ' '
  }
  healthcheckBlock(L, c.Healthcheck)
  // The template ends with a newline and the formatter adds another.
  return L.join('\n') + '\n\n'
}

const byKey = <T>(m: Record<string, T>): [string, T][] => Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

/** The template's Capabilities, SysCtls, Ulimits and Mounts blocks, each only when set (Go ranges over maps by sorted key). */
function containerBlocks(L: string[], s: Service): void {
  const c = s.Spec.TaskTemplate.ContainerSpec
  if (c.CapabilityAdd?.length || c.CapabilityDrop?.length) {
    L.push('Capabilities:')
    if (c.CapabilityAdd?.length) L.push(` Add: ${c.CapabilityAdd.join(', ')}`)
    if (c.CapabilityDrop?.length) L.push(` Drop: ${c.CapabilityDrop.join(', ')}`)
  }
  const sysctls = byKey(c.Sysctls ?? {})
  if (sysctls.length) L.push('SysCtls:', ...sysctls.map(([k, v]) => ` ${k}${v ? `: ${v}` : ''}`))
  const ulimits = byKey(Object.fromEntries((c.Ulimits ?? []).map(u => [u.Name, `${u.Soft}:${u.Hard}`])))
  if (ulimits.length) L.push('Ulimits:', ...ulimits.map(([k, v]) => ` ${k}: ${v}`))
  if (c.Mounts?.length) {
    L.push('Mounts:')
    for (const m of c.Mounts) L.push(` Target:\t${m.Target ?? ''}`, `  Source:\t${m.Source ?? ''}`, `  ReadOnly:\t${m.ReadOnly ?? false}`, `  Type:\t\t${m.Type ?? ''}`)
  }
}

/** The Log Driver block; the template leaves an empty line after it. */
function logDriverBlock(L: string[], log: Service['Spec']['TaskTemplate']['LogDriver']): void {
  if (!log) return
  L.push('Log Driver:')
  if (log.Name) L.push(` Name:\t\t${log.Name}`)
  const opts = byKey(log.Options ?? {})
  if (opts.length) L.push(' LogOpts:', ...opts.map(([k, v]) => `  ${k}${v ? `:       ${v}` : ''}`))
  L.push('')
}

/** The Healthcheck block, last, indented as the template indents it. */
function healthcheckBlock(L: string[], hc: Service['Spec']['TaskTemplate']['ContainerSpec']['Healthcheck']): void {
  if (!hc) return
  L.push(' Healthcheck:', `  Interval = ${formatGoDuration(hc.Interval ?? 0)}`, `  Retries = ${hc.Retries ?? 0}`, `  StartPeriod =\t${formatGoDuration(hc.StartPeriod ?? 0)}`, `  Timeout =\t${formatGoDuration(hc.Timeout ?? 0)}`)
  if (hc.Test?.length) {
    L.push('  Tests:', ...hc.Test.map(x => `\t Test = ${x}`))
    L[L.length - 1] += ' '
  }
}

/** Go's time.Time.String() lower-cased as PrettyPrint shows it: `2024-01-02 03:04:05.5 +0000 utc`. */
export function goTime(iso: string): string {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?/.exec(iso)
  if (!m) return iso
  const d = new Date(iso)
  const date = d.toISOString()
  const frac = (m[3] ?? '').replace(/0+$/, '')
  return `${date.slice(0, 10)} ${date.slice(11, 19)}${frac ? '.' + frac : ''} +0000 utc`
}

export const SECRET_FORMAT = 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}'
const SECRET_HEADERS = { ID: 'ID', Name: 'NAME', Driver: 'DRIVER', CreatedAt: 'CREATED', UpdatedAt: 'UPDATED', Labels: 'LABELS' }

type SecretObj = Secret & { Spec: Secret['Spec'] & { Driver?: { Name: string } } }

/** docker config ls (no driver column). */
export const CONFIG_FORMAT = 'table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}'

/** docker secret ls and config ls (with the configs' `table`): full IDs, natural sort by name. */
export function formatSecrets(secrets: SecretObj[], o: { now: number; quiet?: boolean; format?: string }, table = SECRET_FORMAT): string {
  const sorted = [...secrets].sort((a, b) => naturalCompare(a.Spec.Name, b.Spec.Name))
  if (o.quiet && !o.format) return sorted.map(s => s.ID + '\n').join('')
  const rows = sorted.map(s => ({
    ID: s.ID,
    Name: s.Spec.Name,
    Driver: s.Spec.Driver?.Name ?? '',
    CreatedAt: `${humanDuration(o.now - Date.parse(s.CreatedAt))} ago`,
    UpdatedAt: `${humanDuration(o.now - Date.parse(s.UpdatedAt))} ago`,
    Labels: Object.entries(s.Spec.Labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
  }))
  return formatRows(o.format ?? table, SECRET_HEADERS, rows)
}

/** The labels block of the pretty inspect of a secret or a config. */
function prettyLabels(s: SecretObj): string[] {
  const labels = Object.entries(s.Spec.Labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))
  return labels.length ? ['Labels:', ...labels.map(([k, v]) => ` - ${k}${v ? `=${v}` : ''}`)] : []
}

/** `secret inspect --pretty` (docker's secretInspectPrettyTemplate). */
export function prettySecret(s: SecretObj): string {
  const L = [`ID:              ${s.ID}`, `Name:              ${s.Spec.Name}`, ...prettyLabels(s)]
  L.push(`Driver:            ${s.Spec.Driver?.Name ?? ''}`, `Created at:        ${goTime(s.CreatedAt)}`, `Updated at:        ${goTime(s.UpdatedAt)}`)
  return L.join('\n') + '\n'
}

/** `config inspect --pretty` (docker's configInspectPrettyTemplate, tabs and all): the data shown as it is. */
export function prettyConfig(c: Config): string {
  const L = [`ID:\t\t\t${c.ID}`, `Name:\t\t\t${c.Spec.Name}`, ...prettyLabels(c)]
  L.push(`Created at:            \t${goTime(c.CreatedAt)}`, `Updated at:            \t${goTime(c.UpdatedAt)}`, 'Data:', Buffer.from(c.Spec.Data, 'base64').toString())
  return L.join('\n') + '\n'
}
