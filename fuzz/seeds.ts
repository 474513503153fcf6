/**
 * Seed inputs for the fuzz targets: the golden captures from real clients (lab/golden.ts:
 * busybox udhcpc and ISC dhclient DISCOVERs, busybox nslookup queries) plus frames built the way a
 * Linux guest sends them (ARP who-has, ICMP echo, a VLAN-tagged frame, DHCP REQUEST/RELEASE/INFORM,
 * DNS A/PTR/AAAA queries). Built with the plain (uninstrumented) modules: seeds are not the target.
 */
import { DHCLIENT_DISCOVER_HEX, NSLOOKUP_A_QUERY_HEX, NSLOOKUP_PTR_QUERY_HEX, UDHCPC_DISCOVER_HEX } from '../lab/golden.js';
import { BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, buildFrame } from '../src/wire/ethernet.js';
import { emitIpv4, IP_PROTO_ICMP, IP_PROTO_UDP, IPV4_BROADCAST } from '../src/wire/ipv4.js';
import { emitUdp, udpChecksum } from '../src/wire/udp.js';
import { internetChecksum } from '../src/wire/checksum.js';
import { emitArp, ARP_OP_REQUEST } from '../src/wire/arp.js';
import { emitIcmpEcho, ICMP_ECHO_REQUEST } from '../src/wire/icmp.js';
import { DHCPDISCOVER, DHCPINFORM, DHCPRELEASE, DHCPREQUEST, DHCPDECLINE, emitDhcp, emptyDhcpRepr } from '../src/wire/dhcp.js';
import { emitDns } from '../src/wire/dns.js';
import { defaultHostMac } from '../src/services/resolve.js';

export const GUEST_MAC = 0x525400123456;
export const GUEST_IP = 0x0a4d000a;   // 10.77.0.10
export const HOST_IP = 0x0a4d0001;    // 10.77.0.1
export const HOST_MAC = defaultHostMac('10.77.0.0/24');

export function udpFrame(ethDst: number, ethSrc: number, srcIp: number, dstIp: number, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const ipUdp = Buffer.alloc(28 + payload.length);
  payload.copy(ipUdp, 28);
  emitIpv4({ src: srcIp, dst: dstIp, protocol: IP_PROTO_UDP, ttl: 64, ident: 0, dontFragment: true, payloadBytes: 8 + payload.length }, ipUdp, 0);
  emitUdp({ srcPort, dstPort, payloadBytes: payload.length }, ipUdp, 20, srcIp, dstIp);
  return buildFrame(ethDst, ethSrc, ETHERTYPE_IPV4, ipUdp);
}

export function arpWhoHas(src: number, srcIp: number, targetIp: number): Buffer {
  const a = Buffer.alloc(28);
  emitArp({ operation: ARP_OP_REQUEST, senderMac: src, senderIp: srcIp, targetMac: 0, targetIp }, a, 0);
  return buildFrame(BROADCAST_MAC, src, ETHERTYPE_ARP, a);
}

export function icmpEcho(dst: number, src: number, srcIp: number, dstIp: number): Buffer {
  const data = Buffer.from('lanparty fuzz seed 0123456789abcdef');
  const p = Buffer.alloc(20 + 8 + data.length);
  emitIpv4({ src: srcIp, dst: dstIp, protocol: IP_PROTO_ICMP, ttl: 64, ident: 7, dontFragment: true, payloadBytes: 8 + data.length }, p, 0);
  emitIcmpEcho({ type: ICMP_ECHO_REQUEST, code: 0, ident: 0x1234, seq: 1, data }, p, 20);
  return buildFrame(dst, src, ETHERTYPE_IPV4, p);
}

