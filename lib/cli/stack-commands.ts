import { readFileSync } from 'node:fs'
import { InvalidArgumentError, type Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import { ApiError } from '../api/api-error.js'
import { SwarmdError } from '../types/errors.js'
import type { Service, ServiceSpec } from '../types/service.js'
import type { Task } from '../types/task.js'
import { convertStack, LABEL_NAMESPACE, type DataCreate, type StackPlan } from './compose-convert.js'
import { errText, filtersQuery, nodeNames, out, waitOnService, withConfigIDs, withSecretIDs } from './service-commands.js'
import { collect } from './service-flags.js'
import { formatRows, formatServices, formatTasks, naturalCompare, type ListedService } from './service-format.js'

/**
 * swarmctl stack: docker's stack commands, done client-side as the docker
 * CLI does them (cli/command/stack/swarm): everything of a stack is named
 * NAME_x and labelled com.docker.stack.namespace=NAME, and found again by
 * that label to list, update and remove.
 */

const enc = encodeURIComponent
const err = (s: string): boolean => process.stderr.write(s)
const usage = (msg: string): SwarmdError => new SwarmdError('E_USAGE', msg)

/** `-f key=value` flags plus the stack's namespace label, as docker's getStackFilterFromOpt. */
function stackFilter(namespace: string, flags: string[] = []): Record<string, string[]> {
  const f: Record<string, string[]> = {}
  for (const kv of flags) {
    const i = kv.indexOf('=')
    if (i <= 0) throw usage('bad format of filter (expected name=value)')
    ;(f[kv.slice(0, i).trim().toLowerCase()] ??= []).push(kv.slice(i + 1))
  }
  ;(f.label ??= []).push(`${LABEL_NAMESPACE}=${namespace}`)
  return f
}

const byLabel = (namespace: string): string => filtersQuery({ label: [`${LABEL_NAMESPACE}=${namespace}`] })

/** Go's strconv.ParseBool for `--detach=false`. */
function parseBool(v: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false
  throw new InvalidArgumentError(`strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`)
}

/** docker's validateStackName: not empty, no surrounding space. */
function checkName(namespace: string): void {
  if (namespace.trim() === '' || namespace.trim() !== namespace) throw usage(`invalid stack name: ${JSON.stringify(namespace)}`)
}

interface DeployFlags {
  composeFile: string[]
  prune?: boolean
  detach?: boolean
  quiet?: boolean
}

/** Reads, checks and converts the stack's compose file; the deployer's environment fills its variables. */
async function planStack(file: string, namespace: string, env: NodeJS.ProcessEnv, warn: (msg: string) => void): Promise<StackPlan> {
  // The schema validator is loaded only by a deploy, not by every swarmctl command.
  const { loadCompose } = await import('./compose-load.js')
  let text: string
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (e) {
    throw usage(`${file}: ${(e as Error).message}`)
  }
  const compose = loadCompose(file, text, name => env[name], warn)
  return convertStack(compose, namespace, { env: name => env[name], readFile: p => readFileSync(p) })
}

/** Creates a secret or config, or updates the one of that name (its labels only: the daemon refuses other changes, as swarm does). */
async function putDataObject(c: ApiClient, kind: 'secret' | 'config', spec: DataCreate): Promise<void> {
  let cur: { ID: string; Version: { Index: number } } | undefined
  try {
    cur = await c.call('GET', `/${kind}s/${enc(spec.Name)}`)
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e
  }
  try {
    if (cur) await c.call('POST', `/${kind}s/${cur.ID}/update?version=${cur.Version.Index}`, spec)
    else {
      out(`Creating ${kind} ${spec.Name}\n`)
      await c.call('POST', `/${kind}s/create`, spec)
    }
  } catch (e) {
    if (!(e instanceof SwarmdError)) throw e
    throw new SwarmdError('E_FAILED', `failed to ${cur ? 'update' : 'create'} ${kind} ${spec.Name}: ${errText(e)}`, { cause: e })
  }
}

async function deploy(c: ApiClient, namespace: string, o: DeployFlags): Promise<void> {
  checkName(namespace)
  if (o.composeFile.length !== 1) throw usage('Please specify exactly one compose file (with --compose-file)')
  const info = await c.call<{ Swarm: { ControlAvailable: boolean } }>('GET', '/info')
  if (!info.Swarm.ControlAvailable) {
    throw usage('this node is not a swarm manager. Use "swarmctl swarm init" or "swarmctl swarm join" to connect this node to swarm and try again')
  }
  const plan = await planStack(o.composeFile[0]!, namespace, process.env, msg => err(`WARN[0000] ${msg}\n`))
  for (const w of plan.warnings) err(`${w}\n\n`)
  const existing = await c.call<Service[]>('GET', `/services?${byLabel(namespace)}`)
  if (o.prune) {
    const wanted = new Set(plan.services.map(s => s.Name))
    for (const s of existing.filter(x => !wanted.has(x.Spec.Name))) {
      out(`Removing service ${s.Spec.Name}\n`)
      try {
        await c.call('DELETE', `/services/${s.ID}`)
      } catch (e) {
        if (!(e instanceof SwarmdError)) throw e
        err(`Failed to remove service ${s.Spec.Name}: ${errText(e)}\n`)
      }
    }
  }
  for (const name of plan.externalNetworks) {
    try {
      await c.call('GET', `/networks/${enc(name)}`)
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e
      throw usage(`network ${JSON.stringify(name)} is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed`)
    }
  }
  const networks = new Set((await c.call<{ Name: string }[]>('GET', `/networks?${byLabel(namespace)}`)).map(n => n.Name))
  for (const n of plan.networks.filter(x => !networks.has(x.Name))) {
    out(`Creating network ${n.Name}\n`)
    try {
      await c.call('POST', '/networks/create', n)
    } catch (e) {
      if (!(e instanceof SwarmdError)) throw e
      throw new SwarmdError('E_FAILED', `failed to create network ${n.Name}: ${errText(e)}`, { cause: e })
    }
  }
  for (const s of plan.secrets) await putDataObject(c, 'secret', s)
  for (const s of plan.configs) await putDataObject(c, 'config', s)

  const byName = new Map(existing.map(s => [s.Spec.Name, s]))
  const ids: string[] = []
  for (const spec of plan.services) {
    const cs = spec.TaskTemplate.ContainerSpec
    if (cs.Secrets) cs.Secrets = await withSecretIDs(c, cs.Secrets)
    if (cs.Configs) cs.Configs = await withConfigIDs(c, cs.Configs)
    const cur = byName.get(spec.Name)
    let warnings: string[] | null | undefined
    if (cur) {
      out(`Updating service ${spec.Name} (id: ${cur.ID})\n`)
      ids.push(cur.ID)
      warnings = (await c.call<{ Warnings?: string[] | null }>('POST', `/services/${cur.ID}/update?version=${cur.Version.Index}`, keepRuntimeState(spec, cur.Spec))).Warnings
    } else {
      out(`Creating service ${spec.Name}\n`)
      const r = await c.call<{ ID: string; Warnings?: string[] | null }>('POST', '/services/create', spec)
      ids.push(r.ID)
      warnings = r.Warnings
    }
    for (const w of warnings ?? []) err(w + '\n')
  }
  if (o.detach === undefined) err('Since --detach=false was not specified, tasks will be created in the background.\nIn a future release, --detach=false will become the default.\n')
  if (o.detach === false) for (const id of ids) await waitOnService(c, id, !!o.quiet)
}

/** A redeploy has no --force and leaves a count the file does not give to the service, as docker's deploy does. */
function keepRuntimeState(spec: ServiceSpec, cur: ServiceSpec): ServiceSpec {
  const next = structuredClone(spec)
  next.TaskTemplate.ForceUpdate = cur.TaskTemplate.ForceUpdate ?? 0
  if (next.Mode.Replicated && next.Mode.Replicated.Replicas === undefined && cur.Mode.Replicated) next.Mode.Replicated.Replicas = cur.Mode.Replicated.Replicas
  return next
}

async function remove(c: ApiClient, namespaces: string[]): Promise<void> {
  const failed: string[] = []
  for (const ns of namespaces) {
    const q = byLabel(ns)
    const [services, networks, secrets, configs] = await Promise.all([
      c.call<Service[]>('GET', `/services?${q}`),
      c.call<{ Id: string; Name: string }[]>('GET', `/networks?${q}`),
      c.call<{ ID: string; Spec: { Name: string } }[]>('GET', `/secrets?${q}`),
      c.call<{ ID: string; Spec: { Name: string } }[]>('GET', `/configs?${q}`),
    ])
    if (services.length + networks.length + secrets.length + configs.length === 0) {
      err(`Nothing found in stack: ${ns}\n`)
      continue
    }
    let hasError = false
    const each = async (what: string, list: { id: string; name: string }[], path: (id: string) => string): Promise<void> => {
      for (const x of list) {
        out(`Removing ${what} ${x.name}\n`)
        try {
          await c.call('DELETE', path(x.id))
        } catch (e) {
          if (!(e instanceof SwarmdError)) throw e
          hasError = true
          err(`Failed to remove ${what} ${x.id}: ${errText(e)}\n`)
        }
      }
    }
    // docker's order: services first, so nothing uses the secrets, configs and networks that follow.
    await each('service', services.map(s => ({ id: s.ID, name: s.Spec.Name })).sort((a, b) => (a.name < b.name ? -1 : 1)), id => `/services/${id}`)
    await each('secret', secrets.map(s => ({ id: s.ID, name: s.Spec.Name })), id => `/secrets/${id}`)
    await each('config', configs.map(s => ({ id: s.ID, name: s.Spec.Name })), id => `/configs/${id}`)
    await each('network', networks.map(n => ({ id: n.Id, name: n.Name })), id => `/networks/${id}`)
    if (hasError) failed.push(`Failed to remove some resources from stack: ${ns}`)
  }
  if (failed.length) throw new SwarmdError('E_FAILED', failed.join('\n'))
}

export function addStackCommands(program: Command, client: () => ApiClient): void {
  const stack = program.command('stack').description('Manage Swarm stacks').exitOverride()

  stack
    .command('deploy')
    .alias('up')
    .description('Deploy a new stack or update an existing stack')
    .argument('<stack>')
    .requiredOption('-c, --compose-file <strings>', 'Path to a Compose file, or "-" to read from stdin', collect)
    .option('--prune', 'Prune services that are no longer referenced')
    .option('-d, --detach [bool]', 'Exit immediately instead of waiting for the stack services to converge (default true)', parseBool)
    .option('-q, --quiet', 'Suppress progress output')
    .action(async (namespace: string, o: DeployFlags) => deploy(client(), namespace, o))

  stack
    .command('ls')
    .alias('list')
    .description('List stacks')
    .option('--format <string>', 'Format output using a custom template')
    .action(async (o: { format?: string }) => {
      const services = await client().call<Service[]>('GET', `/services?${filtersQuery({ label: [LABEL_NAMESPACE] })}`)
      const count = new Map<string, number>()
      for (const s of services) {
        const ns = s.Spec.Labels?.[LABEL_NAMESPACE]
        if (ns === undefined) throw new SwarmdError('E_FAILED', `cannot get label ${LABEL_NAMESPACE} for service ${s.ID}`)
        count.set(ns, (count.get(ns) ?? 0) + 1)
      }
      const rows = [...count].sort(([a], [b]) => naturalCompare(a, b)).map(([Name, n]) => ({ Name, Services: String(n) }))
      out(formatRows(o.format ?? 'table {{.Name}}\t{{.Services}}', { Name: 'NAME', Services: 'SERVICES' }, rows))
    })

  stack
    .command('services')
    .description('List the services in the stack')
    .argument('<stack>')
    .option('-q, --quiet', 'Only display IDs')
    .option('--format <string>', 'Pretty-print services using a Go template')
    .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect)
    .action(async (namespace: string, o: { quiet?: boolean; format?: string; filter?: string[] }) => {
      const q = [filtersQuery(stackFilter(namespace, o.filter)), o.quiet ? '' : 'status=true'].filter(Boolean).join('&')
      const services = await client().call<ListedService[]>('GET', `/services?${q}`)
      if (!services.length) {
        err(`Nothing found in stack: ${namespace}\n`)
        return
      }
      out(formatServices(services, o))
    })

  stack
    .command('ps')
    .description('List the tasks in the stack')
    .argument('<stack>')
    .option('-q, --quiet', 'Only display task IDs')
    .option('--no-trunc', 'Do not truncate output')
    .option('--no-resolve', 'Do not map IDs to Names')
    .option('--format <string>', 'Pretty-print tasks using a Go template')
    .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect)
    .action(async (namespace: string, o: { quiet?: boolean; trunc: boolean; resolve: boolean; format?: string; filter?: string[] }) => {
      const c = client()
      const tasks = await c.call<Task[]>('GET', `/tasks?${filtersQuery(stackFilter(namespace, o.filter))}`)
      if (!tasks.length) throw new SwarmdError('E_NOT_FOUND', `nothing found in stack: ${namespace}`)
      const names = o.resolve
        ? { services: new Map((await c.call<Service[]>('GET', '/services')).map(s => [s.ID, s.Spec.Name])), nodes: (await nodeNames(c)).names }
        : { services: new Map<string, string>(), nodes: new Map<string, string>() }
      out(formatTasks(tasks, names, { now: Date.now(), trunc: o.trunc && !o.quiet, quiet: !!o.quiet && !o.format, ...(o.format && { format: o.format }) }))
    })

  stack
    .command('rm')
    .aliases(['remove', 'down'])
    .description('Remove one or more stacks')
    .argument('<stack...>')
    .action(async (namespaces: string[]) => remove(client(), namespaces))
}
