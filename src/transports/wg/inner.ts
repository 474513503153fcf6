/**
 * What travels inside the tunnel (docs/peer-links.md): Ethernet frames as
 * VXLAN (RFC 7348) in UDP in IPv4, from our tunnel address to the peer's, so a stock host runs
 * `ip link add vx0 type vxlan id VNI local ITS_ADDR remote OUR_ADDR dstport 4789 dev wg0` on top
 * of wireguard-go. Read RFC 791 §3.2 (fragmentation) and RFC 7348 §5 first.
 *
 *   [IPv4 20][UDP 8][VXLAN 8][Ethernet frame ...]       UDP checksum 0 (allowed for IPv4, RFC 768;
 *                                                        the AEAD already authenticates every byte)
 *
 * MTU: the tunnel MTU (default 1420, wg-quick's) bounds each inner IP packet, so the outer UDP
 * datagram stays within 1500 (1420 + 32 WireGuard + 28 IP/UDP = 1480). A 1514-byte frame makes a
 * 1550-byte inner packet, which we split into IPv4 fragments; Linux does the same on its side
 * when vx0's MTU is 1500 over a 1420 wg0, and reassembles ours. The Decapsulator keeps at most
 * REASSEMBLY_MAX packets per peer for REASSEMBLY_TIMEOUT_MS (RFC 791 uses 15 s; frames are useless
 * that late, so 2 s), each in a reused slot (at most 64 KiB each: 1 MiB per peer at worst);
 * overlapping fragments drop their packet (wire/ipv4-reassembly.ts, shared with the virtual host).
 *
 * Lanparty peers also exchange link hellos (stp.ts) as UDP to LINK_CONTROL_PORT inside the tunnel;
 * a stock host answers those with ICMP port unreachable, which we count and drop. A peer that
 * sends no hellos gets an ICMP echo request (RFC 792) to its tunnel address every HELLO_MS: its
 * kernel's echo reply proves the session live (docs/tree.md, "Stock hosts"); replies are counted.
 */
import { VXLAN_HEADER_BYTES, VXLAN_OK, vxlanCheck, writeVxlanHeader, Ipv4Reassembler, type ReassembledPacket } from '../../wire/index.js';

export const IPV4_HEADER_BYTES = 20;
export const UDP_HEADER_BYTES = 8;
export const VXLAN_PORT = 4789;
export const LINK_CONTROL_PORT = 47900;
/** IPv4 + UDP + VXLAN in front of each frame. */
export const INNER_OVERHEAD_BYTES = IPV4_HEADER_BYTES + UDP_HEADER_BYTES + VXLAN_HEADER_BYTES;
/** ICMP echo probes: 8-byte header + 8 bytes of data; the identifier ("lp"). */
const ECHO_BYTES = 16;
export const ECHO_ID = 0x6c70;
const REASSEMBLY_MAX = 16;
const REASSEMBLY_TIMEOUT_MS = 2000;
const MAX_IP_BYTES = 65535;

export function ipToNumber(ip: string): number {
  return ip.split('.').reduce((a, b) => a * 256 + Number(b), 0);
}

export function numberToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

