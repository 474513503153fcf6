/**
 * The dump decoder: one line per frame for ARP, IPv4 (ICMP, UDP, TCP, DHCP, DNS), IPv6, VLAN tags;
 * "malformed ..." for bad bytes, and never an exception, for any input (seeded random fuzz).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, formatIpv6 } from '../../../src/cli/decode.js';
import { arpFrame, pingFrame } from '../../../src/cli/inject.js';
import { buildFrame, BROADCAST_MAC, ETHERTYPE_IPV4 } from '../../../src/wire/ethernet.js';
import { emitIpv4, parseIpv4Address as ip, IPV4_HEADER_BYTES, IP_PROTO_UDP } from '../../../src/wire/ipv4.js';
import { emitUdp, UDP_HEADER_BYTES } from '../../../src/wire/udp.js';
import { emitDhcp, emptyDhcpRepr, DHCPDISCOVER, DHCPACK, BOOTREPLY } from '../../../src/wire/dhcp.js';
import { emitDns } from '../../../src/wire/dns.js';

const MAC1 = 0x020000000001;
const MAC2 = 0x020000000002;

function udpFrame(src: number, dst: number, sport: number, dport: number, payload: Buffer, proto = IP_PROTO_UDP): Buffer {
  const p = Buffer.alloc(IPV4_HEADER_BYTES + UDP_HEADER_BYTES + payload.length);
  payload.copy(p, IPV4_HEADER_BYTES + UDP_HEADER_BYTES);
  emitUdp({ srcPort: sport, dstPort: dport, payloadBytes: payload.length }, p, IPV4_HEADER_BYTES, src, dst);
  emitIpv4({ src, dst, protocol: proto, ttl: 64, ident: 1, dontFragment: false, payloadBytes: UDP_HEADER_BYTES + payload.length }, p, 0);
  return buildFrame(BROADCAST_MAC, MAC1, ETHERTYPE_IPV4, p);
}

test('ARP request, announcement, probe and reply', () => {
  assert.equal(decodeFrame(arpFrame(MAC1, ip('10.0.0.1'), ip('10.0.0.2'))), '02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ARP request who-has 10.0.0.2 tell 10.0.0.1');
  assert.match(decodeFrame(arpFrame(MAC1, ip('10.0.0.1'), ip('10.0.0.1'))), /ARP announcement \(gratuitous\) 10\.0\.0\.1 is-at 02:00:00:00:00:01$/);
  assert.match(decodeFrame(arpFrame(MAC1, 0, ip('10.0.0.9'))), /ARP probe who-has 10\.0\.0\.9 tell 02:00:00:00:00:01$/);
  const reply = arpFrame(MAC2, ip('10.0.0.2'), ip('10.0.0.1'));
  reply.writeUInt16BE(2, 14 + 6);
  assert.match(decodeFrame(reply), /ARP reply 10\.0\.0\.2 is-at 02:00:00:00:00:02$/);
});

test('ICMP echo request', () => {
  assert.equal(decodeFrame(pingFrame(MAC1, ip('10.0.0.1'), ip('10.0.0.255'), 7)),
    '02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, IPv4 10.0.0.1 > 10.0.0.255: ICMP echo request, id 19536, seq 7, length 28');
});

test('DHCP discover and ack: type, xid, client MAC, requested and your IP', () => {
  const d = emptyDhcpRepr();
  d.xid = 0x1234abcd;
  d.chaddr = MAC1;
  d.messageType = DHCPDISCOVER;
  d.requestedIp = ip('10.77.0.50');
  d.hostname = 'vm1';
  assert.equal(decodeFrame(udpFrame(0, 0xffffffff, 68, 67, emitDhcp(d))),
    '02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, IPv4 0.0.0.0.68 > 255.255.255.255.67: DHCP DISCOVER, xid 0x1234abcd, client 02:00:00:00:00:01, requested 10.77.0.50, hostname vm1');
  const a = emptyDhcpRepr();
  a.op = BOOTREPLY;
  a.xid = 0x1234abcd;
  a.chaddr = MAC1;
  a.messageType = DHCPACK;
  a.yiaddr = ip('10.77.0.50');
  a.serverId = ip('10.77.0.1');
  assert.match(decodeFrame(udpFrame(ip('10.77.0.1'), ip('10.77.0.50'), 67, 68, emitDhcp(a))), /DHCP ACK, xid 0x1234abcd, client 02:00:00:00:00:01, your 10\.77\.0\.50, server 10\.77\.0\.1$/);
});

test('DNS query and answer', () => {
  const base = { id: 0x42, opcode: 0, authoritative: false, truncated: false, recursionDesired: true, recursionAvailable: false, rcode: 0, authorities: [], additionals: [] };
  const q = emitDns({ ...base, response: false, questions: [{ name: 'vm1.lan', type: 1, class: 1 }], answers: [] });
  assert.match(decodeFrame(udpFrame(ip('10.77.0.50'), ip('10.77.0.1'), 40000, 53, q)), /10\.77\.0\.50\.40000 > 10\.77\.0\.1\.53: DNS query 0x42 A\? vm1\.lan$/);
  const r = emitDns({ ...base, response: true, questions: [{ name: 'vm1.lan', type: 1, class: 1 }], answers: [{ name: 'vm1.lan', type: 1, class: 1, ttl: 60, data: Buffer.from([10, 77, 0, 50]) }] });
  assert.match(decodeFrame(udpFrame(ip('10.77.0.1'), ip('10.77.0.50'), 53, 40000, r)), /DNS response 0x42 A\? vm1\.lan NOERROR A 10\.77\.0\.50$/);
});

test('TCP SYN and plain UDP', () => {
  const p = Buffer.alloc(40);
  p.writeUInt16BE(5201, 20); p.writeUInt16BE(80, 22); p.writeUInt32BE(1000, 24); p[32] = 0x50; p[33] = 0x02; p.writeUInt16BE(64240, 34);
  emitIpv4({ src: ip('10.0.0.1'), dst: ip('10.0.0.2'), protocol: 6, ttl: 64, ident: 0, dontFragment: true, payloadBytes: 20 }, p, 0);
  assert.match(decodeFrame(buildFrame(MAC2, MAC1, ETHERTYPE_IPV4, p)), /IPv4 10\.0\.0\.1\.5201 > 10\.0\.0\.2\.80: TCP \[S\] seq 1000 win 64240, length 0$/);
  assert.match(decodeFrame(udpFrame(ip('10.0.0.1'), ip('10.0.0.2'), 1000, 2000, Buffer.alloc(5))), /10\.0\.0\.1\.1000 > 10\.0\.0\.2\.2000: UDP, length 5$/);
});

test('IPv6 neighbor solicitation, VLAN tag, unknown ethertype', () => {
  const f = Buffer.from(
    '3333ff000002' + '020000000001' + '86dd' +
    '60000000' + '0020' + '3a' + 'ff' + 'fe800000000000000000000000000001' + 'ff0200000000000000000001ff000002' +
    '8700' + '0000' + '00000000' + 'fe800000000000000000000000000002' + '0101020000000001', 'hex');
  assert.equal(decodeFrame(f), '02:00:00:00:00:01 > 33:33:ff:00:00:02, IPv6 fe80::1 > ff02::1:ff00:2: ICMPv6 neighbor solicitation fe80::2, length 32');
  const tagged = Buffer.concat([Buffer.from('ffffffffffff020000000001810000640806', 'hex'), arpFrame(MAC1, ip('10.0.0.1'), ip('10.0.0.2')).subarray(14)]);
  assert.match(decodeFrame(tagged), /, vlan 100, ARP request who-has 10\.0\.0\.2 tell 10\.0\.0\.1$/);
  assert.match(decodeFrame(Buffer.from('ffffffffffff02000000000188b5' + '00'.repeat(46), 'hex')), /ethertype 0x88b5, length 60$/);
  assert.equal(formatIpv6(Buffer.alloc(16), 0), '::');
});

test('malformed frames say so and name the problem', () => {
  assert.match(decodeFrame(Buffer.alloc(5)), /^malformed Ethernet: frame of 5 bytes/);
  const arp = arpFrame(MAC1, 1, 2).subarray(0, 30);
  assert.match(decodeFrame(arp), /malformed ARP: packet needs 28 bytes, got 16/);
  const ping = pingFrame(MAC1, ip('10.0.0.1'), ip('10.0.0.2'), 1);
  ping[14 + 10] ^= 0xff;   // IPv4 header checksum
  assert.match(decodeFrame(ping), /malformed IPv4: header checksum mismatch/);
  const ping2 = pingFrame(MAC1, ip('10.0.0.1'), ip('10.0.0.2'), 1);
  ping2[14 + 20 + 2] ^= 0xff;   // ICMP checksum
  assert.match(decodeFrame(ping2), /malformed ICMP: checksum mismatch/);
  const dhcp = udpFrame(0, 0xffffffff, 68, 67, Buffer.alloc(100));
  assert.match(decodeFrame(dhcp), /malformed DHCP: message needs 240 bytes, got 100/);
  const truncated = pingFrame(MAC1, ip('10.0.0.1'), ip('10.0.0.2'), 1).subarray(0, 30);
  assert.match(decodeFrame(truncated), /malformed IPv4/);
  assert.match(decodeFrame(Buffer.from('ffffffffffff02000000000186dd6000', 'hex')), /malformed IPv6: header needs 40 bytes/);
});

test('random bytes never throw (seeded fuzz over every decoder path)', () => {
  let seed = 0x1badb002;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const seeds = [arpFrame(MAC1, 1, 2), pingFrame(MAC1, 1, 2, 3), udpFrame(1, 2, 68, 67, Buffer.alloc(300)), udpFrame(1, 2, 53, 53, Buffer.alloc(40))];
  for (let i = 0; i < 20000; i++) {
    const base = seeds[i % seeds.length];
    const f = Buffer.from(base.subarray(0, rnd() % 2 ? base.length : rnd() % base.length));
    for (let k = rnd() % 8; k > 0; k--) if (f.length > 12) f[12 + (rnd() * 7 % (f.length - 12))] = rnd();
    const line = decodeFrame(f);
    assert.equal(typeof line, 'string');
  }
});
