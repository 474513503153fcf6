/**
 * Sliding replay window for transport counters (RFC 6479's bitmap of 32-bit blocks, the shape of
 * wireguard-go's replay/): accepts each counter at most once and anything older than the window is
 * rejected. Read RFC 6479 §2 first. Counters are JS numbers below 2^53, which bounds a
 * session at 2^53 messages instead of WireGuard's 2^64 - 2^13 - 1; the caller rekeys long before.
 *
 *   blocks: [ ... | b(i-1) | b(i) | ... ]  ring of BLOCK_COUNT words; `last` is the highest counter
 *   seen; a counter c lives in bit c % 32 of block floor(c / 32) % BLOCK_COUNT.
 * Leaf module.
 */
const BLOCK_BITS = 32;
// 8192 bits, the size of the Linux kernel's and wireguard-go's rings; one block is kept clear for
// the next counters, so the usable window is 8160.
const BLOCK_COUNT = 256;
/** Counters this far below the highest seen are still accepted once. */
export const REPLAY_WINDOW = (BLOCK_COUNT - 1) * BLOCK_BITS;

export class ReplayWindow {
  private readonly blocks = new Uint32Array(BLOCK_COUNT);
  private last = 0;
  private any = false;

  reset(): void {
    this.blocks.fill(0);
    this.last = 0;
    this.any = false;
  }

  /**
   * Marks `counter` as seen and returns true when it is new and inside the window; returns false
   * (changing nothing) for a replay, a counter too old, or one at or above `limit`.
   * Call only after the packet authenticated, so forged counters never move the window.
   */
  check(counter: number, limit: number): boolean {
    if (counter >= limit || counter < 0 || !Number.isInteger(counter)) return false;
    const blockIndex = Math.floor(counter / BLOCK_BITS);
    if (!this.any || counter > this.last) {
      const current = this.any ? Math.floor(this.last / BLOCK_BITS) : -1;
      const diff = Math.min(blockIndex - current, BLOCK_COUNT);
      for (let i = 1; i <= diff; i++) this.blocks[(current + i) % BLOCK_COUNT] = 0;
      this.last = counter;
      this.any = true;
    } else if (this.last - counter > REPLAY_WINDOW) {
      return false;
    }
    const idx = blockIndex % BLOCK_COUNT;
    const bit = 1 << (counter % BLOCK_BITS);
    if ((this.blocks[idx] & bit) !== 0) return false;
    this.blocks[idx] |= bit;
    return true;
  }
}
