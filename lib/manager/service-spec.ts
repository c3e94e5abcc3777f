import { randomInt } from 'node:crypto'
import { SwarmError } from '../types/errors.js'
import { parseConstraints } from './constraint.js'
import type { ContainerSpec, EndpointSpec, FileTarget, HealthConfig, Mount, MountType, Nanos, NetworkAttachmentConfig, PortConfig, Resources, RestartPolicy, ServiceSpec, TaskSpec, UpdateConfig } from '../types/service.js'

/**
 * Checks the body of POST /services/create and /services/{id}/update as
 * dockerd and swarmkit do, in their order and with their texts, and returns
 * the spec dockerd would store. Three stages:
 *  1. dockerd decodes the JSON into Go structs: a wrong JSON type is
 *     "invalid JSON: json: cannot unmarshal …" (field keys match
 *     case-insensitively, unknown ones are dropped);
 *  2. dockerd resolves networks and converts the spec for swarmkit
 *     (daemon/cluster/convert), rejecting unknown enum values and filling
 *     what the conversion fills (a random name, the only-replicated default,
 *     Condition any, vip, tcp, ingress…);
 *  3. swarmkit's controlapi validates it; its gRPC errors reach the client as
 *     "rpc error: code = InvalidArgument desc = …".
 * Beyond Docker (which accepts them silently): port numbers outside
 * 1..65535, unknown protocols and publish modes, and bad RollbackConfig
 * values are rejected; secret and config references may name only the ID
 * or the name and get a default file target, as the docker CLI would send.
 */

export interface SpecContext {
  /** A secret by ID, name or ID prefix. */
  secretByRef(ref: string): { ID: string; Spec: { Name: string } } | undefined
  /** A config by ID, name or ID prefix. */
  configByRef(ref: string): { ID: string; Spec: { Name: string } } | undefined
  /** A swarm-scoped network by ID, name or ID prefix. */
  networkByRef(ref: string): { ID: string; Name: string } | undefined
}

const SECOND = 1e9
/** The most tasks one replicated service may ask for. */
export const MAX_REPLICAS = 100_000

const rpc = (desc: string) => new SwarmError('E_INVALID_SPEC', `rpc error: code = InvalidArgument desc = ${desc}`)
const invalid = (message: string) => new SwarmError('E_INVALID_SPEC', message)
// Go's %q for the strings users type.
const q = (s: string) => JSON.stringify(s)

export function validateServiceSpec(body: unknown, ctx: SpecContext): ServiceSpec {
  const raw = decode(body ?? {}, SERVICE_SPEC, [], 'serviceWithLegacy') as RawSpec
  const networks = (raw.TaskTemplate?.Networks ?? []).map(n => resolveNetwork(n, ctx))
  const { spec, refs } = convert(raw, networks, ctx)
  validate(spec, refs)
  for (const kind of ['secret', 'config'] as const) {
    const missing = refs.filter(r => r.kind === kind && !r.found).map(r => r.label)
    if (missing.length) throw rpc(`${kind}${missing.length === 1 ? '' : 's'} not found: ${missing.join(', ')}`)
  }
  return spec
}

// ---- stage 1: Go's encoding/json --------------------------------------------------------------

type Schema =
  | { kind: 'string'; go: string }
  | { kind: 'int'; go: string; min: number; max: number }
  | { kind: 'float32' }
  | { kind: 'bool' }
  | { kind: 'slice'; go: string; of: Schema }
  | { kind: 'map' }
  | { kind: 'struct'; go: string; fields: Record<string, Schema> }

const str = (go = 'string'): Schema => ({ kind: 'string', go })
const U64: Schema = { kind: 'int', go: 'uint64', min: 0, max: 2 ** 64 - 1 }
const U32: Schema = { kind: 'int', go: 'uint32', min: 0, max: 2 ** 32 - 1 }
const I64: Schema = { kind: 'int', go: 'int64', min: -(2 ** 63), max: 2 ** 63 - 1 }
const DURATION: Schema = { ...I64, go: 'time.Duration' }
const STRINGS: Schema = { kind: 'slice', go: '[]string', of: str() }
const struct = (go: string, fields: Record<string, Schema> = {}, pkg = 'swarm'): Schema => ({ kind: 'struct', go: `${pkg}.${go}`, fields })
const BOOL: Schema = { kind: 'bool' }
const MAP: Schema = { kind: 'map' }
const INT: Schema = { ...I64, go: 'int' }
const DRIVER = struct('Driver', { Name: str(), Options: MAP })
const MOUNT = struct(
  'Mount',
  {
    Type: str('mount.Type'),
    Source: str(),
    Target: str(),
    ReadOnly: BOOL,
    Consistency: str('mount.Consistency'),
    BindOptions: struct('BindOptions', { Propagation: str('mount.Propagation'), NonRecursive: BOOL, CreateMountpoint: BOOL }, 'mount'),
    VolumeOptions: struct('VolumeOptions', { NoCopy: BOOL, Labels: MAP, Subpath: str(), DriverConfig: struct('Driver', { Name: str(), Options: MAP }, 'mount') }, 'mount'),
    TmpfsOptions: struct('TmpfsOptions', { SizeBytes: I64, Mode: { ...U32, go: 'fs.FileMode' } }, 'mount'),
  },
  'mount',
)
const HEALTH = struct('HealthConfig', { Test: STRINGS, Interval: DURATION, Timeout: DURATION, StartPeriod: DURATION, StartInterval: DURATION, Retries: INT }, 'container')
const PRIVILEGES = struct('Privileges', {
  CredentialSpec: struct('CredentialSpec', { Config: str(), File: str(), Registry: str() }),
  SELinuxContext: struct('SELinuxContext', { Disable: BOOL, User: str(), Role: str(), Type: str(), Level: str() }),
  Seccomp: struct('SeccompOpts', { Mode: str('swarm.SeccompMode'), Profile: str() }),
  AppArmor: struct('AppArmorOpts', { Mode: str('swarm.AppArmorMode') }),
  NoNewPrivileges: BOOL,
})

