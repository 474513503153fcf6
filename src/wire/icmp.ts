/**
 * ICMPv4 (RFC 792), enough for echo request and reply. Other types parse to their type and code
 * with the 4 bytes after the checksum read as identifier and sequence.
 * Leaf module: imports only util/errors and checksum.
 */
import { LanpartyError } from '../util/index.js';
import { internetChecksum } from './checksum.js';

export const ICMP_HEADER_BYTES = 8;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

export interface IcmpEchoRepr {
  type: number;
  code: number;
  ident: number;
  seq: number;
  /** A view into the parsed buffer: valid only while the caller owns it. */
  data: Buffer;
}

/** Checked parse of buf[off..off+len); throws LP_ERR_WIRE when short or the checksum is wrong. */
export function parseIcmp(buf: Buffer, off: number, len: number): IcmpEchoRepr {
  if (len < ICMP_HEADER_BYTES) throw new LanpartyError('LP_ERR_WIRE', `icmp: header needs ${ICMP_HEADER_BYTES} bytes, got ${len}`);
  if (internetChecksum(buf, off, len) !== 0) throw new LanpartyError('LP_ERR_WIRE', 'icmp: checksum mismatch');
  return {
    type: buf[off],
    code: buf[off + 1],
    ident: buf.readUInt16BE(off + 4),
    seq: buf.readUInt16BE(off + 6),
    data: buf.subarray(off + ICMP_HEADER_BYTES, off + len),
  };
}

export function icmpEchoBufferLen(repr: IcmpEchoRepr): number {
  return ICMP_HEADER_BYTES + repr.data.length;
}

/** Writes the message at buf[off..off+icmpEchoBufferLen(repr)), checksum included. */
export function emitIcmpEcho(repr: IcmpEchoRepr, buf: Buffer, off: number): void {
  buf[off] = repr.type;
  buf[off + 1] = repr.code;
  buf.writeUInt16BE(0, off + 2);
  buf.writeUInt16BE(repr.ident, off + 4);
  buf.writeUInt16BE(repr.seq, off + 6);
  repr.data.copy(buf, off + ICMP_HEADER_BYTES);
  buf.writeUInt16BE(internetChecksum(buf, off, icmpEchoBufferLen(repr)), off + 2);
}
