import { SwarmError } from '../types/errors.js'

/**
 * Validates the body of POST /secrets/create the way dockerd and swarmkit
 * do, with their error texts: dockerd's JSON decoding first ("invalid JSON:
 * …", Data is Go []byte so it travels as standard padded base64), then
 * swarmkit's name rules and payload size (manager/controlapi/secret.go,
 * api/validation/secrets.go), whose gRPC errors dockerd passes on as
 * "rpc error: code = InvalidArgument desc = …".
 */

export interface SecretCreate {
  Name: string
  Labels: Record<string, string>
  Data: Buffer
}

/** api/validation.MaxSecretSize: 500 KiB, exclusive. */
export const MAX_SECRET_SIZE = 500 * 1024

const rpc = (desc: string) => new SwarmError('E_INVALID_SECRET', `rpc error: code = InvalidArgument desc = ${desc}`)
const invalidJSON = (what: string) => new SwarmError('E_INVALID_SECRET', `invalid JSON: ${what}`)

export function validateSecretSpec(body: unknown): SecretCreate {
  if (body !== null && body !== undefined && (typeof body !== 'object' || Array.isArray(body))) {
    throw invalidJSON(`json: cannot unmarshal ${jsonKind(body)} into Go value of type swarm.SecretSpec`)
  }
  const fields = goFields((body ?? {}) as Record<string, unknown>, ['Name', 'Labels', 'Data', 'Driver'])
  const name = stringField(fields.Name, 'Name', 'string')
  const labels = labelsField(fields.Labels)
  const data = dataField(fields.Data)

  if (name === '') throw rpc('name must be provided')
  if (!isValidSecretName(name)) {
    throw rpc('invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]')
  }
  if (fields.Driver !== undefined && fields.Driver !== null) throw new SwarmError('E_UNSUPPORTED', 'secret drivers are not supported')
  if (data.length < 1 || data.length >= MAX_SECRET_SIZE) {
    throw rpc(`secret data must be larger than 0 and less than ${MAX_SECRET_SIZE} bytes`)
  }
  return { Name: name, Labels: labels, Data: data }
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

function typeError(value: unknown, field: string, goType: string): SwarmError {
  return invalidJSON(`json: cannot unmarshal ${jsonKind(value)} into Go struct field SecretSpec.${field} of type ${goType}`)
}

// The JSON kind Go names in a type error (null never reaches here).
function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array'
  return typeof value === 'boolean' ? 'bool' : typeof value
}

function stringField(value: unknown, field: string, goType: string): string {
  if (value === undefined || value === null) return ''
  if (typeof value !== 'string') throw typeError(value, field, goType)
  return value
}

function labelsField(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw typeError(value, 'Labels', 'map[string]string')
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(value)) out[k] = stringField(v, 'Labels', 'string')
  return out
}

function dataField(value: unknown): Buffer {
  if (value === undefined || value === null) return Buffer.alloc(0)
  if (typeof value !== 'string') throw typeError(value, 'Data', '[]uint8')
  const bad = goBase64Error(Buffer.from(value, 'utf8'))
  if (bad !== undefined) throw invalidJSON(`illegal base64 data at input byte ${bad}`)
  return Buffer.from(value, 'base64')
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