const RESOURCES = { NanoCPUs: I64, MemoryBytes: I64 }
const GENERIC_RESOURCES: Schema = {
  kind: 'slice',
  go: '[]swarm.GenericResource',
  of: struct('GenericResource', { NamedResourceSpec: struct('NamedGenericResource', { Kind: str(), Value: str() }), DiscreteResourceSpec: struct('DiscreteGenericResource', { Kind: str(), Value: I64 }) }),
}
const UPDATE_CONFIG = struct('UpdateConfig', {
  Parallelism: U64,
  Delay: DURATION,
  FailureAction: str('swarm.FailureAction'),
  Monitor: DURATION,
  MaxFailureRatio: { kind: 'float32' },
  Order: str('swarm.UpdateOrder'),
})

/** []*swarm.SecretReference or []*swarm.ConfigReference (a config's may have a Runtime target instead of a file). */
function fileRefs(kind: 'Secret' | 'Config'): Schema {
  const fields: Record<string, Schema> = {
    File: struct(`${kind}ReferenceFileTarget`, { Name: str(), UID: str(), GID: str(), Mode: { kind: 'int', go: 'fs.FileMode', min: 0, max: 2 ** 32 - 1 } }),
    [`${kind}ID`]: str(),
    [`${kind}Name`]: str(),
  }
  if (kind === 'Config') fields.Runtime = struct('ConfigReferenceRuntimeTarget')
  return { kind: 'slice', go: `[]*swarm.${kind}Reference`, of: struct(`${kind}Reference`, fields) }
}

const SERVICE_SPEC = struct('serviceWithLegacy', {
  Name: str(),
  Labels: { kind: 'map' },
  TaskTemplate: struct('TaskSpec', {
    ContainerSpec: struct('ContainerSpec', {
      Image: str(),
      Labels: { kind: 'map' },
      Command: STRINGS,
      Args: STRINGS,
      Hostname: str(),
      Env: STRINGS,
      Dir: str(),
      User: str(),
      StopGracePeriod: DURATION,
      Init: BOOL,
      Groups: STRINGS,
      StopSignal: str(),
      TTY: BOOL,
      OpenStdin: BOOL,
      ReadOnly: BOOL,
      Mounts: { kind: 'slice', go: '[]mount.Mount', of: MOUNT },
      Healthcheck: HEALTH,
      Hosts: STRINGS,
      DNSConfig: struct('DNSConfig', { Nameservers: { ...STRINGS, go: '[]netip.Addr' }, Search: STRINGS, Options: STRINGS }),
      Isolation: str('container.Isolation'),
      Sysctls: MAP,
      CapabilityAdd: STRINGS,
      CapabilityDrop: STRINGS,
      Ulimits: { kind: 'slice', go: '[]*container.Ulimit', of: struct('Ulimit', { Name: str(), Hard: I64, Soft: I64 }, 'container') },
      OomScoreAdj: I64,
      Privileges: PRIVILEGES,
      Secrets: fileRefs('Secret'),
      Configs: fileRefs('Config'),
    }),
    Resources: struct('ResourceRequirements', { Limits: struct('Limit', { ...RESOURCES, Pids: I64 }), Reservations: struct('Resources', { ...RESOURCES, GenericResources: GENERIC_RESOURCES }) }),
    RestartPolicy: struct('RestartPolicy', { Condition: str('swarm.RestartPolicyCondition'), Delay: DURATION, MaxAttempts: U64, Window: DURATION }),
    Placement: struct('Placement', {
      Constraints: STRINGS,
      Preferences: { kind: 'slice', go: '[]swarm.PlacementPreference', of: struct('PlacementPreference', { Spread: struct('SpreadOver', { SpreadDescriptor: str() }) }) },
      MaxReplicas: U64,
      Platforms: { kind: 'slice', go: '[]swarm.Platform', of: struct('Platform', { Architecture: str(), OS: str() }) },
    }),
    LogDriver: DRIVER,
    Networks: { kind: 'slice', go: '[]swarm.NetworkAttachmentConfig', of: struct('NetworkAttachmentConfig', { Target: str(), Aliases: STRINGS }) },
    ForceUpdate: U64,
    Runtime: str('swarm.RuntimeType'),
  }),
  Mode: struct('ServiceMode', {
    Replicated: struct('ReplicatedService', { Replicas: U64 }),
    Global: struct('GlobalService'),
    ReplicatedJob: struct('ReplicatedJob', { MaxConcurrent: U64, TotalCompletions: U64 }),
    GlobalJob: struct('GlobalJob'),
  }),
  UpdateConfig: UPDATE_CONFIG,
  RollbackConfig: UPDATE_CONFIG,
  EndpointSpec: struct('EndpointSpec', {
    Mode: str('swarm.ResolutionMode'),
    Ports: {
      kind: 'slice',
      go: '[]swarm.PortConfig',
      of: struct('PortConfig', { Name: str(), Protocol: str('network.IPProtocol'), TargetPort: U32, PublishedPort: U32, PublishMode: str('swarm.PortConfigPublishMode') }),
    },
  }),
})

