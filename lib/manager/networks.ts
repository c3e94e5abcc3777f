import { randomBytes } from 'node:crypto'
import { ApiError } from '../errors.js'
import { newId } from './orchestrator.js'
import type { Mutation, Store } from './store.js'
import { stateRank, type Service, type Task } from './types.js'

/**
 * Overlay networks: swarmkit's network controlapi and the manager half of
 * the overlay driver (VNI, subnet and VIP allocation), with Docker's
 * validation order and error texts so the docker CLI reads its own errors.
 *
 * swarmd runs unprivileged, so a VIP has two faces: the overlay-subnet
 * address Docker would show (Endpoint.VirtualIPs, "10.0.1.2/24", what tools
 * and DNS answers use) and a loopback twin the mesh binds on every node.
 * Linux routes all of 127.0.0.0/8 to lo, so any process may bind 127.a.b.c.
 * Each network owns the /24 127.a.b.0 derived from its VNI, and a VIP takes
 * the same host index in both: 10.0.1.2/24 ↔ 127.1.1.2.
 */

/** swarmkit's VNI range (ovmanager): 4096 up, clear of the 802.1Q VLAN IDs Windows refuses. */
export const VNI_FIRST = 4096
export const VNI_LAST = 2 ** 24 - 1
/** Docker's default address pool for swarm networks: 10.0.0.0/8 cut into /24s. */
const POOL = { base: 0x0a000000, bits: 8, size: 24 }
/** One loopback /24 per network in 127.1.0.0–127.255.255.0 (127.0.0.0/24 holds 127.0.0.1 and Docker's DNS at 127.0.0.11). */
const LOOPBACK_NETWORKS = 255 * 256
/** A VIP's host index must fit the loopback /24 too. */
const MAX_HOST_INDEX = 254
/** Swarm's IPsec key ring: three keys, rotated every 12 h. */
const RING = 3
export const KEY_ROTATION_MS = 12 * 3600_000

export const OPT_ENCRYPTED = 'encrypted'
export const OPT_VXLANID_LIST = 'com.docker.network.driver.overlay.vxlanid_list'
/** The network's loopback /24, shown with the driver options so every node can find a VIP's loopback twin. */
export const OPT_LOOPBACK = 'com.swarmd.network.loopback_subnet'
const PREDEFINED = ['bridge', 'host', 'none', 'default']
const PREDEFINED_LABEL = 'com.docker.swarm.predefined'
const DNS_NAME = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/

/** A key of an encrypted network's ring: `tag` orders keys (a Lamport time) and names the key on the wire. */
export interface NetworkKey {
  tag: number
  /** 32 random bytes, base64: enough for AES-256-GCM, ChaCha20-Poly1305 or secretbox. */
  key: string
}

/** A network as the manager stores it (table `networks`). */
export interface NetworkRecord {
  ID: string
  Name: string
  Created: string
  Labels: Record<string, string>
  /** The user's driver options (`-o`), as given. */
  Options: Record<string, string>
  Internal: boolean
  Attachable: boolean
  Ingress: boolean
  IPAMOptions: Record<string, string> | null
  Subnet: string
  Gateway: string
  IPRange?: string
  AuxAddresses?: Record<string, string>
  Vni: number
  /** 127.a.b.0/24: where this network's VIPs are bound on every node. */
  Loopback: string
  /** Oldest first; only encrypted networks have keys. */
  Keys?: NetworkKey[]
}

/** One service's VIP on one network (table `vips`). */
export interface VipRecord {
  ServiceID: string
  NetworkID: string
  /** As Docker shows it in Endpoint.VirtualIPs: the overlay address with its prefix length. */
  Addr: string
  /** The loopback twin the mesh listens on. */
  Loopback: string
}

/** Docker's network object (GET /networks/{id}). */
export interface NetworkObject {
  Name: string
  Id: string
  Created: string
  Scope: 'swarm'
  Driver: 'overlay'
  EnableIPv4: true
  EnableIPv6: false
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: { Subnet: string; IPRange?: string; Gateway: string; AuxiliaryAddresses?: Record<string, string> }[] }
  Internal: boolean
  Attachable: boolean
  Ingress: boolean
  ConfigFrom: { Network: string }
  ConfigOnly: false
  Containers: null
  Options: Record<string, string>
  Labels: Record<string, string> | null
}

