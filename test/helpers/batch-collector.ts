/**
 * A started BatchSocket that keeps a copy of every datagram it receives (rx slots are reused
 * after each batch), for the batch-io unit tests.
 */
import type { BatchSocket } from '../../src/io/index.js';

export interface Frame { data: Buffer; peer: number }

export class Collector {
  readonly frames: Frame[] = [];
  batches = 0;
  largestBatch = 0;
  private waiter: { n: number; resolve: () => void } | null = null;

  /** `defaultWaitMs`: how long until() waits when not told. */
  constructor(readonly sock: BatchSocket, private readonly defaultWaitMs = 3000) {
    sock.start((count) => {
      this.batches++;
      if (count > this.largestBatch) this.largestBatch = count;
      for (let i = 0; i < count; i++) {
        this.frames.push({ data: Buffer.from(sock.rx.bufs[i].subarray(0, sock.rx.lengths[i])), peer: sock.rx.peers[i] });
      }
      if (this.waiter && this.frames.length >= this.waiter.n) {
        const w = this.waiter;
        this.waiter = null;
        w.resolve();
      }
    });
  }

  /** Resolves once `n` frames in total have arrived; rejects after `ms` with what did arrive. */
  until(n: number, ms = this.defaultWaitMs): Promise<void> {
    if (this.frames.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`timed out waiting for ${n} frames; got ${this.frames.length}`));
      }, ms);
      this.waiter = { n, resolve: () => { clearTimeout(timer); resolve(); } };
    });
  }

  /** The 32-bit big-endian sequence number at the start of each frame, in arrival order. */
  seqs(): number[] { return this.frames.map((f) => f.data.readUInt32BE(0)); }
}
