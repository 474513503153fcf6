/**
 * The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum.
 * Used by ipv4.ts (header), udp.ts (with the RFC 768 pseudo-header) and icmp.ts.
 * Leaf module: imports nothing from lanparty. Never allocates.
 */

/**
 * Adds the bytes buf[off..off+len) as big-endian 16-bit words to `initial` (an odd trailing byte is
 * padded with zero). The result is an unfolded sum; pass it to `foldChecksum`. A sum over 64 KiB
 * stays below 2^32, well inside a double's exact range.
 */
export function onesComplementSum(buf: Buffer, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (len & 1) sum += buf[off + len - 1] << 8;
  return sum;
}

/** Folds a sum to 16 bits and complements it: the value that goes into a checksum field. */
export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return (~sum) & 0xffff;
}

/** The checksum of buf[off..off+len). Over data that includes a correct checksum field it is 0. */
export function internetChecksum(buf: Buffer, off: number, len: number, initial = 0): number {
  return foldChecksum(onesComplementSum(buf, off, len, initial));
}
