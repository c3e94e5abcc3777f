import { OPT_LOOPBACK, OPT_VXLANID_LIST, type NetworkObject, type NetworkRecord } from '../types/network.js'

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
