import { join, isAbsolute } from 'node:path'
import type { ConfigReference, HealthConfig, PortConfig, RestartPolicy, SecretReference, ServiceSpec, TaskSpec, UpdateConfig } from '../types/service.js'
import type { ComposeFile } from './compose-load.js'
import type { Lookup } from './compose-interpolate.js'
import { parseGoDuration, parseMemBytes, parseNanoCPUs, shellWords } from './service-flags.js'

/**
 * A compose file turned into what a stack deploy creates, as the docker
 * CLI's convert package does: names scoped NAME_x, the namespace label on
 * everything, networks NAME_default (overlay) for services that name none,
 * external networks, secrets and configs looked up rather than created.
 * Keys the file may hold but that would mean something here that swarmd
 * does not do are refused with the path of the key, never dropped.
 */

export const LABEL_NAMESPACE = 'com.docker.stack.namespace'
export const LABEL_IMAGE = 'com.docker.stack.image'

/** What docker's deploy ignores with a warning (loader.GetUnsupportedProperties, GetDeprecatedProperties). */
const UNSUPPORTED = ['build', 'cgroupns_mode', 'cgroup_parent', 'devices', 'domainname', 'external_links', 'ipc', 'links', 'mac_address', 'network_mode', 'pid', 'privileged', 'security_opt', 'shm_size', 'userns_mode']
const DEPRECATED = ['container_name', 'expose']

const SERVICE_KEYS = ['image', 'command', 'entrypoint', 'environment', 'env_file', 'deploy', 'ports', 'networks', 'secrets', 'configs', 'healthcheck', 'labels', 'working_dir', 'user', 'hostname', 'stop_grace_period', 'init', 'restart']
const DEPLOY_KEYS = ['mode', 'replicas', 'placement', 'resources', 'restart_policy', 'update_config', 'rollback_config', 'labels', 'endpoint_mode']
const TOP_KEYS = ['version', 'name', 'services', 'networks', 'secrets', 'configs']

export interface NetworkCreate {
  Name: string
  Driver: string
  Labels: Record<string, string>
  Options?: Record<string, string>
  Internal?: boolean
  Attachable?: boolean
  IPAM?: { Driver?: string; Config?: { Subnet: string }[] }
}

export interface DataCreate {
  Name: string
  Labels: Record<string, string>
  /** base64 */
  Data: string
  Driver?: { Name: string; Options?: Record<string, string> }
  Templating?: { Name: string }
}

/** What `stack deploy` makes of a compose file; secret and config references carry names, resolved to IDs at deploy. */
export interface StackPlan {
  networks: NetworkCreate[]
  externalNetworks: string[]
  secrets: DataCreate[]
  configs: DataCreate[]
  services: ServiceSpec[]
  /** docker's "Ignoring unsupported options: …" and "Ignoring deprecated options: …" lines. */
  warnings: string[]
}

type Obj = Record<string, unknown>
type Path = (string | number)[]

export interface ConvertOptions {
  env: Lookup
  readFile: (path: string) => Buffer
}

export function convertStack(c: ComposeFile, namespace: string, o: ConvertOptions): StackPlan {
  const cv = new Converter(c, namespace, o)
  return cv.plan()
}

const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v)
const entries = (v: unknown): [string, unknown][] => (isObj(v) ? Object.entries(v) : [])

class Converter {
  private readonly warnings: string[] = []

  constructor(
    private readonly c: ComposeFile,
    private readonly ns: string,
    private readonly o: ConvertOptions,
  ) {}

  private scope(name: string): string {
    return `${this.ns}_${name}`
  }

  private fail(path: Path, message: string): never {
    throw this.c.errorAt(path, `${path.join('.')}: ${message}`)
  }

  /** Only these keys (and x- extensions) may be there; anything else would be dropped, so it is refused. */
  private only(v: unknown, path: Path, keys: string[]): void {
    for (const [k] of entries(v)) if (!keys.includes(k) && !k.startsWith('x-')) this.fail([...path, k], 'not supported by swarmd stacks')
  }

