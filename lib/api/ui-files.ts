import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
}

/**
 * The cluster page's files (lib/api/ui/: plain HTML, CSS and JavaScript,
 * with no build step), found from this module in the source tree or in
 * dist/, and read once; undefined when they are not there.
 */
export function uiFiles(): Map<string, { type: string; body: Buffer }> | undefined {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'lib/api/ui/index.html'))) {
    const up = dirname(dir)
    if (up === dir) return undefined
    dir = up
  }
  return new Map(Object.entries(TYPES).map(([name, type]) => [name, { type, body: readFileSync(join(dir, 'lib/api/ui', name)) }]))
}
