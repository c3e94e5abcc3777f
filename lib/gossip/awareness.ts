/**
 * Lifeguard's Local Health Awareness: a score from 0 (healthy) to max − 1.
 * Missed nacks and refutations raise it, successful probes lower it, and the
 * node slows its own probing in proportion, so a struggling node accuses
 * others less eagerly.
 */
export class Awareness {
  private readonly max: number
  private score = 0

  constructor(max: number) {
    this.max = max
  }

  /** Adds `delta`, keeping the score within 0..max − 1. */
  applyDelta(delta: number): void {
    const next = this.score + delta
    if (next < 0) this.score = 0
    else if (next > this.max - 1) this.score = this.max - 1
    else this.score = next
  }

  getHealthScore(): number {
    return this.score
  }

  /** `ms` × (score + 1): the less healthy this node, the longer it waits. */
  scaleTimeout(ms: number): number {
    return ms * (this.score + 1)
  }
}