// ---- IPv4 ------------------------------------------------------------------------------------

/** A dotted quad as Go's netip parses it (no leading zeros), or undefined. */
export function parseIPv4(s: string): number | undefined {
  const parts = s.split('.')
  if (parts.length !== 4) return undefined
  let n = 0
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined
    n = n * 256 + Number(p)
  }
  return n
}

export const formatIPv4 = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
const maskOf = (bits: number): number => (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0)

export interface Prefix {
  addr: number
  bits: number
}

/** `a.b.c.d/n`, or `'v6'` for an IPv6 prefix (swarmd's overlays are IPv4 only), or undefined. */
export function parsePrefix(s: string): Prefix | 'v6' | undefined {
  const i = s.indexOf('/')
  if (i < 0) return undefined
  const bits = s.slice(i + 1)
  if (!/^(0|[1-9]\d?)$/.test(bits)) return undefined
  if (s.slice(0, i).includes(':')) return Number(bits) <= 128 ? 'v6' : undefined
  const addr = parseIPv4(s.slice(0, i))
  if (addr === undefined || Number(bits) > 32) return undefined
  return { addr, bits: Number(bits) }
}

const masked = (p: Prefix): Prefix => ({ addr: (p.addr & maskOf(p.bits)) >>> 0, bits: p.bits })
const fmtPrefix = (p: Prefix): string => `${formatIPv4(p.addr)}/${p.bits}`
const contains = (p: Prefix, a: number): boolean => ((a & maskOf(p.bits)) >>> 0) === masked(p).addr
/** Two prefixes overlap when the shorter contains the other's network address. */
export const overlaps = (a: Prefix, b: Prefix): boolean => (a.bits <= b.bits ? contains(a, b.addr) : contains(b, a.addr))

/** The loopback /24 of a VNI: 127.(1 + i / 256).(i % 256).0 for i = vni − 4096. */
export function loopbackSubnet(vni: number): string {
  const i = vni - VNI_FIRST
  if (!Number.isInteger(i) || i < 0 || i >= LOOPBACK_NETWORKS) throw new ApiError(500, `VNI ${vni} has no loopback range: swarmd maps VNIs ${VNI_FIRST}-${VNI_FIRST + LOOPBACK_NETWORKS - 1} only`)
  return `127.${1 + (i >> 8)}.${i & 255}.0/24`
}

/** A VIP's loopback twin: the same host index in the network's loopback /24. */
export function loopbackAddr(vipAddr: string, subnet: string, loopback: string): string {
  const vip = parseIPv4(vipAddr.split('/')[0]!)
  const s = parsePrefix(subnet)
  const l = parsePrefix(loopback)
  if (vip === undefined || !s || s === 'v6' || !l || l === 'v6') throw new ApiError(500, `cannot map VIP ${vipAddr} of ${subnet} into ${loopback}`)
  return formatIPv4(l.addr + (vip - masked(s).addr))
}

// ---- the create request ------------------------------------------------------------------------

interface IpamConfig {
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

/** Field types as Go's JSON decoder checks them, with its message shape. */
function checkRequest(body: unknown): CreateRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'invalid JSON: the request body must be a network.CreateRequest object')
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
      throw new ApiError(400, `invalid JSON: json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field CreateRequest.${k} of type ${GO_TYPES[type]}`)
    }
  }
  for (const k of ['Options', 'Labels'] as const) {
    const m = b[k] as Record<string, unknown> | undefined
    if (m && Object.values(m).some(v => typeof v !== 'string')) throw new ApiError(400, `invalid JSON: json: cannot unmarshal into Go struct field CreateRequest.${k} of type string`)
  }
  const ipam = b.IPAM as Record<string, unknown> | undefined
  if (ipam?.Config != null && !Array.isArray(ipam.Config)) throw new ApiError(400, 'invalid JSON: json: cannot unmarshal object into Go struct field IPAM.IPAM.Config of type []network.IPAMConfig')
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