/** The decoded body: the schema's fields, canonically named, absent when missing or null. */
interface RawSpec {
  Name?: string
  Labels?: Record<string, string>
  TaskTemplate?: Omit<TaskSpec, 'ContainerSpec' | 'RestartPolicy' | 'Networks' | 'Resources' | 'Placement'> & {
    ContainerSpec?: Omit<ContainerSpec, 'Image' | 'Secrets' | 'Configs' | 'Mounts'> & { Image?: string; Secrets?: RawSecretRef[]; Configs?: RawConfigRef[]; Mounts?: RawMount[]; Privileges?: object }
    RestartPolicy?: Omit<RestartPolicy, 'Condition'> & { Condition?: string }
    Networks?: Partial<NetworkAttachmentConfig>[]
    Resources?: { Limits?: Resources; Reservations?: Resources & { GenericResources?: object[] } }
    Placement?: NonNullable<TaskSpec['Placement']> & { Platforms?: object[] }
  }
  Mode?: { Replicated?: { Replicas?: number }; Global?: object; ReplicatedJob?: { MaxConcurrent?: number; TotalCompletions?: number }; GlobalJob?: object }
  UpdateConfig?: RawUpdate
  RollbackConfig?: RawUpdate
  EndpointSpec?: { Mode?: string; Ports?: (Omit<PortConfig, 'Protocol' | 'PublishMode' | 'TargetPort'> & { Protocol?: string; PublishMode?: string; TargetPort?: number })[] }
}
type RawUpdate = Omit<UpdateConfig, 'FailureAction' | 'Order'> & { FailureAction?: string; Order?: string }
type RawFile = Partial<FileTarget>
type RawMount = Omit<Mount, 'Type'> & { Type?: string }
interface RawSecretRef {
  File?: RawFile
  SecretID?: string
  SecretName?: string
}
interface RawConfigRef {
  File?: RawFile
  Runtime?: object
  ConfigID?: string
  ConfigName?: string
}

/**
 * Decodes `value` as Go's encoding/json would into the schema's type: the
 * first type mismatch is the error, worded as Go words it (the innermost
 * struct holding the field, the field path from the top).
 */
function decode(value: unknown, schema: Schema, path: string[], holder: string): unknown {
  const mismatch = (what: string) => {
    const into = path.length ? `Go struct field ${holder}.${path.join('.')}` : 'Go value'
    return invalid(`invalid JSON: json: cannot unmarshal ${what} into ${into} of type ${goType(schema)}`)
  }
  const kind = Array.isArray(value) ? 'array' : typeof value === 'boolean' ? 'bool' : typeof value
  switch (schema.kind) {
    case 'string':
      if (typeof value !== 'string') throw mismatch(kind)
      return value
    case 'bool':
      if (typeof value !== 'boolean') throw mismatch(kind)
      return value
    case 'int':
      if (typeof value !== 'number') throw mismatch(kind)
      // Go parses the literal as an integer of the field's size.
      if (!Number.isInteger(value) || value < schema.min || value > schema.max) throw mismatch(`number ${value}`)
      return value
    case 'float32':
      if (typeof value !== 'number') throw mismatch(kind)
      if (Math.abs(value) > 3.4028234663852886e38) throw mismatch(`number ${value}`)
      return value
    case 'slice':
      if (!Array.isArray(value)) throw mismatch(kind)
      return value.map(item => (item === null ? zero(schema.of) : decode(item, schema.of, path, holder)))
    case 'map':
      if (kind !== 'object') throw mismatch(kind)
      return Object.fromEntries(
        Object.entries(value as object).map(([k, v]) => [k, v === null ? '' : decode(v, str(), path, holder)]),
      )
    case 'struct': {
      if (kind !== 'object') throw mismatch(kind)
      const names = Object.keys(schema.fields)
      const out: Record<string, unknown> = {}
      for (const [key, v] of Object.entries(value as object)) {
        const name = names.find(n => n === key) ?? names.find(n => n.toLowerCase() === key.toLowerCase())
        if (name === undefined) continue
        if (v === null) delete out[name]
        else out[name] = decode(v, schema.fields[name]!, [...path, name], schema.go.slice(schema.go.indexOf('.') + 1))
      }
      return out
    }
  }
}

