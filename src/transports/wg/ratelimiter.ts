/**
 * Rate limiter per source IP (wireguard-go ratelimiter/): a token bucket per key, by default 20
 * packets per second with a burst of 5. The device uses one for handshakes (consulted only under
 * load and only after mac2 proved the source address) and one for the cookie replies it sends
 * under load (to sources not proven yet: the bound on what a spoofed flood can reflect at one
 * address). Entries idle for a second are swept by `tick`, and the table has a fixed size: when
 * it is full, new sources are refused (a flood of spoofed addresses cannot grow it).
 */
const PACKETS_PER_SECOND = 20;
const BURST = 5;
const MAX_ENTRIES = 16384;

class Bucket {
  tokens = 0;
  lastMs = 0;
}

export interface RateLimiterOptions {
  packetsPerSecond: number;
  burst: number;
  maxEntries: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly maxEntries: number;

  constructor(opts: Partial<RateLimiterOptions> = {}) {
    this.perSecond = opts.packetsPerSecond ?? PACKETS_PER_SECOND;
    this.burst = opts.burst ?? BURST;
    this.maxEntries = opts.maxEntries ?? MAX_ENTRIES;
  }

  allow(ip: string, nowMs: number): boolean {
    let b = this.buckets.get(ip);
    if (b === undefined) {
      if (this.buckets.size >= this.maxEntries) return false;
      b = new Bucket();
      b.tokens = this.burst;
      b.lastMs = nowMs;
      this.buckets.set(ip, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.lastMs) * this.perSecond) / 1000);
    b.lastMs = nowMs;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  tick(nowMs: number): void {
    for (const [ip, b] of this.buckets) if (nowMs - b.lastMs > 1000) this.buckets.delete(ip);
  }

  /** Sources tracked now. */
  get size(): number { return this.buckets.size; }
}
