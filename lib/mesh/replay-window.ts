/**
 * Anti-replay for sealed frames from one sender salt: remembers the highest
 * counter seen and a bitmap of the `size` counters below it (RFC 4303
 * §3.4.3's sliding window). UDP datagrams may arrive out of order within the
 * window; TCP frames must be strictly increasing (`strict`).
 */
export class ReplayWindow {
  private highest = -1
  /** Bit d (word d >>> 5, bit d & 31) set: counter `highest - d` was seen. */
  private readonly bits: Uint32Array

  constructor(readonly size = 1024) {
    if (size < 32 || size % 32 !== 0) throw new RangeError(`replay window size ${size} must be a positive multiple of 32`)
    this.bits = new Uint32Array(size / 32)
  }

  /** Would `counter` be new? Checked before the (costly) authentication; nothing is recorded. */
  check(counter: number, strict: boolean): boolean {
    if (counter > this.highest) return true
    if (strict) return false
    const d = this.highest - counter
    if (d >= this.size) return false
    return (this.bits[d >>> 5]! & (1 << (d & 31))) === 0
  }

  /** Records a counter whose frame authenticated. */
  accept(counter: number): void {
    if (counter > this.highest) {
      this.shift(this.highest < 0 ? this.size : counter - this.highest)
      this.highest = counter
      this.bits[0]! |= 1
      return
    }
    const d = this.highest - counter
    if (d < this.size) this.bits[d >>> 5]! |= 1 << (d & 31)
  }

  private shift(s: number): void {
    const words = this.bits.length
    if (s >= this.size) {
      this.bits.fill(0)
      return
    }
    const ws = s >>> 5
    const bs = s & 31
    for (let w = words - 1; w >= 0; w--) {
      const src = w - ws
      let v = src >= 0 ? this.bits[src]! << bs : 0
      if (bs !== 0 && src - 1 >= 0) v |= this.bits[src - 1]! >>> (32 - bs)
      this.bits[w] = v >>> 0
    }
  }
}