function goType(schema: Schema): string {
  switch (schema.kind) {
    case 'map':
      return 'map[string]string'
    case 'float32':
    case 'bool':
      return schema.kind
    default:
      return schema.go
  }
}

// What a JSON null inside an array decodes to (the schema's arrays hold strings or structs).
function zero(schema: Schema): unknown {
  return schema.kind === 'string' ? '' : {}
}

// ---- stage 2: dockerd ------------------------------------------------------------------------

function resolveNetwork(n: Partial<NetworkAttachmentConfig>, ctx: SpecContext): NetworkAttachmentConfig {
  const target = n.Target ?? ''
  const found = ctx.networkByRef(target)
  if (!found) throw new SwarmError('E_NETWORK_NOT_FOUND', `network ${target} not found`)
  return { Target: found.ID, ...(n.Aliases?.length ? { Aliases: n.Aliases } : {}) }
}

/** A secret or config reference with its object looked up. */
interface ResolvedRef {
  kind: 'secret' | 'config'
  id: string
  name: string
  file: FileTarget
  /** The name swarmkit prints when the object does not exist. */
  label: string
  found: boolean
  malformed: boolean
}

const RESTART_CONDITIONS = ['none', 'on-failure', 'any'] as const
const FAILURE_ACTIONS = ['pause', 'continue', 'rollback'] as const
const ORDERS = ['stop-first', 'start-first'] as const
const PROTOCOLS = ['tcp', 'udp', 'sctp'] as const
const PUBLISH_MODES = ['ingress', 'host'] as const

const oneOf = <T extends string>(values: readonly T[], v: string): v is T => (values as readonly string[]).includes(v)

/** daemon/cluster/convert ServiceSpecToGRPC and back: what dockerd rejects and what it stores. */
function convert(raw: RawSpec, networks: NetworkAttachmentConfig[], ctx: SpecContext): { spec: ServiceSpec; refs: ResolvedRef[] } {
  const task = raw.TaskTemplate ?? {}
  const runtime = task.Runtime ?? ''
  if (runtime !== '' && runtime !== 'container' && runtime !== 'plugin') throw invalid('unsupported runtime')
  if (runtime === 'plugin' || !task.ContainerSpec) throw invalid('mismatched Runtime and *Spec fields')
  const { Secrets: rawSecrets, Configs: rawConfigs, Image, Mounts: rawMounts, Privileges, ...container } = task.ContainerSpec
  refuseUnsupported(Privileges, task.Resources?.Reservations?.GenericResources, task.Placement?.Platforms)
  const secrets = (rawSecrets ?? []).map(r => resolveRef('secret', r.SecretID, r.SecretName, r.File, ref => ctx.secretByRef(ref)))
  if (rawConfigs?.some(r => r.Runtime)) throw invalid('config references with a Runtime target are not supported')
  const configs = (rawConfigs ?? []).map(r => resolveRef('config', r.ConfigID, r.ConfigName, r.File, ref => ctx.configByRef(ref)))
  const mounts = (rawMounts ?? []).map(convertMount)

  const template: TaskSpec = {
    ContainerSpec: {
      Image: Image ?? '',
      ...container,
      ...(mounts.length ? { Mounts: mounts } : {}),
      ...(secrets.length ? { Secrets: secrets.map(r => ({ File: r.file, SecretID: r.id, SecretName: r.name })) } : {}),
      ...(configs.length ? { Configs: configs.map(r => ({ File: r.file, ConfigID: r.id, ConfigName: r.name })) } : {}),
    },
    ...(task.Resources ? { Resources: resources(task.Resources) } : {}),
    ...(task.RestartPolicy ? { RestartPolicy: restartPolicy(task.RestartPolicy) } : {}),
    ...(task.Placement ? { Placement: placement(task.Placement) } : {}),
    ...(networks.length ? { Networks: networks } : {}),
    ForceUpdate: task.ForceUpdate ?? 0,
    Runtime: 'container',
    ...(task.LogDriver ? { LogDriver: task.LogDriver } : {}),
  }
  const update = raw.UpdateConfig && updateConfig(raw.UpdateConfig)
  const rollback = raw.RollbackConfig && updateConfig(raw.RollbackConfig)
  const endpoint = raw.EndpointSpec && endpointSpec(raw.EndpointSpec)

  const mode = raw.Mode ?? {}
  if ([mode.Replicated, mode.Global, mode.ReplicatedJob, mode.GlobalJob].filter(Boolean).length > 1) {
    throw invalid('must specify only one service mode')
  }
  // A slot is a task: the orchestrator walks them all, so an absurd count would stall the manager.
  if ((mode.Replicated?.Replicas ?? 1) > MAX_REPLICAS) throw rpc(`Replicas: ${mode.Replicated!.Replicas} is more than swarmd's limit of ${MAX_REPLICAS} tasks per service`)
  // dockerd's defaults: one at a time, as many completions as may run at once.
  const job = mode.ReplicatedJob && { MaxConcurrent: mode.ReplicatedJob.MaxConcurrent ?? 1, TotalCompletions: mode.ReplicatedJob.TotalCompletions ?? mode.ReplicatedJob.MaxConcurrent ?? 1 }
  if (job && job.TotalCompletions > MAX_REPLICAS) throw rpc(`TotalCompletions: ${job.TotalCompletions} is more than swarmd's limit of ${MAX_REPLICAS} tasks per service`)
  // swarmkit's validateJob.
  if ((job || mode.GlobalJob) && update) throw rpc('Jobs may not have an update config')

  const spec: ServiceSpec = {
    Name: raw.Name || randomName(),
    Labels: raw.Labels ?? {},
    TaskTemplate: template,
    Mode: mode.Global ? { Global: {} } : job ? { ReplicatedJob: job } : mode.GlobalJob ? { GlobalJob: {} } : { Replicated: { Replicas: mode.Replicated?.Replicas ?? 1 } },
    ...(update ? { UpdateConfig: update } : {}),
    ...(rollback ? { RollbackConfig: rollback } : {}),
    ...(endpoint ? { EndpointSpec: endpoint } : {}),
  }
  return { spec, refs: [...secrets, ...configs] }
}

