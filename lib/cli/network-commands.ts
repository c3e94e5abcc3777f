import { createInterface } from 'node:readline'
import { Command, Option } from 'commander'
import type { ApiClient } from '../api/client.js'
import { SwarmdError } from '../types/errors.js'
import { ApiError } from '../api/api-error.js'
import type { NetworkObject } from '../types/network.js'
import { errText, filtersQuery } from './service-commands.js'
import { formatRows, truncateID } from './service-format.js'

/**
 * swarmctl network: docker's network commands (create, ls, inspect, rm),
 * flags, output and error texts, for swarmd's overlay networks.
 */

const out = (s: string): boolean => process.stdout.write(s)
const enc = encodeURIComponent
const collect = (v: string, prev: string[] = []): string[] => [...prev, v]

/** opts.MapOpts / ConvertKVStringsToMap: `k=v`, or `k` alone for an empty value. */
export function keyValues(list: string[] = []): Record<string, string> {
  const m: Record<string, string> = {}
  for (const kv of list) {
    const i = kv.indexOf('=')
    m[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1)
  }
  return m
}

/** Go's net.ParseCIDR for the CLI's own checks: the network and the address, or an error in Go's words. */
function parseCIDR(s: string): { net: number; bits: number; ip: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s)
  const octets = m ? m.slice(1, 5).map(Number) : []
  const bits = m ? Number(m[5]) : NaN
  if (!m || octets.some(o => o > 255) || bits > 32) throw new SwarmdError('E_USAGE', `invalid CIDR address: ${s}`)
  const ip = octets.reduce((a, o) => a * 256 + o, 0)
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0
  return { net: (ip & mask) >>> 0, bits, ip }
}

function parseIP(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s)
  if (!m) return undefined
  const o = m.slice(1, 5).map(Number)
  return o.some(x => x > 255) ? undefined : o.reduce((a, x) => a * 256 + x, 0)
}

/** docker's subnetMatches: does `data` (an address or CIDR) fall in `subnet`? */
function subnetMatches(subnet: string, data: string): boolean {
  let s: { net: number; bits: number }
  try {
    s = parseCIDR(subnet)
  } catch (e) {
    throw new SwarmdError('E_USAGE', `invalid subnet: ${(e as Error).message}`)
  }
  const ip = data.includes('/') ? parseCIDR(data).ip : parseIP(data)
  if (ip === undefined) return false
  const mask = s.bits === 0 ? 0 : (~0 << (32 - s.bits)) >>> 0
  return ((ip & mask) >>> 0) === s.net
}

export interface IpamFlags {
  ipamDriver: string
  subnet?: string[]
  ipRange?: string[]
  gateway?: string[]
  auxAddress?: string[]
  ipamOpt?: string[]
}

interface IpamConfig {
  Subnet: string
  IPRange?: string
  Gateway?: string
  AuxiliaryAddresses: Record<string, string>
}

/** docker's createIPAMConfig: subnets with their range, gateway and aux addresses, with its error texts. */
export function ipamConfig(o: IpamFlags): { Driver: string; Config: IpamConfig[]; Options: Record<string, string> } {
  const subnets = o.subnet ?? []
  if (subnets.length < (o.ipRange ?? []).length || subnets.length < (o.gateway ?? []).length) {
    throw new SwarmdError('E_USAGE', 'every ip-range or gateway must have a corresponding subnet')
  }
  const data = new Map<string, IpamConfig>()
  for (const s of subnets) {
    for (const k of data.keys()) if (subnetMatches(s, k) || subnetMatches(k, s)) throw new SwarmdError('E_USAGE', 'multiple overlapping subnet configuration is not supported')
    data.set(s, { Subnet: s, AuxiliaryAddresses: {} })
  }
  for (const r of o.ipRange ?? []) {
    let match = false
    for (const s of subnets) {
      parseCIDR(r)
      if (!subnetMatches(s, r)) continue
      const d = data.get(s)!
      if (d.IPRange) throw new SwarmdError('E_USAGE', `cannot configure multiple ranges (${r}, ${d.IPRange}) on the same subnet (${s})`)
      d.IPRange = r
      match = true
    }
    if (!match) throw new SwarmdError('E_USAGE', `no matching subnet for range ${r}`)
  }
  for (const g of o.gateway ?? []) {
    let match = false
    for (const s of subnets) {
      if (!subnetMatches(s, g)) continue
      const d = data.get(s)!
      if (d.Gateway) throw new SwarmdError('E_USAGE', `cannot configure multiple gateways (${g}, ${d.Gateway}) for the same subnet (${s})`)
      d.Gateway = g
      match = true
    }
    if (!match) throw new SwarmdError('E_USAGE', `no matching subnet for gateway ${g}`)
  }
  for (const [key, aa] of Object.entries(keyValues(o.auxAddress))) {
    let match = false
    for (const s of subnets) {
      if (!subnetMatches(s, aa)) continue
      data.get(s)!.AuxiliaryAddresses[key] = aa
      match = true
    }
    if (!match) throw new SwarmdError('E_USAGE', `no matching subnet for aux-address ${aa}`)
  }
  return { Driver: o.ipamDriver, Config: [...data.values()], Options: keyValues(o.ipamOpt) }
}

