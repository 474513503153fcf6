/**
 * TAI64N timestamps (cr.yp.to/libtai/tai64.html) as WireGuard puts them in handshake initiations:
 * 8 bytes big-endian seconds plus 2^62 + 10, then 4 bytes big-endian nanoseconds. The nanoseconds
 * are rounded down to a multiple of 2^24 ns (about 16.8 ms), as wireguard-go does, so the
 * timestamp does not leak a fine clock; the responder only needs it to increase.
 * Leaf module.
 */
export const TAI64N_BYTES = 12;
const WHITENER_NS = 0x1000000;

/** `wallMs` is milliseconds since the Unix epoch (Date.now()); `extraNs` adds sub-millisecond time. */
export function tai64n(wallMs: number, extraNs = 0): Buffer {
  const out = Buffer.alloc(TAI64N_BYTES);
  const secs = Math.floor(wallMs / 1000);
  let ns = (wallMs - secs * 1000) * 1e6 + extraNs;
  ns -= ns % WHITENER_NS;
  // 2^62 + 10 + secs, split into halves: the high half is 0x40000000, the low half 10 + secs.
  const low = secs + 10;
  out.writeUInt32BE(0x40000000 + Math.floor(low / 0x100000000), 0);
  out.writeUInt32BE(low >>> 0, 4);
  out.writeUInt32BE(ns, 8);
  return out;
}

/** True when timestamp `a` is strictly after `b` (byte-wise big-endian compare). */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, TAI64N_BYTES), Buffer.from(b.buffer, b.byteOffset, TAI64N_BYTES)) > 0;
}