function resolveRef(kind: ResolvedRef['kind'], rawId: string | undefined, rawName: string | undefined, rawFile: RawFile | undefined, byRef: (ref: string) => { ID: string; Spec: { Name: string } } | undefined): ResolvedRef {
  const id = rawId ?? ''
  const name = rawName ?? ''
  const hit = id || name ? byRef(id || name) : undefined
  // As swarmkit: a reference whose ID and name disagree names no object.
  const found = hit && (!name || hit.Spec.Name === name) ? hit : undefined
  const objectName = found?.Spec.Name ?? name
  const f = rawFile ?? {}
  const file = { Name: rawFile ? (f.Name ?? '') : objectName || id, UID: f.UID || '0', GID: f.GID || '0', Mode: f.Mode ?? 0o444 }
  return { kind, id: found?.ID ?? id, name: objectName, file, label: name || id, found: found !== undefined, malformed: !id && !name }
}

/**
 * What no executor of swarmd can honour is refused by name rather than
 * stored and ignored: privileges (credential specs, SELinux, seccomp,
 * AppArmor, no-new-privileges), generic resources (no node advertises
 * any) and platforms (swarmd does not resolve image manifests).
 */
function refuseUnsupported(privileges: object | undefined, generic: object[] | undefined, platforms: object[] | undefined): void {
  const set = (o: object | undefined): boolean => !!o && Object.values(o).some(v => v !== undefined && v !== false && v !== '' && !(typeof v === 'object' && !set(v)))
  if (set(privileges)) throw rpc('ContainerSpec.Privileges is not supported by swarmd (credential specs, SELinux, seccomp, AppArmor, no-new-privileges)')
  if (generic?.length) throw rpc('Resources.Reservations.GenericResources is not supported by swarmd: no node advertises generic resources')
  if (platforms?.length) throw rpc('Placement.Platforms is not supported by swarmd: image platforms are not resolved')
}

const MOUNT_TYPES = ['bind', 'volume', 'tmpfs', 'npipe', 'cluster'] as const
const PROPAGATIONS = ['rprivate', 'private', 'rshared', 'shared', 'rslave', 'slave']

/** dockerd's mount conversion: enum values matched upper-cased, an empty type is bind (the protobuf zero). */
function convertMount(m: RawMount): Mount {
  const type = (m.Type ?? '').toLowerCase() || 'bind'
  if (!oneOf(MOUNT_TYPES, type)) throw invalid(`invalid MountType: ${q(m.Type ?? '')}`)
  const propagation = m.BindOptions?.Propagation
  if (propagation && !PROPAGATIONS.includes(propagation.toLowerCase())) throw invalid(`invalid MountPropagation: ${q(propagation)}`)
  const { Type: _raw, ...rest } = m
  return { Type: type as MountType, ...rest, ...(m.BindOptions ? { BindOptions: { ...m.BindOptions, ...(propagation ? { Propagation: propagation.toLowerCase() } : {}) } } : {}) }
}

function resources(r: NonNullable<NonNullable<RawSpec['TaskTemplate']>['Resources']>): NonNullable<TaskSpec['Resources']> {
  const { GenericResources: _refused, ...reservations } = r.Reservations ?? {}
  return { ...(r.Limits ? { Limits: r.Limits } : {}), ...(r.Reservations ? { Reservations: reservations as Resources } : {}) }
}

