/**
 * Handshake rate limiter per source IP (wireguard-go ratelimiter/): a token bucket of 20 packets
 * per second with a burst of 5, consulted only under load and only after mac2 proved the source
 * address. Entries idle for a second are swept by `tick`, and the table has a fixed size: when
 * it is full, new sources are refused (a flood of spoofed addresses cannot grow it).
 */
const PACKETS_PER_SECOND = 20;
const BURST = 5;
const MAX_ENTRIES = 16384;

class Bucket {
  tokens = BURST;
  lastMs = 0;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  allow(ip: string, nowMs: number): boolean {
    let b = this.buckets.get(ip);
    if (b === undefined) {
      if (this.buckets.size >= MAX_ENTRIES) return false;
      b = new Bucket();
      b.lastMs = nowMs;
      this.buckets.set(ip, b);
    }
    b.tokens = Math.min(BURST, b.tokens + ((nowMs - b.lastMs) * PACKETS_PER_SECOND) / 1000);
    b.lastMs = nowMs;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  tick(nowMs: number): void {
    for (const [ip, b] of this.buckets) if (nowMs - b.lastMs > 1000) this.buckets.delete(ip);
  }
}