  private labels(v: unknown): Record<string, string> {
    if (Array.isArray(v)) {
      return Object.fromEntries(v.map(String).map(kv => (kv.includes('=') ? [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] : [kv, ''])))
    }
    return Object.fromEntries(entries(v).map(([k, x]) => [k, x === null ? '' : String(x)]))
  }

  private withNamespace(v: unknown): Record<string, string> {
    return { ...this.labels(v), [LABEL_NAMESPACE]: this.ns }
  }

  private duration(v: unknown, path: Path): number | undefined {
    if (v === undefined || v === null) return undefined
    try {
      return parseGoDuration(String(v))
    } catch (e) {
      return this.fail(path, (e as Error).message)
    }
  }

  private uint(v: unknown, path: Path): number | undefined {
    if (v === undefined || v === null) return undefined
    const n = typeof v === 'number' ? v : /^\d+$/.test(String(v)) ? Number(v) : NaN
    if (!Number.isInteger(n) || n < 0) this.fail(path, `invalid non-negative integer ${JSON.stringify(v)}`)
    return n
  }

  plan(): StackPlan {
    const cfg = this.c.config
    this.only(cfg, [], TOP_KEYS)
    const services = entries(cfg.services)
    if (!services.length) this.fail(['services'], 'no services to deploy')
    const declared = isObj(cfg.networks) ? cfg.networks : {}
    const used = new Set<string>()
    for (const [, svc] of services) {
      const nets = isObj(svc) ? svc.networks : undefined
      const names = Array.isArray(nets) ? nets.map(String) : Object.keys(isObj(nets) ? nets : {})
      for (const n of names.length ? names : ['default']) used.add(n)
    }
    const networks: NetworkCreate[] = []
    const externalNetworks: string[] = []
    for (const name of [...used].sort()) {
      const path = ['networks', name]
      const n = declared[name]
      if (n === undefined && name !== 'default') continue
      this.only(n, path, ['driver', 'driver_opts', 'attachable', 'internal', 'ipam', 'labels', 'external', 'name'])
      const net = isObj(n) ? n : {}
      const external = this.external(net, path)
      if (external) {
        externalNetworks.push(external === true ? (typeof net.name === 'string' ? net.name : name) : external)
        continue
      }
      const ipam = isObj(net.ipam) ? net.ipam : undefined
      this.only(ipam, [...path, 'ipam'], ['driver', 'config'])
      const subnets = Array.isArray(ipam?.config) ? ipam.config.map((x, i) => (this.only(x, [...path, 'ipam', 'config', i], ['subnet']), { Subnet: String((x as Obj).subnet ?? '') })) : []
      networks.push({
        Name: typeof net.name === 'string' ? net.name : this.scope(name),
        Driver: typeof net.driver === 'string' && net.driver ? net.driver : 'overlay',
        Labels: this.withNamespace(net.labels),
        ...(isObj(net.driver_opts) ? { Options: this.labels(net.driver_opts) } : {}),
        ...(net.internal === true ? { Internal: true } : {}),
        ...(net.attachable === true ? { Attachable: true } : {}),
        ...(ipam ? { IPAM: { ...(typeof ipam.driver === 'string' ? { Driver: ipam.driver } : {}), ...(subnets.length ? { Config: subnets } : {}) } } : {}),
      })
    }
    const secrets = this.dataObjects('secrets', ['file', 'external', 'name', 'labels', 'environment', 'driver', 'driver_opts', 'template_driver'])
    const configs = this.dataObjects('configs', ['file', 'external', 'name', 'labels', 'environment', 'content', 'template_driver'])
    const specs = services.map(([name, svc]) => this.service(name, svc, declared)).sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0))
    return { networks, externalNetworks, secrets, configs, services: specs, warnings: this.warnings }
  }

  /** `external: true`, or the old `external: {name: x}` (then the name). */
  private external(o: Obj, path: Path): string | boolean {
    const e = o.external
    if (isObj(e)) {
      if (typeof o.name === 'string') this.fail([...path, 'external', 'name'], `${path.join('.')}.external.name and ${path.join('.')}.name conflict; only use ${path.join('.')}.name`)
      return typeof e.name === 'string' ? e.name : true
    }
    return e === true
  }

  /** The secrets or configs the file defines that are not external: their data from a file, the environment or (configs) inline. */
  private dataObjects(kind: 'secrets' | 'configs', keys: string[]): DataCreate[] {
    const out: DataCreate[] = []
    for (const [name, v] of entries(this.c.config[kind])) {
      const path = [kind, name]
      this.only(v, path, keys)
      const o = isObj(v) ? v : {}
      if (this.external(o, path)) continue
      let data: Buffer
      if (typeof o.file === 'string') {
        const file = isAbsolute(o.file) ? o.file : join(this.c.dir, o.file)
        try {
          data = this.o.readFile(file)
        } catch (e) {
          this.fail([...path, 'file'], `cannot read ${file}: ${(e as Error).message}`)
        }
      } else if (typeof o.environment === 'string') {
        const value = this.o.env(o.environment)
        if (value === undefined) this.fail([...path, 'environment'], `the variable ${o.environment} is not set`)
        data = Buffer.from(value)
      } else if (typeof o.content === 'string') {
        data = Buffer.from(o.content)
      } else {
        this.fail(path, `a ${kind.slice(0, -1)} needs file${kind === 'configs' ? ', content' : ''} or environment, or external`)
      }
      out.push({
        Name: typeof o.name === 'string' ? o.name : this.scope(name),
        Labels: this.withNamespace(o.labels),
        Data: data.toString('base64'),
        ...(typeof o.driver === 'string' ? { Driver: { Name: o.driver, ...(isObj(o.driver_opts) ? { Options: this.labels(o.driver_opts) } : {}) } } : {}),
        ...(typeof o.template_driver === 'string' ? { Templating: { Name: o.template_driver } } : {}),
      })
    }
    return out.sort((a, b) => (a.Name < b.Name ? -1 : 1))
  }

  /** The swarm name of a secret or config a service refers to: its own name, the key of an external one, or NAME_key. */
  private objectName(kind: 'secrets' | 'configs', key: string, path: Path): string {
    const def = (this.c.config[kind] as Obj | undefined)?.[key]
    if (def === undefined) this.fail(path, `undefined ${kind.slice(0, -1)} ${JSON.stringify(key)}`)
    const o = isObj(def) ? def : {}
    const ext = this.external(o, [kind, key])
    if (typeof ext === 'string') return ext
    if (typeof o.name === 'string') return o.name
    return ext ? key : this.scope(key)
  }

  private service(name: string, v: unknown, declared: Obj): ServiceSpec {
    const path = ['services', name]
    const s = isObj(v) ? v : {}
    const ignored = Object.keys(s).filter(k => UNSUPPORTED.includes(k))
    if (ignored.length) this.warnings.push(`Ignoring unsupported options: ${ignored.join(', ')}`)
    const deprecated = Object.keys(s).filter(k => DEPRECATED.includes(k))
    if (deprecated.length) this.warnings.push(`Ignoring deprecated options: ${deprecated.join(', ')}`)
    this.only(s, path, [...SERVICE_KEYS, ...UNSUPPORTED, ...DEPRECATED])
    const deploy = isObj(s.deploy) ? s.deploy : {}
    this.only(deploy, [...path, 'deploy'], DEPLOY_KEYS)
    if (typeof s.image !== 'string' || !s.image) this.fail(path, 'no image given (swarm services run images; build is not supported)')

    const words = (x: unknown): string[] | undefined => {
      if (x === undefined || x === null) return undefined
      return typeof x === 'string' ? shellWords(x) : (x as unknown[]).map(String)
    }
    const healthcheck = this.healthcheck(s.healthcheck, [...path, 'healthcheck'])
    const secrets = this.refs('secrets', s.secrets, [...path, 'secrets']).map(({ name: n, file }): SecretReference => ({ SecretID: '', SecretName: n, File: file }))
    const configs = this.refs('configs', s.configs, [...path, 'configs']).map(({ name: n, file }): ConfigReference => ({ ConfigID: '', ConfigName: n, File: file }))
    const stop = this.duration(s.stop_grace_period, [...path, 'stop_grace_period'])
    const entrypoint = words(s.entrypoint)
    const env = this.environment(s, path)
    const command = words(s.command)
    const template: TaskSpec = {
      ContainerSpec: {
        Image: withTag(s.image),
        ...(entrypoint ? { Command: entrypoint } : {}),
        ...(command ? { Args: command } : {}),
        ...(typeof s.hostname === 'string' ? { Hostname: s.hostname } : {}),
        ...(env.length ? { Env: env } : {}),
        Labels: this.withNamespace(s.labels),
        ...(typeof s.working_dir === 'string' ? { Dir: s.working_dir } : {}),
        ...(typeof s.user === 'string' ? { User: s.user } : {}),
        ...(stop !== undefined ? { StopGracePeriod: stop } : {}),
        ...(secrets.length ? { Secrets: secrets.sort((a, b) => (a.SecretName < b.SecretName ? -1 : 1)) } : {}),
        ...(configs.length ? { Configs: configs.sort((a, b) => (a.ConfigName < b.ConfigName ? -1 : 1)) } : {}),
        ...(healthcheck ? { Healthcheck: healthcheck } : {}),
        ...(typeof s.init === 'boolean' ? { Init: s.init } : {}),
      },
      Resources: this.resources(deploy.resources, [...path, 'deploy', 'resources']),
      ...this.restart(s.restart, deploy.restart_policy, path),
      Placement: this.placement(deploy.placement, [...path, 'deploy', 'placement']),
      Networks: this.serviceNetworks(name, s.networks, declared, [...path, 'networks']),
    }
    const update = this.updateConfig(deploy.update_config, [...path, 'deploy', 'update_config'])
    const rollback = this.updateConfig(deploy.rollback_config, [...path, 'deploy', 'rollback_config'])
    const mode = typeof deploy.mode === 'string' ? deploy.mode : ''
    const endpointMode = typeof deploy.endpoint_mode === 'string' ? deploy.endpoint_mode.toLowerCase() : ''
    const ports = this.ports(s.ports, [...path, 'ports']).sort((a, b) => (a.PublishedPort ?? 0) - (b.PublishedPort ?? 0))
    return {
      Name: this.scope(name),
      Labels: { ...this.withNamespace(deploy.labels), [LABEL_IMAGE]: s.image },
      TaskTemplate: template,
      Mode: this.mode(mode, this.uint(deploy.replicas, [...path, 'deploy', 'replicas']), [...path, 'deploy', 'mode']),
      ...(update ? { UpdateConfig: update } : {}),
      ...(rollback ? { RollbackConfig: rollback } : {}),
      EndpointSpec: { ...(endpointMode ? { Mode: endpointMode as 'vip' | 'dnsrr' } : {}), ...(ports.length ? { Ports: ports } : {}) },
    }
  }

  private mode(mode: string, replicas: number | undefined, path: Path): ServiceSpec['Mode'] {
    switch (mode) {
      case 'global':
      case 'global-job':
        if (replicas !== undefined) this.fail(path, 'replicas can only be used with replicated or replicated-job mode')
        return mode === 'global' ? { Global: {} } : ({ GlobalJob: {} } as ServiceSpec['Mode'])
      case 'replicated-job':
        return { ReplicatedJob: { ...(replicas !== undefined ? { MaxConcurrent: replicas, TotalCompletions: replicas } : {}) } } as ServiceSpec['Mode']
      case 'replicated':
      case '':
        // An absent count is the daemon's default (1), and a redeploy keeps the service's.
        return { Replicated: replicas !== undefined ? { Replicas: replicas } : {} }
      default:
        return this.fail(path, `Unknown mode: ${mode}`)
    }
  }

  /** docker's resolveEnvironment: env_file lines first, then `environment`; an empty or bare variable takes the deployer's value when set. */
  private environment(s: Obj, path: Path): string[] {
    const env = new Map<string, string | undefined>()
    const put = (k: string, v: string | undefined): void => {
      const mine = this.o.env(k)
      env.set(k, (v === undefined || v === '') && mine !== undefined ? mine : v)
    }
    const files = s.env_file === undefined ? [] : Array.isArray(s.env_file) ? s.env_file : [s.env_file]
    files.forEach((f, i) => {
      const spec: Obj = isObj(f) ? f : { path: f }
      const file = isAbsolute(String(spec.path)) ? String(spec.path) : join(this.c.dir, String(spec.path))
      let text: string
      try {
        text = this.o.readFile(file).toString()
      } catch (e) {
        if (spec.required === false) return
        return this.fail([...path, 'env_file', ...(Array.isArray(s.env_file) ? [i] : [])], `cannot read ${file}: ${(e as Error).message}`)
      }
      for (const raw of text.split(/\r?\n/)) {
        const line = raw.trimStart()
        if (!line || line.startsWith('#')) continue
        const eq = line.indexOf('=')
        const key = eq < 0 ? line.trimEnd() : line.slice(0, eq)
        if (/\s/.test(key)) this.fail([...path, 'env_file'], `variable '${key}' in ${file} contains whitespaces`)
        if (eq >= 0) put(key, line.slice(eq + 1))
        else if (this.o.env(key) !== undefined) put(key, undefined)
      }
    })
    const e = s.environment
    if (Array.isArray(e)) for (const kv of e.map(String)) kv.includes('=') ? put(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)) : put(kv, undefined)
    else for (const [k, v] of entries(e)) put(k, v === null ? undefined : String(v))
    return [...env].map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).sort()
  }

  /** A service's secrets or configs: `name`, or {source, target, uid, gid, mode}; the target defaults to the key. */
  private refs(kind: 'secrets' | 'configs', v: unknown, path: Path): { name: string; file: { Name: string; UID: string; GID: string; Mode: number } }[] {
    if (!Array.isArray(v)) return []
    return v.map((r, i) => {
      const o: Obj = isObj(r) ? r : { source: r }
      this.only(o, [...path, i], ['source', 'target', 'uid', 'gid', 'mode'])
      const source = String(o.source)
      const mode = o.mode === undefined ? 0o444 : typeof o.mode === 'number' ? o.mode : /^0[0-7]*$|^[1-9]\d*$/.test(String(o.mode)) ? parseInt(String(o.mode), String(o.mode).startsWith('0') ? 8 : 10) : NaN
      if (!Number.isInteger(mode)) this.fail([...path, i, 'mode'], `invalid mode ${JSON.stringify(o.mode)}`)
      return {
        name: this.objectName(kind, source, [...path, i]),
        file: { Name: typeof o.target === 'string' && o.target ? o.target : source, UID: o.uid === undefined ? '0' : String(o.uid), GID: o.gid === undefined ? '0' : String(o.gid), Mode: mode },
      }
    })
  }

  private healthcheck(v: unknown, path: Path): HealthConfig | undefined {
    if (!isObj(v)) return undefined
    this.only(v, path, ['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable'])
    if (v.disable === true) {
      if (v.test !== undefined) this.fail(path, "test and disable can't be set at the same time")
      return { Test: ['NONE'] }
    }
    const test = typeof v.test === 'string' ? ['CMD-SHELL', v.test] : Array.isArray(v.test) ? v.test.map(String) : undefined
    const d = (k: string): number | undefined => this.duration(v[k], [...path, k])
    const hc: HealthConfig = {
      ...(test ? { Test: test } : {}),
      Interval: d('interval') ?? 0,
      Timeout: d('timeout') ?? 0,
      StartPeriod: d('start_period') ?? 0,
      StartInterval: d('start_interval') ?? 0,
      Retries: this.uint(v.retries, [...path, 'retries']) ?? 0,
    }
    return hc
  }

  private resources(v: unknown, path: Path): TaskSpec['Resources'] {
    if (!isObj(v)) return {}
    this.only(v, path, ['limits', 'reservations'])
    const one = (x: unknown, p: Path) => {
      if (!isObj(x)) return undefined
      this.only(x, p, ['cpus', 'memory'])
      let cpus = 0
      let memory = 0
      try {
        if (x.cpus !== undefined) cpus = parseNanoCPUs(String(x.cpus))
      } catch (e) {
        this.fail([...p, 'cpus'], (e as Error).message)
      }
      try {
        if (x.memory !== undefined) memory = typeof x.memory === 'number' ? x.memory : parseMemBytes(String(x.memory))
      } catch (e) {
        this.fail([...p, 'memory'], (e as Error).message)
      }
      return { NanoCPUs: cpus, MemoryBytes: memory }
    }
    const limits = one(v.limits, [...path, 'limits'])
    const reservations = one(v.reservations, [...path, 'reservations'])
    return { ...(limits ? { Limits: limits } : {}), ...(reservations ? { Reservations: reservations } : {}) }
  }

  /** deploy.restart_policy, else the container `restart:` policy translated as docker's convertRestartPolicy does. */
  private restart(restart: unknown, policy: unknown, path: Path): { RestartPolicy?: RestartPolicy } {
    if (isObj(policy)) {
      const p = [...path, 'deploy', 'restart_policy']
      this.only(policy, p, ['condition', 'delay', 'max_attempts', 'window'])
      const delay = this.duration(policy.delay, [...p, 'delay'])
      const window = this.duration(policy.window, [...p, 'window'])
      const attempts = this.uint(policy.max_attempts, [...p, 'max_attempts'])
      return {
        RestartPolicy: {
          ...(typeof policy.condition === 'string' ? { Condition: policy.condition as RestartPolicy['Condition'] } : {}),
          ...(delay !== undefined ? { Delay: delay } : {}),
          ...(attempts !== undefined ? { MaxAttempts: attempts } : {}),
          ...(window !== undefined ? { Window: window } : {}),
        },
      }
    }
    const r = typeof restart === 'string' ? restart : ''
    if (r === '' || r === 'no') return {}
    if (r === 'always' || r === 'unless-stopped') return { RestartPolicy: { Condition: 'any' } }
    const m = /^on-failure(?::(\d+))?$/.exec(r)
    if (m) return { RestartPolicy: { Condition: 'on-failure', MaxAttempts: Number(m[1] ?? 0) } }
    return this.fail([...path, 'restart'], `unknown restart policy: ${r}`)
  }

  private placement(v: unknown, path: Path): TaskSpec['Placement'] {
    if (!isObj(v)) return {}
    this.only(v, path, ['constraints', 'preferences', 'max_replicas_per_node'])
    const prefs = Array.isArray(v.preferences) ? v.preferences : []
    const max = this.uint(v.max_replicas_per_node, [...path, 'max_replicas_per_node'])
    return {
      ...(Array.isArray(v.constraints) ? { Constraints: v.constraints.map(String) } : {}),
      ...(prefs.length ? { Preferences: prefs.map((p, i) => (this.only(p, [...path, 'preferences', i], ['spread']), { Spread: { SpreadDescriptor: String((p as Obj).spread ?? '') } })) } : {}),
      ...(max ? { MaxReplicas: max } : {}),
    }
  }

  private updateConfig(v: unknown, path: Path): UpdateConfig | undefined {
    if (!isObj(v)) return undefined
    this.only(v, path, ['parallelism', 'delay', 'failure_action', 'monitor', 'max_failure_ratio', 'order'])
    const ratio = v.max_failure_ratio === undefined ? 0 : Number(v.max_failure_ratio)
    if (!Number.isFinite(ratio)) this.fail([...path, 'max_failure_ratio'], `invalid number ${JSON.stringify(v.max_failure_ratio)}`)
    return {
      Parallelism: this.uint(v.parallelism, [...path, 'parallelism']) ?? 1,
      Delay: this.duration(v.delay, [...path, 'delay']) ?? 0,
      ...(typeof v.failure_action === 'string' ? { FailureAction: v.failure_action as UpdateConfig['FailureAction'] } : {}),
      Monitor: this.duration(v.monitor, [...path, 'monitor']) ?? 0,
      MaxFailureRatio: ratio,
      ...(typeof v.order === 'string' ? { Order: v.order as UpdateConfig['Order'] } : {}),
    }
  }

  /** docker's convertServiceNetworks: the stack's default network when none is named, the service's name as an alias on each, by target. */
  private serviceNetworks(service: string, v: unknown, declared: Obj, path: Path): NonNullable<TaskSpec['Networks']> {
    // Each with where it is in the file: its index in a list, its key in a map.
    const list: [string, unknown, string | number][] = Array.isArray(v) ? v.map((n, i) => [String(n), null, i]) : entries(v).map(([n, a]) => [n, a, n])
    if (!list.length) list.push(['default', null, 'default'])
    return list
      .map(([name, att, at]) => {
        if (declared[name] === undefined && name !== 'default') this.fail([...path, at], `service ${JSON.stringify(service)} references network ${JSON.stringify(name)}, which is not declared`)
        this.only(att, [...path, at], ['aliases'])
        const def = isObj(declared[name]) ? (declared[name] as Obj) : {}
        const ext = this.external(def, ['networks', name])
        const target = typeof ext === 'string' ? ext : typeof def.name === 'string' ? def.name : ext ? name : this.scope(name)
        const aliases = isObj(att) && Array.isArray(att.aliases) ? att.aliases.map(String) : []
        return { Target: target, Aliases: [...aliases, service] }
      })
      .sort((a, b) => (a.Target < b.Target ? -1 : 1))
  }

  /** Short syntax (`[ip:]published:target[/proto]`, ranges too) or long; all ingress unless the long syntax says host. */
  private ports(v: unknown, path: Path): PortConfig[] {
    if (!Array.isArray(v)) return []
    return v.flatMap((p, i): PortConfig[] => {
      const at = [...path, i]
      if (isObj(p)) {
        this.only(p, at, ['target', 'published', 'protocol', 'mode', 'name'])
        const target = this.uint(p.target, [...at, 'target'])
        if (target === undefined) this.fail(at, 'target is required')
        const published = this.uint(p.published, [...at, 'published'])
        return [
          {
            ...(typeof p.name === 'string' ? { Name: p.name } : {}),
            Protocol: (typeof p.protocol === 'string' ? p.protocol : 'tcp') as PortConfig['Protocol'],
            TargetPort: target,
            ...(published !== undefined ? { PublishedPort: published } : {}),
            PublishMode: (typeof p.mode === 'string' ? p.mode : 'ingress') as PortConfig['PublishMode'],
          },
        ]
      }
      const m = /^(?:(?:\[[^\]]*\]|[^:]*):)??(?:(\d+)(?:-(\d+))?:)?(\d+)(?:-(\d+))?(?:\/(\w+))?$/.exec(String(p))
      if (!m) return this.fail(at, `invalid port ${JSON.stringify(p)}`)
      const range = (a?: string, b?: string): number[] => {
        if (a === undefined) return []
        const lo = Number(a)
        const hi = b === undefined ? lo : Number(b)
        if (hi < lo || lo < 1 || hi > 65535) this.fail(at, `invalid port range ${JSON.stringify(p)}`)
        return Array.from({ length: hi - lo + 1 }, (_, k) => lo + k)
      }
      const published = range(m[1], m[2])
      const targets = range(m[3], m[4])
      if (published.length && published.length !== targets.length && published.length !== 1) this.fail(at, `invalid port range ${JSON.stringify(p)}: the published and target ranges differ in size`)
      const protocol = (m[5] ?? 'tcp') as PortConfig['Protocol']
      return targets.map((target, k) => ({ Protocol: protocol, TargetPort: target, ...(published.length ? { PublishedPort: published[published.length === 1 ? 0 : k]! } : {}), PublishMode: 'ingress' as const }))
    })
  }
}

/** The docker client's imageWithTagString: an image without a tag or digest runs as :latest. */
function withTag(image: string): string {
  if (image.includes('@')) return image
  const last = image.slice(image.lastIndexOf('/') + 1)
  return last.includes(':') ? image : `${image}:latest`
}