function ipChecksum(buf: Buffer, off: number): number {
  let sum = 0;
  for (let i = 0; i < IPV4_HEADER_BYTES; i += 2) sum += buf.readUInt16BE(off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function writeIpv4(buf: Buffer, off: number, totalBytes: number, id: number, fragField: number, src: number, dst: number, protocol = 17): void {
  buf[off] = 0x45;
  buf[off + 1] = 0;
  buf.writeUInt16BE(totalBytes, off + 2);
  buf.writeUInt16BE(id, off + 4);
  buf.writeUInt16BE(fragField, off + 6);
  buf[off + 8] = 64;
  buf[off + 9] = protocol;
  buf.writeUInt16BE(0, off + 10);
  buf.writeUInt32BE(src, off + 12);
  buf.writeUInt32BE(dst, off + 16);
  buf.writeUInt16BE(ipChecksum(buf, off), off + 10);
}

/**
 * Encapsulates one frame (or a control payload when `vni` < 0, sent to LINK_CONTROL_PORT) and
 * calls `out(packet)` once per IP packet: one, or several fragments when it exceeds `mtuBytes`.
 * Frames and control payloads are built in buffers reused for every packet (no allocation per
 * frame), so a packet is the callee's only during the call: WgDevice.sendPacket seals it at once
 * or copies it while a handshake runs.
 */
export class Encapsulator {
  private ipId = 1;
  /** The packet handed to out(); the UDP datagram that fragments are cut from. */
  private readonly pkt = Buffer.allocUnsafe(MAX_IP_BYTES);
  private readonly udp = Buffer.allocUnsafe(MAX_IP_BYTES);
  constructor(private readonly src: number, private readonly dst: number, private readonly mtuBytes: number, private readonly vni: number) {}

  frame(buf: Buffer, off: number, len: number, out: (pkt: Buffer) => void): void {
    this.emit(VXLAN_PORT, buf, off, len, true, out);
  }

  /** An ICMP echo request (identifier `ECHO_ID`, sequence `seq`, 8 bytes "lanparty") to the peer. */
  echo(seq: number, out: (pkt: Buffer) => void): void {
    const total = IPV4_HEADER_BYTES + ECHO_BYTES;
    const pkt = Buffer.alloc(total);
    writeIpv4(pkt, 0, total, this.ipId, 0, this.src, this.dst, 1);
    this.ipId = (this.ipId + 1) & 0xffff;
    const o = IPV4_HEADER_BYTES;
    pkt[o] = 8; // echo request, code 0
    pkt.writeUInt16BE(ECHO_ID, o + 4);
    pkt.writeUInt16BE(seq & 0xffff, o + 6);
    pkt.write('lanparty', o + 8, 'latin1');
    let sum = 0;
    for (let i = 0; i < ECHO_BYTES; i += 2) sum += pkt.readUInt16BE(o + i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    pkt.writeUInt16BE(~sum & 0xffff, o + 2);
    out(pkt);
  }

  control(payload: Buffer, out: (pkt: Buffer) => void): void {
    this.emit(LINK_CONTROL_PORT, payload, 0, payload.length, false, out);
  }

  private emit(dstPort: number, buf: Buffer, off: number, len: number, vxlan: boolean, out: (pkt: Buffer) => void): void {
    const udpBytes = UDP_HEADER_BYTES + (vxlan ? VXLAN_HEADER_BYTES : 0) + len;
    const total = IPV4_HEADER_BYTES + udpBytes;
    if (total > MAX_IP_BYTES) return;
    const id = this.ipId;
    this.ipId = (this.ipId + 1) & 0xffff;
    const pkt = this.pkt;
    if (total <= this.mtuBytes) {
      // One packet: headers and frame written in place, one copy of the frame.
      writeIpv4(pkt, 0, total, id, 0, this.src, this.dst);
      this.writeUdp(pkt, IPV4_HEADER_BYTES, udpBytes, dstPort, buf, off, len, vxlan);
      out(pkt.subarray(0, total));
      return;
    }
    // Fragments: the whole UDP datagram (header + VXLAN + frame) first; each fragment is a slice.
    const udp = this.udp;
    this.writeUdp(udp, 0, udpBytes, dstPort, buf, off, len, vxlan);
    const chunk = Math.floor((this.mtuBytes - IPV4_HEADER_BYTES) / 8) * 8;
    for (let fo = 0; fo < udpBytes; fo += chunk) {
      const n = Math.min(chunk, udpBytes - fo);
      const more = fo + n < udpBytes;
      writeIpv4(pkt, 0, IPV4_HEADER_BYTES + n, id, (more ? 0x2000 : 0) | (fo / 8), this.src, this.dst);
      udp.copy(pkt, IPV4_HEADER_BYTES, fo, fo + n);
      out(pkt.subarray(0, IPV4_HEADER_BYTES + n));
    }
  }

  /** UDP header (length `udpBytes`, checksum 0), the VXLAN header when `vxlan`, then buf[off, +len), at `at`. */
  private writeUdp(to: Buffer, at: number, udpBytes: number, dstPort: number, buf: Buffer, off: number, len: number, vxlan: boolean): void {
    // Source port from the inner MACs, as Linux picks it per flow (RFC 7348 §5: entropy for ECMP).
    const h = vxlan && len >= 12 ? (buf.readUInt32BE(off) ^ buf.readUInt32BE(off + 4) ^ buf.readUInt32BE(off + 8)) >>> 0 : 0;
    to.writeUInt16BE(vxlan ? 49152 + (((h >>> 16) ^ h) & 0x3fff) : LINK_CONTROL_PORT, at);
    to.writeUInt16BE(dstPort, at + 2);
    to.writeUInt16BE(udpBytes, at + 4);
    to.writeUInt16BE(0, at + 6);
    let p = at + UDP_HEADER_BYTES;
    if (vxlan) {
      writeVxlanHeader(to, p, this.vni);
      p += VXLAN_HEADER_BYTES;
    }
    buf.copy(to, p, off, off + len);
  }
}

/** Why an inner packet was not delivered; counted per peer. */
export type InnerDrop = 'not-ipv4' | 'bad-address' | 'not-udp' | 'other-port' | 'bad-vxlan' | 'fragment-dropped';

export class InnerCounters {
  'not-ipv4' = 0;
  'bad-address' = 0;
  'not-udp' = 0;
  'other-port' = 0;
  'bad-vxlan' = 0;
  'fragment-dropped' = 0;
  reassembled = 0;
  /** Echo replies to our probes (they count as proof of life through the device, nothing more). */
  'echo-reply' = 0;
}

/** Result kinds of `Decapsulator.packet`. */
export const INNER_NONE = 0;
export const INNER_FRAME = 1;
export const INNER_CONTROL = 2;

/**
 * Checks and unwraps inner packets from one peer. `packet` returns INNER_FRAME with the frame at
 * `out.buf[out.off .. out.off + out.len)`, INNER_CONTROL with a control payload there, or
 * INNER_NONE (dropped and counted, or a fragment kept for later).
 */
export class Decapsulator {
  readonly counters = new InnerCounters();
  readonly out: { buf: Buffer; off: number; len: number } = { buf: Buffer.alloc(0), off: 0, len: 0 };
  /** One source (the peer), so the per-source limit is the total; bytes never bind (16 × 64 KiB). */
  private readonly reassembler = new Ipv4Reassembler({
    maxPackets: REASSEMBLY_MAX, maxPacketsPerSource: REASSEMBLY_MAX, maxBytes: REASSEMBLY_MAX * MAX_IP_BYTES, timeoutMs: REASSEMBLY_TIMEOUT_MS,
  });

  /** `local`: our tunnel address; `peer`: the only source we accept (WireGuard's allowed IPs). */
  constructor(private readonly local: number, private readonly peer: number, private readonly vni: number) {}

  packet(buf: Buffer, off: number, len: number, nowMs: number): number {
    if (len < IPV4_HEADER_BYTES || buf[off] >> 4 !== 4) { this.counters['not-ipv4']++; return INNER_NONE; }
    const ihl = (buf[off] & 15) * 4;
    const total = buf.readUInt16BE(off + 2);
    if (ihl < IPV4_HEADER_BYTES || total < ihl || total > len) { this.counters['not-ipv4']++; return INNER_NONE; }
    if (buf.readUInt32BE(off + 12) !== this.peer || buf.readUInt32BE(off + 16) !== this.local) { this.counters['bad-address']++; return INNER_NONE; }
    if (buf[off + 9] === 1 && total - ihl >= 8 && buf[off + ihl] === 0 && buf.readUInt16BE(off + ihl + 4) === ECHO_ID) {
      this.counters['echo-reply']++;
      return INNER_NONE;
    }
    if (buf[off + 9] !== 17) { this.counters['not-udp']++; return INNER_NONE; }
    const frag = buf.readUInt16BE(off + 6);
    let data = buf;
    let dOff = off + ihl;
    let dLen = total - ihl;
    if ((frag & 0x3fff) !== 0) {
      const whole = this.reassemble(buf.readUInt16BE(off + 4), frag, buf, off + ihl, total - ihl, nowMs);
      if (whole === null) return INNER_NONE;
      data = whole.buf;
      dOff = 0;
      dLen = whole.totalBytes;
    }
    if (dLen < UDP_HEADER_BYTES) { this.counters['not-udp']++; return INNER_NONE; }
    const dstPort = data.readUInt16BE(dOff + 2);
    const udpLen = Math.min(data.readUInt16BE(dOff + 4), dLen);
    if (dstPort === VXLAN_PORT) {
      const vOff = dOff + UDP_HEADER_BYTES;
      const vLen = udpLen - UDP_HEADER_BYTES;
      if (vxlanCheck(data, vOff, vLen, this.vni) !== VXLAN_OK) { this.counters['bad-vxlan']++; return INNER_NONE; }
      this.out.buf = data;
      this.out.off = vOff + VXLAN_HEADER_BYTES;
      this.out.len = vLen - VXLAN_HEADER_BYTES;
      return INNER_FRAME;
    }
    if (dstPort === LINK_CONTROL_PORT) {
      this.out.buf = data;
      this.out.off = dOff + UDP_HEADER_BYTES;
      this.out.len = udpLen - UDP_HEADER_BYTES;
      return INNER_CONTROL;
    }
    this.counters['other-port']++;
    return INNER_NONE;
  }

  /**
   * Hands a fragment to the reassembler and returns the packet when complete: the whole UDP
   * datagram is then `slot.buf[0, slot.totalBytes)`, valid until the next call. Its fragments
   * dropped (malformed, duplicate, overlapping, evicted, timed out) count as `fragment-dropped`.
   */
  private reassemble(id: number, frag: number, buf: Buffer, off: number, len: number, nowMs: number): ReassembledPacket | null {
    const r = this.reassembler.counters;
    const dropped = r.fragmentsDropped;
    const whole = this.reassembler.add(this.peer, id, frag, buf, off, len, nowMs);
    this.counters['fragment-dropped'] += r.fragmentsDropped - dropped;
    if (whole !== null) this.counters.reassembled++;
    return whole;
  }
}