export interface CreateFlags extends IpamFlags {
  driver: string
  opt?: string[]
  label?: string[]
  internal?: boolean
  attachable?: boolean
  ingress?: boolean
  scope?: string
}

/** The body of POST /networks/create for `network create` flags, as docker's runCreate sends it. */
export function createRequest(name: string, o: CreateFlags): Record<string, unknown> {
  return {
    Name: name,
    Driver: o.driver,
    Scope: o.scope ?? '',
    IPAM: ipamConfig(o),
    Internal: !!o.internal,
    Attachable: !!o.attachable,
    Ingress: !!o.ingress,
    ConfigOnly: false,
    Options: keyValues(o.opt),
    Labels: keyValues(o.label),
  }
}

/** sortorder.NaturalLess: digit runs compare as numbers. */
export function naturalLess(a: string, b: string): boolean {
  const chunks = (s: string): string[] => s.match(/\d+|\D+/g) ?? []
  const x = chunks(a)
  const y = chunks(b)
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!
    const q = y[i]!
    if (p === q) continue
    if (/^\d/.test(p) && /^\d/.test(q)) {
      const pp = p.replace(/^0+/, '')
      const qq = q.replace(/^0+/, '')
      if (pp.length !== qq.length) return pp.length < qq.length
      if (pp !== qq) return pp < qq
      return p.length < q.length
    }
    return p < q
  }
  return x.length < y.length
}

const LS_HEADERS = { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv4: 'IPV4', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', CreatedAt: 'CREATED AT' }

/** `network ls` output: docker's table (or -q, or --format), sorted by name. */
export function formatNetworks(list: NetworkObject[], o: { quiet?: boolean; trunc: boolean; format?: string }): string {
  const sorted = [...list].sort((a, b) => (naturalLess(a.Name, b.Name) ? -1 : naturalLess(b.Name, a.Name) ? 1 : 0))
  const rows = sorted.map(n => ({
    ID: o.trunc ? truncateID(n.Id) : n.Id,
    Name: n.Name,
    Driver: n.Driver,
    Scope: n.Scope,
    IPv4: String(n.EnableIPv4),
    IPv6: String(n.EnableIPv6),
    Internal: String(n.Internal),
    Labels: Object.entries(n.Labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    CreatedAt: n.Created,
  }))
  const format = o.format || (o.quiet ? '{{.ID}}' : 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}')
  return formatRows(format, LS_HEADERS, rows)
}

/** A small part of Go templates for `inspect -f`: `{{.A.B}}` and `{{json .A}}`. */
export function inspectTemplate(format: string, obj: unknown): string {
  const at = (path: string): unknown => path.split('.').filter(Boolean).reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), obj)
  return format.replace(/\{\{\s*(json\s+)?\.([\w.]*)\s*\}\}/g, (_, json: string | undefined, path: string) => {
    const v = at(path)
    if (json) return JSON.stringify(v ?? null)
    if (v === null || v === undefined) return '<no value>'
    return typeof v === 'object' ? JSON.stringify(v) : String(v)
  })
}

const INGRESS_WARNING =
  'WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same docker engine version. ' +
  'Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.\nAre you sure you want to continue?'

/** docker's prompt.Confirm: the question, then one line from stdin; only "y" agrees. */
export async function stdinConfirm(message: string): Promise<boolean> {
  out(`${message} [y/N] `)
  const rl = createInterface({ input: process.stdin })
  try {
    const line = await new Promise<string>(resolve => {
      rl.once('line', resolve)
      rl.once('close', () => resolve(''))
    })
    return line.trim().toLowerCase() === 'y'
  } finally {
    rl.close()
  }
}

