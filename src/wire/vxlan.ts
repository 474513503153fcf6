/**
 * VXLAN header (RFC 7348 §5; read §4 "VXLAN Frame Format" first): 8 bytes in front of an
 * Ethernet frame (destination MAC onward, no FCS), carried in UDP to port 4789.
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |R|R|R|R|I|R|R|R|            Reserved                           |   flags: 0x08
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                VXLAN Network Identifier (VNI) |   Reserved    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The RFC says reserved bits are ignored on receipt. Linux (vxlan_rcv: "unparsed" flags drop the
 * packet) and Open vSwitch (netdev_vxlan_pop_header) both reject any bit other than I, and so do
 * we: a header with extension bits (GBP, GPE) is not ours to interpret. The first word must be
 * exactly 0x08000000 and the last byte zero.
 *
 * Hot path: `vxlanCheck(buf, off, len, vni)` classifies a received header without allocating, and
 * `writeVxlanHeader` emits one. `parseVxlan`/`emitVxlan` are the checked Repr path for tests and tools.
 * Leaf module: imports only util/errors.
 */
import { LanpartyError } from '../util/index.js';

export const VXLAN_HEADER_BYTES = 8;
/** IANA-assigned UDP destination port (RFC 7348 §5). Linux's own default is still 8472 unless dstport is given. */
export const VXLAN_UDP_PORT = 4789;
/** The I flag: the VNI is valid. The only flag we send or accept. */
export const VXLAN_FLAG_I = 0x08;
export const VXLAN_VNI_MAX = 0xffffff;

/** Result of `vxlanCheck`, a small integer so the per-packet path stays monomorphic. */
export const VXLAN_OK = 0;
/** Shorter than the 8-byte header. */
export const VXLAN_SHORT = 1;
/** First word is not exactly 0x08000000 (I flag missing, other flags or reserved bits set). */
export const VXLAN_BAD_FLAGS = 2;
/** The byte after the VNI is not zero. */
export const VXLAN_BAD_RESERVED = 3;
/** A valid header for another VNI. */
export const VXLAN_OTHER_VNI = 4;
export type VxlanCheck = 0 | 1 | 2 | 3 | 4;

/** The VNI of a header at buf[off..off+8); caller guarantees the bytes exist. */
export function vxlanVni(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + 4) >>> 8;
}

/**
 * Classifies the VXLAN header at buf[off..off+len) against the expected `vni`. Never throws for
 * any len >= 0 and never allocates; the inner frame is buf[off+8..off+len) when the result is VXLAN_OK.
 */
export function vxlanCheck(buf: Buffer, off: number, len: number, vni: number): VxlanCheck {
  if (len < VXLAN_HEADER_BYTES) return VXLAN_SHORT;
  if (buf.readUInt32BE(off) !== 0x08000000) return VXLAN_BAD_FLAGS;
  if (buf[off + 7] !== 0) return VXLAN_BAD_RESERVED;
  if (buf.readUInt32BE(off + 4) >>> 8 !== vni) return VXLAN_OTHER_VNI;
  return VXLAN_OK;
}

/** Writes a header for `vni` at buf[off..off+8). Caller guarantees room and 0 <= vni <= 2^24-1. */
export function writeVxlanHeader(buf: Buffer, off: number, vni: number): void {
  buf.writeUInt32BE(0x08000000, off);
  buf.writeUInt32BE(vni * 256, off + 4);
}

export interface VxlanRepr {
  /** 24-bit VXLAN Network Identifier. */
  vni: number;
  /** Bytes of the inner Ethernet frame after the header. */
  payloadBytes: number;
}

/** Checked parse of buf[off..off+len): throws LP_ERR_WIRE naming the bad field and its value. */
export function parseVxlan(buf: Buffer, off: number, len: number): VxlanRepr {
  if (len < VXLAN_HEADER_BYTES) throw new LanpartyError('LP_ERR_WIRE', `vxlan: header needs ${VXLAN_HEADER_BYTES} bytes, got ${len}`);
  const word0 = buf.readUInt32BE(off);
  if (word0 !== 0x08000000) {
    throw new LanpartyError('LP_ERR_WIRE', `vxlan: flags/reserved word is 0x${word0.toString(16).padStart(8, '0')}, expected 0x08000000 (I flag only)`);
  }
  if (buf[off + 7] !== 0) throw new LanpartyError('LP_ERR_WIRE', `vxlan: reserved byte after the VNI is 0x${buf[off + 7].toString(16)}, expected 0`);
  return { vni: vxlanVni(buf, off), payloadBytes: len - VXLAN_HEADER_BYTES };
}

/** Writes the header of `repr` at buf[off..off+8); throws LP_ERR_WIRE for a VNI out of range. */
export function emitVxlan(repr: VxlanRepr, buf: Buffer, off: number): void {
  if (!Number.isInteger(repr.vni) || repr.vni < 0 || repr.vni > VXLAN_VNI_MAX) {
    throw new LanpartyError('LP_ERR_WIRE', `vxlan: VNI ${repr.vni} is out of range (0-${VXLAN_VNI_MAX})`);
  }
  writeVxlanHeader(buf, off, repr.vni);
}

/** Bytes `emitVxlan` plus the payload need. */
export function vxlanBufferLen(repr: VxlanRepr): number {
  return VXLAN_HEADER_BYTES + repr.payloadBytes;
}
