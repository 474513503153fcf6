import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DHCPACK, DHCPDISCOVER, DHCPREQUEST } from '../../../src/wire/dhcp.js';
import {
  DNS_RCODE_NOERROR, DNS_RCODE_NXDOMAIN, DNS_RCODE_REFUSED, DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_PTR, emitDns, encodeDnsName, parseDns,
} from '../../../src/wire/dns.js';
import type { DnsRepr } from '../../../src/wire/dns.js';
import { NSLOOKUP_A_QUERY_HEX } from '../wire/golden.js';
import { HOST_IP, MAC_A, MAC_B, clientMsg, decodeDhcp, decodeUdp, dhcpFrame, ipv4UdpFrame, rig } from './fakes.js';
import type { Rig } from './fakes.js';

const GUEST_IP = 0x0a4d0063;

function query(name: string, type: number, id = 0x77): Buffer {
  const q: DnsRepr = {
    id, response: false, opcode: 0, authoritative: false, truncated: false, recursionDesired: true, recursionAvailable: false,
    rcode: 0, questions: [{ name, type, class: 1 }], answers: [], authorities: [], additionals: [],
  };
  return emitDns(q);
}

function ask(r: Rig, payload: Buffer): DnsRepr | null {
  const hostMac = parseInt(r.services.status().hostMac.replace(/:/g, ''), 16);
  r.deliver(ipv4UdpFrame(MAC_A, hostMac, GUEST_IP, HOST_IP, 40000, 53, payload));
  const frames = r.sink.take();
  if (frames.length === 0) return null;
  const u = decodeUdp(frames[0]);
  assert.equal(u.srcPort, 53);
  assert.equal(u.dstPort, 40000);
  assert.equal(u.ipDst, GUEST_IP);
  assert.equal(u.ethDst, MAC_A);
  return parseDns(u.payload, 0, u.payload.length);
}

function bind(r: Rig, mac: number, hostname: string): number {
  r.deliver(dhcpFrame(clientMsg(mac, DHCPDISCOVER, { hostname })));
  const offer = decodeDhcp(r.sink.take()[0]).dhcp;
  r.deliver(dhcpFrame(clientMsg(mac, DHCPREQUEST, { hostname, serverId: HOST_IP, requestedIp: offer.yiaddr })));
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPACK);
  return offer.yiaddr;
}

test('A and PTR for hostnames sent in DHCP, in the "lan" zone', async () => {
  const r = await rig();
  const ip = bind(r, MAC_B, 'guest1');
  const a = ask(r, Buffer.from(NSLOOKUP_A_QUERY_HEX, 'hex'))!;          // real busybox query for guest1.lan
  assert.equal(a.response, true);
  assert.equal(a.id, 0x8a56);
  assert.equal(a.authoritative, true);
  assert.equal(a.rcode, DNS_RCODE_NOERROR);
  assert.equal(a.answers.length, 1);
  assert.equal(a.answers[0].type, DNS_TYPE_A);
  assert.equal(a.answers[0].data.readUInt32BE(0), ip);
  const bare = ask(r, query('GUEST1', DNS_TYPE_A))!;
  assert.equal(bare.answers[0].data.readUInt32BE(0), ip);
  const ptr = ask(r, query('10.0.77.10.in-addr.arpa', DNS_TYPE_PTR))!;
  assert.equal(ptr.rcode, DNS_RCODE_NOERROR);
  assert.deepEqual(ptr.answers[0].data, encodeDnsName('guest1.lan'));
  const self = ask(r, query('lanparty.lan', DNS_TYPE_A))!;
  assert.equal(self.answers[0].data.readUInt32BE(0), HOST_IP);
  const aaaa = ask(r, query('guest1.lan', DNS_TYPE_AAAA))!;
  assert.equal(aaaa.rcode, DNS_RCODE_NOERROR);
  assert.equal(aaaa.answers.length, 0);
});

test('unknown local names are NXDOMAIN, everything else is REFUSED at once', async () => {
  const r = await rig();
  assert.equal(ask(r, query('nobody.lan', DNS_TYPE_A))!.rcode, DNS_RCODE_NXDOMAIN);
  assert.equal(ask(r, query('99.0.77.10.in-addr.arpa', DNS_TYPE_PTR))!.rcode, DNS_RCODE_NXDOMAIN);
  const ext = ask(r, query('example.com', DNS_TYPE_A))!;
  assert.equal(ext.rcode, DNS_RCODE_REFUSED);
  assert.equal(ext.authoritative, false);
  assert.equal(ask(r, query('1.1.168.192.in-addr.arpa', DNS_TYPE_PTR))!.rcode, DNS_RCODE_REFUSED);
  const c = r.services.status().dns!.counters;
  assert.equal(c.queries, 4);
  assert.equal(c.refused, 2);
  assert.equal(c.nxdomain, 2);
});

test('malformed queries are counted and dropped; responses are ignored; the responder keeps answering', async () => {
  const r = await rig();
  const loop = Buffer.from('000001000001000000000000c00c00010001', 'hex');
  assert.equal(ask(r, loop), null);
  assert.equal(ask(r, Buffer.from('0001', 'hex')), null);
  const resp = query('guest1.lan', DNS_TYPE_A);
  resp[2] |= 0x80;
  assert.equal(ask(r, resp), null);
  const c = r.services.status().dns!.counters;
  assert.equal(c.malformed, 2);
  assert.equal(c.responsesIgnored, 1);
  assert.equal(ask(r, query('example.com', DNS_TYPE_A))!.rcode, DNS_RCODE_REFUSED);
});

test('DHCP hands out the virtual host as DNS server and the domain; a custom domain is served', async () => {
  const r = await rig({ domain: 'party.test' });
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPDISCOVER)));
  const o = decodeDhcp(r.sink.take()[0]).dhcp;
  assert.deepEqual(o.dnsServers, [HOST_IP]);
  assert.equal(o.domainName, 'party.test');
  bind(r, MAC_A, 'box');
  assert.equal(ask(r, query('box.party.test', DNS_TYPE_A))!.rcode, DNS_RCODE_NOERROR);
  assert.equal(ask(r, query('box.lan', DNS_TYPE_A))!.rcode, DNS_RCODE_REFUSED);
});
