import { InvalidArgumentError } from 'commander'
import type { ContainerSpec, HealthConfig, Mount, MountType, ServiceSpec, Ulimit } from '../types/service.js'
import { SwarmdError } from '../types/errors.js'
import { kvMap, parseMemBytes } from './service-flags.js'

/**
 * The container flags of `service create` (healthcheck, mounts, stop
 * signal, read-only, capabilities, DNS, hosts, sysctls, ulimits, tty, log
 * driver, PID limit) with docker/cli's parsing and texts (opts/mount.go,
 * opts/ulimit.go, service/opts.go).
 */

/** --mount's CSV as docker's MountOpt.Set: the type defaults to volume. */
export function parseMount(value: string): Mount {
  const v = value.trim()
  if (v === '') throw new InvalidArgumentError('value is empty')
  const m: Mount = { Type: 'volume' }
  for (const field of csvFields(v)) {
    const eq = field.indexOf('=')
    const rawKey = eq < 0 ? field : field.slice(0, eq)
    const val = eq < 0 ? '' : field.slice(eq + 1)
    if (rawKey.trim() !== rawKey) throw new InvalidArgumentError(`invalid option '${rawKey.trim()}' in '${field}': option should not have whitespace`)
    if (eq >= 0 && val.trim() === '') throw new InvalidArgumentError(`invalid value for '${rawKey}': value is empty`)
    if (eq >= 0 && val.trim() !== val) throw new InvalidArgumentError(`invalid value for '${rawKey}' in '${field}': value should not have whitespace`)
    const key = rawKey.toLowerCase()
    const bool = (): boolean => {
      if (eq < 0) return true
      if (['1', 't', 'true', 'TRUE', 'True'].includes(val)) return true
      if (['0', 'f', 'false', 'FALSE', 'False'].includes(val)) return false
      throw new InvalidArgumentError(`invalid value for '${key}': invalid boolean value (${JSON.stringify(val)}): must be one of "true", "1", "false", or "0" (default "true")`)
    }
    if (eq < 0 && !['readonly', 'ro', 'volume-nocopy', 'bind-create-src'].includes(key)) throw new InvalidArgumentError(`invalid field '${field}' must be a key=value pair`)
    switch (key) {
      case 'type':
        m.Type = val.toLowerCase() as MountType
        break
      case 'source':
      case 'src':
        m.Source = val
        break
      case 'target':
      case 'dst':
      case 'destination':
        m.Target = val
        break
      case 'readonly':
      case 'ro':
        m.ReadOnly = bool()
        break
      case 'consistency':
        m.Consistency = val.toLowerCase()
        break
      case 'bind-propagation':
        m.BindOptions = { ...m.BindOptions, Propagation: val.toLowerCase() }
        break
      case 'bind-create-src':
        m.BindOptions = { ...m.BindOptions, CreateMountpoint: bool() }
        break
      case 'volume-nocopy':
        m.VolumeOptions = { ...m.VolumeOptions, NoCopy: bool() }
        break
      case 'volume-subpath':
        m.VolumeOptions = { ...m.VolumeOptions, Subpath: val }
        break
      case 'volume-label':
        m.VolumeOptions = { ...m.VolumeOptions, Labels: { ...m.VolumeOptions?.Labels, ...kvMap([val]) } }
        break
      case 'volume-driver':
        m.VolumeOptions = { ...m.VolumeOptions, DriverConfig: { ...m.VolumeOptions?.DriverConfig, Name: val } }
        break
      case 'volume-opt':
        m.VolumeOptions = { ...m.VolumeOptions, DriverConfig: { ...m.VolumeOptions?.DriverConfig, Options: { ...m.VolumeOptions?.DriverConfig?.Options, ...kvMap([val]) } } }
        break
      case 'tmpfs-size':
        try {
          m.TmpfsOptions = { ...m.TmpfsOptions, SizeBytes: parseMemBytes(val) }
        } catch {
          throw new InvalidArgumentError(`invalid value for ${key}: ${val}`)
        }
        break
      case 'tmpfs-mode':
        if (!/^[0-7]+$/.test(val)) throw new InvalidArgumentError(`invalid value for ${key}: ${val}`)
        m.TmpfsOptions = { ...m.TmpfsOptions, Mode: parseInt(val, 8) }
        break
      default:
        throw new InvalidArgumentError(`unknown option '${key}' in '${field}'`)
    }
  }
  // docker's validateMountOptions.
  if (!m.Target) throw new InvalidArgumentError('target is required')
  if (m.BindOptions && m.Type !== 'bind') throw new InvalidArgumentError(`cannot mix 'bind-*' options with mount type '${m.Type}'`)
  if (m.VolumeOptions && m.Type !== 'volume') throw new InvalidArgumentError(`cannot mix 'volume-*' options with mount type '${m.Type}'`)
  if (m.TmpfsOptions && m.Type !== 'tmpfs') throw new InvalidArgumentError(`cannot mix 'tmpfs-*' options with mount type '${m.Type}'`)
  return m
}

/** A CSV record as Go's encoding/csv reads one: quoted fields may hold commas. */
function csvFields(line: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"'
        i++
      } else if (c === '"') quoted = false
      else cur += c
    } else if (c === '"' && cur === '') quoted = true
    else if (c === ',') {
      out.push(cur)
      cur = ''
    } else cur += c
  }
  if (quoted) throw new InvalidArgumentError(`parse error on line 1, column ${line.length + 1}: extraneous or missing " in quoted-field`)
  out.push(cur)
  return out
}

