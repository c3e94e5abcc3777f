import { SwarmError } from '../types/errors.js'
import { OPT_VXLANID_LIST, type NetworkRecord } from '../types/network.js'
import { contains, fmtPrefix, masked, overlaps, parseIPv4, parsePrefix, type Prefix } from './ipv4.js'

/** The network create request and its validation, with Docker's and swarmkit's texts so the docker CLI reads its own errors. */

const PREDEFINED = ['bridge', 'host', 'none', 'default']
const PREDEFINED_LABEL = 'com.docker.swarm.predefined'
const DNS_NAME = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/

export const rpc = (code: string, desc: string): string => `rpc error: code = ${code} desc = ${desc}`

export interface IpamConfig {
  Subnet?: string
  IPRange?: string
  Gateway?: string
  AuxiliaryAddresses?: Record<string, string>
}

/** Docker's network.CreateRequest, as the docker CLI sends it. */
export interface CreateRequest {
  Name: string
  Driver?: string
  Scope?: string
  EnableIPv4?: boolean
  EnableIPv6?: boolean
  IPAM?: { Driver?: string; Options?: Record<string, string> | null; Config?: IpamConfig[] | null } | null
  Internal?: boolean
  Attachable?: boolean
  Ingress?: boolean
  ConfigOnly?: boolean
  ConfigFrom?: { Network: string } | null
  Options?: Record<string, string> | null
  Labels?: Record<string, string> | null
}

const GO_TYPES: Record<string, string> = { string: 'string', boolean: 'bool', object: 'map[string]string' }

const goKind = (v: unknown): string => (Array.isArray(v) ? 'array' : typeof v === 'boolean' ? 'bool' : typeof v)
const unmarshal = (v: unknown, field: string, goType: string): SwarmError =>
  new SwarmError('E_INVALID_NETWORK', `invalid JSON: json: cannot unmarshal ${goKind(v)} into Go struct field ${field} of type ${goType}`)

/** Field types as Go's JSON decoder checks them, with its message shape. */
function checkRequest(body: unknown): CreateRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new SwarmError('E_INVALID_NETWORK', 'invalid JSON: the request body must be a network.CreateRequest object')
  const b = body as Record<string, unknown>
  const want: Record<string, 'string' | 'boolean' | 'object'> = {
    Name: 'string',
    Driver: 'string',
    Scope: 'string',
    EnableIPv4: 'boolean',
    EnableIPv6: 'boolean',
    IPAM: 'object',
    Internal: 'boolean',
    Attachable: 'boolean',
    Ingress: 'boolean',
    ConfigOnly: 'boolean',
    ConfigFrom: 'object',
    Options: 'object',
    Labels: 'object',
  }
  for (const [k, type] of Object.entries(want)) {
    const v = b[k]
    if (v === undefined || v === null) continue
    if (typeof v !== type || (type === 'object' && Array.isArray(v))) {
      throw new SwarmError('E_INVALID_NETWORK', `invalid JSON: json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field CreateRequest.${k} of type ${GO_TYPES[type]}`)
    }
  }
  for (const k of ['Options', 'Labels'] as const) {
    const m = b[k] as Record<string, unknown> | undefined
    if (m && Object.values(m).some(v => typeof v !== 'string')) throw new SwarmError('E_INVALID_NETWORK', `invalid JSON: json: cannot unmarshal into Go struct field CreateRequest.${k} of type string`)
  }
  const ipam = b.IPAM as Record<string, unknown> | undefined
  if (ipam?.Config != null && !Array.isArray(ipam.Config)) throw new SwarmError('E_INVALID_NETWORK', 'invalid JSON: json: cannot unmarshal object into Go struct field IPAM.IPAM.Config of type []network.IPAMConfig')
  for (const c of (ipam?.Config ?? []) as unknown[]) {
    if (c === null) continue
    if (typeof c !== 'object' || Array.isArray(c)) throw unmarshal(c, 'IPAM.IPAM.Config', 'network.IPAMConfig')
    const cfg = c as Record<string, unknown>
    for (const f of ['Subnet', 'IPRange', 'Gateway'] as const) if (cfg[f] != null && typeof cfg[f] !== 'string') throw unmarshal(cfg[f], `IPAM.IPAM.Config.${f}`, 'string')
    const aux = cfg.AuxiliaryAddresses
    if (aux != null && (typeof aux !== 'object' || Array.isArray(aux))) throw unmarshal(aux, 'IPAM.IPAM.Config.AuxiliaryAddresses', 'map[string]string')
    for (const v of Object.values((aux ?? {}) as Record<string, unknown>)) if (typeof v !== 'string') throw unmarshal(v, 'IPAM.IPAM.Config.AuxiliaryAddresses', 'string')
  }
  if (ipam?.Config) ipam.Config = (ipam.Config as unknown[]).filter(c => c !== null)
  return { ...(b as unknown as CreateRequest), Name: typeof b.Name === 'string' ? b.Name : '' }
}

