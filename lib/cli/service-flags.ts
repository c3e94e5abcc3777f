import { InvalidArgumentError } from 'commander'
import { SwarmdError } from '../types/errors.js'
import type { ConfigReference, FileTarget, Placement, PortConfig, SecretReference, ServiceSpec, UpdateConfig } from '../types/service.js'

/**
 * docker service create/update flags turned into a ServiceSpec, with
 * docker/cli's parsing rules and error texts (opts.go, update.go,
 * opts/swarmopts), so a command line means here what it means to docker.
 */

const NANOS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }

/** Go's time.ParseDuration ("1m30s", "500ms", "1.5h"), in nanoseconds. */
export function parseGoDuration(v: string): number {
  const invalid = (): never => {
    throw new InvalidArgumentError(`time: invalid duration "${v}"`)
  }
  let s = v
  let sign = 1
  if (s[0] === '-' || s[0] === '+') {
    sign = s[0] === '-' ? -1 : 1
    s = s.slice(1)
  }
  if (s === '0') return 0
  if (!s) invalid()
  let total = 0
  const re = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y
  while (re.lastIndex < s.length) {
    const m = re.exec(s)
    if (!m) invalid()
    total += Number(m![1]) * NANOS[m![2]!]!
  }
  return sign * Math.round(total)
}

/** `n / unit` with up to log10(unit) decimals and no trailing zeros, as Go prints durations. */
function fraction(n: number, unit: number): string {
  const whole = Math.floor(n / unit)
  const rem = n - whole * unit
  if (!rem) return String(whole)
  return `${whole}.${String(rem).padStart(Math.round(Math.log10(unit)), '0').replace(/0+$/, '')}`
}

/** Go's time.Duration.String(): 5s, 1m30s, 1h0m0s, 500ms, 4ns. */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return '0s'
  const sign = ns < 0 ? '-' : ''
  let u = Math.abs(Math.round(ns))
  if (u < 1e3) return `${sign}${u}ns`
  if (u < 1e6) return `${sign}${fraction(u, 1e3)}µs`
  if (u < 1e9) return `${sign}${fraction(u, 1e6)}ms`
  const h = Math.floor(u / 3600e9)
  u -= h * 3600e9
  const m = Math.floor(u / 60e9)
  u -= m * 60e9
  const s = `${fraction(u, 1e9)}s`
  return sign + (h ? `${h}h${m}m${s}` : m ? `${m}m${s}` : s)
}

/** docker's NanoCPUs flag: "0.5" → 500000000. */
export function parseNanoCPUs(v: string): number {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(v)
  if (!m) throw new InvalidArgumentError(`failed to parse ${v} as a rational number`)
  if ((m[2] ?? '').length > 9) throw new InvalidArgumentError('value is too precise')
  return Number(m[1]) * 1e9 + Number((m[2] ?? '').padEnd(9, '0'))
}

/** go-units RAMInBytes: "512m", "1g", "100MiB", binary multiples. */
export function parseMemBytes(v: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(v)
  if (!m) throw new InvalidArgumentError(`invalid size: '${v}'`)
  const exp = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0
  return Math.floor(Number(m[1]) * 1024 ** exp)
}

export function parseUint(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`strconv.ParseUint: parsing "${v}": invalid syntax`)
  return Number(v)
}

export function parseFloat32(v: string): number {
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`strconv.ParseFloat: parsing "${v}": invalid syntax`)
  return n
}

/** Repeatable string flag. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v]

const PROTOCOLS = ['tcp', 'udp', 'sctp'] as const

/** A port range "8080" or "8080-8081" as a list of ports. */
function portRange(v: string, what: string): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v)
  const lo = m ? Number(m[1]) : NaN
  const hi = m?.[2] ? Number(m[2]) : lo
  if (!m || lo > 65535 || hi > 65535 || hi < lo) throw new InvalidArgumentError(`invalid ${what}: ${v}`)
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)
}

/**
 * --publish in both of docker's syntaxes: `[published:]target[/proto]` with
 * ranges, and `published=8080,target=80,protocol=udp,mode=host`.
 */
