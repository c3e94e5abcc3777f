import { chmodSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Modes of what only swarmd's user may read: the node key, the CA key, join tokens, gossip keys. */
export const FILE_MODE = 0o600
export const DIR_MODE = 0o700

/**
 * Creates `dir` if needed and restricts it and the files and folders
 * directly in it to their owner (0700 / 0600), whatever the umask or the
 * modes found: a dir made by hand, or by an older swarmd, may be wider.
 * Symlinks are left alone; what is further down is its creator's concern.
 */
export function restrictToOwner(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: DIR_MODE })
  chmodSync(dir, DIR_MODE)
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) chmodSync(join(dir, e.name), DIR_MODE)
    else if (e.isFile()) chmodSync(join(dir, e.name), FILE_MODE)
  }
}