export function dhcpPayloads(): Buffer[] {
  const req = emptyDhcpRepr();
  req.chaddr = GUEST_MAC; req.xid = 0x11223344; req.messageType = DHCPREQUEST; req.serverId = HOST_IP; req.requestedIp = GUEST_IP;
  req.hostname = 'guest1'; req.clientId = Buffer.from('01525400123456', 'hex'); req.parameterRequestList = [1, 3, 6, 12, 15, 28, 42];
  const rel = emptyDhcpRepr();
  rel.chaddr = GUEST_MAC; rel.xid = 5; rel.messageType = DHCPRELEASE; rel.ciaddr = GUEST_IP; rel.serverId = HOST_IP;
  const inf = emptyDhcpRepr();
  inf.chaddr = GUEST_MAC; inf.xid = 6; inf.messageType = DHCPINFORM; inf.ciaddr = GUEST_IP;
  const dec = emptyDhcpRepr();
  dec.chaddr = GUEST_MAC; dec.xid = 7; dec.messageType = DHCPDECLINE; dec.serverId = HOST_IP; dec.requestedIp = GUEST_IP;
  const ovl = Buffer.from(emitDhcp(req));
  // An overloaded message (option 52 = 3) with options in file and sname (RFC 2132 9.3).
  const ovlOpts = Buffer.from('3501033401033204' + '0a4d000a' + 'ff', 'hex');
  ovlOpts.copy(ovl, 240);
  Buffer.from('0c0467756573ff', 'hex').copy(ovl, 108);
  Buffer.from('3d0701525400123456ff', 'hex').copy(ovl, 44);
  return [
    udpPayload(Buffer.from(UDHCPC_DISCOVER_HEX, 'hex')),
    udpPayload(Buffer.from(DHCLIENT_DISCOVER_HEX, 'hex')),
    emitDhcp(req), emitDhcp(rel), emitDhcp(inf), emitDhcp(dec), ovl,
  ];
}

/**
 * What a hostile guest sends in one jumbo frame: a DISCOVER whose client identifier is 240
 * RFC 3396 pieces (60 KB), and a DNS query of 301 questions that point to the first.
 */
export function hostilePayloads(): { dhcp: Buffer; dns: Buffer } {
  const base = emitDhcp(Object.assign(emptyDhcpRepr(), { chaddr: GUEST_MAC, xid: 9, messageType: DHCPDISCOVER }));
  const parts: Buffer[] = [base.subarray(0, base.indexOf(0xff, 240))];
  for (let i = 0; i < 240; i++) parts.push(Buffer.from([61, 250]), Buffer.alloc(250, i));
  parts.push(Buffer.from([0xff]));
  const q = [Buffer.from('abcd01000000000000000000', 'hex'), Buffer.from('3c' + '61'.repeat(60) + '3c' + '62'.repeat(60) + '00', 'hex'), Buffer.from('00010001', 'hex')];
  for (let i = 0; i < 300; i++) q.push(Buffer.from('c00c00010001', 'hex'));
  const dns = Buffer.concat(q);
  dns.writeUInt16BE(301, 4);
  return { dhcp: Buffer.concat(parts), dns };
}

/** The UDP payload of a whole IPv4/UDP Ethernet frame without options. */
function udpPayload(frame: Buffer): Buffer {
  const ihl = (frame[14] & 0x0f) * 4;
  return frame.subarray(14 + ihl + 8);
}

export function dnsPayloads(): Buffer[] {
  const aaaa = emitDns({
    id: 0x4242, response: false, opcode: 0, authoritative: false, truncated: false, recursionDesired: true, recursionAvailable: false, rcode: 0,
    questions: [{ name: 'vhost.lan', type: 28, class: 1 }], answers: [], authorities: [],
    additionals: [{ name: '', type: 41, class: 1232, ttl: 0, data: Buffer.alloc(0) }],
  });
  // A response with a compressed answer (pointer to offset 12), as a resolver would send it.
  const resp = Buffer.from('8a568180000100010000000006677565737431036c616e0000010001c00c000100010000003c00040a4d000a', 'hex');
  return [Buffer.from(NSLOOKUP_A_QUERY_HEX, 'hex'), Buffer.from(NSLOOKUP_PTR_QUERY_HEX, 'hex'), aaaa, resp];
}