const rpc = (code: string, desc: string): string => `rpc error: code = ${code} desc = ${desc}`
const newKey = (tag: number): NetworkKey => ({ tag, key: randomBytes(32).toString('base64') })

/** swarmkit's IsIngressNetworkNeeded: the service publishes a port in ingress mode. */
export const needsIngress = (s: Service): boolean => (s.Spec.EndpointSpec?.Ports ?? []).some(p => (p.PublishMode ?? 'ingress') === 'ingress')

const usesNetwork = (networks: { Target: string }[] | undefined, id: string): boolean => (networks ?? []).some(n => n.Target === id)

/** Docker's network object for a stored network. */
export function networkObject(n: NetworkRecord): NetworkObject {
  return {
    Name: n.Name,
    Id: n.ID,
    Created: n.Created,
    Scope: 'swarm',
    Driver: 'overlay',
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: {
      Driver: 'default',
      Options: n.IPAMOptions,
      Config: [{ Subnet: n.Subnet, ...(n.IPRange ? { IPRange: n.IPRange } : {}), Gateway: n.Gateway, ...(n.AuxAddresses ? { AuxiliaryAddresses: n.AuxAddresses } : {}) }],
    },
    Internal: n.Internal,
    Attachable: n.Attachable,
    Ingress: n.Ingress,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    // The manager's view has no local endpoints, as Docker's for a swarm network.
    Containers: null,
    Options: { ...n.Options, [OPT_VXLANID_LIST]: String(n.Vni), [OPT_LOOPBACK]: n.Loopback },
    Labels: n.Labels,
  }
}

/**
 * The manager's overlay networks over the store: tables `networks` and
 * `vips`; it reads `services` and `tasks` to refuse removing a network in
 * use, as swarmkit does in the same transaction.
 */