/** Docker's errors.Join of validation errors as api/types/network prints them. */
function joined(errs: string[]): string {
  return errs.length === 1 ? errs[0]!.trim() : '* ' + errs.map(e => e.replace(/\n/g, '\n\t')).join('\n* ')
}

function validateAddress(addr: string | undefined, subnet: Prefix): string | undefined {
  if (!addr) return undefined
  if (addr.includes(':')) return 'parent subnet is an IPv4 block'
  const a = parseIPv4(addr)
  if (a === undefined) return 'invalid address'
  if (!contains(subnet, a)) return `parent subnet ${fmtPrefix(subnet)} doesn't contain this address`
  return undefined
}

/** api/types/network ValidateIPAM (Docker 28): every problem at once. IPv6 configs are left to the caller. */
function validateIpam(configs: IpamConfig[]): string[] {
  const errs: string[] = []
  for (const cfg of configs) {
    const p = parsePrefix(cfg.Subnet ?? '')
    if (!p) {
      errs.push(`invalid subnet ${cfg.Subnet ?? ''}: invalid CIDR block notation`)
      continue
    }
    if (p === 'v6') continue
    const m = masked(p)
    if (m.addr !== p.addr) errs.push(`invalid subnet ${fmtPrefix(p)}: it should be ${fmtPrefix(m)}`)
    if (cfg.IPRange) {
      const r = parsePrefix(cfg.IPRange)
      if (!r) errs.push(`invalid ip-range ${cfg.IPRange}: invalid CIDR block notation`)
      else if (r === 'v6') errs.push(`invalid ip-range ${cfg.IPRange}: parent subnet is an IPv4 block`)
      else {
        if (r.bits < p.bits) errs.push(`invalid ip-range ${cfg.IPRange}: CIDR block is bigger than its parent subnet ${fmtPrefix(p)}`)
        if (masked(r).addr !== r.addr) errs.push(`invalid ip-range ${fmtPrefix(r)}: it should be ${fmtPrefix(masked(r))}`)
        if (!overlaps(p, r)) errs.push(`invalid ip-range ${cfg.IPRange}: parent subnet ${fmtPrefix(p)} doesn't contain ip-range`)
      }
    }
    const gw = validateAddress(cfg.Gateway, p)
    if (gw) errs.push(`invalid gateway ${cfg.Gateway}: ${gw}`)
    for (const [name, aux] of Object.entries(cfg.AuxiliaryAddresses ?? {})) {
      const e = validateAddress(aux, p)
      if (e) errs.push(`invalid auxiliary address ${name}: ${e}`)
    }
  }
  return errs
}

/**
 * POST /networks/create's checks in Docker's order: dockerd's, then
 * swarmkit's, then swarmd's own limits. `existing` are the swarm's networks
 * (names are unique, and there is one ingress network).
 */