function restartPolicy(p: NonNullable<NonNullable<RawSpec['TaskTemplate']>['RestartPolicy']>): RestartPolicy {
  const condition = p.Condition || 'any'
  if (!oneOf(RESTART_CONDITIONS, condition)) throw invalid(`invalid RestartCondition: ${q(condition)}`)
  return {
    Condition: condition,
    ...(p.Delay !== undefined ? { Delay: p.Delay } : {}),
    MaxAttempts: p.MaxAttempts ?? 0,
    ...(p.Window !== undefined ? { Window: p.Window } : {}),
  }
}

function placement(p: NonNullable<NonNullable<RawSpec['TaskTemplate']>['Placement']>): NonNullable<TaskSpec['Placement']> {
  const preferences = (p.Preferences ?? []).filter(pref => pref.Spread)
  return {
    ...(p.Constraints?.length ? { Constraints: p.Constraints } : {}),
    ...(preferences.length ? { Preferences: preferences.map(pref => ({ Spread: { SpreadDescriptor: pref.Spread.SpreadDescriptor ?? '' } })) } : {}),
    ...(p.MaxReplicas ? { MaxReplicas: p.MaxReplicas } : {}),
  }
}

function updateConfig(u: RawUpdate): UpdateConfig {
  const action = u.FailureAction || 'pause'
  if (!oneOf(FAILURE_ACTIONS, action)) throw invalid(`unrecognized update failure action ${action}`)
  const order = u.Order || 'stop-first'
  if (!oneOf(ORDERS, order)) throw invalid(`unrecognized update order ${order}`)
  return {
    Parallelism: u.Parallelism ?? 0,
    ...(u.Delay ? { Delay: u.Delay } : {}),
    FailureAction: action,
    // dockerd drops a zero monitor period, so it reads back as the default.
    ...(u.Monitor ? { Monitor: u.Monitor } : {}),
    MaxFailureRatio: u.MaxFailureRatio ?? 0,
    Order: order,
  }
}

function endpointSpec(e: NonNullable<RawSpec['EndpointSpec']>): EndpointSpec {
  const mode = e.Mode || 'vip'
  if (mode !== 'vip' && mode !== 'dnsrr') throw invalid(`invalid resolution mode: ${q(mode)}`)
  const ports = (e.Ports ?? []).map((p): PortConfig => {
    // dockerd upper-cases these to find the protobuf enum value.
    const protocol = (p.Protocol || 'tcp').toLowerCase()
    if (!oneOf(PROTOCOLS, protocol)) throw invalid(`invalid protocol: ${q(p.Protocol ?? '')}`)
    const publishMode = (p.PublishMode || 'ingress').toLowerCase()
    if (!oneOf(PUBLISH_MODES, publishMode)) throw invalid(`invalid publish mode: ${q(p.PublishMode ?? '')}`)
    const target = p.TargetPort ?? 0
    if (target < 1 || target > 65535) throw rpc(`EndpointSpec: invalid target port ${target}: must be between 1 and 65535`)
    const published = p.PublishedPort ?? 0
    if (published > 65535) throw rpc(`EndpointSpec: invalid published port ${published}: must be between 0 and 65535`)
    return {
      ...(p.Name ? { Name: p.Name } : {}),
      Protocol: protocol,
      TargetPort: target,
      ...(published ? { PublishedPort: published } : {}),
      PublishMode: publishMode,
    }
  })
  return { Mode: mode, ...(ports.length ? { Ports: ports } : {}) }
}

// dockerd names an unnamed service like a container (namesgenerator): adjective_surname.
const ADJECTIVES = ['admiring', 'bold', 'brave', 'clever', 'dazzling', 'eager', 'elegant', 'festive', 'focused', 'gallant', 'happy', 'jolly', 'keen', 'loving', 'modest', 'nifty', 'optimistic', 'quirky', 'relaxed', 'serene', 'sharp', 'stoic', 'tender', 'vibrant', 'wizardly', 'zealous']
const SURNAMES = ['babbage', 'curie', 'darwin', 'dijkstra', 'einstein', 'euler', 'feynman', 'galileo', 'hopper', 'hypatia', 'kepler', 'knuth', 'lamport', 'lovelace', 'meitner', 'newton', 'noether', 'pascal', 'ritchie', 'shannon', 'tesla', 'thompson', 'turing', 'wozniak']

