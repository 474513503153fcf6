/**
 * ARP for IPv4 over Ethernet (RFC 826; RFC 5227 for probes and announcements).
 * Only hardware type 1 / protocol 0x0800 with 6- and 4-byte addresses is accepted.
 * Leaf module: imports only util/errors.
 */
import { LanpartyError } from '../util/index.js';

export const ARP_PACKET_BYTES = 28;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

export interface ArpRepr {
  operation: number;
  senderMac: number;
  senderIp: number;
  targetMac: number;
  targetIp: number;
}

function readMac(buf: Buffer, o: number): number {
  return buf.readUInt32BE(o) * 0x10000 + buf.readUInt16BE(o + 4);
}

function writeMac(buf: Buffer, o: number, mac: number): void {
  buf.writeUInt32BE(Math.floor(mac / 0x10000), o);
  buf.writeUInt16BE(mac % 0x10000, o + 4);
}

/** Checked parse of buf[off..off+len); throws LP_ERR_WIRE naming the bad field. */
export function parseArp(buf: Buffer, off: number, len: number): ArpRepr {
  if (len < ARP_PACKET_BYTES) throw new LanpartyError('LP_ERR_WIRE', `arp: packet needs ${ARP_PACKET_BYTES} bytes, got ${len}`);
  const htype = buf.readUInt16BE(off);
  if (htype !== 1) throw new LanpartyError('LP_ERR_WIRE', `arp: hardware type ${htype}, expected 1 (Ethernet)`);
  const ptype = buf.readUInt16BE(off + 2);
  if (ptype !== 0x0800) throw new LanpartyError('LP_ERR_WIRE', `arp: protocol type 0x${ptype.toString(16)}, expected 0x0800`);
  if (buf[off + 4] !== 6 || buf[off + 5] !== 4) throw new LanpartyError('LP_ERR_WIRE', `arp: address lengths ${buf[off + 4]}/${buf[off + 5]}, expected 6/4`);
  return {
    operation: buf.readUInt16BE(off + 6),
    senderMac: readMac(buf, off + 8),
    senderIp: buf.readUInt32BE(off + 14),
    targetMac: readMac(buf, off + 18),
    targetIp: buf.readUInt32BE(off + 24),
  };
}

/** Writes the 28-byte packet at buf[off..off+28). */
export function emitArp(repr: ArpRepr, buf: Buffer, off: number): void {
  buf.writeUInt16BE(1, off);
  buf.writeUInt16BE(0x0800, off + 2);
  buf[off + 4] = 6;
  buf[off + 5] = 4;
  buf.writeUInt16BE(repr.operation, off + 6);
  writeMac(buf, off + 8, repr.senderMac);
  buf.writeUInt32BE(repr.senderIp >>> 0, off + 14);
  writeMac(buf, off + 18, repr.targetMac);
  buf.writeUInt32BE(repr.targetIp >>> 0, off + 24);
}