export function validateCreate(body: unknown, existing: NetworkRecord[]): CreateRequest {
const req = checkRequest(body)
  const name = req.Name
  // dockerd: the name first, then its own validation of the request.
  if (existing.some(n => n.Name === name)) throw new SwarmError('E_NAME_CONFLICT', `network with name ${name} already exists`)
  if (PREDEFINED.includes(name)) throw new SwarmError('E_NETWORK_FORBIDDEN', `operation is not permitted on predefined ${name} network `)
  const configs = req.IPAM?.Config ?? []
  const ipamErrs = validateIpam(configs.filter(c => !(parsePrefix(c.Subnet ?? '') === 'v6' && !req.EnableIPv6)))
  if (ipamErrs.length) throw new SwarmError('E_INVALID_NETWORK', `invalid network config:\n${joined(ipamErrs)}`)
  if (!name.trim()) throw new SwarmError('E_INVALID_NETWORK', 'invalid name: name is empty')
  const driver = req.Driver || 'overlay'
  if (req.Ingress && driver !== 'overlay') throw new SwarmError('E_NETWORK_FORBIDDEN', 'Ingress network can only be global scope network')
  if (driver !== 'overlay') throw new SwarmError('E_UNSUPPORTED', `swarmd supports only the overlay driver: create the network with "-d overlay" ("${driver}" networks are not available)`)
  if (req.Scope === 'local') throw new SwarmError('E_NETWORK_FORBIDDEN', 'cannot downgrade network scope for overlay networks')
  if (req.Scope && req.Scope !== 'swarm' && req.Scope !== 'global') throw new SwarmError('E_INVALID_NETWORK', `invalid scope ${req.Scope}: it must be "swarm"`)
  if (req.EnableIPv4 === false) throw new SwarmError('E_INVALID_NETWORK', 'IPv4 cannot be disabled in a Swarm scoped network')
  // swarmkit's controlapi.
  if (req.Attachable && req.Ingress) throw new SwarmError('E_INVALID_NETWORK', rpc('InvalidArgument', 'ingress network cannot be attachable'))
  if (!DNS_NAME.test(name)) throw new SwarmError('E_INVALID_NETWORK', rpc('InvalidArgument', 'name must be valid as a DNS name component'))
  if (name.length > 63) throw new SwarmError('E_INVALID_NETWORK', rpc('InvalidArgument', 'name must be 63 characters or fewer'))
  if (req.Labels && PREDEFINED_LABEL in req.Labels) {
    throw new SwarmError('E_NETWORK_FORBIDDEN', rpc('PermissionDenied', `label ${PREDEFINED_LABEL} is for internally created predefined networks and cannot be applied by users`))
  }
  const ipamDriver = req.IPAM?.Driver
  if (ipamDriver && ipamDriver.toLowerCase() !== 'default') throw new SwarmError('E_INVALID_NETWORK', rpc('InvalidArgument', `error during lookup of plugin ${ipamDriver}`))
  if (req.Ingress) {
    const ing = existing.find(n => n.Ingress)
    if (ing) throw new SwarmError('E_NAME_CONFLICT', rpc('AlreadyExists', `ingress network (${ing.ID}) is already present`))
  }
  // swarmd's limits.
  if (req.EnableIPv6 || configs.some(c => parsePrefix(c.Subnet ?? '') === 'v6')) throw new SwarmError('E_UNSUPPORTED', 'swarmd overlay networks are IPv4 only: IPv6 is not supported')
  if (req.ConfigOnly || req.ConfigFrom?.Network) throw new SwarmError('E_UNSUPPORTED', 'swarmd does not support config-only networks (--config-only, --config-from)')
  if (configs.length > 1) throw new SwarmError('E_UNSUPPORTED', 'swarmd overlay networks take one subnet: give --subnet once')
  if (req.Options && OPT_VXLANID_LIST in req.Options) throw new SwarmError('E_UNSUPPORTED', `swarmd allocates VXLAN IDs itself: the option ${OPT_VXLANID_LIST} is not supported`)
  return req
}
