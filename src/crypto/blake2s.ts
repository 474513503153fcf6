/**
 * BLAKE2s (RFC 7693; read §3.2 "Compression Function F" first), with a key and any digest size
 * from 1 to 32 bytes. Node's 'blake2s256' covers the unkeyed 32-byte hash that Noise's HASH and
 * HMAC need; WireGuard's MAC (mac1, mac2, cookie value) is *keyed* BLAKE2s with a 16-byte digest,
 * which Node cannot do, so this small implementation exists for that one job.
 * Leaf module: imports nothing from lanparty. Tested against RFC 7693 Appendix B and the
 * blake2s-kat keyed vectors.
 */

const IV = new Uint32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const BLOCK_BYTES = 64;

/** Incremental keyed BLAKE2s. Reusable after `digest` only through a new instance. */
export class Blake2s {
  private readonly h = new Uint32Array(8);
  private readonly v = new Uint32Array(16);
  private readonly m = new Uint32Array(16);
  private readonly block = Buffer.alloc(BLOCK_BYTES);
  private blockLen = 0;
  /** Bytes compressed so far (t in the RFC); fits a number for any input we hash. */
  private total = 0;

  constructor(readonly outBytes: number, key?: Uint8Array) {
    const keyBytes = key ? key.length : 0;
    if (!Number.isInteger(outBytes) || outBytes < 1 || outBytes > 32) throw new RangeError(`blake2s: digest size ${outBytes} out of range (1-32)`);
    if (keyBytes > 32) throw new RangeError(`blake2s: key is ${keyBytes} bytes, longer than 32`);
    this.h.set(IV);
    this.h[0] ^= 0x01010000 ^ (keyBytes << 8) ^ outBytes;
    if (key && keyBytes > 0) {
      this.block.set(key, 0);
      this.blockLen = BLOCK_BYTES; // The key is padded to a full block (RFC 7693 §3.3).
    }
  }

  update(data: Uint8Array): this {
    let i = 0;
    while (i < data.length) {
      if (this.blockLen === BLOCK_BYTES) {
        // Compress only once more input arrives: the last block must go through with f = 1.
        this.total += BLOCK_BYTES;
        this.compress(false);
        this.blockLen = 0;
      }
      const take = Math.min(BLOCK_BYTES - this.blockLen, data.length - i);
      this.block.set(data.subarray(i, i + take), this.blockLen);
      this.blockLen += take;
      i += take;
    }
    return this;
  }

  digest(): Buffer {
    this.total += this.blockLen;
    this.block.fill(0, this.blockLen);
    this.compress(true);
    const out = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) out.writeUInt32LE(this.h[i], i * 4);
    return out.subarray(0, this.outBytes);
  }

  private compress(last: boolean): void {
    const v = this.v;
    const m = this.m;
    const h = this.h;
    for (let i = 0; i < 16; i++) m[i] = this.block.readUInt32LE(i * 4);
    for (let i = 0; i < 8; i++) {
      v[i] = h[i];
      v[i + 8] = IV[i];
    }
    v[12] ^= this.total >>> 0;
    v[13] ^= Math.floor(this.total / 0x100000000) >>> 0;
    if (last) v[14] = ~v[14];
    for (let r = 0; r < 10; r++) {
      const s = SIGMA[r];
      g(v, m, 0, 4, 8, 12, s[0], s[1]);
      g(v, m, 1, 5, 9, 13, s[2], s[3]);
      g(v, m, 2, 6, 10, 14, s[4], s[5]);
      g(v, m, 3, 7, 11, 15, s[6], s[7]);
      g(v, m, 0, 5, 10, 15, s[8], s[9]);
      g(v, m, 1, 6, 11, 12, s[10], s[11]);
      g(v, m, 2, 7, 8, 13, s[12], s[13]);
      g(v, m, 3, 4, 9, 14, s[14], s[15]);
    }
    for (let i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
  }
}

function g(v: Uint32Array, m: Uint32Array, a: number, b: number, c: number, d: number, x: number, y: number): void {
  v[a] = v[a] + v[b] + m[x];
  v[d] = rotr(v[d] ^ v[a], 16);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 12);
  v[a] = v[a] + v[b] + m[y];
  v[d] = rotr(v[d] ^ v[a], 8);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 7);
}

function rotr(x: number, n: number): number {
  return (x >>> n) | (x << (32 - n));
}

/** One-shot BLAKE2s of `parts` with an optional key and an `outBytes` digest. */
export function blake2s(outBytes: number, key: Uint8Array | undefined, ...parts: Uint8Array[]): Buffer {
  const b = new Blake2s(outBytes, key);
  for (const p of parts) b.update(p);
  return b.digest();
}
