/**
 * Ethernet II / IEEE 802.3 frame helpers over a Buffer (IEEE 802.3 clause 3; 802.1Q for tags).
 * A frame here is what QEMU's socket netdevs carry: destination MAC onward, no preamble, no FCS.
 * Hot-path helpers take (buf, off) and never allocate; MACs are 48-bit numbers (exact in a double).
 * Leaf module: imports nothing from lanparty except util/errors.
 */
import { createHash } from 'node:crypto';
import { LanpartyError } from '../util/index.js';

export const ETH_HEADER_BYTES = 14;
/**
 * 802.3's minimum frame without FCS. The switch forwards shorter frames byte for byte (QEMU's
 * socket netdevs never pad; docs/qemu-transports.md §1); only frames lanparty builds itself (the
 * virtual host's replies, inject's templates) are padded to it.
 */
export const ETH_MIN_FRAME_BYTES = 60;
export const VLAN_TAG_BYTES = 4;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_IPV6 = 0x86dd;
export const BROADCAST_MAC = 0xffffffffffff;

/** The destination MAC at buf[off..off+6) as a 48-bit number. */
export function dstMac(buf: Buffer, off: number): number {
  // Byte arithmetic, not readUInt32BE: no bounds check and no call (the caller checked len >= 14).
  return ((buf[off] << 8) | buf[off + 1]) * 0x100000000 + (((buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5]) >>> 0);
}

/** The source MAC at buf[off+6..off+12) as a 48-bit number. */
export function srcMac(buf: Buffer, off: number): number {
  return ((buf[off + 6] << 8) | buf[off + 7]) * 0x100000000 + (((buf[off + 8] << 24) | (buf[off + 9] << 16) | (buf[off + 10] << 8) | buf[off + 11]) >>> 0);
}

/** True for broadcast and multicast destinations (I/G bit). */
export function isGroupDst(buf: Buffer, off: number): boolean {
  return (buf[off] & 1) === 1;
}

/**
 * The 802.1Q VLAN ID of a frame (0 when untagged). Frames are forwarded untouched; the ID only
 * selects the MAC table. Caller guarantees len >= 14.
 */
export function vlanId(buf: Buffer, off: number, len: number): number {
  const type = (buf[off + 12] << 8) | buf[off + 13];
  if ((type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && len >= 18) return ((buf[off + 14] << 8) | buf[off + 15]) & 0x0fff;
  return 0;
}

/** "aa:bb:cc:dd:ee:ff" for a 48-bit MAC number. For display only. */
export function formatMac(mac: number): string {
  const hex = mac.toString(16).padStart(12, '0');
  return hex.replace(/(..)(?!$)/g, '$1:');
}

/** Parses "aa:bb:cc:dd:ee:ff" (or with dashes) into a 48-bit number; throws LP_ERR_WIRE. */
export function parseMac(text: string): number {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(text.trim());
  if (!m) throw new LanpartyError('LP_ERR_WIRE', `"${text}" is not a MAC address (expected six hex pairs like 02:00:00:12:34:56)`);
  return parseInt(m.slice(1).join(''), 16);
}

/** Writes a 48-bit MAC number into buf at off. */
export function writeMac(buf: Buffer, off: number, mac: number): void {
  buf.writeUInt32BE(Math.floor(mac / 0x10000), off);
  buf.writeUInt16BE(mac % 0x10000, off + 4);
}

/**
 * A stable, locally administered unicast MAC for a guest name: the same name always gives the same
 * MAC. Bytes come from SHA-256 of the name; the first byte has the U/L bit set and the I/G bit
 * clear (IEEE 802 clause 8.2), so it never collides with a vendor-assigned address.
 */
export function macForName(name: string): number {
  const h = createHash('sha256').update('lanparty-guest:' + name).digest();
  h[0] = (h[0] & 0xfc) | 0x02;
  return h.readUInt32BE(0) * 0x10000 + h.readUInt16BE(4);
}

/** Builds an Ethernet frame (Repr-style emit for services and tests; allocates). */
export function buildFrame(dst: number, src: number, ethertype: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(ETH_HEADER_BYTES + payload.length);
  writeMac(f, 0, dst);
  writeMac(f, 6, src);
  f.writeUInt16BE(ethertype, 12);
  payload.copy(f, ETH_HEADER_BYTES);
  return f;
}
