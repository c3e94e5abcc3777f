import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { isMap, LineCounter, parseDocument, type Document, type Node, type ScalarTag } from 'yaml'
import { SwarmdError } from '../types/errors.js'
import { interpolate, InterpolationError, type Lookup } from './compose-interpolate.js'

/**
 * Reads a compose file as docker's loader does: YAML (anchors and `<<`
 * merges, a leading-0 integer is octal as in Go's yaml, so `mode: 0444`
 * is 0o444), variables substituted, then checked against the compose
 * specification's JSON schema. Every error names the file, the line and
 * column, and the path of the value in the file.
 */

/** A parsed, substituted and schema-valid compose file. */
export interface ComposeFile {
  /** The file as given (`-` for stdin). */
  file: string
  /** Where relative paths in it (env_file, a secret's or config's file) start. */
  dir: string
  config: Record<string, unknown>
  /** The error for a value of the file: its line and column when the path is found, and the path. */
  errorAt(path: (string | number)[], message: string): SwarmdError
}

const GO_OCTAL: ScalarTag = { identify: v => typeof v === 'number', default: true, tag: 'tag:yaml.org,2002:int', test: /^0[0-7]+$/, resolve: s => parseInt(s, 8) }

let validator: ValidateFunction | undefined

/** The compose specification's schema (compose-spec.json, as the dclint package ships it), compiled once. */
function schema(): ValidateFunction {
  if (validator) return validator
  // The package exports no subpath for it: found beside its package.json.
  const pkg = createRequire(import.meta.url).resolve('dclint/package.json')
  const s = JSON.parse(readFileSync(join(dirname(pkg), 'schemas', 'compose.schema.json'), 'utf8')) as Record<string, unknown>
  // Draft 07 under an https URI Ajv does not know it by; its own keywords (deprecated, …) are metadata.
  delete s.$schema
  validator = new Ajv({ strict: false, allowUnionTypes: true }).compile(s)
  return validator
}

export function loadCompose(file: string, text: string, env: Lookup, warn: (msg: string) => void): ComposeFile {
  const lines = new LineCounter()
  const doc = parseDocument(text, { customTags: tags => [GO_OCTAL, ...tags], merge: true, lineCounter: lines, prettyErrors: false })
  const where = (offset: number): string => {
    const p = lines.linePos(offset)
    return `${file}:${p.line}:${p.col}`
  }
  const yamlError = doc.errors[0]
  if (yamlError) throw new SwarmdError('E_COMPOSE', `${where(yamlError.pos[0])}: ${yamlError.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`)
  const errorAt = (path: (string | number)[], message: string): SwarmdError => {
    const offset = nodeAt(doc, path)?.range?.[0]
    return new SwarmdError('E_COMPOSE', `${offset === undefined ? file : where(offset)}: ${message}`)
  }
  const raw = doc.toJS({ maxAliasCount: 1000 }) as unknown
  if (raw === null || raw === undefined) throw new SwarmdError('E_COMPOSE', `${file}: empty compose file`)
  if (typeof raw !== 'object' || Array.isArray(raw)) throw errorAt([], 'Top-level object must be a mapping')
  let config: Record<string, unknown>
  try {
    config = interpolate(raw, env, warn) as Record<string, unknown>
  } catch (e) {
    if (e instanceof InterpolationError) throw errorAt(e.path, e.message)
    throw e
  }
  const validate = schema()
  if (!validate(config)) {
    const err = pickError(validate.errors ?? [])
    const path = pointer(err.instancePath)
    const key = err.keyword === 'additionalProperties' ? (err.params as { additionalProperty: string }).additionalProperty : undefined
    throw errorAt(key === undefined ? path : [...path, key], describe(err, validate.errors ?? []))
  }
  return { file, dir: file === '-' ? process.cwd() : dirname(resolve(file)), config, errorAt }
}

/** The YAML node at a path (the key's node for a key the schema refuses), for its position. */
function nodeAt(doc: Document, path: (string | number)[]): Node | undefined {
  if (path.length === 0) return doc.contents ?? undefined
  const parent = path.length === 1 ? doc.contents : (doc.getIn(path.slice(0, -1), true) as Node | undefined)
  const last = path[path.length - 1]
  if (isMap(parent)) {
    const pair = parent.items.find(p => (p.key as { value?: unknown } | null)?.value === last)
    return (pair?.key as Node | undefined) ?? undefined
  }
  return doc.getIn(path, true) as Node | undefined
}

const pointer = (p: string): string[] => (p === '' ? [] : p.slice(1).split('/').map(s => s.replace(/~1/g, '/').replace(/~0/g, '~')))
const dotted = (p: string): string => (p === '' ? '(root)' : pointer(p).join('.'))

/**
 * The one error to show: the deepest value that failed (a oneOf's branches
 * each fail at the value itself, so the deepest is the one that nearly
 * matched), a refused or missing key before a mere type mismatch.
 */
function pickError(errors: ErrorObject[]): ErrorObject {
  const depth = (e: ErrorObject): number => pointer(e.instancePath).length
  const deepest = Math.max(...errors.map(depth))
  const here = errors.filter(e => depth(e) === deepest && e.keyword !== 'oneOf' && e.keyword !== 'anyOf')
  return here.find(e => e.keyword !== 'type') ?? here[0] ?? errors[0]!
}

/** Docker's wording of schema errors (its loader's, over gojsonschema's). */
function describe(e: ErrorObject, all: ErrorObject[]): string {
  const at = dotted(e.instancePath)
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at} Additional property ${String(p.additionalProperty)} is not allowed`
    case 'required':
      return `${at} ${String(p.missingProperty)} is required`
    case 'enum':
      return `${at} must be one of the following: ${(p.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}`
    case 'type': {
      // Every type the value could have had, from each branch that failed on it.
      const types = all.filter(x => x.keyword === 'type' && x.instancePath === e.instancePath).flatMap(x => [(x.params as { type: string | string[] }).type].flat())
      return `${at} must be a ${[...new Set(types.flatMap(t => t.split(',')))].join(' or ')}`
    }
    default:
      return `${at} ${e.message ?? 'is invalid'}`
  }
}