export const collectMounts = (v: string, prev: Mount[] = []): Mount[] => [...prev, parseMount(v)]

/** --ulimit `name=soft[:hard]` as docker's units.ParseUlimit. */
export function parseUlimit(v: string): Ulimit {
  const eq = v.indexOf('=')
  if (eq < 0) throw new InvalidArgumentError(`invalid ulimit argument: ${v}`)
  const name = v.slice(0, eq)
  const [soft, hard, ...rest] = v.slice(eq + 1).split(':')
  const num = (s: string | undefined): number => {
    if (s === undefined || !/^-?\d+$/.test(s)) throw new InvalidArgumentError(`invalid ulimit argument: ${v}`)
    return Number(s)
  }
  if (rest.length) throw new InvalidArgumentError(`too many limit value arguments - ${v.slice(eq + 1)}, can only have up to two, \`soft[:hard]\``)
  const s = num(soft)
  const h = hard === undefined ? s : num(hard)
  if (s > h) throw new InvalidArgumentError(`ulimit soft limit must be less than or equal to hard limit: ${s} > ${h}`)
  return { Name: name, Soft: s, Hard: h }
}

export const collectUlimits = (v: string, prev: Ulimit[] = []): Ulimit[] => [...prev, parseUlimit(v)]

/** --host `name:ip`, kept in swarm's `ip name` form (docker's convertExtraHostsToSwarmHosts). */
export function parseHost(v: string): string {
  const i = v.indexOf(':')
  if (i <= 0 || i === v.length - 1) throw new InvalidArgumentError(`bad format for add-host: "${v}"`)
  return `${v.slice(i + 1)} ${v.slice(0, i)}`
}

export interface ContainerFlags {
  healthCmd?: string
  healthInterval?: number
  healthTimeout?: number
  healthStartPeriod?: number
  healthStartInterval?: number
  healthRetries?: number
  healthcheck?: boolean
  mount?: Mount[]
  stopSignal?: string
  readOnly?: boolean
  tty?: boolean
  init?: boolean
  group?: string[]
  capAdd?: string[]
  capDrop?: string[]
  dns?: string[]
  dnsSearch?: string[]
  dnsOption?: string[]
  host?: string[]
  sysctl?: string[]
  ulimit?: Ulimit[]
  logDriver?: string
  logOpt?: string[]
  limitPids?: number
}

/** The healthcheck flags as docker's toHealthConfig: --no-healthcheck is Test NONE; any --health-* builds a config. */
export function healthConfig(f: ContainerFlags): HealthConfig | undefined {
  const settings = f.healthCmd !== undefined || f.healthInterval !== undefined || f.healthTimeout !== undefined || f.healthStartPeriod !== undefined || f.healthStartInterval !== undefined || !!f.healthRetries
  if (f.healthcheck === false) {
    if (settings) throw new SwarmdError('E_USAGE', '--no-healthcheck conflicts with --health-* options')
    return { Test: ['NONE'] }
  }
  if (!settings) return undefined
  return {
    ...(f.healthCmd ? { Test: ['CMD-SHELL', f.healthCmd] } : {}),
    Interval: f.healthInterval ?? 0,
    Timeout: f.healthTimeout ?? 0,
    Retries: f.healthRetries ?? 0,
    StartPeriod: f.healthStartPeriod ?? 0,
    StartInterval: f.healthStartInterval ?? 0,
  }
}

/** Applies the container flags given to a spec (create, or the same flags on update). */
export function applyContainerFlags(spec: ServiceSpec, f: ContainerFlags): void {
  const c: ContainerSpec = spec.TaskTemplate.ContainerSpec
  const hc = healthConfig(f)
  if (hc) c.Healthcheck = hc
  if (f.mount?.length) c.Mounts = f.mount
  if (f.stopSignal !== undefined) c.StopSignal = f.stopSignal
  if (f.readOnly !== undefined) c.ReadOnly = f.readOnly
  if (f.tty !== undefined) c.TTY = f.tty
  if (f.init !== undefined) c.Init = f.init
  if (f.group?.length) c.Groups = f.group
  if (f.capAdd?.length) c.CapabilityAdd = f.capAdd
  if (f.capDrop?.length) c.CapabilityDrop = f.capDrop
  if (f.dns?.length || f.dnsSearch?.length || f.dnsOption?.length) {
    c.DNSConfig = { ...(f.dns?.length && { Nameservers: f.dns }), ...(f.dnsSearch?.length && { Search: f.dnsSearch }), ...(f.dnsOption?.length && { Options: f.dnsOption }) }
  }
  if (f.host?.length) c.Hosts = f.host
  if (f.sysctl?.length) c.Sysctls = kvMap(f.sysctl)
  if (f.ulimit?.length) c.Ulimits = f.ulimit
  if (f.logDriver !== undefined || f.logOpt?.length) spec.TaskTemplate.LogDriver = { Name: f.logDriver ?? '', ...(f.logOpt?.length && { Options: kvMap(f.logOpt) }) }
  if (f.limitPids !== undefined) ((spec.TaskTemplate.Resources ??= {}).Limits ??= {}).Pids = f.limitPids
}
