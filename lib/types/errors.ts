/**
 * What kind of failure an error is, in swarmkit's terms (its gRPC codes).
 * Layers below the API say what went wrong; only lib/api turns a kind into
 * an HTTP status, the way moby maps swarmkit's codes. `unknown` is what Go
 * code returns without a code (moby answers 500, and the docker CLI prints
 * "rpc error: code = Unknown desc = ...").
 */
export type ErrorKind =
  | 'invalid_argument'
  | 'not_found'
  | 'conflict'
  | 'failed_precondition'
  | 'permission_denied'
  | 'unauthenticated'
  | 'unavailable'
  | 'resource_exhausted'
  | 'unimplemented'
  | 'unknown'
  | 'internal'

export const ERROR_KINDS: readonly ErrorKind[] = [
  'invalid_argument',
  'not_found',
  'conflict',
  'failed_precondition',
  'permission_denied',
  'unauthenticated',
  'unavailable',
  'resource_exhausted',
  'unimplemented',
  'unknown',
  'internal',
]

export const isErrorKind = (k: unknown): k is ErrorKind => typeof k === 'string' && (ERROR_KINDS as readonly string[]).includes(k)

/**
 * Base class of every error swarmd throws on purpose. `code` is stable and
 * meant for programs (docs/errors.md lists them); `kind` says how a caller
 * should treat it; `message` is meant for people, and where Docker has a
 * text for the situation it is Docker's, byte for byte.
 */
export class SwarmdError<C extends string = string> extends Error {
  readonly code: C
  readonly kind: ErrorKind

  constructor(code: C, message: string, options?: { cause?: unknown; kind?: ErrorKind }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.kind = options?.kind ?? 'internal'
    this.name = new.target.name
  }
}

/** The kind of any thrown value: a SwarmdError's own, `internal` for everything else. */
export const kindOf = (e: unknown): ErrorKind => (e instanceof SwarmdError ? e.kind : 'internal')

/**
 * The swarm's own errors (manager and node), each code with one kind. The
 * messages are Docker's or swarmkit's where they have one for the case,
 * because the docker CLI prints them as they come.
 */
const SWARM_CODES = {
  E_NOT_IN_SWARM: 'unavailable',
  E_NOT_MANAGER: 'unavailable',
  E_ALREADY_IN_SWARM: 'unavailable',
  E_LAST_MANAGER: 'unavailable',
  E_NO_LEADER: 'unavailable',
  E_NOT_LEADER: 'unavailable',
  E_MANAGER_STARTING: 'unavailable',
  E_SWARM_LOCKED: 'unavailable',
  E_NOT_LOCKED: 'conflict',
  E_INVALID_UNLOCK_KEY: 'unauthenticated',
  E_INVALID_ARGUMENT: 'invalid_argument',
  E_INVALID_ADDRESS: 'invalid_argument',
  E_INVALID_SPEC: 'invalid_argument',
  E_INVALID_CONSTRAINT: 'invalid_argument',
  E_INVALID_FILTER: 'invalid_argument',
  E_INVALID_NETWORK: 'invalid_argument',
  E_INVALID_SECRET: 'invalid_argument',
  E_INVALID_CONFIG: 'invalid_argument',
  E_AMBIGUOUS: 'invalid_argument',
  E_UNSUPPORTED: 'invalid_argument',
  E_NODE_NOT_FOUND: 'not_found',
  E_SERVICE_NOT_FOUND: 'not_found',
  E_TASK_NOT_FOUND: 'not_found',
  E_NETWORK_NOT_FOUND: 'not_found',
  E_SECRET_NOT_FOUND: 'not_found',
  E_CONFIG_NOT_FOUND: 'not_found',
  E_NAME_CONFLICT: 'conflict',
  E_NODE_IS_MANAGER: 'failed_precondition',
  E_NODE_NOT_DOWN: 'failed_precondition',
  E_LAST_MANAGER_DEMOTE: 'failed_precondition',
  E_QUORUM_LOSS: 'failed_precondition',
  E_IN_USE: 'failed_precondition',
  E_NO_INGRESS: 'failed_precondition',
  E_POOL_EXHAUSTED: 'failed_precondition',
  E_NETWORK_FORBIDDEN: 'permission_denied',
  E_OUT_OF_SEQUENCE: 'unknown',
  E_NO_PREVIOUS_SPEC: 'unknown',
  E_PORTS_EXHAUSTED: 'resource_exhausted',
  E_VNI_EXHAUSTED: 'resource_exhausted',
  E_VIP_EXHAUSTED: 'resource_exhausted',
  E_ADDRESS_EXHAUSTED: 'resource_exhausted',
  E_INTERNAL: 'internal',
} as const satisfies Record<string, ErrorKind>

export type SwarmErrorCode = keyof typeof SWARM_CODES

export class SwarmError extends SwarmdError<SwarmErrorCode> {
  constructor(code: SwarmErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, { ...options, kind: SWARM_CODES[code] })
  }
}

/** The codes and their kinds, for docs/errors.md and its test. */
export const swarmErrorCodes = (): [SwarmErrorCode, ErrorKind][] => Object.entries(SWARM_CODES) as [SwarmErrorCode, ErrorKind][]

export const NOT_IN_SWARM = 'This node is not part of a swarm'
export const NOT_MANAGER =
  "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."
export const ALREADY_IN_SWARM = 'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.'
export const NO_LEADER = "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online."
export const SWARM_LOCKED = 'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.'
export const MANAGER_STARTING = 'This node is not a swarm manager. Manager is being prepared or has trouble connecting to the cluster.'
