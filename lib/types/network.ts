/** Overlay networks as the manager stores them, and Docker's network object the API shows. */

export const OPT_ENCRYPTED = 'encrypted'
export const OPT_VXLANID_LIST = 'com.docker.network.driver.overlay.vxlanid_list'
/** The network's loopback /24, shown with the driver options so every node can find a VIP's loopback twin. */
export const OPT_LOOPBACK = 'com.swarmd.network.loopback_subnet'

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

/**
 * A node's own address on an overlay network (table `attachments`, one per
 * node and network it takes part in: swarmkit's node LB attachments). In
 * the kernel data plane it is the node's identity on the overlay: the
 * source its VIP and published-port traffic is translated to, so replies
 * from a task on another node find their way back.
 */
export interface NodeAttachmentRecord {
  NodeID: string
  NetworkID: string
  /** With the prefix length, as Docker shows addresses: "10.0.1.254/24". */
  Addr: string
}
