import { SwarmdError } from '../types/errors.js'

/**
 * Variable substitution in compose values, as docker's compose loader does
 * (cli/compose/template): `$VAR` and `${VAR}`, `${VAR:-default}` (unset or
 * empty), `${VAR-default}` (unset), `${VAR:?error}` and `${VAR?error}`,
 * `$$` for a dollar. A variable that is not set becomes "" and is reported
 * through `warn`, as docker's "variable is not set" warning.
 */

const NAME = '[_a-zA-Z][_a-zA-Z0-9]*'
const PATTERN = new RegExp(`\\$(?:(\\$)|(${NAME})|\\{(${NAME})(?:(:?[-?])((?:[^{}]|\\{[^{}]*\\})*))?\\}|(\\{[^}]*\\}?|))`, 'g')

export interface Lookup {
  (name: string): string | undefined
}

/** A value that cannot be substituted, with the path of the value in the file. */
export class InterpolationError extends SwarmdError {
  constructor(
    readonly path: string[],
    message: string,
  ) {
    super('E_COMPOSE', message)
  }
}

/** One string with its variables substituted; `path` names the value in errors (services.web.image). */
export function substitute(value: string, env: Lookup, path: string[], warn: (msg: string) => void): string {
  const where = path.join('.')
  return value.replace(PATTERN, (_all, dollar: string | undefined, bare: string | undefined, braced: string | undefined, op: string | undefined, arg: string | undefined, bad: string | undefined) => {
    if (dollar) return '$'
    if (bad !== undefined) {
      throw new InterpolationError(path, `invalid interpolation format for ${where}: ${JSON.stringify(value)}. You may need to escape any $ with another $.`)
    }
    const name = (bare ?? braced)!
    const v = env(name)
    const rest = arg === undefined ? '' : substitute(arg, env, path, warn)
    switch (op) {
      case ':-':
        return v ? v : rest
      case '-':
        return v !== undefined ? v : rest
      case ':?':
      case '?':
        if (v === undefined || (op === ':?' && v === '')) throw new InterpolationError(path, `${where}: required variable ${name} is missing a value: ${rest}`)
        return v
    }
    if (v === undefined) {
      warn(`The "${name}" variable is not set. Defaulting to a blank string.`)
      return ''
    }
    return v
  })
}

/** Every string value of a parsed compose file substituted (keys are left as they are), with the path of each in errors. */
export function interpolate(value: unknown, env: Lookup, warn: (msg: string) => void, path: string[] = []): unknown {
  if (typeof value === 'string') return substitute(value, env, path, warn)
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, warn, [...path, String(i)]))
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, warn, [...path, k])]))
  }
  return value
}