export function randomName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}_${SURNAMES[randomInt(SURNAMES.length)]}`
}

// ---- stage 3: swarmkit's controlapi ----------------------------------------------------------

function validate(spec: ServiceSpec, refs: ResolvedRef[]): void {
  if (!isDNSLabel(spec.Name)) throw rpc('name must be valid as a DNS name component')
  if (spec.Name.length > 63) throw rpc('name must be 63 characters or fewer')

  const task = spec.TaskTemplate
  for (const r of [task.Resources?.Limits, task.Resources?.Reservations]) {
    const cpus = r?.NanoCPUs ?? 0
    if (cpus !== 0 && cpus < 1e6) throw rpc(`invalid cpu value ${goFloat(cpus / 1e9)}: Must be at least 0.001`)
    const memory = r?.MemoryBytes ?? 0
    if (memory !== 0 && memory < 4 * 1024 * 1024) throw rpc(`invalid memory value ${memory}: Must be at least 4MiB`)
  }
  if ((task.RestartPolicy?.Delay ?? 0) < 0) throw rpc('TaskSpec: restart-delay cannot be negative')
  if ((task.RestartPolicy?.Window ?? 0) < 0) throw rpc('TaskSpec: restart-window cannot be negative')
  if (task.Placement?.Constraints) parseConstraints(task.Placement.Constraints)
  validateRefs(refs.filter(r => r.kind === 'secret'))
  validateRefs(refs.filter(r => r.kind === 'config'))
  validateImage(task.ContainerSpec.Image)
  validateMounts(task.ContainerSpec.Mounts ?? [])
  if (task.ContainerSpec.Healthcheck) validateHealthCheck(task.ContainerSpec.Healthcheck)

  if (spec.UpdateConfig) validateUpdate(spec.UpdateConfig, 'update')
  // swarmkit leaves RollbackConfig unchecked; the same rules apply to it here.
  if (spec.RollbackConfig) validateUpdate(spec.RollbackConfig, 'rollback')

  const seen = new Set<string>()
  for (const p of spec.EndpointSpec?.Ports ?? []) {
    if (spec.EndpointSpec?.Mode === 'dnsrr' && p.PublishMode === 'ingress') {
      throw rpc("EndpointSpec: port published with ingress mode can't be used with dnsrr mode")
    }
    if (!p.PublishedPort) continue
    const key = `${p.Protocol}/${p.PublishedPort}`
    if (seen.has(key)) throw rpc('EndpointSpec: duplicate published ports provided')
    seen.add(key)
  }
}

/** swarmkit's ^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$, without its exponential backtracking in JS. */
function isDNSLabel(name: string): boolean {
  return /^[a-zA-Z0-9]$/.test(name.at(0) ?? '') && /^[a-zA-Z0-9]$/.test(name.at(-1) ?? '') && /^[-_a-zA-Z0-9]*$/.test(name)
}

/** swarmkit's validateSecretRefsSpec and validateConfigRefsSpec: well-formed, one reference per target. */
function validateRefs(refs: ResolvedRef[]): void {
  const targets = new Map<string, string>()
  for (const { kind, name, file, malformed } of refs) {
    if (malformed) throw rpc(`malformed ${kind} reference`)
    if (file.Name === '') throw rpc(`malformed file ${kind} reference, invalid target file name provided`)
    const previous = targets.get(file.Name)
    if (previous !== undefined) throw rpc(`${kind} references '${previous}' and '${name}' have a conflicting target: '${file.Name}'`)
    targets.set(file.Name, name)
  }
}

function validateMounts(mounts: Mount[]): void {
  const targets = new Set<string>()
  for (const m of mounts) {
    if (targets.has(m.Target ?? '')) throw rpc(`ContainerSpec: duplicate mount point: ${m.Target ?? ''}`)
    targets.add(m.Target ?? '')
  }
}

/** swarmkit's validateHealthCheck: each period is 0 (the default) or at least 1ms. */
function validateHealthCheck(hc: HealthConfig): void {
  for (const field of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const d = hc[field] ?? 0
    if (d !== 0 && d < 1e6) throw rpc(`ContainerSpec: ${field} in HealthConfig cannot be less than 1ms`)
  }
  if ((hc.Retries ?? 0) < 0) throw rpc('ContainerSpec: Retries in HealthConfig cannot be negative')
}

function validateUpdate(u: UpdateConfig, what: 'update' | 'rollback'): void {
  if ((u.Delay ?? 0) < 0) throw rpc(`TaskSpec: ${what}-delay cannot be negative`)
  if ((u.Monitor ?? 0) < 0) throw rpc(`TaskSpec: ${what}-monitor cannot be negative`)
  const ratio = u.MaxFailureRatio ?? 0
  if (ratio < 0 || ratio > 1) throw rpc(`TaskSpec: ${what}-maxfailureratio cannot be less than 0 or bigger than 1`)
}

// distribution/reference's grammar (ParseNormalizedNamed): lower-case path components, an optional registry host.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`
const REFERENCE = new RegExp(
  `^((?:${HOST}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::[\\w][\\w.-]{0,127})?(?:@(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}))?$`,
)

function validateImage(image: string): void {
  if (image === '') throw rpc('ContainerSpec: image reference must be provided')
  // The length cap keeps the regular expression's backtracking bounded.
  const name = image.length <= 1024 ? REFERENCE.exec(image)?.[1] : undefined
  if (name === undefined || name.length > 255 || /^[a-f0-9]{64}$/.test(image)) {
    throw rpc(`ContainerSpec: ${q(image)} is not a valid repository/tag`)
  }
}

