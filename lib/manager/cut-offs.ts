/** Rotations that cut a node off from a set of keys: after the third, it holds no key anyone uses or accepts. */
export const CUT_OFF_ROTATIONS = 3

/**
 * The rotations owed to cut nodes off, per set of keys (the gossip keys, one
 * encrypted network's), and when the next of each may run. Rotations of one
 * set are spaced by the gap (two heartbeats: every node has a new key before
 * the next rotation makes it the one that encrypts), including across cut-offs
 * that follow each other; different sets rotate independently.
 */
export class CutOffs {
  private readonly owed = new Map<string, { left: number; at: number }>()

  /** A node must be cut off from `keys`: three rotations from now (or from when the gap after the last one ends). */
  owe(keys: string): void {
    this.owed.set(keys, { left: CUT_OFF_ROTATIONS, at: this.owed.get(keys)?.at ?? 0 })
  }

  /** The sets whose next rotation is due at `now`: each is counted as rotated, its next one `gapMs` later. */
  due(now: number, gapMs: number): string[] {
    const out: string[] = []
    for (const [keys, o] of this.owed) {
      if (now < o.at) continue
      if (o.left <= 0) {
        this.owed.delete(keys)
        continue
      }
      this.owed.set(keys, { left: o.left - 1, at: now + gapMs })
      out.push(keys)
    }
    return out
  }
}
