import { BlockList, isIP } from 'node:net'
import { SwarmError } from '../types/errors.js'
import type { SchedNode } from './sched-node.js'

/**
 * Placement constraints (`docker service create --constraint key==value`),
 * with swarmkit's syntax rules (manager/constraint). Unlike swarmkit, an
 * unknown key or a malformed node.ip value is rejected when the service is
 * created instead of leaving its tasks pending forever.
 */

export const NODE_LABEL_PREFIX = 'node.labels.'
export const ENGINE_LABEL_PREFIX = 'engine.labels.'

// swarmkit's key and value patterns; values must not contain operators.
const KEY_PATTERN = /^[a-z_][a-z0-9\-_.]+$/i
const VALUE_PATTERN = /^[a-z0-9:\-_\t\n\f\r .*()?+[\]\\^$|/]+$/i
const OPERATORS = ['==', '!='] as const

const PLAIN_KEYS = {
  'node.id': (n: SchedNode) => n.id,
  'node.hostname': (n: SchedNode) => n.hostname,
  'node.role': (n: SchedNode) => n.role,
  'node.platform.os': (n: SchedNode) => n.platform.os,
  'node.platform.arch': (n: SchedNode) => n.platform.arch,
} as const

type Matcher = (node: SchedNode) => boolean

export class Constraint {
  /** Whether `node` satisfies this constraint. */
  readonly test: Matcher

  constructor(
    readonly expr: string,
    readonly key: string,
    readonly op: '==' | '!=',
    readonly value: string,
  ) {
    const equal = compile(expr, key, value)
    this.test = op === '==' ? equal : (node) => !equal(node)
  }
}

/**
 * Parses `key==value` / `key!=value` expressions; throws an invalid-argument SwarmError naming
 * the offending expression.
 */
export function parseConstraints(exprs: readonly string[]): Constraint[] {
  return exprs.map(parseOne)
}

/** True when `node` satisfies every constraint. */
export function matches(constraints: readonly Constraint[], node: SchedNode): boolean {
  for (const c of constraints) if (!c.test(node)) return false
  return true
}

/** Reads a spread descriptor's label from a node; undefined for an unsupported descriptor. */
export function labelReader(descriptor: string): ((node: SchedNode) => string) | undefined {
  const label = labelOf(descriptor)
  if (label === undefined) return undefined
  const [engine, name] = label
  return engine ? (n) => n.engineLabels[name] ?? '' : (n) => n.labels[name] ?? ''
}

function parseOne(expr: string): Constraint {
  for (const op of OPERATORS) {
    const at = expr.indexOf(op)
    if (at < 0) continue
    const key = expr.slice(0, at).trim()
    if (!KEY_PATTERN.test(key)) throw invalid(expr, `key '${key}' is invalid`)
    const value = expr.slice(at + op.length).trim()
    if (!VALUE_PATTERN.test(value)) throw invalid(expr, `value '${value}' is invalid`)
    return new Constraint(expr, key, op, value)
  }
  throw invalid(expr, `constraint expected one operator from ${OPERATORS.join(', ')}`)
}

function invalid(expr: string, why: string): SwarmError {
  return new SwarmError('E_INVALID_CONSTRAINT', `invalid constraint "${expr}": ${why}`)
}

/** Returns [isEngineLabel, labelName] when `key` names a label (prefix case-insensitive, name case-sensitive). */
function labelOf(key: string): [boolean, string] | undefined {
  for (const [prefix, engine] of [
    [NODE_LABEL_PREFIX, false],
    [ENGINE_LABEL_PREFIX, true],
  ] as const) {
    if (key.length > prefix.length && key.slice(0, prefix.length).toLowerCase() === prefix) {
      return [engine, key.slice(prefix.length)]
    }
  }
  return undefined
}

/** Builds the "key equals value" test for a constraint. */
function compile(expr: string, key: string, value: string): Matcher {
  const lowerKey = key.toLowerCase()
  const lowerValue = value.toLowerCase()
  if (lowerKey === 'node.ip') return ipMatcher(expr, value)
  const plain = PLAIN_KEYS[lowerKey as keyof typeof PLAIN_KEYS] as ((n: SchedNode) => string) | undefined
  if (plain) return (n) => plain(n).toLowerCase() === lowerValue
  const label = labelOf(key)
  if (label) {
    const [engine, name] = label
    return engine
      ? (n) => (n.engineLabels[name] ?? '').toLowerCase() === lowerValue
      : (n) => (n.labels[name] ?? '').toLowerCase() === lowerValue
  }
  throw invalid(
    expr,
    `invalid constraint key '${key}' (expected node.id, node.hostname, node.ip, node.role, ` +
      `node.platform.os, node.platform.arch, node.labels.<label> or engine.labels.<label>)`,
  )
}

/** node.ip accepts one address or a CIDR subnet, IPv4 or IPv6. */
function ipMatcher(expr: string, value: string): Matcher {
  const list = new BlockList()
  const slash = value.indexOf('/')
  const addr = slash < 0 ? value : value.slice(0, slash)
  const family = isIP(addr)
  const prefix = slash < 0 ? undefined : value.slice(slash + 1)
  const maxPrefix = family === 4 ? 32 : 128
  if (family === 0 || (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix))) {
    throw invalid(expr, `'${value}' is not an IP address or CIDR subnet`)
  }
  const type = family === 4 ? 'ipv4' : 'ipv6'
  if (prefix === undefined) list.addAddress(addr, type)
  else list.addSubnet(addr, Number(prefix), type)
  return (n) => {
    const nodeFamily = isIP(n.addr)
    return nodeFamily !== 0 && list.check(n.addr, nodeFamily === 4 ? 'ipv4' : 'ipv6')
  }
}