export function parsePublish(value: string): PortConfig[] {
  if (/\w+=\w+(,\w+=\w+)*/.test(value)) {
    const p: PortConfig = { Protocol: 'tcp', TargetPort: 0, PublishMode: 'ingress' }
    for (const field of value.split(',')) {
      const lower = field.toLowerCase()
      const i = lower.indexOf('=')
      if (i <= 0) throw new InvalidArgumentError(`invalid field: ${field}`)
      const key = lower.slice(0, i)
      const val = lower.slice(i + 1)
      if (key === 'protocol') {
        if (!(PROTOCOLS as readonly string[]).includes(val)) throw new InvalidArgumentError(`invalid protocol value '${val}'`)
        p.Protocol = val as PortConfig['Protocol']
      } else if (key === 'mode') {
        if (val !== 'ingress' && val !== 'host') throw new InvalidArgumentError(`invalid publish mode value (${val}): must be either 'ingress' or 'host'`)
        p.PublishMode = val
      } else if (key === 'target' || key === 'published') {
        const what = key === 'target' ? 'target' : 'published'
        if (!/^\d+$/.test(val) || Number(val) > 65535) throw new InvalidArgumentError(`invalid ${what} port (${val}): value must be an integer: invalid syntax`)
        if (key === 'target') p.TargetPort = Number(val)
        else p.PublishedPort = Number(val)
      } else throw new InvalidArgumentError(`invalid field key: ${key}`)
    }
    if (!p.TargetPort) throw new InvalidArgumentError("missing mandatory field 'target'")
    return [p]
  }
  const slash = value.lastIndexOf('/')
  const proto = slash < 0 ? 'tcp' : value.slice(slash + 1).toLowerCase()
  if (!(PROTOCOLS as readonly string[]).includes(proto)) throw new InvalidArgumentError(`invalid proto: ${proto}`)
  const parts = (slash < 0 ? value : value.slice(0, slash)).split(':')
  if (parts.length > 2) throw new InvalidArgumentError('hostip is not supported')
  const targets = portRange(parts[parts.length - 1]!, 'containerPort')
  const published = parts.length === 2 && parts[0] ? portRange(parts[0], 'hostPort') : undefined
  if (published && published.length !== targets.length && targets.length !== 1) {
    throw new InvalidArgumentError(`invalid ranges specified for container and host Ports: ${targets.join('-')} and ${published.join('-')}`)
  }
  const base = { Protocol: proto as PortConfig['Protocol'], PublishMode: 'ingress' as const }
  if (!published) return targets.map(t => ({ ...base, TargetPort: t, PublishedPort: 0 }))
  if (targets.length === 1) return published.map(p => ({ ...base, TargetPort: targets[0]!, PublishedPort: p }))
  return targets.map((t, i) => ({ ...base, TargetPort: t, PublishedPort: published[i]! }))
}

export const collectPorts = (v: string, prev: PortConfig[] = []): PortConfig[] => [...prev, ...parsePublish(v)]

/** --secret or --config `name` or `source=x,target=y,uid=0,gid=0,mode=0400` (docker's SecretOpt and ConfigOpt). */
function parseFileRef(value: string, kind: 'secret' | 'config'): { name: string; file: Required<FileTarget> } {
  const fields = value.split(',')
  const file = { Name: '', UID: '0', GID: '0', Mode: 0o444 }
  if (fields.length === 1 && !fields[0]!.includes('=')) return { name: value, file: { ...file, Name: value } }
  let name = ''
  for (const field of fields) {
    const i = field.indexOf('=')
    if (i <= 0) throw new InvalidArgumentError(`invalid field '${field}' must be a key=value pair`)
    const key = field.slice(0, i).toLowerCase()
    const val = field.slice(i + 1)
    if (key === 'source' || key === 'src') name = val
    else if (key === 'target') file.Name = val
    else if (key === 'uid') file.UID = val
    else if (key === 'gid') file.GID = val
    else if (key === 'mode') {
      // Go's ParseUint with base 0: a leading 0 means octal.
      const m = /^0[xX][0-9a-fA-F]+$|^0[oO]?[0-7]*$|^[1-9]\d*$/.test(val) ? Number(/^0[0-7]/.test(val) ? `0o${val.slice(1)}` : val) : NaN
      if (!Number.isInteger(m)) throw new InvalidArgumentError(`invalid mode specified: strconv.ParseUint: parsing "${val}": invalid syntax`)
      file.Mode = m
    } else throw new InvalidArgumentError(`invalid field in ${kind} request: ${key}`)
  }
  if (!name) throw new InvalidArgumentError('source is required')
  if (!file.Name) file.Name = name
  return { name, file }
}

/** --secret; SecretID is resolved later. */
export function parseSecretRef(value: string): SecretReference {
  const { name, file } = parseFileRef(value, 'secret')
  return { SecretID: '', SecretName: name, File: file }
}

