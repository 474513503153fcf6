/**
 * The virtual host: a Port on the switch with its own MAC and IPv4 address, as if it were a guest.
 *
 * Stages of `send(buf, off, len)` (the switch delivering a frame to it):
 *   1. Count the frame; accept only frames to its MAC or to a group address.
 *   2. ARP: let DHCP see it (probe conflicts), then answer requests for the host address.
 *   3. IPv4 (checked parse): fragments to the host address are reassembled (bounded: see the
 *      REASSEMBLY_ constants); ICMP echo to the host address gets a reply, fragmented to the
 *      MTU when larger; UDP 67 goes to DHCP, UDP 53 to the host address goes to DNS, and DHCP
 *      replies from other MACs go to DHCP's rogue-server check.
 * Replies are built in fresh buffers and handed to `sink.input` synchronously (the switch's `input`
 * is reentrant: it keeps no per-frame state outside its locals). A malformed frame is a counted
 * drop; `send` never throws. Read RFC 826 (ARP), RFC 792 (ICMP) and RFC 1122 section 3.2.2.6.
 */
import { type FrameSink, type Port, type PortKind, PortCounters } from '../../switch/index.js';
import type { Logger } from '../../util/index.js';
import { ARP_OP_REPLY, ARP_OP_REQUEST, emitArp, parseArp, type ArpRepr, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, emitDhcp, type DhcpRepr, DNS_PORT, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, emitIcmpEcho, icmpEchoBufferLen, parseIcmp, IPV4_BROADCAST, IPV4_HEADER_BYTES, IP_PROTO_ICMP, IP_PROTO_UDP, emitIpv4, parseIpv4, type Ipv4Cidr, type Ipv4Parsed, UDP_HEADER_BYTES, emitUdp, parseUdp, Ipv4Reassembler } from '../../wire/index.js';
import {
  BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_HEADER_BYTES, ETH_MIN_FRAME_BYTES, dstMac, srcMac, writeMac,
} from '../../wire/index.js';
import type { DhcpOutput, DhcpServer } from '../dhcp/index.js';
import type { DnsResponder } from '../dns/index.js';
import { type Clock, type VhostCounters, type VhostDropReason, VHOST_DROP_REASONS, systemClock } from '../types.js';

const IP_TTL = 64;
/** The host's MTU: IPv4 packets it sends are at most this long (maxFrameBytes less Ethernet). */
const MTU_BYTES = 1500;
/**
 * Reassembly limits. A ping of 65,507 bytes needs one packet in flight; 4 per source leave room
 * for a burst, and 32 in all (at most 2 MiB of reused buffers) for several guests at once. Linux
 * waits 30 s (ipfrag_time); on a LAN the fragments of a packet arrive within milliseconds.
 */
export const REASSEMBLY_MAX_PACKETS = 32;
export const REASSEMBLY_MAX_PACKETS_PER_SOURCE = 4;
export const REASSEMBLY_MAX_BYTES = 1 << 20;
export const REASSEMBLY_TIMEOUT_MS = 10_000;

export class VirtualHost implements Port, DhcpOutput {
  id = 0;
  readonly name: string;
  readonly kind: PortKind = 'service';
  readonly counters = new PortCounters();
  /** An MTU of 1500 plus the Ethernet header. */
  readonly maxFrameBytes = 1514;
  readonly stats: VhostCounters;
  dhcp: DhcpServer | null = null;
  dns: DnsResponder | null = null;
  private nextIdent = 1;
  private closed = false;
  private readonly reassembler = new Ipv4Reassembler({
    maxPackets: REASSEMBLY_MAX_PACKETS, maxPacketsPerSource: REASSEMBLY_MAX_PACKETS_PER_SOURCE,
    maxBytes: REASSEMBLY_MAX_BYTES, timeoutMs: REASSEMBLY_TIMEOUT_MS,
  });

  constructor(
    readonly hostIp: number,
    readonly hostMac: number,
    private readonly subnet: Ipv4Cidr,
    private readonly sink: FrameSink,
    private readonly log: Logger,
    displayAddress: string,
    private readonly clock: Clock = systemClock,
  ) {
    this.name = `services ${displayAddress}`;
    const drops = {} as Record<VhostDropReason, number>;
    for (const r of VHOST_DROP_REASONS) drops[r] = 0;
    this.stats = { arpReplies: 0, icmpEchoReplies: 0, drops, reassembly: this.reassembler.counters };
  }

  endpoint(): string { return ''; }

