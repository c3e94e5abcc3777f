// Writes docs/errors.md from the sources: every error code swarmd throws
// (the string literals E_* in lib/, tests aside), where it is thrown, one
// message it comes with, and for the swarm's own codes (SwarmError, the ones
// the API answers with) their kind and HTTP status, read from
// lib/types/errors.ts and lib/api/api-error.ts.
//   node scripts/errors-doc.mjs          writes docs/errors.md
//   node scripts/errors-doc.mjs --check  exits 1 when docs/errors.md is stale
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DOC = join(ROOT, 'docs', 'errors.md')

function sources(dir) {
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...sources(p))
    else if (p.endsWith('.ts') && !/\.test(-helper)?\.ts$/.test(p) && !p.endsWith('.d.ts')) out.push(p)
  }
  return out
}

const read = p => readFileSync(join(ROOT, p), 'utf8')
const kinds = Object.fromEntries([...read('lib/types/errors.ts').matchAll(/^\s+(E_[A-Z0-9_]+): '([a-z_]+)',$/gm)].map(m => [m[1], m[2]]))
const statuses = Object.fromEntries([...read('lib/api/api-error.ts').matchAll(/^\s+([a-z_]+): (\d{3}),$/gm)].map(m => [m[1], Number(m[2])]))

/** The texts lib/types/errors.ts names (NOT_MANAGER, NO_LEADER, ...), for codes thrown with one of them. */
const texts = Object.fromEntries([...read('lib/types/errors.ts').matchAll(/^export const ([A-Z_]+) =\s*\n?\s*(['"])(.*)\2$/gm)].map(m => [m[1], m[3]]))

/** code → { layer, files, message } */
const codes = new Map()
for (const file of sources(join(ROOT, 'lib'))) {
  const text = readFileSync(file, 'utf8')
  const rel = relative(join(ROOT, 'lib'), file)
  for (const m of text.matchAll(/['`](E_[A-Z0-9_]+)['`]/g)) {
    const code = m[1]
    // Interpolations first, so the quotes inside them do not end the message.
    const line = text.slice(m.index, text.indexOf('\n', m.index)).replace(/\$\{(?:[^{}]|\{[^{}]*\})*\}/g, '…')
    const rest = line.slice(code.length + 2)
    const named = /^\s*,\s*([A-Z_]+)\b/.exec(rest)?.[1]
    const msg = (named && texts[named]) || (/['`](?!E_)((?:[^'`\\]|\\.){6,120})['`]/.exec(rest)?.[1] ?? '')
    const e = codes.get(code) ?? { layer: rel.includes('/') ? rel.split('/')[0] : '.', files: new Set(), message: '' }
    e.files.add(rel)
    if (!e.message && msg) e.message = msg.replace(/\|/g, '\\|')
    codes.set(code, e)
  }
}

const LAYERS = ['types', 'gossip', 'control', 'mesh', 'manager', 'agent', 'node', 'api', 'cli']
const lines = [
  '# Errors',
  '',
  'Every error swarmd throws on purpose is a `SwarmdError` (lib/types/errors.ts) with a stable `code`',
  '(for programs: match on it, never on the message) and a `kind` (how a caller should treat it, in',
  "swarmkit's terms). Only lib/api turns a kind into an HTTP status, as moby maps swarmkit's gRPC codes.",
  'Messages are for people; where Docker has a text for the situation it is Docker\'s, byte for byte,',
  'since the docker CLI prints them after "Error response from daemon: ". An error that comes back over',
  'the control plane (a `RemoteError`) keeps the code and kind it had on the other node.',
  '',
  'This file is written by `node scripts/errors-doc.mjs` from the sources; a test fails when it is stale.',
  '',
  '## Kinds and HTTP statuses',
  '',
  '| kind | HTTP status |',
  '|---|---|',
  ...Object.entries(statuses).map(([k, s]) => `| ${k} | ${s} |`),
  '',
  'A `SwarmdError` thrown without a kind is `internal` (500), and is logged as a defect when it reaches the API.',
  '',
]
for (const layer of [...LAYERS, '.']) {
  const rows = [...codes].filter(([, e]) => e.layer === layer).sort(([a], [b]) => a.localeCompare(b))
  if (!rows.length) continue
  lines.push(`## ${layer === '.' ? 'lib/' : `lib/${layer}/`}`, '')
  const swarm = rows.some(([c]) => kinds[c])
  lines.push(swarm ? '| code | kind | HTTP | where | message (example) |' : '| code | where | message (example) |', swarm ? '|---|---|---|---|---|' : '|---|---|---|')
  for (const [code, e] of rows) {
    const where = [...e.files].map(f => `\`${f}\``).join(', ')
    const msg = e.message ? `${e.message}` : ''
    lines.push(swarm ? `| \`${code}\` | ${kinds[code] ?? '—'} | ${kinds[code] ? statuses[kinds[code]] : '—'} | ${where} | ${msg} |` : `| \`${code}\` | ${where} | ${msg} |`)
  }
  lines.push('')
}
lines.push('Besides these: `E_API_<status>` (lib/api/api-error.ts), an HTTP error the API answers or a client reads; `E_PACKET_<reason>` (lib/gossip/packet.ts), a gossip packet dropped for that reason.', '')
const doc = lines.join('\n')

if (process.argv.includes('--check')) {
  let cur = ''
  try {
    cur = readFileSync(DOC, 'utf8')
  } catch {}
  if (cur !== doc) {
    process.stderr.write('docs/errors.md is stale: run node scripts/errors-doc.mjs\n')
    process.exit(1)
  }
} else writeFileSync(DOC, doc)