/** Whole Ethernet frames a guest on the LAN sends. */
export function guestFrames(): Buffer[] {
  const frames = [
    Buffer.from(UDHCPC_DISCOVER_HEX, 'hex'),
    Buffer.from(DHCLIENT_DISCOVER_HEX, 'hex'),
    arpWhoHas(GUEST_MAC, GUEST_IP, HOST_IP),
    arpWhoHas(GUEST_MAC, 0, GUEST_IP),   // RFC 5227 probe
    icmpEcho(HOST_MAC, GUEST_MAC, GUEST_IP, HOST_IP),
  ];
  for (const p of dhcpPayloads().slice(2)) frames.push(udpFrame(BROADCAST_MAC, GUEST_MAC, 0, IPV4_BROADCAST, 68, 67, p));
  for (const p of dnsPayloads()) frames.push(udpFrame(HOST_MAC, GUEST_MAC, GUEST_IP, HOST_IP, 40000, 53, p));
  // 802.1Q-tagged ARP (VLAN 5) and a frame with an IPv4 option (IHL 6).
  const arp = arpWhoHas(GUEST_MAC, GUEST_IP, HOST_IP);
  frames.push(Buffer.concat([arp.subarray(0, 12), Buffer.from('81000005', 'hex'), arp.subarray(12)]));
  const opt = Buffer.from(icmpEcho(HOST_MAC, GUEST_MAC, GUEST_IP, HOST_IP));
  frames.push(opt.subarray(0, 20));
  return frames;
}

/**
 * Recomputes the IPv4 header checksum and the UDP or ICMP checksum of an Ethernet frame in place,
 * where the lengths allow. Mutations nearly always break a checksum, and a checked parser stops
 * there; targets call this for half their inputs (chosen by a control byte) so the fuzzer also
 * reaches what lies behind the checksums. `off` is where the IPv4 header starts.
 */
export function fixChecksums(b: Buffer, off: number): void {
  if (b.length < off + 20 || b[off] >> 4 !== 4) return;
  const ihl = (b[off] & 0x0f) * 4;
  if (ihl < 20 || b.length < off + ihl) return;
  b.writeUInt16BE(0, off + 10);
  b.writeUInt16BE(internetChecksum(b, off, ihl), off + 10);
  const total = b.readUInt16BE(off + 2);
  if (total < ihl || off + total > b.length) return;
  const p = off + ihl;
  const plen = total - ihl;
  if (b[off + 9] === IP_PROTO_UDP && plen >= 8) {
    const ulen = b.readUInt16BE(p + 4);
    if (ulen < 8 || ulen > plen) return;
    b.writeUInt16BE(0, p + 6);
    const sum = udpChecksum(b, p, ulen, b.readUInt32BE(off + 12), b.readUInt32BE(off + 16));
    b.writeUInt16BE(sum === 0 ? 0xffff : sum, p + 6);
  } else if (b[off + 9] === IP_PROTO_ICMP && plen >= 8) {
    b.writeUInt16BE(0, p + 2);
    b.writeUInt16BE(internetChecksum(b, p, plen), p + 2);
  }
}

// ---------------------------------------------------------------------------------------------
// WireGuard (src/transports/wg): fixed keys, so messages built here with the plain modules
// authenticate at the devices the wg targets build with the instrumented ones.

import { createHash } from 'node:crypto';
import { clamp, staticKey, tai64n, type StaticKey } from '../src/crypto/index.js';
import { WgDevice, type WgIo } from '../src/transports/wg/device.js';
import { CookieChecker, CookieGenerator } from '../src/transports/wg/cookie.js';
import { Handshake, ZERO_PSK, consumeInitiation, createInitiation, createResponse, type Ephemeral } from '../src/transports/wg/noise.js';
import { silentLogger } from '../src/util/logger.js';

/** A fixed, clamped private key named by `label`. */
export function wgKey(label: string): StaticKey {
  return staticKey(clamp(createHash('sha256').update(`lanparty fuzz wg ${label}`).digest()));
}
/** An ephemeral from a fixed key: handshakes built with it are reproducible. */
export function wgEphemeral(label: string): Ephemeral {
  const k = wgKey(`ephemeral ${label}`);
  return { key: k.keyObject, pub: k.publicKey };
}
/** Initiator A, responder B, a stranger S (unknown to B); the wg targets fuzz B. */
export const WG_A = 'a';
export const WG_B = 'b';
export const WG_S = 's';
export const WG_INIT_INDEX = 0x11223344;
export const WG_RESP_INDEX = 0x55667788;
export const WG_TIMESTAMP = tai64n(1.7e12);
/** Source address bytes (IPv4, port) of endpoint id e, as the wg targets' io gives them. */
export const wgAddressBytes = (e: number): Buffer => Buffer.from([10, 0, 0, e, 0xca, 0x6c]);