  /** 1. A frame from the switch. `buf` is borrowed for this call only. */
  send(buf: Buffer, off: number, len: number): void {
    this.counters.txFrames++;
    this.counters.txBytes += len;
    if (this.closed) { this.counters.drops['port-down']++; return; }
    if (len < ETH_HEADER_BYTES) { this.counters.drops.runt++; return; }
    if ((buf[off] & 1) === 0 && dstMac(buf, off) !== this.hostMac) { this.stats.drops['not-for-us']++; return; }
    try {
      const type = buf.readUInt16BE(off + 12);
      if (type === ETHERTYPE_ARP) this.onArp(buf, off + ETH_HEADER_BYTES, len - ETH_HEADER_BYTES);
      else if (type === ETHERTYPE_IPV4) this.onIpv4(srcMac(buf, off), buf, off + ETH_HEADER_BYTES, len - ETH_HEADER_BYTES);
      else this.stats.drops.unsupported++;
    } catch (err) {
      // Parsers throw LP_ERR_WIRE and are caught below; anything else is a bug, counted and logged.
      this.stats.drops.error++;
      this.log.debug(`services: handler error: ${(err as Error).stack ?? String(err)}`);
    }
  }

  close(): void { this.closed = true; }

  // 2. ARP.

  private onArp(buf: Buffer, off: number, len: number): void {
    let arp: ArpRepr;
    try {
      arp = parseArp(buf, off, len);
    } catch {
      this.stats.drops['malformed-arp']++;
      return;
    }
    if (this.dhcp !== null) this.dhcp.observeArp(arp);
    if (arp.operation !== ARP_OP_REQUEST || arp.targetIp !== this.hostIp) return;
    this.stats.arpReplies++;
    this.output(this.arpFrame(arp.senderMac, {
      operation: ARP_OP_REPLY, senderMac: this.hostMac, senderIp: this.hostIp, targetMac: arp.senderMac, targetIp: arp.senderIp,
    }));
  }

  /** DhcpOutput: an RFC 5227 probe (sender address 0.0.0.0) for `ip`. */
  sendArpProbe(ip: number): void {
    this.output(this.arpFrame(BROADCAST_MAC, { operation: ARP_OP_REQUEST, senderMac: this.hostMac, senderIp: 0, targetMac: 0, targetIp: ip }));
  }

  private arpFrame(dst: number, arp: ArpRepr): Buffer {
    const f = Buffer.alloc(ETH_MIN_FRAME_BYTES);
    this.ethHeader(f, dst, ETHERTYPE_ARP);
    emitArp(arp, f, ETH_HEADER_BYTES);
    return f;
  }

  // 3. IPv4.

  private onIpv4(ethSrc: number, buf: Buffer, off: number, len: number): void {
    let ip: Ipv4Parsed;
    try {
      ip = parseIpv4(buf, off, len);
    } catch {
      this.stats.drops['malformed-ipv4']++;
      return;
    }
    let pOff = off + ip.headerBytes;
    let pLen = ip.payloadBytes;
    const toHost = ip.dst === this.hostIp;
    if (ip.moreFragments || ip.fragmentOffsetBytes !== 0) {
      if (!toHost) { this.stats.drops['not-for-us']++; return; }
      // RFC 791: a packet is named by source, destination, protocol and identification; the
      // destination is always the host address here.
      const r = this.reassembler.counters;
      const dropped = r.fragmentsDropped;
      const whole = this.reassembler.add(ip.src, ip.protocol * 0x10000 + ip.ident, buf.readUInt16BE(off + 6), buf, pOff, pLen, this.clock.nowMs());
      this.stats.drops.fragment += r.fragmentsDropped - dropped;
      if (whole === null) return;
      // The first fragment's header is not kept; any header makes a packet over 65,535 bytes.
      if (whole.totalBytes > 0xffff - IPV4_HEADER_BYTES) { this.stats.drops['malformed-ipv4']++; return; }
      buf = whole.buf;
      pOff = 0;
      pLen = whole.totalBytes;
    }
    const toAll = ip.dst === IPV4_BROADCAST || ip.dst === this.subnet.broadcast;
    if (ip.protocol === IP_PROTO_ICMP) {
      if (!toHost) { this.stats.drops['not-for-us']++; return; }
      this.onIcmp(ethSrc, ip, buf, pOff, pLen);
      return;
    }
    if (ip.protocol !== IP_PROTO_UDP) { this.stats.drops.unsupported++; return; }
    let srcPort: number, dstPort: number, payloadBytes: number;
    try {
      ({ srcPort, dstPort, payloadBytes } = parseUdp(buf, pOff, pLen, ip.src, ip.dst));
    } catch {
      this.stats.drops['malformed-udp']++;
      return;
    }
    const payload = buf.subarray(pOff + UDP_HEADER_BYTES, pOff + UDP_HEADER_BYTES + payloadBytes);
    if (dstPort === DHCP_SERVER_PORT && (toHost || toAll) && this.dhcp !== null) {
      this.dhcp.handle(ethSrc, ip.src, payload);
    } else if (dstPort === DHCP_CLIENT_PORT && srcPort === DHCP_SERVER_PORT && this.dhcp !== null) {
      this.dhcp.observeServerReply(ethSrc, ip.src, payload);
    } else if (dstPort === DNS_PORT && toHost && this.dns !== null) {
      const answer = this.dns.handle(payload);
      if (answer !== null) this.sendUdp(ethSrc, ip.src, DNS_PORT, srcPort, answer);
    } else if (!toHost && !toAll) {
      this.stats.drops['not-for-us']++;
    } else {
      this.stats.drops.unsupported++;
    }
  }

