import type { Vsn } from './messages.js'

export type Profile = 'lan' | 'wan' | 'local'

/** memberlist's protocol versions: 1..5, speaking 2 by default (ProtocolVersion2Compatible). */
export const PROTOCOL_VERSION_MIN = 1
export const PROTOCOL_VERSION_MAX = 5
/** Node meta is limited to 512 bytes (memberlist's MetaMaxSize). */
export const META_MAX_SIZE = 512

/** Timing and behaviour settings, named as in memberlist's Config. Durations are milliseconds. */
export interface GossipTuning {
  tcpTimeout: number
  indirectChecks: number
  retransmitMult: number
  suspicionMult: number
  suspicionMaxTimeoutMult: number
  pushPullInterval: number
  probeInterval: number
  probeTimeout: number
  disableTcpPings: boolean
  awarenessMaxMultiplier: number
  gossipNodes: number
  gossipInterval: number
  gossipToTheDeadTime: number
  enableCompression: boolean
  handoffQueueDepth: number
  udpBufferSize: number
  deadNodeReclaimTime: number
  protocolVersion: number
}

const lan: GossipTuning = {
  tcpTimeout: 10_000,
  indirectChecks: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  pushPullInterval: 30_000,
  probeInterval: 1_000,
  probeTimeout: 500,
  disableTcpPings: false,
  awarenessMaxMultiplier: 8,
  gossipNodes: 3,
  gossipInterval: 200,
  gossipToTheDeadTime: 30_000,
  enableCompression: true,
  handoffQueueDepth: 1024,
  udpBufferSize: 1400,
  deadNodeReclaimTime: 0,
  protocolVersion: 2,
}

/** memberlist's DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig. */
export const profiles: Readonly<Record<Profile, Readonly<GossipTuning>>> = {
  lan,
  wan: {
    ...lan,
    tcpTimeout: 30_000,
    suspicionMult: 6,
    pushPullInterval: 60_000,
    probeTimeout: 3_000,
    probeInterval: 5_000,
    gossipNodes: 4,
    gossipInterval: 500,
    gossipToTheDeadTime: 60_000,
  },
  local: {
    ...lan,
    tcpTimeout: 1_000,
    indirectChecks: 1,
    retransmitMult: 2,
    suspicionMult: 3,
    pushPullInterval: 15_000,
    probeTimeout: 200,
    gossipInterval: 100,
    gossipToTheDeadTime: 15_000,
  },
}

export function buildVsn(protocolVersion: number, delegate: readonly [number, number, number]): Vsn {
  return [PROTOCOL_VERSION_MIN, PROTOCOL_VERSION_MAX, protocolVersion, delegate[0], delegate[1], delegate[2]]
}

/** memberlist's pushPullScale: the interval grows with log2 of the cluster size past 32 nodes. */
export function pushPullScale(intervalMs: number, n: number): number {
  if (n <= 32) return intervalMs
  const mult = Math.ceil(Math.log2(n) - Math.log2(32)) + 1
  return intervalMs * mult
}
