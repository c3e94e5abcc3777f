import type { Registry } from 'prom-client'
import type { Mesh } from '../../mesh/mesh.js'
import { byLabel, counterFrom, gaugeFrom, sentReceived, type Labels } from './read.js'

/** The routing mesh's and its tunnel's families, read from this node's mesh (none before the manager's first routing). */
export function meshMetrics(registry: Registry, mesh: () => Mesh | undefined): void {
  const s = () => mesh()?.stats()
  const counter = (name: string, help: string, read: (x: ReturnType<Mesh['stats']>) => number | [Labels, number][] | undefined, labelNames?: string[]): void =>
    counterFrom(registry, { name, help, ...(labelNames ? { labelNames } : {}) }, () => {
      const x = s()
      return x && read(x)
    })
  counter('swarmd_mesh_connections_total', 'Connections to published ports and VIPs forwarded to a task', x => x.connections)
  counter('swarmd_mesh_connections_failed_total', 'Connections refused for want of a healthy task', x => x.connectionsFailed)
  counter('swarmd_mesh_connection_retries_total', 'Connections tried on another task after a backend failed', x => x.retries)
  counter('swarmd_mesh_datagrams_total', 'UDP datagrams forwarded to a task', x => x.datagrams)
  counter(
    'swarmd_mesh_bytes_total',
    'Bytes forwarded on connections, toward tasks and back',
    x => [
      [{ direction: 'to_task' }, x.bytesToTasks],
      [{ direction: 'from_task' }, x.bytesFromTasks],
    ],
    ['direction'],
  )
  counter('swarmd_mesh_table_updates_total', 'Endpoint table updates gossiped', x => sentReceived(x.tableUpdatesOut, x.tableUpdatesIn), ['direction'])
  counter('swarmd_mesh_dropped_total', 'Mesh messages dropped, by reason', x => [[{ reason: 'malformed_table' }, x.dropped.malformedTable]], ['reason'])
  counter('swarmd_mesh_backend_failures_total', 'Backends that refused or failed a connection, by service', x => Object.entries(x.backends).map(([service, h]) => [{ service }, h.failures]), ['service'])
  gaugeFrom(registry, { name: 'swarmd_mesh_open_connections', help: 'Connections being forwarded now' }, () => s()?.active)
  gaugeFrom(registry, { name: 'swarmd_mesh_backends_backed_off', help: 'Backends skipped now for a back-off after failures, by service', labelNames: ['service'] }, () => {
    const x = s()
    return x && Object.entries(x.backends).map(([service, h]) => [{ service }, h.backedOff] as const)
  })
  counter('swarmd_tunnel_frames_total', 'Frames on the data-path tunnel (4789)', x => sentReceived(x.tunnel.framesOut, x.tunnel.framesIn), ['direction'])
  counter('swarmd_tunnel_bytes_total', 'Bytes on the data-path tunnel', x => sentReceived(x.tunnel.bytesOut, x.tunnel.bytesIn), ['direction'])
  counter('swarmd_tunnel_datagrams_total', 'UDP datagrams carried by the tunnel', x => sentReceived(x.tunnel.datagramsOut, x.tunnel.datagramsIn), ['direction'])
  counter(
    'swarmd_tunnel_connections_total',
    'Tunnel connections between nodes: opened, closed, and closed for idleness',
    x => [
      [{ event: 'opened' }, x.tunnel.connectionsOpened],
      [{ event: 'closed' }, x.tunnel.connectionsClosed],
      [{ event: 'idle_closed' }, x.tunnel.idleClosed],
    ],
    ['event'],
  )
  counter('swarmd_tunnel_dropped_total', 'Tunnel frames dropped, by reason', x => byLabel('reason', x.tunnel.dropped), ['reason'])
  counter('swarmd_tunnel_refused_total', "Tunnel connections refused or ended by the tunnel's rules (authentication, caps, timeouts), by reason", x => byLabel('reason', x.tunnel.refused), ['reason'])
}
