import { Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import { SwarmdError } from '../types/errors.js'
import { ApiError } from '../api/api-error.js'
import type { ConfigReference, Mount, PortConfig, SecretReference, Service, ServiceSpec } from '../types/service.js'
import type { Task } from '../types/task.js'
import { Demuxer, formatLogLine, logContext, parseLogLine, sinceParam } from './log-prefix.js'
import { PlainRenderer, serviceProgress, TerminalRenderer, type ProgressApi, type ProgressSink } from './progress.js'
import {
  collect,
  collectPorts,
  collectConfigs,
  collectPrefs,
  collectSecrets,
  createSpec,
  hasSpecFlags,
  parseFloat32,
  parseGoDuration,
  parseMemBytes,
  parseNanoCPUs,
  parseUint,
  resolveConfigs,
  resolveSecrets,
  shellWords,
  updateSpec,
  type CreateFlags,
  type UpdateFlags,
} from './service-flags.js'
import { formatServices, formatTasks, prettyService, serviceStatus, type ListedService, type Names } from './service-format.js'
import { applyContainerFlags, collectMounts, collectUlimits, parseHost, type ContainerFlags } from './container-flags.js'

/**
 * swarmctl service: docker's service commands, flags, output and error
 * texts, over the Docker Engine API the daemon serves.
 */

export const out = (s: string): boolean => process.stdout.write(s)

const enc = encodeURIComponent

/** Docker's filters query: `{"key":{"value":true}}`. */
export function filtersQuery(f: Record<string, string[]>): string {
  const body: Record<string, Record<string, boolean>> = {}
  for (const [k, vs] of Object.entries(f)) for (const v of vs) (body[k] ??= {})[v] = true
  return Object.keys(body).length ? `filters=${enc(JSON.stringify(body))}` : ''
}

/** `-f key=value` flags as filters. */
export function filterFlags(list: string[] = []): Record<string, string[]> {
  const f: Record<string, string[]> = {}
  for (const kv of list) {
    const i = kv.indexOf('=')
    if (i <= 0) throw new SwarmdError('E_USAGE', `bad format of filter (expected name=value)`)
    ;(f[kv.slice(0, i).trim().toLowerCase()] ??= []).push(kv.slice(i + 1))
  }
  return f
}

/** An error as docker prints it when it joins several. */
export function errText(e: unknown): string {
  if (e instanceof ApiError) return `Error response from daemon: ${e.message}`
  return e instanceof Error ? e.message : String(e)
}

/** Runs `fn` for each ref, then reports every failure at once as docker's errors.Join does. */
export async function eachRef(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  const errs: string[] = []
  for (const ref of refs) {
    try {
      await fn(ref)
    } catch (e) {
      if (!(e instanceof SwarmdError)) throw e
      errs.push(errText(e))
    }
  }
  if (errs.length) throw new SwarmdError('E_FAILED', errs.join('\n'))
}

interface NodeObj {
  ID: string
  Spec: { Name?: string }
  Description: { Hostname: string }
  Status: { State: string }
}

/** Node IDs to names as docker's idresolver: the spec name, else the hostname. */
export async function nodeNames(c: ApiClient): Promise<{ names: Map<string, string>; active: Set<string> }> {
  const nodes = await c.call<NodeObj[]>('GET', '/nodes')
  return {
    names: new Map(nodes.map(n => [n.ID, n.Spec.Name || n.Description.Hostname])),
    active: new Set(nodes.filter(n => n.Status.State !== 'down').map(n => n.ID)),
  }
}

const getService = (c: ApiClient, ref: string, insertDefaults = false): Promise<Service> =>
  c.call<Service>('GET', `/services/${enc(ref)}${insertDefaults ? '?insertDefaults=true' : ''}`)

export function progressApi(c: ApiClient): ProgressApi {
  return {
    service: ref => getService(c, ref),
    tasks: id => c.call<Task[]>('GET', `/tasks?${filtersQuery({ service: [id], '_up-to-date': ['true'] })}`),
    activeNodes: async () => (await nodeNames(c)).active,
  }
}

/** Follows convergence unless -d; -q watches silently. Ctrl-C stops watching. */
export async function waitOnService(c: ApiClient, ref: string, quiet: boolean): Promise<void> {
  const sink: ProgressSink = quiet
    ? { write: () => undefined }
    : process.stdout.isTTY
      ? new TerminalRenderer(out, () => process.stdout.columns ?? 80)
      : new PlainRenderer(out)
  const ac = new AbortController()
  const stop = (): void => ac.abort()
  process.once('SIGINT', stop)
  try {
    await serviceProgress(progressApi(c), ref, sink, { signal: ac.signal })
  } finally {
    process.off('SIGINT', stop)
  }
}

type Named = { ID: string; Spec: { Name: string } }

export async function withSecretIDs(c: ApiClient, refs: SecretReference[]): Promise<SecretReference[]> {
  if (!refs.length) return []
  return resolveSecrets(refs, await c.call<Named[]>('GET', `/secrets?${filtersQuery({ name: refs.map(r => r.SecretName) })}`))
}

export async function withConfigIDs(c: ApiClient, refs: ConfigReference[]): Promise<ConfigReference[]> {
  if (!refs.length) return []
  return resolveConfigs(refs, await c.call<Named[]>('GET', `/configs?${filtersQuery({ name: refs.map(r => r.ConfigName) })}`))
}

function warn(w: { Warnings?: string[] | null }): void {
  for (const line of w.Warnings ?? []) process.stderr.write(line + '\n')
}

async function postUpdate(c: ApiClient, s: Service, spec: ServiceSpec, rollback: boolean): Promise<void> {
  warn(await c.call<{ Warnings?: string[] | null }>('POST', `/services/${s.ID}/update?version=${s.Version.Index}${rollback ? '&rollback=previous' : ''}`, spec))
}

/** Options create and update share, with docker's names and parsers. */
function commonOptions(cmd: Command): Command {
  return cmd
    .option('-w, --workdir <string>', 'Working directory inside the container')
    .option('--hostname <string>', 'Container hostname')
    .option('-u, --user <string>', 'Username or UID (format: <name|uid>[:<group|gid>])')
    .option('--stop-grace-period <duration>', 'Time to wait before force killing a container (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--restart-condition <string>', 'Restart when condition is met ("none", "on-failure", "any")')
    .option('--restart-delay <duration>', 'Delay between restart attempts (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--restart-max-attempts <uint>', 'Maximum number of restarts before giving up', parseUint)
    .option('--restart-window <duration>', 'Window used to evaluate the restart policy (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--update-parallelism <uint>', 'Maximum number of tasks updated simultaneously (0 to update all at once)', parseUint)
    .option('--update-delay <duration>', 'Delay between updates (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--update-failure-action <string>', 'Action on update failure ("pause", "continue", "rollback")')
    .option('--update-monitor <duration>', 'Duration after each task update to monitor for failure (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--update-max-failure-ratio <float>', 'Failure rate to tolerate during an update', parseFloat32)
    .option('--update-order <string>', 'Update order ("start-first", "stop-first")')
    .option('--rollback-parallelism <uint>', 'Maximum number of tasks rolled back simultaneously (0 to roll back all at once)', parseUint)
    .option('--rollback-delay <duration>', 'Delay between task rollbacks (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--rollback-failure-action <string>', 'Action on rollback failure ("pause", "continue")')
    .option('--rollback-monitor <duration>', 'Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)', parseGoDuration)
    .option('--rollback-max-failure-ratio <float>', 'Failure rate to tolerate during a rollback', parseFloat32)
    .option('--rollback-order <string>', 'Rollback order ("start-first", "stop-first")')
    .option('--reserve-cpu <decimal>', 'Reserve CPUs', parseNanoCPUs)
    .option('--reserve-memory <bytes>', 'Reserve Memory', parseMemBytes)
    .option('--limit-cpu <decimal>', 'Limit CPUs', parseNanoCPUs)
    .option('--limit-memory <bytes>', 'Limit Memory', parseMemBytes)
    .option('--replicas <uint>', 'Number of tasks', parseUint)
    .option('--replicas-max-per-node <uint>', 'Maximum number of tasks per node (default 0 = unlimited)', parseUint)
    .option('--max-concurrent <uint>', 'Number of job tasks to run concurrently (default equal to --replicas)', parseUint)
    .option('--health-cmd <string>', 'Command to run to check health')
    .option('--health-interval <duration>', 'Time between running the check (ms|s|m|h)', parseGoDuration)
    .option('--health-timeout <duration>', 'Maximum time to allow one check to run (ms|s|m|h)', parseGoDuration)
    .option('--health-start-period <duration>', 'Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)', parseGoDuration)
    .option('--health-start-interval <duration>', 'Time between running the check during the start period (ms|s|m|h)', parseGoDuration)
    .option('--health-retries <int>', 'Consecutive failures needed to report unhealthy', parseUint)
    .option('--no-healthcheck', 'Disable any container-specified HEALTHCHECK')
    .option('--stop-signal <string>', 'Signal to stop the container')
    .option('--read-only', 'Mount the container\'s root filesystem as read only')
    .option('-t, --tty', 'Allocate a pseudo-TTY')
    .option('--init', 'Use an init inside each service container to forward signals and reap processes')
    .option('--log-driver <string>', 'Logging driver for service')
    .option('--log-opt <list>', 'Logging driver options', collect)
    .option('--limit-pids <int>', 'Limit maximum number of processes (default 0 = unlimited)', parseUint)
    .option('-d, --detach', 'Exit immediately instead of waiting for the service to converge')
    .option('-q, --quiet', 'Suppress progress output')
}

export function addServiceCommands(program: Command, client: () => ApiClient): void {
  // Positional options let `create IMAGE sh -c ...` keep the command's own flags.
  const service = program.command('service').description('Manage swarm services').enablePositionalOptions().exitOverride()

  commonOptions(
    service
      .command('create')
      .description('Create a new service')
      .usage('[OPTIONS] IMAGE [COMMAND] [ARG...]')
      .argument('<image>')
      .argument('[command...]')
      .passThroughOptions()
      .option('--name <string>', 'Service name')
      .option('--mode <string>', 'Service mode ("replicated", "global", "replicated-job", "global-job")', 'replicated')
      .option('-e, --env <list>', 'Set environment variables', collect)
      .option('--constraint <list>', 'Placement constraints', collect)
      .option('--placement-pref <pref>', 'Add a placement preference', collectPrefs)
      .option('-p, --publish <port>', 'Publish a port as a node port', collectPorts)
      .option('--network <network>', 'Network attachments', collect)
      .option('--secret <secret>', 'Specify secrets to expose to the service', collectSecrets)
      .option('--config <config>', 'Specify configurations to expose to the service', collectConfigs)
      .option('-l, --label <list>', 'Service labels', collect)
      .option('--container-label <list>', 'Container labels', collect)
      .option('--mount <mount>', 'Attach a filesystem mount to the service', collectMounts)
      .option('--group <list>', 'Set one or more supplementary user groups for the container', collect)
      .option('--cap-add <list>', 'Add Linux capabilities', collect)
      .option('--cap-drop <list>', 'Drop Linux capabilities', collect)
      .option('--dns <list>', 'Set custom DNS servers', collect)
      .option('--dns-search <list>', 'Set custom DNS search domains', collect)
      .option('--dns-option <list>', 'Set DNS options', collect)
      .option('--host <list>', 'Set one or more custom host-to-IP mappings (host:ip)', (v: string, prev: string[] = []) => [...prev, parseHost(v)])
      .option('--sysctl <list>', 'Sysctl options', collect)
      .option('--ulimit <ulimit>', 'Ulimit options', collectUlimits),
  ).action(async (image: string, args: string[], o: CreateFlags & ContainerFlags) => {
    const c = client()
    const spec = createSpec(o, image, args)
    applyContainerFlags(spec, o)
    const c0 = spec.TaskTemplate.ContainerSpec
    if (c0.Secrets) c0.Secrets = await withSecretIDs(c, c0.Secrets)
    if (c0.Configs) c0.Configs = await withConfigIDs(c, c0.Configs)
    const r = await c.call<{ ID: string; Warnings?: string[] | null }>('POST', '/services/create', spec)
    warn(r)
    out(r.ID + '\n')
    if (!o.detach) await waitOnService(c, r.ID, !!o.quiet)
  })

  commonOptions(
    service
      .command('update')
      .description('Update a service')
      .argument('<service>')
      .option('--image <string>', 'Service image tag')
      .option('--args <command>', 'Service command args', shellWords)
      .option('--force', 'Force update even if no changes require it')
      .option('--rollback', 'Rollback to previous specification')
      .option('--env-add <list>', 'Add or update an environment variable', collect)
      .option('--env-rm <list>', 'Remove an environment variable', collect)
      .option('--constraint-add <list>', 'Add or update a placement constraint', collect)
      .option('--constraint-rm <list>', 'Remove a constraint', collect)
      .option('--publish-add <port>', 'Add or update a published port', collectPorts)
      .option('--publish-rm <port>', 'Remove a published port by its target port', collectPorts)
      .option('--secret-add <secret>', 'Add or update a secret on a service', collectSecrets)
      .option('--secret-rm <list>', 'Remove a secret', collect)
      .option('--config-add <config>', 'Add or update a config file on a service', collectConfigs)
      .option('--config-rm <list>', 'Remove a configuration file', collect)
      .option('--label-add <list>', 'Add or update a service label', collect)
      .option('--label-rm <list>', 'Remove a label by its key', collect)
      .option('--container-label-add <list>', 'Add or update a container label', collect)
      .option('--container-label-rm <list>', 'Remove a container label by its key', collect)
      .option('--mount-add <mount>', 'Add or update a mount on a service', collectMounts)
      .option('--mount-rm <list>', 'Remove a mount by its target path', collect),
  ).action(async (ref: string, o: UpdateFlags & ContainerFlags & { publishAdd?: PortConfig[]; mountAdd?: Mount[]; mountRm?: string[] }) => {
    const c = client()
    const s = await getService(c, ref)
    if (o.rollback && hasSpecFlags(o)) throw new SwarmdError('E_USAGE', 'other flags may not be combined with --rollback')
    const spec = updateSpec(s.Spec, o)
    applyContainerFlags(spec, o)
    if (o.mountAdd || o.mountRm) {
      // docker's updateMounts: added targets replace, removed ones go.
      const cs = spec.TaskTemplate.ContainerSpec
      const gone = new Set([...(o.mountRm ?? []), ...(o.mountAdd ?? []).map(m => m.Target)])
      cs.Mounts = [...(cs.Mounts ?? []).filter(m => !gone.has(m.Target)), ...(o.mountAdd ?? [])]
    }
    if (o.secretAdd) {
      const cs = spec.TaskTemplate.ContainerSpec
      cs.Secrets = [...(cs.Secrets ?? []), ...(await withSecretIDs(c, o.secretAdd))]
    }
    if (o.configAdd) {
      const cs = spec.TaskTemplate.ContainerSpec
      cs.Configs = [...(cs.Configs ?? []), ...(await withConfigIDs(c, o.configAdd))]
    }
    await postUpdate(c, s, spec, !!o.rollback)
    out(ref + '\n')
    if (!o.detach) await waitOnService(c, ref, !!o.quiet)
  })

  service
    .command('rollback')
    .description('Revert changes to a service\'s configuration')
    .argument('<service>')
    .option('-d, --detach', 'Exit immediately instead of waiting for the service to converge')
    .option('-q, --quiet', 'Suppress progress output')
    .action(async (ref: string, o: { detach?: boolean; quiet?: boolean }) => {
      const c = client()
      const s = await getService(c, ref)
      await postUpdate(c, s, s.Spec, true)
      out(ref + '\n')
      if (!o.detach) await waitOnService(c, ref, !!o.quiet)
    })

  const scale = service
    .command('scale')
    .description('Scale one or multiple replicated services')
    .usage('SERVICE=REPLICAS [SERVICE=REPLICAS...]')
    .argument('<service=replicas...>')
    .option('-d, --detach', 'Exit immediately instead of waiting for the service to converge')
  scale.action(async (args: string[], o: { detach?: boolean }) => {
    for (const a of args) {
      const i = a.indexOf('=')
      if (i <= 0 || i === a.length - 1) {
        throw new SwarmdError(
          'E_USAGE',
          `invalid scale specifier '${a}'.\nSee 'swarmctl service scale --help'.\n\nUsage:  swarmctl service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\nScale one or multiple replicated services`,
        )
      }
    }
    const c = client()
    const errs: string[] = []
    const scaled: string[] = []
    for (const a of args) {
      const name = a.slice(0, a.indexOf('='))
      const v = a.slice(a.indexOf('=') + 1)
      if (!/^\d+$/.test(v)) {
        errs.push(`${name}: invalid replicas value ${v}: strconv.ParseUint: parsing "${v}": invalid syntax`)
        continue
      }
      try {
        const s = await getService(c, name)
        const spec = structuredClone(s.Spec)
        if (spec.Mode.Replicated) spec.Mode.Replicated.Replicas = Number(v)
        else if (spec.Mode.ReplicatedJob) spec.Mode.ReplicatedJob.TotalCompletions = Number(v)
        else throw new SwarmdError('E_USAGE', 'scale can only be used with replicated or replicated-job mode')
        await postUpdate(c, s, spec, false)
      } catch (e) {
        if (!(e instanceof SwarmdError)) throw e
        errs.push(`${name}: ${errText(e)}`)
        continue
      }
      out(`${name} scaled to ${v}\n`)
      scaled.push(name)
    }
    if (!o.detach) {
      for (const name of scaled) {
        try {
          await waitOnService(c, name, false)
        } catch (e) {
          if (!(e instanceof SwarmdError)) throw e
          errs.push(`${name}: ${errText(e)}`)
        }
      }
    }
    if (errs.length) throw new SwarmdError('E_FAILED', errs.join('\n'))
  })

  service
    .command('ls')
    .alias('list')
    .description('List services')
    .option('-q, --quiet', 'Only display IDs')
    .option('--format <string>', 'Format output using a custom template')
    .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect)
    .action(async (o: { quiet?: boolean; format?: string; filter?: string[] }) => {
      const c = client()
      const q = [filtersQuery(filterFlags(o.filter)), o.quiet ? '' : 'status=true'].filter(Boolean).join('&')
      const services = await c.call<ListedService[]>('GET', `/services${q ? '?' + q : ''}`)
      if (!o.quiet && services.some(s => !s.ServiceStatus)) {
        const [tasks, nodes] = await Promise.all([c.call<Task[]>('GET', '/tasks'), nodeNames(c)])
        for (const s of services) s.ServiceStatus ??= serviceStatus(s, tasks, nodes.active)
      }
      out(formatServices(services, o))
    })

  service
    .command('ps')
    .description('List the tasks of one or more services')
    .argument('<service...>')
    .option('-q, --quiet', 'Only display task IDs')
    .option('--no-trunc', 'Do not truncate output')
    .option('--no-resolve', 'Do not map IDs to Names')
    .option('--format <string>', 'Pretty-print tasks using a Go template')
    .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect)
    .action(async (refs: string[], o: { quiet?: boolean; trunc: boolean; resolve: boolean; format?: string; filter?: string[] }) => {
      const c = client()
      const services = await c.call<Service[]>('GET', '/services')
      const filters = filterFlags(o.filter)
      const notFound: string[] = []
      const ids: string[] = []
      for (const ref of refs) {
        const s = services.find(x => x.ID === ref) ?? services.find(x => x.Spec.Name === ref)
        if (s) {
          ids.push(s.ID)
          continue
        }
        const byPrefix = services.filter(x => x.ID.startsWith(ref))
        if (byPrefix.length > 1) throw new SwarmdError('E_USAGE', `multiple services found with provided prefix: ${ref}`)
        if (byPrefix[0]) ids.push(byPrefix[0].ID)
        else notFound.push(`no such service: ${ref}`)
      }
      if (!ids.length) throw new SwarmdError('E_NOT_FOUND', notFound.join('\n'))
      if (filters.node?.includes('self')) {
        const info = await c.call<{ Swarm: { NodeID: string } }>('GET', '/info')
        filters.node = filters.node.map(n => (n === 'self' ? info.Swarm.NodeID : n))
      }
      const tasks = await c.call<Task[]>('GET', `/tasks?${filtersQuery({ ...filters, service: ids })}`)
      const names: Names = o.resolve
        ? { services: new Map(services.map(s => [s.ID, s.Spec.Name])), nodes: (await nodeNames(c)).names }
        : { services: new Map(), nodes: new Map() }
      out(formatTasks(tasks, names, { now: Date.now(), trunc: o.trunc && !o.quiet, quiet: !!o.quiet && !o.format, ...(o.format && { format: o.format }) }))
      if (notFound.length) throw new SwarmdError('E_NOT_FOUND', notFound.join('\n'))
    })

  service
    .command('inspect')
    .description('Display detailed information on one or more services')
    .argument('<service...>')
    .option('--pretty', 'Print the information in a human friendly format')
    .action(async (refs: string[], o: { pretty?: boolean }) => {
      const c = client()
      const found: Service[] = []
      const errs: string[] = []
      for (const ref of refs) {
        try {
          found.push(await getService(c, ref, true))
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) errs.push(`no such service: ${ref}`)
          else if (e instanceof SwarmdError) errs.push(errText(e))
          else throw e
        }
      }
      if (o.pretty) {
        const now = Date.now()
        for (const s of found) out(prettyService(s, { now, networks: await networkNames(c, s) }))
      } else out(JSON.stringify(found, null, 4) + '\n')
      if (errs.length) throw new SwarmdError('E_NOT_FOUND', errs.join('\n'))
    })

  service
    .command('logs')
    .description('Fetch the logs of a service or task')
    .argument('<service|task>')
    .option('-f, --follow', 'Follow log output')
    .option('-n, --tail <string>', 'Number of lines to show from the end of the logs', 'all')
    .option('--since <string>', 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)')
    .option('-t, --timestamps', 'Show timestamps')
    .option('--no-task-ids', 'Do not include task IDs in output')
    .option('--no-trunc', 'Do not truncate output')
    .option('--no-resolve', 'Do not map IDs to Names in output')
    .option('--raw', 'Do not neatly format logs')
    .option('--details', 'Show extra details provided to logs')
    .action(async (ref: string, o: LogsFlags) => {
      await logs(client(), ref, o)
    })

  service
    .command('rm')
    .alias('remove')
    .description('Remove one or more services')
    .argument('<service...>')
    .action(async (refs: string[]) => {
      const c = client()
      await eachRef(refs, async ref => {
        await c.call('DELETE', `/services/${enc(ref)}`)
        out(ref + '\n')
      })
    })
}

