import { Counter, Histogram, type Registry } from 'prom-client'
import type { RpcOutcome } from '../../control/rpc.js'
import type { NodeParts } from '../node.js'
import { gaugeFrom } from './read.js'

/** Control-plane calls take milliseconds (a check-in) to seconds (an enrollment, a forwarded write). */
const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The control plane's families: RPCs as this manager serves them (a hook), its sessions and this node's certificate (read when scraped). */
export function controlMetrics(registry: Registry, parts: () => NodeParts): { rpc(method: string, outcome: RpcOutcome, ms: number): void } {
  const rpcs = new Counter({ name: 'swarmd_control_rpcs_total', help: 'Control-plane RPCs this manager served, by method and outcome', labelNames: ['method', 'outcome'], registers: [registry] })
  const duration = new Histogram({
    name: 'swarmd_control_rpc_duration_seconds',
    help: 'Time from an RPC reaching this manager to its answer, by method',
    labelNames: ['method'],
    buckets: RPC_BUCKETS,
    registers: [registry],
  })
  gaugeFrom(registry, { name: 'swarmd_control_sessions', help: "Nodes' sessions attached to this manager's dispatcher (the leader's; 0 elsewhere)" }, () => {
    const m = parts().manager
    return m?.isLeader ? m.dispatcher.nodeIds().length : 0
  })
  gaugeFrom(registry, { name: 'swarmd_control_certificate_expiry_timestamp_seconds', help: "When this node's certificate expires (it renews at two thirds of its life)" }, () => {
    const c = parts().certificate
    return c && c.body.notAfter / 1000
  })
  return {
    rpc(method, outcome, ms) {
      rpcs.inc({ method, outcome })
      duration.observe({ method }, ms / 1000)
    },
  }
}
