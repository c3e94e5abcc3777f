import { collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { VERSION } from '../../types/version.js'
import type { NodeObserver, NodeParts, SwarmNode } from '../node.js'
import { controlMetrics } from './control.js'
import { executorMetrics } from './executor.js'
import { gossipMetrics } from './gossip.js'
import { managerMetrics } from './manager.js'
import { meshMetrics } from './mesh.js'

/**
 * A node's Prometheus metrics: one registry for the process (Node.js's own
 * metrics among them), the families each layer's counters feed, read when
 * scraped from whatever the node runs then, and the hooks (`observer`) the
 * node passes to its manager role and stores for what is timed as it
 * happens. Created before the node opens (its stores are timed from the
 * start), then attached to it.
 */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly observer: NodeObserver
  private node: SwarmNode | undefined

  constructor() {
    collectDefaultMetrics({ register: this.registry })
    // Gauges named like counters (promtool refuses them); each is the sum of its labelled family (nodejs_active_handles{type}).
    for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(n)
    const parts = (): NodeParts => this.node?.parts() ?? {}
    gossipMetrics(this.registry, () => parts().membership)
    meshMetrics(this.registry, () => parts().mesh)
    executorMetrics(this.registry, () => parts().agent)
    this.observer = { ...controlMetrics(this.registry, parts), ...managerMetrics(this.registry, parts) }
    const self = this
    new Gauge({
      name: 'swarmd_node_info',
      help: "This node: its ID, role and swarmd's version (always 1)",
      labelNames: ['node_id', 'role', 'version'],
      registers: [this.registry],
      collect() {
        this.reset()
        const n = self.node
        if (n) this.set({ node_id: n.nodeId, role: n.isManager ? 'manager' : n.worker ? 'worker' : 'none', version: VERSION }, 1)
      },
    })
  }

  attach(node: SwarmNode): void {
    this.node = node
  }

  /** The text format Prometheus scrapes. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}
