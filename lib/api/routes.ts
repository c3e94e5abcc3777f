import type { SwarmNode } from '../node/node.js'
import { mountContainerRoutes } from './container-routes.js'
import { mountEventRoutes } from './event-routes.js'
import type { ApiServer } from './http.js'
import { mountSecretAndConfigRoutes } from './data-object-routes.js'
import { mountNetworkRoutes } from './network-routes.js'
import { mountNodeRoutes } from './node-routes.js'
import { mountServiceRoutes } from './service-routes.js'
import { mountSwarmRoutes } from './swarm-routes.js'
import { mountSystemRoutes } from './system-routes.js'

/** The swarm subset of the Docker Engine API, so `docker -H unix://…` works against swarmd. */
export function mountRoutes(api: ApiServer, node: SwarmNode, hostname: string): void {
  mountSystemRoutes(api, node, hostname)
  mountSwarmRoutes(api, node)
  mountNodeRoutes(api, node)
  mountServiceRoutes(api, node)
  mountSecretAndConfigRoutes(api, () => node.manager())
  mountNetworkRoutes(api, () => node.manager().networks)
  mountEventRoutes(api, node.events)
  mountContainerRoutes(api, node)
  // With several managers: writes go to the leader, which serves them through these same routes.
  api.forwarder = call => node.forward(call)
  node.serveApi(call => api.invoke(call))
}