/**
 * Deterministic handshake messages A → B with fixed ephemerals: the initiation (MACs added for
 * B), B's response (MACs for A), and a cookie reply from B to the initiation.
 */
export function wgHandshakeMessages(): { initiation: Buffer; response: Buffer; cookieReply: Buffer; strangerInitiation: Buffer } {
  const a = wgKey(WG_A), b = wgKey(WG_B), s = wgKey(WG_S);
  const hsA = new Handshake(a, b.publicKey, ZERO_PSK);
  const initiation = createInitiation(hsA, WG_INIT_INDEX, WG_TIMESTAMP, wgEphemeral(WG_A))!;
  new CookieGenerator(b.publicKey).addMacs(initiation, 0);
  const hsB = new Handshake(b, a.publicKey, ZERO_PSK);
  const r = consumeInitiation(b, initiation, 0, (pub) => (pub.equals(a.publicKey) ? hsB : undefined))!;
  r.commit(0, 0);
  const response = createResponse(hsB, WG_RESP_INDEX, wgEphemeral(WG_B))!;
  new CookieGenerator(a.publicKey).addMacs(response, 0);
  const cookieReply = new CookieChecker(b.publicKey).createReply(initiation, 0, initiation.length, wgAddressBytes(1), 0);
  const strangerInitiation = createInitiation(new Handshake(s, b.publicKey, ZERO_PSK), 7, WG_TIMESTAMP, wgEphemeral(WG_S))!;
  new CookieGenerator(b.publicKey).addMacs(strangerInitiation, 0);
  return { initiation, response, cookieReply, strangerInitiation };
}

/**
 * Real traffic between two in-memory devices with keys A and B (as test/unit/transports/
 * wg-device.test.ts builds them): the handshake, data both ways, keepalives, a cookie reply under
 * load. Every datagram either side sent, in order, with who sent it.
 */
export function wgTraffic(): { from: 'a' | 'b'; data: Buffer }[] {
  const log: { from: 'a' | 'b'; data: Buffer }[] = [];
  const queue: { from: 'a' | 'b'; data: Buffer }[] = [];
  let now = 1000;
  const io = (self: 'a' | 'b'): WgIo => ({
    send: (_to, buf, off, len) => { const s = { from: self, data: Buffer.from(buf.subarray(off, off + len)) }; log.push(s); queue.push(s); },
    addressBytes: wgAddressBytes, addressHost: (e) => `10.0.0.${e}`, addressText: (e) => `10.0.0.${e}:51820`,
  });
  const mk = (self: 'a' | 'b', key: StaticKey, underLoad: number) => new WgDevice({
    privateKey: key.privateKey, io: io(self), log: silentLogger, onPacket: () => {}, random: () => 0.5,
    underLoadPerSecond: underLoad, wallMs: () => 1.7e12 + now,
  });
  const a = mk('a', wgKey(WG_A), 256);
  const b = mk('b', wgKey(WG_B), 2);
  const pa = a.addPeer({ publicKey: wgKey(WG_B).publicKey, presharedKey: null, endpoint: 2, persistentKeepaliveMs: 0 });
  const pb = b.addPeer({ publicKey: wgKey(WG_A).publicKey, presharedKey: null, endpoint: -1, persistentKeepaliveMs: 0 });
  const pump = () => { while (queue.length > 0) { const s = queue.shift()!; (s.from === 'a' ? b : a).receive(s.from === 'a' ? 1 : 2, s.data, 0, s.data.length); } };
  a.tick(now); b.tick(now);
  a.sendPacket(pa, Buffer.alloc(60, 1), 0, 60);
  pump();
  b.sendPacket(pb, Buffer.alloc(33, 2), 0, 33);
  a.sendKeepalive(pa);
  a.sendPacket(pa, Buffer.alloc(1400, 3), 0, 1400);
  pump();
  // Rekey under load: B answers the retried initiations with cookie replies until A has a cookie.
  now += 121_000; a.tick(now); b.tick(now);
  for (let i = 0; i < 4; i++) a.sendPacket(pa, Buffer.alloc(20, 4 + i), 0, 20);
  const init = log.filter((s) => s.from === 'a' && s.data.length === 148).pop()!;
  for (let i = 0; i < 3; i++) b.receive(1, init.data, 0, init.data.length);
  pump();
  return log;
}
