/**
 * swarmd as a library. The gossip layer is an embeddable, hashicorp/memberlist
 * wire-compatible membership protocol (SWIM + Lifeguard); the routing mesh
 * (published ports, VIPs, tunnels on 4789) runs on top of it.
 */
export { SwarmdError, type ErrorKind } from './types/errors.js'
export { Membership, MembershipError, parseHostPort } from './gossip/membership.js'
export type { Delegate, Member, MemberEvent, MembershipOptions, Counters } from './gossip/membership.js'
export type { MemberEventType } from './gossip/state.js'
export type { Address, Transport, PacketHandler, StreamHandler } from './gossip/transport.js'
export { NetTransport } from './gossip/net-transport.js'
export type { Clock, TimerHandle } from './gossip/clock.js'
export { systemClock } from './gossip/clock.js'
export { profiles, type Profile, type GossipTuning } from './gossip/config.js'
export { Keyring } from './gossip/keyring.js'
export { Mesh, MeshError } from './mesh/mesh.js'
export type { MeshCounters, MeshNetwork, MeshOptions, PublishTarget } from './mesh/mesh.js'
export type { Endpoint, Protocol, Vni } from './mesh/types.js'
export { SealKeyring } from './mesh/seal.js'
export { SharedKeyAuth } from './mesh/shared-key-auth.js'
export type { TunnelAuth } from './mesh/tunnel-auth.js'
export type { TunnelLimits } from './mesh/tunnel-limits.js'
export { encodeProxyV1, encodeProxyV2, decodeProxyHeader } from './mesh/proxy-protocol.js'
