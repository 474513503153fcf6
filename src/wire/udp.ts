/**
 * UDP header (RFC 768) with the IPv4 pseudo-header checksum. `parseUdp` is the checked path;
 * `emitUdp` writes the header and checksum over a payload already in place after it.
 * Leaf module: imports only util/errors and the wire modules checksum and ipv4.
 */
import { LanpartyError } from '../util/index.js';
import { foldChecksum, onesComplementSum } from './checksum.js';
import { IP_PROTO_UDP } from './ipv4.js';

export const UDP_HEADER_BYTES = 8;

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  /** Bytes after the 8-byte header, from the UDP length field. */
  payloadBytes: number;
}

function pseudoHeaderSum(srcIp: number, dstIp: number, udpBytes: number): number {
  return Math.floor(srcIp / 0x10000) + (srcIp & 0xffff) + Math.floor(dstIp / 0x10000) + (dstIp & 0xffff) + IP_PROTO_UDP + udpBytes;
}

/** The UDP checksum of buf[off..off+udpBytes) (header included, checksum field as stored). */
export function udpChecksum(buf: Buffer, off: number, udpBytes: number, srcIp: number, dstIp: number): number {
  return foldChecksum(onesComplementSum(buf, off, udpBytes, pseudoHeaderSum(srcIp >>> 0, dstIp >>> 0, udpBytes)));
}

/**
 * Checked parse of the datagram at buf[off..off+len) (len: the IP payload size). Throws LP_ERR_WIRE
 * for a short buffer, a length field out of range, or a checksum mismatch (a zero checksum means
 * "none" over IPv4 and is accepted).
 */
export function parseUdp(buf: Buffer, off: number, len: number, srcIp: number, dstIp: number): UdpRepr {
  if (len < UDP_HEADER_BYTES) throw new LanpartyError('LP_ERR_WIRE', `udp: header needs ${UDP_HEADER_BYTES} bytes, got ${len}`);
  const udpBytes = buf.readUInt16BE(off + 4);
  if (udpBytes < UDP_HEADER_BYTES || udpBytes > len) throw new LanpartyError('LP_ERR_WIRE', `udp: length field ${udpBytes} is outside ${UDP_HEADER_BYTES}..${len}`);
  if (buf.readUInt16BE(off + 6) !== 0 && udpChecksum(buf, off, udpBytes, srcIp, dstIp) !== 0) {
    throw new LanpartyError('LP_ERR_WIRE', 'udp: checksum mismatch');
  }
  return { srcPort: buf.readUInt16BE(off), dstPort: buf.readUInt16BE(off + 2), payloadBytes: udpBytes - UDP_HEADER_BYTES };
}

/** Writes the header at buf[off..off+8) and the checksum over it and the payload that follows. */
export function emitUdp(repr: UdpRepr, buf: Buffer, off: number, srcIp: number, dstIp: number): void {
  const udpBytes = UDP_HEADER_BYTES + repr.payloadBytes;
  buf.writeUInt16BE(repr.srcPort, off);
  buf.writeUInt16BE(repr.dstPort, off + 2);
  buf.writeUInt16BE(udpBytes, off + 4);
  buf.writeUInt16BE(0, off + 6);
  const sum = udpChecksum(buf, off, udpBytes, srcIp, dstIp);
  buf.writeUInt16BE(sum === 0 ? 0xffff : sum, off + 6);   // RFC 768: a computed 0 is sent as all ones
}
