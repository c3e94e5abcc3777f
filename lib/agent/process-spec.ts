import fs from 'node:fs'
import path from 'node:path'
import { SwarmdError } from '../types/errors.js'
import type { Mount, TaskSpec } from '../types/service.js'

/**
 * What of a task's spec a host process can be given, and the refusal of
 * the rest by name: the process executor rejects a task whose spec asks for
 * what only a container has (a read-only root, capabilities, its own DNS,
 * /etc/hosts, sysctls, a TTY, another user, CPU and memory limits, volumes)
 * instead of running it without. Mounts mean something for a host process
 * as paths: a bind mount's source must exist (Docker's rejection text), a
 * tmpfs mount is a fresh directory on the node's tmpfs; either is handed
 * to the task as SWARMD_MOUNT_<TARGET> (the target's path upper-cased, each
 * run of other characters an underscore: /var/data → SWARMD_MOUNT_VAR_DATA),
 * since a host process cannot see it at the target itself.
 */

const refuse = (field: string, why = ''): SwarmdError => new SwarmdError('E_UNSUPPORTED_FIELD', `${field} is not supported by the process executor${why ? `: ${why}` : ''}`)
const some = (l: unknown[] | undefined): boolean => (l?.length ?? 0) > 0

/** Throws the refusal of the first field the process executor cannot honour. */
export function checkProcessSpec(spec: TaskSpec): void {
  const c = spec.ContainerSpec
  if (c.ReadOnly) throw refuse('ContainerSpec.ReadOnly', 'a host process has no root filesystem of its own')
  if (c.TTY) throw refuse('ContainerSpec.TTY')
  if (c.OpenStdin) throw refuse('ContainerSpec.OpenStdin')
  if (c.User) throw refuse('ContainerSpec.User', 'tasks run as the daemon\'s user')
  if (some(c.Groups)) throw refuse('ContainerSpec.Groups', 'tasks run as the daemon\'s user')
  if (some(c.CapabilityAdd)) throw refuse('ContainerSpec.CapabilityAdd')
  if (some(c.CapabilityDrop)) throw refuse('ContainerSpec.CapabilityDrop')
  if (some(c.DNSConfig?.Nameservers) || some(c.DNSConfig?.Search) || some(c.DNSConfig?.Options)) throw refuse('ContainerSpec.DNSConfig', 'a host process uses the host\'s resolver')
  if (some(c.Hosts)) throw refuse('ContainerSpec.Hosts', 'a host process uses the host\'s /etc/hosts')
  if (Object.keys(c.Sysctls ?? {}).length) throw refuse('ContainerSpec.Sysctls')
  if (c.OomScoreAdj) throw refuse('ContainerSpec.OomScoreAdj')
  if (c.Isolation && c.Isolation !== 'default') throw refuse('ContainerSpec.Isolation')
  const limits = spec.Resources?.Limits
  if (limits?.NanoCPUs) throw refuse('Resources.Limits.NanoCPUs', 'no cgroup of its own')
  if (limits?.MemoryBytes) throw refuse('Resources.Limits.MemoryBytes', 'no cgroup of its own')
  if (limits?.Pids) throw refuse('Resources.Limits.Pids', 'no cgroup of its own')
  const log = spec.LogDriver
  if (log && ((log.Name && log.Name !== 'json-file' && log.Name !== 'local') || Object.keys(log.Options ?? {}).length)) {
    throw refuse(`TaskTemplate.LogDriver (${log.Name ?? ''})`, 'the output goes to swarmd\'s own task log')
  }
  for (const m of c.Mounts ?? []) checkMount(m)
}

/** dockerd's checks of a mount (executor/container/validate.go), then what a host process can have of it. */
function checkMount(m: Mount): void {
  const target = m.Target ?? ''
  if (!path.isAbsolute(target)) throw new SwarmdError('E_MOUNT', `invalid mount target, must be an absolute path: ${target}`)
  const source = m.Source ?? ''
  switch (m.Type ?? 'bind') {
    case 'bind':
      if (!path.isAbsolute(source)) throw new SwarmdError('E_MOUNT', `invalid bind mount source, must be an absolute path: ${source}`)
      if (!fs.existsSync(source)) throw new SwarmdError('E_MOUNT', `invalid mount config for type "bind": bind source path does not exist: ${source}`)
      if (m.ReadOnly) throw refuse(`Mounts[${target}].ReadOnly`, 'a host process can write wherever the daemon\'s user can')
      if (m.BindOptions?.Propagation || m.BindOptions?.NonRecursive) throw refuse(`Mounts[${target}].BindOptions`)
      return
    case 'tmpfs':
      if (source !== '') throw new SwarmdError('E_MOUNT', 'invalid tmpfs source, source must be empty')
      if (m.TmpfsOptions?.SizeBytes) throw refuse(`Mounts[${target}].TmpfsOptions.SizeBytes`, 'the directory shares the node\'s tmpfs')
      return
    default:
      throw refuse(`Mounts[${target}] of type "${m.Type}"`, 'swarmd\'s process executor has no volumes')
  }
}

/** The variable that hands a mount's path to the task. */
export function mountVariable(target: string): string {
  return `SWARMD_MOUNT_${target.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '')}`
}

/**
 * The mounts' paths for the task's environment; a tmpfs mount gets its own
 * directory under `tmpfsDir` (mode TmpfsOptions.Mode, Docker's 1777 by default).
 */
export function prepareMounts(mounts: Mount[], tmpfsDir: () => string): Record<string, string> {
  const env: Record<string, string> = {}
  mounts.forEach((m, i) => {
    if ((m.Type ?? 'bind') === 'bind') {
      env[mountVariable(m.Target!)] = m.Source!
      return
    }
    const dir = path.join(tmpfsDir(), `mount-${i}`)
    fs.mkdirSync(dir, { recursive: true })
    fs.chmodSync(dir, m.TmpfsOptions?.Mode ?? 0o1777)
    env[mountVariable(m.Target!)] = dir
  })
  return env
}

/** `prlimit` options for Docker's ulimit names (prlimit's own long options bear the same names). */
export function prlimitArgs(ulimits: { Name: string; Soft: number; Hard: number }[]): string[] {
  const known = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack']
  return ulimits.map(u => {
    if (!known.includes(u.Name)) throw new SwarmdError('E_ULIMIT', `invalid ulimit type: ${u.Name}`)
    return `--${u.Name}=${u.Soft}:${u.Hard}`
  })
}