export function addNetworkCommands(program: Command, client: () => ApiClient, confirm: (message: string) => Promise<boolean> = stdinConfirm): void {
  const network = program.command('network').description('Manage networks').exitOverride()

  network
    .command('create')
    .description('Create a network')
    .argument('<network>')
    .option('-d, --driver <driver>', 'Driver to manage the Network (swarmd: overlay only)', 'overlay')
    .option('-o, --opt <key=value>', 'Set driver specific options (e.g. encrypted)', collect)
    .option('--label <key=value>', 'Set metadata on a network', collect)
    .option('--internal', 'Restrict external access to the network')
    .option('--attachable', 'Enable manual container attachment')
    .option('--ingress', 'Create swarm routing-mesh network')
    .option('--scope <scope>', "Control the network's scope")
    .option('--ipam-driver <driver>', 'IP Address Management Driver', 'default')
    .option('--subnet <cidr>', 'Subnet in CIDR format that represents a network segment', collect)
    .option('--ip-range <cidr>', 'Allocate container ip from a sub-range', collect)
    .option('--gateway <ip>', 'IPv4 or IPv6 Gateway for the master subnet', collect)
    .option('--aux-address <name=ip>', 'Auxiliary IPv4 or IPv6 addresses used by Network driver', collect)
    .option('--ipam-opt <key=value>', 'Set IPAM driver specific options', collect)
    .action(async (name: string, o: CreateFlags) => {
      const r = await client().call<{ Id: string }>('POST', '/networks/create', createRequest(name, o))
      out(r.Id + '\n')
    })

  network
    .command('ls')
    .alias('list')
    .description('List networks')
    .option('-q, --quiet', 'Only display network IDs')
    .option('--no-trunc', 'Do not truncate the output')
    .option('--format <template>', 'Format output using a custom template')
    .addOption(new Option('-f, --filter <filter>', 'Provide filter values (e.g. "driver=overlay")').argParser(collect))
    .action(async (o: { quiet?: boolean; trunc: boolean; format?: string; filter?: string[] }) => {
      const f: Record<string, string[]> = {}
      for (const kv of o.filter ?? []) {
        const i = kv.indexOf('=')
        if (i <= 0) throw new SwarmdError('E_USAGE', `bad format of filter (expected name=value)`)
        ;(f[kv.slice(0, i).trim().toLowerCase()] ??= []).push(kv.slice(i + 1))
      }
      const q = filtersQuery(f)
      const list = await client().call<NetworkObject[]>('GET', `/networks${q ? '?' + q : ''}`)
      out(formatNetworks(list, { trunc: o.trunc, ...(o.quiet ? { quiet: true } : {}), ...(o.format ? { format: o.format } : {}) }))
    })

  network
    .command('inspect')
    .description('Display detailed information on one or more networks')
    .argument('<network...>')
    .option('-f, --format <template>', 'Format output using a custom template')
    .option('-v, --verbose', 'Verbose output for diagnostics')
    .action(async (refs: string[], o: { format?: string; verbose?: boolean }) => {
      const c = client()
      const found: NetworkObject[] = []
      const errs: string[] = []
      for (const ref of refs) {
        try {
          found.push(await c.call<NetworkObject>('GET', `/networks/${enc(ref)}${o.verbose ? '?verbose=true' : ''}`))
        } catch (e) {
          if (!(e instanceof SwarmdError)) throw e
          errs.push(errText(e))
        }
      }
      if (o.format) out(found.map(n => inspectTemplate(o.format!, n) + '\n').join(''))
      else out(JSON.stringify(found, null, 4) + '\n')
      if (errs.length) throw new SwarmdError('E_NOT_FOUND', errs.join('\n'))
    })

  network
    .command('rm')
    .alias('remove')
    .description('Remove one or more networks')
    .argument('<network...>')
    .option('-f, --force', 'Do not error if the network does not exist')
    .action(async (refs: string[], o: { force?: boolean }) => {
      const c = client()
      let failed = false
      for (const ref of refs) {
        try {
          const n = await c.call<NetworkObject>('GET', `/networks/${enc(ref)}`).catch(() => undefined)
          if (n?.Ingress && !(await confirm(INGRESS_WARNING))) continue
          await c.call('DELETE', `/networks/${enc(ref)}`)
          out(ref + '\n')
        } catch (e) {
          if (!(e instanceof SwarmdError)) throw e
          if (o.force && e instanceof ApiError && e.status === 404) continue
          // docker reports each failure as it goes, then fails the command.
          process.stderr.write(errText(e) + '\n')
          failed = true
        }
      }
      if (failed) throw new SwarmdError('E_FAILED', 'exit status 1')
    })
}
