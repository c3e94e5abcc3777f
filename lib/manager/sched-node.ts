/** A node as the scheduler and the constraint filter see it. */
export interface SchedNode {
  id: string
  hostname: string
  role: 'manager' | 'worker'
  /** IP address the node is reached at (NodeStatus.Addr). */
  addr: string
  ready: boolean
  availability: 'active' | 'pause' | 'drain'
  labels: Record<string, string>
  engineLabels: Record<string, string>
  platform: { os: string; arch: string }
  resources: Reservations
}

export interface Reservations {
  nanoCPUs: number
  memoryBytes: number
}