export class Networks {
  /** Allocations read the store, then commit: one at a time, or two could take the same VNI. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly store: Store) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  list(): NetworkRecord[] {
    return this.store.list<NetworkRecord>('networks').sort((a, b) => a.Name.localeCompare(b.Name) || a.ID.localeCompare(b.ID))
  }

  /** By full ID, then name, then unique ID prefix, as dockerd resolves a network. */
  find(ref: string): NetworkRecord | undefined {
    if (!ref) return undefined
    const all = this.list()
    const byId = all.find(n => n.ID === ref)
    if (byId) return byId
    // Names are unique: create refuses a second one.
    const byName = all.find(n => n.Name === ref)
    if (byName) return byName
    const byPrefix = all.filter(n => n.ID.startsWith(ref))
    if (byPrefix.length > 1) throw new ApiError(400, `network ${ref} is ambiguous (${byPrefix.length} matches found based on ID prefix)`)
    return byPrefix[0]
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref)
    if (!n) throw new ApiError(404, `network ${ref} not found`)
    return n
  }

  ingress(): NetworkRecord | undefined {
    return this.list().find(n => n.Ingress)
  }

  /** POST /networks/create: dockerd's checks, then swarmkit's, then swarmd's limits, then allocation. */
  create(body: unknown): Promise<{ Id: string; Warning: string }> {
    return this.serial(async () => {
      const n = this.validate(checkRequest(body))
      await this.store.commit([{ op: 'put', table: 'networks', id: n.ID, value: n }])
      return { Id: n.ID, Warning: '' }
    })
  }

  /** The routing mesh's network, as swarmkit creates it at bootstrap (10.0.0.0/24 and VNI 4096 on a new swarm). */
  ensureIngress(): Promise<NetworkRecord> {
    return this.serial(async () => {
      const existing = this.ingress() ?? this.list().find(n => n.Name === 'ingress')
      if (existing) return existing
      const n = this.allocate({ Name: 'ingress', Ingress: true })
      await this.store.commit([{ op: 'put', table: 'networks', id: n.ID, value: n }])
      return n
    })
  }

  private validate(req: CreateRequest): NetworkRecord {
    const name = req.Name
    // dockerd: the name first, then its own validation of the request.
    if (this.list().some(n => n.Name === name)) throw new ApiError(409, `network with name ${name} already exists`)
    if (PREDEFINED.includes(name)) throw new ApiError(403, `operation is not permitted on predefined ${name} network `)
    const configs = req.IPAM?.Config ?? []
    const ipamErrs = validateIpam(configs.filter(c => !(parsePrefix(c.Subnet ?? '') === 'v6' && !req.EnableIPv6)))
    if (ipamErrs.length) throw new ApiError(400, `invalid network config:\n${joined(ipamErrs)}`)
    if (!name.trim()) throw new ApiError(400, 'invalid name: name is empty')
    const driver = req.Driver || 'overlay'
    if (req.Ingress && driver !== 'overlay') throw new ApiError(403, 'Ingress network can only be global scope network')
    if (driver !== 'overlay') throw new ApiError(400, `swarmd supports only the overlay driver: create the network with "-d overlay" ("${driver}" networks are not available)`)
    if (req.Scope === 'local') throw new ApiError(403, 'cannot downgrade network scope for overlay networks')
    if (req.Scope && req.Scope !== 'swarm' && req.Scope !== 'global') throw new ApiError(400, `invalid scope ${req.Scope}: it must be "swarm"`)
    if (req.EnableIPv4 === false) throw new ApiError(400, 'IPv4 cannot be disabled in a Swarm scoped network')
    // swarmkit's controlapi.
    if (req.Attachable && req.Ingress) throw new ApiError(400, rpc('InvalidArgument', 'ingress network cannot be attachable'))
    if (!DNS_NAME.test(name)) throw new ApiError(400, rpc('InvalidArgument', 'name must be valid as a DNS name component'))
    if (name.length > 63) throw new ApiError(400, rpc('InvalidArgument', 'name must be 63 characters or fewer'))
    if (req.Labels && PREDEFINED_LABEL in req.Labels) {
      throw new ApiError(403, rpc('PermissionDenied', `label ${PREDEFINED_LABEL} is for internally created predefined networks and cannot be applied by users`))
    }
    const ipamDriver = req.IPAM?.Driver
    if (ipamDriver && ipamDriver.toLowerCase() !== 'default') throw new ApiError(400, rpc('InvalidArgument', `error during lookup of plugin ${ipamDriver}`))
    if (req.Ingress) {
      const ing = this.ingress()
      if (ing) throw new ApiError(409, rpc('AlreadyExists', `ingress network (${ing.ID}) is already present`))
    }
    // swarmd's limits.
    if (req.EnableIPv6 || configs.some(c => parsePrefix(c.Subnet ?? '') === 'v6')) throw new ApiError(400, 'swarmd overlay networks are IPv4 only: IPv6 is not supported')
    if (req.ConfigOnly || req.ConfigFrom?.Network) throw new ApiError(400, 'swarmd does not support config-only networks (--config-only, --config-from)')
    if (configs.length > 1) throw new ApiError(400, 'swarmd overlay networks take one subnet: give --subnet once')
    if (req.Options && OPT_VXLANID_LIST in req.Options) throw new ApiError(400, `swarmd allocates VXLAN IDs itself: the option ${OPT_VXLANID_LIST} is not supported`)
    return this.allocate(req)
  }

  /** Subnet (given or the first free /24 of 10.0.0.0/8), gateway, VNI (first free from 4096) and keys. */
  private allocate(req: CreateRequest): NetworkRecord {
    const all = this.list()
    const cfg = req.IPAM?.Config?.[0] ?? {}
    const taken = all.map(n => parsePrefix(n.Subnet) as Prefix)
    let subnet: Prefix
    if (cfg.Subnet) {
      subnet = masked(parsePrefix(cfg.Subnet) as Prefix)
      if (taken.some(t => overlaps(t, subnet))) throw new ApiError(403, 'invalid pool request: Pool overlaps with other one on this address space')
    } else {
      subnet = this.freeSubnet(taken)
    }
    const hosts = 2 ** (32 - subnet.bits)
    const gateway = cfg.Gateway || formatIPv4(subnet.addr + (hosts > 2 ? 1 : 0))
    const vni = this.freeVni(all)
    const options = { ...(req.Options ?? {}) }
    return {
      ID: newId(),
      Name: req.Name,
      Created: new Date().toISOString(),
      Labels: req.Labels ?? {},
      Options: options,
      Internal: !!req.Internal,
      Attachable: !!req.Attachable,
      Ingress: !!req.Ingress,
      IPAMOptions: req.IPAM?.Options && Object.keys(req.IPAM.Options).length ? req.IPAM.Options : null,
      Subnet: fmtPrefix(subnet),
      Gateway: gateway,
      ...(cfg.IPRange ? { IPRange: cfg.IPRange } : {}),
      ...(cfg.AuxiliaryAddresses && Object.keys(cfg.AuxiliaryAddresses).length ? { AuxAddresses: cfg.AuxiliaryAddresses } : {}),
      Vni: vni,
      Loopback: loopbackSubnet(vni),
      ...(OPT_ENCRYPTED in options ? { Keys: [1, 2, 3].map(newKey) } : {}),
    }
  }

  private freeSubnet(taken: Prefix[]): Prefix {
    const count = 2 ** (POOL.size - POOL.bits)
    for (let i = 0; i < count; i++) {
      const p = { addr: (POOL.base + i * 2 ** (32 - POOL.size)) >>> 0, bits: POOL.size }
      if (!taken.some(t => overlaps(t, p))) return p
    }
    throw new ApiError(400, 'all predefined address pools have been fully subnetted')
  }

  private freeVni(all: NetworkRecord[]): number {
    const used = new Set(all.map(n => n.Vni))
    for (let v = VNI_FIRST; v < VNI_FIRST + LOOPBACK_NETWORKS; v++) if (!used.has(v)) return v
    throw new ApiError(500, `could not obtain vxlan id: all ${LOOPBACK_NETWORKS} VNIs swarmd maps to loopback ranges are in use`)
  }

  /**
   * DELETE /networks/{id}: refused while a service or a live task uses it
   * (the ingress network: while a service publishes a port), with
   * swarmkit's texts. The network's VNI, subnet and any VIPs left on it go.
   */
  remove(ref: string): Promise<void> {
    return this.serial(async () => {
      const n = this.get(ref)
      const services = this.store.list<Service>('services')
      if (n.Ingress) {
        const dep = services.find(needsIngress)
        if (dep) throw new ApiError(400, rpc('FailedPrecondition', `ingress network cannot be removed because service ${dep.ID} depends on it`))
      } else {
        const svc = services.find(s => usesNetwork(s.Spec.TaskTemplate.Networks, n.ID))
        if (svc) throw new ApiError(400, rpc('FailedPrecondition', `network ${n.ID} is in use by service ${svc.ID}`))
        const running = stateRank('running')
        const task = this.store
          .list<Task>('tasks')
          .find(t => usesNetwork(t.Spec.Networks, n.ID) && stateRank(t.DesiredState) <= running && stateRank(t.Status.State) <= running)
        if (task) throw new ApiError(400, rpc('FailedPrecondition', `network ${n.ID} is in use by task ${task.ID}`))
      }
      const vips = this.store.list<VipRecord>('vips').filter(v => v.NetworkID === n.ID)
      await this.store.commit([{ op: 'delete', table: 'networks', id: n.ID }, ...vips.map((v): Mutation => ({ op: 'delete', table: 'vips', id: vipId(v.ServiceID, v.NetworkID) }))])
    })
  }

  /** Services that keep a network from being removed: those attached, or for ingress those publishing ports. */
  users(n: NetworkRecord): Service[] {
    const services = this.store.list<Service>('services')
    return n.Ingress ? services.filter(needsIngress) : services.filter(s => usesNetwork(s.Spec.TaskTemplate.Networks, n.ID))
  }

  // ---- VIPs ----------------------------------------------------------------------------------

  vips(serviceId: string): VipRecord[] {
    return this.store.list<VipRecord>('vips').filter(v => v.ServiceID === serviceId)
  }

  /** The service's VIP on the network: the one it has, or the lowest free host address. */
  allocateVip(serviceId: string, networkRef: string): Promise<VipRecord> {
    return this.serial(async () => {
      const { vip, mutation } = this.pickVip(serviceId, this.get(networkRef), new Set())
      if (mutation) await this.store.commit([mutation])
      return vip
    })
  }

  /**
   * Makes the service's VIPs exactly one per given network, keeping those it
   * has: what a service create or update needs. Returns them in order.
   */
  syncVips(serviceId: string, networkRefs: string[]): Promise<VipRecord[]> {
    return this.serial(async () => {
      const nets = networkRefs.map(r => this.get(r))
      const ids = new Set(nets.map(n => n.ID))
      const mutations: Mutation[] = this.vips(serviceId)
        .filter(v => !ids.has(v.NetworkID))
        .map(v => ({ op: 'delete', table: 'vips', id: vipId(serviceId, v.NetworkID) }))
      const picked = new Set<string>()
      const out: VipRecord[] = []
      for (const n of nets) {
        const { vip, mutation } = this.pickVip(serviceId, n, picked)
        picked.add(vip.Addr)
        if (mutation) mutations.push(mutation)
        out.push(vip)
      }
      if (mutations.length) await this.store.commit(mutations)
      return out
    })
  }

  /** Frees the service's VIPs (the service is gone). */
  releaseVips(serviceId: string): Promise<void> {
    return this.serial(async () => {
      const vips = this.vips(serviceId)
      if (vips.length) await this.store.commit(vips.map(v => ({ op: 'delete', table: 'vips', id: vipId(serviceId, v.NetworkID) })))
    })
  }

  private pickVip(serviceId: string, n: NetworkRecord, pending: Set<string>): { vip: VipRecord; mutation?: Mutation } {
    const have = this.store.get<VipRecord>('vips', vipId(serviceId, n.ID))
    if (have) return { vip: have }
    const subnet = parsePrefix(n.Subnet) as Prefix
    const range = n.IPRange ? (parsePrefix(n.IPRange) as Prefix) : undefined
    const reserved = new Set([n.Gateway, ...Object.values(n.AuxAddresses ?? {})])
    const used = new Set(this.store.list<VipRecord>('vips').filter(v => v.NetworkID === n.ID).map(v => v.Addr))
    const last = Math.min(2 ** (32 - subnet.bits) - 2, MAX_HOST_INDEX)
    for (let i = 1; i <= last; i++) {
      const a = subnet.addr + i
      const addr = `${formatIPv4(a)}/${subnet.bits}`
      if (reserved.has(formatIPv4(a)) || used.has(addr) || pending.has(addr) || (range && !contains(range, a))) continue
      const vip: VipRecord = { ServiceID: serviceId, NetworkID: n.ID, Addr: addr, Loopback: loopbackAddr(addr, n.Subnet, n.Loopback) }
      return { vip, mutation: { op: 'put', table: 'vips', id: vipId(serviceId, n.ID), value: vip } }
    }
    throw new ApiError(500, 'could not find an available IP while allocating VIP')
  }

  // ---- keys of encrypted networks --------------------------------------------------------------

  /** The ring of an encrypted network, oldest first; the middle key encrypts, all three decrypt. Undefined for others. */
  keys(networkRef: string): { keys: NetworkKey[]; primary: NetworkKey } | undefined {
    const k = this.get(networkRef).Keys
    return k?.length ? { keys: k, primary: k[1]! } : undefined
  }

  /**
   * Swarm's rotation for every encrypted network: drop the oldest key, add a
   * newer one. The new key only decrypts until the next rotation makes it
   * primary, so every node has it before anyone sends with it.
   */
  rotateKeys(): Promise<number> {
    return this.serial(async () => {
      const rotated = this.list()
        .filter(n => n.Keys?.length)
        .map(n => {
          const ring = n.Keys!
          const next = [...ring, newKey(Math.max(...ring.map(k => k.tag)) + 1)].slice(-RING)
          return { ...n, Keys: next }
        })
      if (rotated.length) await this.store.commit(rotated.map(n => ({ op: 'put', table: 'networks', id: n.ID, value: n })))
      return rotated.length
    })
  }
}

const vipId = (serviceId: string, networkId: string): string => `${serviceId}/${networkId}`
