import { SwarmError } from '../types/errors.js'

/**
 * Validates the body of POST /secrets/create and /configs/create (and of
 * their updates) the way dockerd and swarmkit do, with their error texts:
 * dockerd's JSON decoding first ("invalid JSON: …", Data is Go []byte so it
 * travels as standard padded base64), then swarmkit's name rules and
 * payload size (manager/controlapi/secret.go and config.go,
 * api/validation/secrets.go), whose gRPC errors dockerd passes on as
 * "rpc error: code = InvalidArgument desc = …". Secrets and configs follow
 * the same rules but for their size limits and the words in the texts.
 */

export type DataKind = 'secret' | 'config'

export interface DataSpec {
  Name: string
  Labels: Record<string, string>
  Data: Buffer
}

/** api/validation.MaxSecretSize: 500 KiB, exclusive. */
export const MAX_SECRET_SIZE = 500 * 1024
/** controlapi.MaxConfigSize: 1000 KiB, exclusive. */
export const MAX_CONFIG_SIZE = 1000 * 1024

const KINDS = {
  secret: { max: MAX_SECRET_SIZE, go: 'SecretSpec', code: 'E_INVALID_SECRET', fields: ['Name', 'Labels', 'Data', 'Driver', 'Templating'] },
  config: { max: MAX_CONFIG_SIZE, go: 'ConfigSpec', code: 'E_INVALID_CONFIG', fields: ['Name', 'Labels', 'Data', 'Templating'] },
} as const

/** The spec of a create or an update as dockerd decodes it (Data undefined when absent), before swarmkit's checks. */
export function decodeDataSpec(body: unknown, kind: DataKind): { Name: string; Labels: Record<string, string>; Data: Buffer | undefined; Driver?: unknown; Templating?: unknown } {
  const k = KINDS[kind]
  const invalidJSON = (what: string) => new SwarmError(k.code, `invalid JSON: ${what}`)
  const typeError = (value: unknown, field: string, goType: string) => invalidJSON(`json: cannot unmarshal ${jsonKind(value)} into Go struct field ${k.go}.${field} of type ${goType}`)
  const stringField = (value: unknown, field: string): string => {
    if (value === undefined || value === null) return ''
    if (typeof value !== 'string') throw typeError(value, field, 'string')
    return value
  }
  if (body !== null && body !== undefined && (typeof body !== 'object' || Array.isArray(body))) {
    throw invalidJSON(`json: cannot unmarshal ${jsonKind(body)} into Go value of type swarm.${k.go}`)
  }
  const fields = goFields((body ?? {}) as Record<string, unknown>, k.fields)
  const name = stringField(fields.Name, 'Name')
  const labels: Record<string, string> = {}
  if (fields.Labels !== undefined && fields.Labels !== null) {
    if (typeof fields.Labels !== 'object' || Array.isArray(fields.Labels)) throw typeError(fields.Labels, 'Labels', 'map[string]string')
    for (const [key, v] of Object.entries(fields.Labels)) labels[key] = stringField(v, 'Labels')
  }
  let data: Buffer | undefined
  if (fields.Data !== undefined && fields.Data !== null) {
    if (typeof fields.Data !== 'string') throw typeError(fields.Data, 'Data', '[]uint8')
    const bad = goBase64Error(Buffer.from(fields.Data, 'utf8'))
    if (bad !== undefined) throw invalidJSON(`illegal base64 data at input byte ${bad}`)
    data = Buffer.from(fields.Data, 'base64')
  }
  return { Name: name, Labels: labels, Data: data, ...(fields.Driver != null ? { Driver: fields.Driver } : {}), ...(fields.Templating != null ? { Templating: fields.Templating } : {}) }
}

/** A create's spec: decoded, then swarmkit's name rules and size limit. */
export function validateDataSpec(body: unknown, kind: DataKind): DataSpec {
  const k = KINDS[kind]
  const rpc = (desc: string) => new SwarmError(k.code, `rpc error: code = InvalidArgument desc = ${desc}`)
  const spec = decodeDataSpec(body, kind)
  const data = spec.Data ?? Buffer.alloc(0)
  if (spec.Name === '') throw rpc('name must be provided')
  if (!isValidSecretName(spec.Name)) {
    throw rpc('invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]')
  }
  if (spec.Driver !== undefined) throw new SwarmError('E_UNSUPPORTED', 'secret drivers are not supported')
  if (spec.Templating !== undefined) throw new SwarmError('E_UNSUPPORTED', `${kind} templating is not supported`)
  if (data.length < 1 || data.length >= k.max) {
    throw rpc(`${kind} data must be larger than 0 and less than ${k.max} bytes`)
  }
  return { Name: spec.Name, Labels: spec.Labels, Data: data }
}

/** swarmkit's config/secret name rule: ^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$, at most 64 chars. */
export function isValidSecretName(name: string): boolean {
  return name.length <= 64 && /^[a-zA-Z0-9]$/.test(name.at(0) ?? '') && /^[a-zA-Z0-9]$/.test(name.at(-1) ?? '') && /^[a-zA-Z0-9._-]*$/.test(name)
}

/** Go's encoding/json field matching: exact name or case-insensitive, the last key wins. */
function goFields(obj: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(obj)) {
    const name = names.find(n => n === key) ?? names.find(n => n.toLowerCase() === key.toLowerCase())
    if (name !== undefined) out[name] = value
  }
  return out
}

// The JSON kind Go names in a type error (null never reaches here).
function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array'
  return typeof value === 'boolean' ? 'bool' : typeof value
}

const B64 = /[A-Za-z0-9+/]/
const isNewline = (b: number | undefined) => b === 0x0a || b === 0x0d

/**
 * The offset Go's base64.StdEncoding reports for malformed input (padding
 * required, CR/LF skipped, trailing bits ignored), or undefined when valid.
 */
export function goBase64Error(src: Buffer): number | undefined {
  let si = 0
  while (si < src.length) {
    for (let j = 0; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return undefined
        return si - j
      }
      const c = src[si++]!
      if (c < 0x80 && B64.test(String.fromCharCode(c))) continue
      if (isNewline(c)) {
        j--
        continue
      }
      if (c !== 0x3d || j < 2) return si - 1
      if (j === 2) {
        while (isNewline(src[si])) si++
        if (si === src.length) return src.length
        if (src[si] !== 0x3d) return si - 1
        si++
      }
      while (isNewline(src[si])) si++
      return si < src.length ? si : undefined
    }
  }
  return undefined
}