/** Go's %g for a float64: shortest digits, an exponent outside 1e-4 ≤ |x| < 1e6. */
function goFloat(x: number): string {
  const [mantissa, exp] = x.toExponential().split('e') as [string, string]
  const e = Number(exp)
  if (e < -4 || e >= 6) return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`
  return String(x)
}

// ---- port conflicts and defaults ----------------------------------------------------------

/**
 * swarmkit's checkPortConflicts: a published port may serve one service
 * only, except host-mode ports, which only clash with ingress ones. Other
 * services' allocated ports (Endpoint.Ports) count too. Pass the others
 * only (on update, not the service itself).
 */
export function checkPortConflicts(spec: ServiceSpec, others: { ID: string; Spec: ServiceSpec; Endpoint?: { Ports?: PortConfig[] } }[]): void {
  const mine = (spec.EndpointSpec?.Ports ?? []).filter(p => p.PublishedPort).map(portKey)
  const ingress = new Set(mine.filter(p => p.mode === 'ingress').map(p => p.key))
  const host = new Set(mine.filter(p => p.mode === 'host').map(p => p.key))
  if (ingress.size + host.size === 0) return
  for (const svc of others) {
    for (const p of [...(svc.Spec.EndpointSpec?.Ports ?? []), ...(svc.Endpoint?.Ports ?? [])]) {
      if (!p.PublishedPort) continue
      const { key, mode } = portKey(p)
      const clash = mode === 'host' ? ingress.has(key) : ingress.has(key) || host.has(key)
      if (clash) {
        throw rpc(`port '${p.PublishedPort}' is already in use by service '${svc.Spec.Name}' (${svc.ID}) as ${mode === 'host' ? 'a host-published' : 'an ingress'} port`)
      }
    }
  }
}

function portKey(p: PortConfig): { key: string; mode: 'ingress' | 'host' } {
  return { key: `${p.Protocol ?? 'tcp'}/${p.PublishedPort}`, mode: p.PublishMode ?? 'ingress' }
}

const DEFAULT_UPDATE: Required<Omit<UpdateConfig, 'Delay'>> = { Parallelism: 1, FailureAction: 'pause', Monitor: 5 * SECOND, MaxFailureRatio: 0, Order: 'stop-first' }

/**
 * The spec with swarmkit's defaults (api/defaults.Service, as
 * InterpolateService fills them) and the endpoint mode: what
 * `docker service inspect` shows for a service the docker CLI created,
 * since the CLI sends these defaults itself. For GET ?insertDefaults=true
 * and for clients that want to send what the docker CLI sends.
 */
export function applyDefaults(spec: ServiceSpec): ServiceSpec {
  const s = structuredClone(spec)
  const t = s.TaskTemplate
  t.ContainerSpec.StopGracePeriod ??= 10 * SECOND
  t.Resources ??= {}
  t.RestartPolicy = t.RestartPolicy ? { ...t.RestartPolicy, Delay: t.RestartPolicy.Delay ?? 5 * SECOND } : { Condition: 'any', Delay: 5 * SECOND, MaxAttempts: 0 }
  t.Placement ??= {}
  s.UpdateConfig = s.UpdateConfig ? { ...s.UpdateConfig, Monitor: s.UpdateConfig.Monitor || DEFAULT_UPDATE.Monitor } : { ...DEFAULT_UPDATE }
  s.RollbackConfig = s.RollbackConfig ? { ...s.RollbackConfig, Monitor: s.RollbackConfig.Monitor || DEFAULT_UPDATE.Monitor } : { ...DEFAULT_UPDATE }
  s.EndpointSpec ??= { Mode: 'vip' }
  return s
}

/** Every setting the orchestrator acts on, defaults filled in. */
export interface EffectiveSpec {
  replicas: number | undefined
  global: boolean
  restart: Required<RestartPolicy>
  update: Required<UpdateConfig>
  rollback: Required<UpdateConfig>
  stopGracePeriod: Nanos
  endpointMode: 'vip' | 'dnsrr'
  ports: (Required<Omit<PortConfig, 'Name'>> & { Name?: string })[]
}

export function effective(spec: ServiceSpec): EffectiveSpec {
  const s = applyDefaults(spec)
  const r = s.TaskTemplate.RestartPolicy ?? {}
  const full = (u: UpdateConfig | undefined): Required<UpdateConfig> => ({ ...DEFAULT_UPDATE, Delay: 0, ...u, Monitor: u?.Monitor || DEFAULT_UPDATE.Monitor })
  return {
    replicas: s.Mode.Global ? undefined : (s.Mode.Replicated?.Replicas ?? 1),
    global: !!s.Mode.Global,
    restart: { Condition: r.Condition ?? 'any', Delay: r.Delay ?? 5 * SECOND, MaxAttempts: r.MaxAttempts ?? 0, Window: r.Window ?? 0 },
    update: full(s.UpdateConfig),
    rollback: full(s.RollbackConfig),
    stopGracePeriod: s.TaskTemplate.ContainerSpec.StopGracePeriod ?? 10 * SECOND,
    endpointMode: s.EndpointSpec?.Mode ?? 'vip',
    ports: (s.EndpointSpec?.Ports ?? []).map(p => ({
      ...p,
      Protocol: p.Protocol ?? 'tcp',
      PublishedPort: p.PublishedPort ?? 0,
      PublishMode: p.PublishMode ?? 'ingress',
    })),
  }
}
