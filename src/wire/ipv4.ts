/**
 * IPv4 header (RFC 791) and dotted-quad addresses. Addresses are unsigned 32-bit numbers.
 * `parseIpv4` is the checked path for untrusted bytes; `emitIpv4` writes a 20-byte header (no
 * options) with its checksum. Leaf module: imports only util/errors and checksum.
 */
import { LanpartyError } from '../util/index.js';
import { internetChecksum } from './checksum.js';

export const IPV4_HEADER_BYTES = 20;
export const IP_PROTO_ICMP = 1;
export const IP_PROTO_UDP = 17;
export const IPV4_BROADCAST = 0xffffffff;

/** Byte offsets inside the header. */
const field = { verIhl: 0, tos: 1, totalLength: 2, ident: 4, flagsFrag: 6, ttl: 8, protocol: 9, checksum: 10, src: 12, dst: 16 } as const;

export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  /** Identification field; 0 is fine for unfragmented datagrams with DF set (RFC 6864). */
  ident: number;
  dontFragment: boolean;
  /** Bytes after the header, from the total length field (Ethernet padding excluded). */
  payloadBytes: number;
  /** Emit only: a fragment (RFC 791 §3.2): more follow, and this one's offset (a multiple of 8). */
  moreFragments?: boolean;
  fragmentOffsetBytes?: number;
}

export interface Ipv4Parsed extends Ipv4Repr {
  /** Header length in bytes (20..60); the payload starts at off + headerBytes. */
  headerBytes: number;
  moreFragments: boolean;
  /** In bytes. A datagram with moreFragments or a non-zero offset is a fragment. */
  fragmentOffsetBytes: number;
}

function wireError(msg: string): LanpartyError {
  return new LanpartyError('LP_ERR_WIRE', 'ipv4: ' + msg);
}

/**
 * Checked parse of the header at buf[off..off+len). Throws LP_ERR_WIRE naming the field for a
 * short buffer, wrong version, bad IHL or total length, or a bad header checksum. Keeps no reference
 * to `buf`.
 */
export function parseIpv4(buf: Buffer, off: number, len: number): Ipv4Parsed {
  if (len < IPV4_HEADER_BYTES) throw wireError(`header needs ${IPV4_HEADER_BYTES} bytes, got ${len}`);
  const verIhl = buf[off + field.verIhl];
  if (verIhl >> 4 !== 4) throw wireError(`version is ${verIhl >> 4}, expected 4`);
  const headerBytes = (verIhl & 0x0f) * 4;
  if (headerBytes < IPV4_HEADER_BYTES) throw wireError(`IHL ${headerBytes / 4} is below 5`);
  const totalLength = buf.readUInt16BE(off + field.totalLength);
  if (totalLength < headerBytes) throw wireError(`total length ${totalLength} is below the header length ${headerBytes}`);
  if (totalLength > len) throw wireError(`total length ${totalLength} exceeds the ${len} bytes received`);
  if (internetChecksum(buf, off, headerBytes) !== 0) throw wireError('header checksum mismatch');
  const flagsFrag = buf.readUInt16BE(off + field.flagsFrag);
  return {
    src: buf.readUInt32BE(off + field.src),
    dst: buf.readUInt32BE(off + field.dst),
    protocol: buf[off + field.protocol],
    ttl: buf[off + field.ttl],
    ident: buf.readUInt16BE(off + field.ident),
    dontFragment: (flagsFrag & 0x4000) !== 0,
    payloadBytes: totalLength - headerBytes,
    headerBytes,
    moreFragments: (flagsFrag & 0x2000) !== 0,
    fragmentOffsetBytes: (flagsFrag & 0x1fff) * 8,
  };
}

/** Writes a 20-byte header for `repr` at buf[off..off+20), checksum included. */
export function emitIpv4(repr: Ipv4Repr, buf: Buffer, off: number): void {
  buf[off + field.verIhl] = 0x45;
  buf[off + field.tos] = 0;
  buf.writeUInt16BE(IPV4_HEADER_BYTES + repr.payloadBytes, off + field.totalLength);
  buf.writeUInt16BE(repr.ident & 0xffff, off + field.ident);
  buf.writeUInt16BE((repr.dontFragment ? 0x4000 : 0) | (repr.moreFragments === true ? 0x2000 : 0) | ((repr.fragmentOffsetBytes ?? 0) >>> 3), off + field.flagsFrag);
  buf[off + field.ttl] = repr.ttl;
  buf[off + field.protocol] = repr.protocol;
  buf.writeUInt16BE(0, off + field.checksum);
  buf.writeUInt32BE(repr.src >>> 0, off + field.src);
  buf.writeUInt32BE(repr.dst >>> 0, off + field.dst);
  buf.writeUInt16BE(internetChecksum(buf, off, IPV4_HEADER_BYTES), off + field.checksum);
}

/** Parses "a.b.c.d" strictly (no leading zeros, each part 0..255); throws LP_ERR_WIRE. */
export function parseIpv4Address(text: string): number {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(text.trim());
  if (!m) throw new LanpartyError('LP_ERR_WIRE', `"${text}" is not an IPv4 address (expected a.b.c.d)`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255) throw new LanpartyError('LP_ERR_WIRE', `"${text}" is not an IPv4 address (${part} > 255)`);
    n = n * 256 + part;
  }
  return n;
}

/** "a.b.c.d" for an unsigned 32-bit address. */
export function formatIpv4Address(addr: number): string {
  return `${(addr >>> 24) & 255}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

export interface Ipv4Cidr {
  /** Network address (host bits cleared). */
  network: number;
  prefixLength: number;
  mask: number;
  broadcast: number;
}

/** Parses "10.77.0.0/24". Host bits must be zero. Throws LP_ERR_WIRE. */
export function parseIpv4Cidr(text: string): Ipv4Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new LanpartyError('LP_ERR_WIRE', `"${text}" is not a CIDR subnet (expected a.b.c.d/len, e.g. 10.77.0.0/24)`);
  const addr = parseIpv4Address(text.slice(0, slash));
  const lenText = text.slice(slash + 1).trim();
  if (!/^\d{1,2}$/.test(lenText) || Number(lenText) > 32) throw new LanpartyError('LP_ERR_WIRE', `"${text}": prefix length "${lenText}" is not 0..32`);
  const prefixLength = Number(lenText);
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  if (((addr & ~mask) >>> 0) !== 0) throw new LanpartyError('LP_ERR_WIRE', `"${text}": host bits are set; use ${formatIpv4Address((addr & mask) >>> 0)}/${prefixLength}`);
  return { network: addr, prefixLength, mask, broadcast: (addr | ~mask) >>> 0 };
}