/** --config; ConfigID is resolved later. A relative target is a path from the container's root. */
export function parseConfigRef(value: string): ConfigReference {
  const { name, file } = parseFileRef(value, 'config')
  return { ConfigID: '', ConfigName: name, File: file }
}

export const collectSecrets = (v: string, prev: SecretReference[] = []): SecretReference[] => [...prev, parseSecretRef(v)]
export const collectConfigs = (v: string, prev: ConfigReference[] = []): ConfigReference[] => [...prev, parseConfigRef(v)]

/** --placement-pref spread=node.labels.zone. */
export function parsePlacementPref(v: string): { Spread: { SpreadDescriptor: string } } {
  const i = v.indexOf('=')
  if (i < 0) throw new InvalidArgumentError('placement preference must be of the format "<strategy>=<arg>"')
  const strategy = v.slice(0, i)
  if (strategy.toLowerCase() !== 'spread') throw new InvalidArgumentError(`unsupported placement preference ${strategy} (only spread is supported)`)
  return { Spread: { SpreadDescriptor: v.slice(i + 1) } }
}

export const collectPrefs = (v: string, prev: Placement['Preferences'] = []): NonNullable<Placement['Preferences']> => [...prev, parsePlacementPref(v)]

/** `KEY=VAL` list → map; a bare key maps to "" (docker's ConvertKVStringsToMap). */
export function kvMap(list: string[] = []): Record<string, string> {
  const m: Record<string, string> = {}
  for (const kv of list) {
    const i = kv.indexOf('=')
    m[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1)
  }
  return m
}

/** docker's ValidateEnv: a bare `KEY` takes its value from the caller's environment when set. */
export function envEntry(v: string, env: NodeJS.ProcessEnv = process.env): string {
  if (v.includes('=')) return v
  const val = env[v]
  return val === undefined ? v : `${v}=${val}`
}

/** Shell-like word splitting for --args (quotes and backslashes, as shellwords does). */
export function shellWords(s: string): string[] {
  const words: string[] = []
  let cur = ''
  let has = false
  let quote = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!
    if (quote) {
      if (c === quote) quote = ''
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i]
      else cur += c
    } else if (c === '"' || c === "'") {
      quote = c
      has = true
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i]
      has = true
    } else if (/\s/.test(c)) {
      if (has) words.push(cur)
      cur = ''
      has = false
    } else {
      cur += c
      has = true
    }
  }
  if (quote) throw new InvalidArgumentError('invalid command line string')
  if (has) words.push(cur)
  return words
}

/** Flags shared by create and update (update-* / rollback-* / restart-* / resources). */
export interface CommonFlags {
  workdir?: string
  hostname?: string
  user?: string
  stopGracePeriod?: number
  restartCondition?: string
  restartDelay?: number
  restartMaxAttempts?: number
  restartWindow?: number
  updateParallelism?: number
  updateDelay?: number
  updateFailureAction?: string
  updateMonitor?: number
  updateMaxFailureRatio?: number
  updateOrder?: string
  rollbackParallelism?: number
  rollbackDelay?: number
  rollbackFailureAction?: string
  rollbackMonitor?: number
  rollbackMaxFailureRatio?: number
  rollbackOrder?: string
  reserveCpu?: number
  reserveMemory?: number
  limitCpu?: number
  limitMemory?: number
  replicasMaxPerNode?: number
  replicas?: number
  maxConcurrent?: number
  detach?: boolean
  quiet?: boolean
}

export interface CreateFlags extends CommonFlags {
  name?: string
  mode?: string
  env?: string[]
  constraint?: string[]
  placementPref?: Placement['Preferences']
  publish?: PortConfig[]
  network?: string[]
  secret?: SecretReference[]
  config?: ConfigReference[]
  label?: string[]
  containerLabel?: string[]
}

export interface UpdateFlags extends CommonFlags {
  image?: string
  envAdd?: string[]
  envRm?: string[]
  args?: string[]
  force?: boolean
  constraintAdd?: string[]
  constraintRm?: string[]
  publishAdd?: PortConfig[]
  publishRm?: PortConfig[]
  secretAdd?: SecretReference[]
  secretRm?: string[]
  configAdd?: ConfigReference[]
  configRm?: string[]
  labelAdd?: string[]
  labelRm?: string[]
  containerLabelAdd?: string[]
  containerLabelRm?: string[]
  rollback?: boolean
}

