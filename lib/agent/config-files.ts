import fs from 'node:fs'
import path from 'node:path'
import { SwarmdError } from '../types/errors.js'
import type { ConfigFile } from './executor.js'

/**
 * A config's target as a path inside a container's root: Docker puts a
 * relative target at /<target>, and `..` cannot climb out of the root.
 */
export function configPath(target: string): string {
  const inRoot = path.posix.join('/', target)
  if (inRoot === '/') throw new SwarmdError('E_CONFIG_TARGET', `invalid config target ${JSON.stringify(target)}`)
  return inRoot
}

/**
 * Writes a task's configs under `root` as they would lie in its container's
 * root (target /etc/app.conf at <root>/etc/app.conf), each with its mode
 * exactly, whatever the umask. Returns each config's target in the
 * container and its file on the host.
 */
export function writeConfigs(root: string, configs: ConfigFile[]): { target: string; file: string }[] {
  fs.rmSync(root, { recursive: true, force: true })
  fs.mkdirSync(root, { recursive: true, mode: 0o755 })
  return configs.map(c => {
    const target = configPath(c.target)
    const file = path.join(root, target)
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 })
    fs.writeFileSync(file, c.data, { flag: 'wx', mode: 0o600 })
    fs.chmodSync(file, c.mode)
    return { target, file }
  })
}
