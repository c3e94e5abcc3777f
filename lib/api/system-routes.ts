import { arch, cpus, hostname as osHostname, release, totalmem } from 'node:os'
import type { SwarmNode } from '../node/node.js'
import { SWARM_LOCKED } from '../types/errors.js'
import { VERSION } from '../types/version.js'
import { API_VERSION, type ApiServer } from './http.js'
import { containerState } from './container-object.js'
import { clusterInfo } from './swarm-routes.js'

const ARCH = arch() === 'x64' ? 'x86_64' : arch()

/** /_ping, /version and /info: what the docker CLI asks first. */
export function mountSystemRoutes(api: ApiServer, node: SwarmNode, hostname: string): void {
  api
    .route('GET', '/_ping', () => 'OK')
    .route('GET', '/version', () => ({
      Platform: { Name: 'swarmd' },
      Version: VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: '1.24',
      Os: 'linux',
      Arch: arch() === 'x64' ? 'amd64' : arch(),
      KernelVersion: release(),
      GoVersion: process.version,
      GitCommit: '',
      BuildTime: '',
      Components: [{ Name: 'swarmd', Version: VERSION, Details: { ApiVersion: API_VERSION } }],
    }))
    .route('GET', '/info', () => {
      const tasks = node.localTasks?.list() ?? []
      const running = tasks.filter(lt => containerState(lt) === 'running').length
      return {
        ID: node.nodeId,
        Name: hostname || osHostname(),
        ServerVersion: VERSION,
        OperatingSystem: 'swarmd',
        OSType: 'linux',
        Architecture: ARCH,
        NCPU: cpus().length,
        MemTotal: totalmem(),
        KernelVersion: release(),
        // The tasks this node runs, as `docker ps` lists them.
        Containers: tasks.length,
        ContainersRunning: running,
        ContainersPaused: 0,
        ContainersStopped: tasks.length - running,
        Images: 0,
        Driver: 'none',
        Plugins: { Volume: [], Network: ['overlay', ...dataPlaneText(node)], Authorization: null, Log: [] },
        ...(node.dataPlane ? { DataPlane: node.dataPlane } : {}),
        Warnings: node.dataPlane?.kind === 'userspace' && node.dataPlane.reason ? [`swarmd: the userspace routing mesh runs: ${node.dataPlane.reason}`] : [],
        Swarm: swarmInfo(node),
      }
    })
}

/** Which data plane the node's agent runs, as the docker CLI prints it on the Plugins' Network line. */
function dataPlaneText(node: SwarmNode): string[] {
  const p = node.dataPlane
  if (!p) return []
  return p.kind === 'kernel' ? ['(data plane: kernel, VXLAN + nftables)'] : ['(data plane: userspace mesh)']
}

/** The Swarm block of /info: a manager's view, a worker's, or a node in no swarm. */
function swarmInfo(node: SwarmNode): Record<string, unknown> {
  const c = node.cluster
  const w = node.worker
  if (node.isLocked) return { NodeID: '', NodeAddr: '', LocalNodeState: 'locked', ControlAvailable: false, Error: SWARM_LOCKED, RemoteManagers: null }
  if (c) {
    const nodes = node.manager().nodes.list()
    const me = nodes.find(n => n.id === node.nodeId)
    const managers = nodes.filter(n => n.spec.Role === 'manager' && n.managerAddr)
    return {
      NodeID: node.nodeId,
      NodeAddr: me?.addr ?? '',
      LocalNodeState: 'active',
      ControlAvailable: true,
      Error: '',
      RemoteManagers: managers.map(n => ({ NodeID: n.id, Addr: n.managerAddr })),
      Nodes: nodes.length,
      Managers: managers.length,
      Cluster: clusterInfo(node.manager()),
    }
  }
  if (node.isManager) return { NodeID: node.nodeId, NodeAddr: '', LocalNodeState: 'pending', ControlAvailable: true, Error: '', RemoteManagers: null }
  if (w) {
    return {
      NodeID: node.nodeId,
      NodeAddr: w.advertiseAddr.split(':')[0],
      LocalNodeState: 'active',
      ControlAvailable: false,
      Error: '',
      RemoteManagers: (w.managers ?? [w.managerAddr]).map(Addr => ({ NodeID: '', Addr })),
    }
  }
  return { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null }
}