/** swarmkit's defaults for update and rollback configs (api/defaults/service.go). */
const defaultUpdateConfig = (): UpdateConfig => ({ Parallelism: 1, Delay: 0, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' })

type Kind = 'update' | 'rollback'
const UPDATE_KEYS = ['Parallelism', 'Delay', 'FailureAction', 'Monitor', 'MaxFailureRatio', 'Order'] as const

/** The update-* or rollback-* flags given, by UpdateConfig field. */
function configFlags(f: CommonFlags, kind: Kind): Partial<UpdateConfig> {
  const v = {
    Parallelism: kind === 'update' ? f.updateParallelism : f.rollbackParallelism,
    Delay: kind === 'update' ? f.updateDelay : f.rollbackDelay,
    FailureAction: kind === 'update' ? f.updateFailureAction : f.rollbackFailureAction,
    Monitor: kind === 'update' ? f.updateMonitor : f.rollbackMonitor,
    MaxFailureRatio: kind === 'update' ? f.updateMaxFailureRatio : f.rollbackMaxFailureRatio,
    Order: kind === 'update' ? f.updateOrder : f.rollbackOrder,
  }
  const out: Partial<UpdateConfig> = {}
  for (const k of UPDATE_KEYS) if (v[k] !== undefined) (out as Record<string, unknown>)[k] = v[k]
  return out
}

/** Like docker: a config only when one of its flags is given, from swarmkit's defaults. */
function mergeConfig(current: UpdateConfig | undefined, given: Partial<UpdateConfig>): UpdateConfig | undefined {
  if (Object.keys(given).length === 0) return current
  return { ...(current ?? defaultUpdateConfig()), ...given }
}

function mergeRestart(spec: ServiceSpec, f: CommonFlags): void {
  const given = {
    ...(f.restartCondition !== undefined && { Condition: f.restartCondition as 'none' | 'on-failure' | 'any' }),
    ...(f.restartDelay !== undefined && { Delay: f.restartDelay }),
    ...(f.restartMaxAttempts !== undefined && { MaxAttempts: f.restartMaxAttempts }),
    ...(f.restartWindow !== undefined && { Window: f.restartWindow }),
  }
  if (Object.keys(given).length === 0) return
  const current = spec.TaskTemplate.RestartPolicy ?? { Condition: 'any', Delay: 5e9, MaxAttempts: 0, Window: 0 }
  spec.TaskTemplate.RestartPolicy = { ...current, ...given }
}

/** A mistake found while building the spec; main() prints it as docker prints its errors. */
const usage = (msg: string): SwarmdError => new SwarmdError('E_USAGE', msg)

/** Flags that create and update set the same way. */
function applyCommon(spec: ServiceSpec, f: CommonFlags): void {
  const c = spec.TaskTemplate.ContainerSpec
  if (f.workdir !== undefined) c.Dir = f.workdir
  if (f.hostname !== undefined) c.Hostname = f.hostname
  if (f.user !== undefined) c.User = f.user
  if (f.stopGracePeriod !== undefined) c.StopGracePeriod = f.stopGracePeriod
  mergeRestart(spec, f)
  const update = mergeConfig(spec.UpdateConfig, configFlags(f, 'update'))
  if (update) spec.UpdateConfig = update
  const rollback = mergeConfig(spec.RollbackConfig, configFlags(f, 'rollback'))
  if (rollback) spec.RollbackConfig = rollback
  const res = (spec.TaskTemplate.Resources ??= {})
  if (f.limitCpu !== undefined) (res.Limits ??= {}).NanoCPUs = f.limitCpu
  if (f.limitMemory !== undefined) (res.Limits ??= {}).MemoryBytes = f.limitMemory
  if (f.reserveCpu !== undefined) (res.Reservations ??= {}).NanoCPUs = f.reserveCpu
  if (f.reserveMemory !== undefined) (res.Reservations ??= {}).MemoryBytes = f.reserveMemory
  if (f.replicasMaxPerNode !== undefined) {
    if (!spec.Mode.Replicated && !spec.Mode.ReplicatedJob) throw usage('replicas-max-per-node can only be used with replicated or replicated-job mode')
    ;(spec.TaskTemplate.Placement ??= {}).MaxReplicas = f.replicasMaxPerNode
  }
}

/** `service create` flags, IMAGE and [COMMAND] [ARG...] as docker's ToService builds them (secret IDs still empty). */
export function createSpec(f: CreateFlags, image: string, args: string[], env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  const spec: ServiceSpec = {
    Name: f.name ?? '',
    Labels: kvMap(f.label),
    TaskTemplate: {
      ContainerSpec: {
        Image: image,
        Labels: kvMap(f.containerLabel),
        ...(args.length > 0 && { Args: args }),
        ...(f.env?.length && { Env: f.env.map(e => envEntry(e, env)) }),
        ...(f.secret?.length && { Secrets: f.secret }),
        ...(f.config?.length && { Configs: f.config }),
      },
      Resources: { Limits: {}, Reservations: {} },
      Placement: {
        ...(f.constraint?.length && { Constraints: f.constraint }),
        ...(f.placementPref?.length && { Preferences: f.placementPref }),
      },
      ...(f.network?.length && { Networks: f.network.map(n => ({ Target: n })) }),
      ForceUpdate: 0,
    },
    Mode: serviceMode(f),
    EndpointSpec: { Mode: 'vip', ...(f.publish?.length && { Ports: f.publish }) },
  }
  const job = !!(spec.Mode.ReplicatedJob || spec.Mode.GlobalJob)
  if (job && (Object.keys(configFlags(f, 'update')).length || Object.keys(configFlags(f, 'rollback')).length)) {
    throw usage('update and rollback configuration is not supported for jobs')
  }
  applyCommon(spec, f)
  return spec
}

/** --mode with --replicas and --max-concurrent, as docker's ToServiceMode (a job's defaults are the daemon's). */
function serviceMode(f: CreateFlags): ServiceSpec['Mode'] {
  const mode = f.mode ?? 'replicated'
  const onlyReplicas = 'replicas can only be used with replicated or replicated-job mode'
  const onlyMaxPerNode = 'replicas-max-per-node can only be used with replicated or replicated-job mode'
  const onlyConcurrent = 'max-concurrent can only be used with replicated-job mode'
  switch (mode) {
    case 'global':
      if (f.replicas !== undefined) throw usage(onlyReplicas)
      if (f.replicasMaxPerNode) throw usage(onlyMaxPerNode)
      if (f.maxConcurrent !== undefined) throw usage(onlyConcurrent)
      return { Global: {} }
    case 'replicated':
      if (f.maxConcurrent !== undefined) throw usage(onlyConcurrent)
      // Docker leaves an absent --replicas to the daemon's default of 1; saying it keeps the spec explicit.
      return { Replicated: { Replicas: f.replicas ?? 1 } }
    case 'replicated-job': {
      const concurrent = f.maxConcurrent ?? f.replicas
      return { ReplicatedJob: { ...(concurrent !== undefined && { MaxConcurrent: concurrent }), ...(f.replicas !== undefined && { TotalCompletions: f.replicas }) } }
    }
    case 'global-job':
      if (f.replicasMaxPerNode) throw usage(onlyMaxPerNode)
      if (f.maxConcurrent !== undefined) throw usage(onlyConcurrent)
      if (f.replicas !== undefined) throw usage(onlyReplicas)
      return { GlobalJob: {} }
    default:
      throw usage(`unknown mode: ${mode}, only replicated and global supported`)
  }
}

const portKey = (p: PortConfig): string => `${p.PublishedPort ?? 0}:${p.TargetPort}/${p.Protocol ?? ''}/${p.PublishMode ?? ''}`
const sameProto = (a?: string, b?: string): boolean => a === b || (!a && b === 'tcp') || (!b && a === 'tcp')
const sameMode = (a?: string, b?: string): boolean => a === b || (!a && b === 'ingress') || (!b && a === 'ingress')

/** docker's updatePorts: remove by target/protocol/mode, add new ones, sorted by their string form. */
export function updatePorts(current: PortConfig[], add: PortConfig[] = [], rm: PortConfig[] = []): PortConfig[] {
  const set = new Map<string, PortConfig>()
  for (const p of current) if (!set.has(portKey(p))) set.set(portKey(p), p)
  const out = [...set.values()].filter(p => !rm.some(r => sameProto(p.Protocol, r.Protocol) && p.TargetPort === r.TargetPort && sameMode(p.PublishMode, r.PublishMode)))
  for (const p of add) if (!set.has(portKey(p))) out.push(p)
  return out.sort((a, b) => (portKey(a) < portKey(b) ? -1 : portKey(a) > portKey(b) ? 1 : 0))
}

const envKey = (e: string): string => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e)

/** `service update` flags applied to the current spec, as docker's updateService (secrets resolved later). */
export function updateSpec(spec: ServiceSpec, f: UpdateFlags, env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  const s = structuredClone(spec)
  const c = s.TaskTemplate.ContainerSpec
  if (f.image !== undefined) c.Image = f.image
  if (f.replicas !== undefined) {
    if (s.Mode.ReplicatedJob) s.Mode.ReplicatedJob.TotalCompletions = f.replicas
    else if (!s.Mode.Replicated) throw usage('replicas can only be used with replicated mode')
    else s.Mode.Replicated.Replicas = f.replicas
  }
  if (f.maxConcurrent !== undefined) {
    if (!s.Mode.ReplicatedJob) throw usage('max-concurrent can only be used with replicated-job mode')
    s.Mode.ReplicatedJob.MaxConcurrent = f.maxConcurrent
  }
  if (f.envAdd || f.envRm) {
    const adds = (f.envAdd ?? []).map(e => envEntry(e, env))
    const rm = new Set([...(f.envRm ?? []), ...adds.map(envKey)])
    c.Env = [...(c.Env ?? []).filter(e => !rm.has(envKey(e))), ...adds]
  }
  if (f.args !== undefined) c.Args = f.args
  if (f.constraintAdd || f.constraintRm) {
    const p = (s.TaskTemplate.Placement ??= {})
    const rm = new Set(f.constraintRm ?? [])
    const kept = (p.Constraints ?? []).filter(x => !rm.has(x))
    p.Constraints = [...new Set([...kept, ...(f.constraintAdd ?? [])])].sort()
  }
  if (f.publishAdd || f.publishRm) {
    const ep = (s.EndpointSpec ??= {})
    ep.Ports = updatePorts(ep.Ports ?? [], f.publishAdd, f.publishRm)
  }
  if (f.labelAdd || f.labelRm) {
    const l = (s.Labels ??= {})
    for (const k of f.labelRm ?? []) delete l[k]
    Object.assign(l, kvMap(f.labelAdd))
  }
  if (f.containerLabelAdd || f.containerLabelRm) {
    const l = (c.Labels ??= {})
    for (const k of f.containerLabelRm ?? []) delete l[k]
    Object.assign(l, kvMap(f.containerLabelAdd))
  }
  if (f.secretRm) {
    const rm = new Set(f.secretRm)
    c.Secrets = (c.Secrets ?? []).filter(r => !rm.has(r.SecretName))
  }
  if (f.configRm) {
    const rm = new Set(f.configRm)
    c.Configs = (c.Configs ?? []).filter(r => !rm.has(r.ConfigName))
  }
  if (f.force) s.TaskTemplate.ForceUpdate = (s.TaskTemplate.ForceUpdate ?? 0) + 1
  applyCommon(s, f)
  return s
}

/** The update flags other than --rollback, -d and -q that were given (docker refuses them with --rollback). */
export function hasSpecFlags(f: UpdateFlags): boolean {
  // --no-healthcheck leaves healthcheck true (commander's default) when not given.
  return Object.entries(f).some(([k, v]) => v !== undefined && !['rollback', 'detach', 'quiet'].includes(k) && !(k === 'healthcheck' && v === true))
}

/**
 * Secret or config references with their IDs, resolved by name from the
 * swarm's objects as docker's ParseSecrets and ParseConfigs do; one target
 * per file name.
 */
export function resolveRefs<R extends { File?: FileTarget }>(kind: 'secret' | 'config', refs: R[], objects: { ID: string; Spec: { Name: string } }[], nameOf: (r: R) => string, withId: (r: R, id: string) => R): R[] {
  const byTarget = new Map<string, R>()
  for (const r of refs) {
    const target = r.File?.Name ?? nameOf(r)
    if (byTarget.has(target)) throw usage(`duplicate ${kind} target for ${nameOf(r)} not allowed`)
    byTarget.set(target, r)
  }
  const ids = new Map(objects.map(s => [s.Spec.Name, s.ID]))
  return [...byTarget.values()].map(r => {
    const id = ids.get(nameOf(r))
    if (id === undefined) throw usage(`${kind} not found: ${nameOf(r)}`)
    return withId(r, id)
  })
}

export const resolveSecrets = (refs: SecretReference[], secrets: { ID: string; Spec: { Name: string } }[]): SecretReference[] =>
  resolveRefs('secret', refs, secrets, r => r.SecretName, (r, id) => ({ ...r, SecretID: id }))

export const resolveConfigs = (refs: ConfigReference[], configs: { ID: string; Spec: { Name: string } }[]): ConfigReference[] =>
  resolveRefs('config', refs, configs, r => r.ConfigName, (r, id) => ({ ...r, ConfigID: id }))