  private onIcmp(ethSrc: number, ip: Ipv4Parsed, buf: Buffer, off: number, len: number): void {
    let echo;
    try {
      echo = parseIcmp(buf, off, len);
    } catch {
      this.stats.drops['malformed-icmp']++;
      return;
    }
    if (echo.type !== ICMP_ECHO_REQUEST || echo.code !== 0) { this.stats.drops.unsupported++; return; }
    // RFC 1122 3.2.2.6: the reply carries the request's identifier, sequence number and data.
    const reply = { type: ICMP_ECHO_REPLY, code: 0, ident: echo.ident, seq: echo.seq, data: echo.data };
    const icmpBytes = icmpEchoBufferLen(reply);
    this.stats.icmpEchoReplies++;
    if (IPV4_HEADER_BYTES + icmpBytes <= MTU_BYTES) {
      const f = Buffer.alloc(Math.max(ETH_MIN_FRAME_BYTES, ETH_HEADER_BYTES + IPV4_HEADER_BYTES + icmpBytes));
      this.ethHeader(f, ethSrc, ETHERTYPE_IPV4);
      emitIpv4({ src: this.hostIp, dst: ip.src, protocol: IP_PROTO_ICMP, ttl: IP_TTL, ident: this.ident(), dontFragment: false, payloadBytes: icmpBytes }, f, ETH_HEADER_BYTES);
      emitIcmpEcho(reply, f, ETH_HEADER_BYTES + IPV4_HEADER_BYTES);
      this.output(f);
      return;
    }
    // Larger than the MTU: the whole message first, then one frame per fragment (RFC 791 §3.2).
    const msg = Buffer.alloc(icmpBytes);
    emitIcmpEcho(reply, msg, 0);
    const ident = this.ident();
    const chunk = Math.floor((MTU_BYTES - IPV4_HEADER_BYTES) / 8) * 8;
    for (let fo = 0; fo < icmpBytes; fo += chunk) {
      const n = Math.min(chunk, icmpBytes - fo);
      const f = Buffer.alloc(Math.max(ETH_MIN_FRAME_BYTES, ETH_HEADER_BYTES + IPV4_HEADER_BYTES + n));
      this.ethHeader(f, ethSrc, ETHERTYPE_IPV4);
      emitIpv4({
        src: this.hostIp, dst: ip.src, protocol: IP_PROTO_ICMP, ttl: IP_TTL, ident, dontFragment: false, payloadBytes: n,
        moreFragments: fo + n < icmpBytes, fragmentOffsetBytes: fo,
      }, f, ETH_HEADER_BYTES);
      msg.copy(f, ETH_HEADER_BYTES + IPV4_HEADER_BYTES, fo, fo + n);
      this.output(f);
    }
  }

  /** DhcpOutput: a DHCP message from port 67 of the host address. */
  sendDhcp(msg: DhcpRepr, dst: number, dstIp: number, dstPort: number): void {
    this.sendUdp(dst, dstIp, DHCP_SERVER_PORT, dstPort, emitDhcp(msg));
  }

  /** Wraps `payload` in UDP, IPv4 and Ethernet from the host address and sends it to the switch. */
  sendUdp(dst: number, dstIp: number, srcPort: number, dstPort: number, payload: Buffer): void {
    const ipOff = ETH_HEADER_BYTES;
    const udpOff = ipOff + IPV4_HEADER_BYTES;
    const f = Buffer.alloc(Math.max(ETH_MIN_FRAME_BYTES, udpOff + UDP_HEADER_BYTES + payload.length));
    this.ethHeader(f, dst, ETHERTYPE_IPV4);
    payload.copy(f, udpOff + UDP_HEADER_BYTES);
    emitIpv4({ src: this.hostIp, dst: dstIp, protocol: IP_PROTO_UDP, ttl: IP_TTL, ident: this.ident(), dontFragment: false, payloadBytes: UDP_HEADER_BYTES + payload.length }, f, ipOff);
    emitUdp({ srcPort, dstPort, payloadBytes: payload.length }, f, udpOff, this.hostIp, dstIp);
    this.output(f);
  }

  private ethHeader(f: Buffer, dst: number, ethertype: number): void {
    writeMac(f, 0, dst);
    writeMac(f, 6, this.hostMac);
    f.writeUInt16BE(ethertype, 12);
  }

  private ident(): number {
    const v = this.nextIdent;
    this.nextIdent = (v + 1) & 0xffff;
    return v;
  }

  /** Frames are at least 60 bytes (zero padding) so QEMU guests never see runts. */
  private output(frame: Buffer): void {
    if (this.closed) return;
    this.sink.input(this, frame, 0, frame.length);
  }
}