/** Network IDs to names for `inspect --pretty`, where the daemon knows them. */
async function networkNames(c: ApiClient, s: Service): Promise<Map<string, string>> {
  const m = new Map<string, string>()
  for (const n of s.Spec.TaskTemplate.Networks ?? []) {
    try {
      m.set(n.Target, (await c.call<{ Name: string }>('GET', `/networks/${enc(n.Target)}`)).Name)
    } catch (e) {
      if (!(e instanceof SwarmdError)) throw e
    }
  }
  return m
}

interface LogsFlags {
  follow?: boolean
  tail: string
  since?: string
  timestamps?: boolean
  taskIds: boolean
  trunc: boolean
  resolve: boolean
  raw?: boolean
  details?: boolean
}

/** docker's runLogs: a service's (or one task's) logs, each line prefixed with its task. */
async function logs(c: ApiClient, ref: string, o: LogsFlags): Promise<void> {
  let path: string
  let maxSlot = 1
  try {
    const s = await getService(c, ref)
    maxSlot = s.Spec.Mode.Replicated?.Replicas ?? s.Spec.Mode.ReplicatedJob?.TotalCompletions ?? 1
    path = `/services/${enc(ref)}/logs`
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e
    try {
      maxSlot = (await c.call<Task>('GET', `/tasks/${enc(ref)}`)).Slot ?? 0
    } catch (e2) {
      if (e2 instanceof ApiError && e2.status === 404) throw new SwarmdError('E_NOT_FOUND', `no such task or service: ${ref}`)
      throw e2
    }
    path = `/tasks/${enc(ref)}/logs`
  }
  const q = new URLSearchParams({ stdout: '1', stderr: '1' })
  if (o.since) q.set('since', sinceParam(o.since, Date.now(), parseGoDuration))
  if (o.timestamps) q.set('timestamps', '1')
  if (o.follow) q.set('follow', '1')
  q.set('tail', o.tail)
  // The details carry the task context the prefix is made of.
  if (o.details || !o.raw) q.set('details', '1')
  const res = await c.stream(`${path}?${q}`)
  const cache = new Map<string, string>()
  const context = async (nodeID: string, serviceID: string, taskID: string): Promise<string> => {
    const key = `${nodeID}/${serviceID}/${taskID}`
    const hit = cache.get(key)
    if (hit !== undefined) return hit
    const name = async (p: string, pick: (x: never) => string, id: string): Promise<string> => {
      if (!o.resolve) return id
      try {
        return pick(await c.call<never>('GET', p))
      } catch (e) {
        if (e instanceof ApiError) return id
        throw e
      }
    }
    const node = await name(`/nodes/${enc(nodeID)}`, (n: NodeObj) => n.Spec.Name || n.Description.Hostname, nodeID)
    const svc = await name(`/services/${enc(serviceID)}`, (s: Service) => s.Spec.Name, serviceID)
    const task = await c.call<Task>('GET', `/tasks/${enc(taskID)}`)
    const text = logContext({ service: svc, slot: task.Slot ?? 0, taskID: task.ID, node, replicas: maxSlot, noTaskIDs: !o.taskIds, noTrunc: !o.trunc })
    cache.set(key, text)
    return text
  }
  const demux = new Demuxer()
  for await (const chunk of res as AsyncIterable<Buffer>) {
    for (const f of demux.push(chunk)) {
      const write = (s: string | Buffer): boolean => (f.stream === 'stderr' ? process.stderr.write(s) : out(s.toString()))
      if (o.raw) {
        write(f.payload)
        continue
      }
      const line = parseLogLine(f.payload.toString(), !!o.timestamps)
      write(formatLogLine(line, await context(line.nodeID, line.serviceID, line.taskID), !!o.details))
    }
  }
}
