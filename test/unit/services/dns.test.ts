import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DHCPACK, DHCPDISCOVER, DHCPREQUEST } from '../../../src/wire/dhcp.js';
import {
  DNS_RCODE_FORMERR, DNS_RCODE_NOERROR, DNS_RCODE_NOTIMP, DNS_RCODE_NXDOMAIN, DNS_RCODE_REFUSED, DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_PTR, emitDns, encodeDnsName, parseDns,
} from '../../../src/wire/dns.js';
import type { DnsRepr } from '../../../src/wire/dns.js';
import { NSLOOKUP_A_QUERY_HEX } from '../../../lab/golden.js';
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

/** The reply payload to `payload`, or null (raw bytes: the reply may not parse as a full message). */
function askRaw(r: Rig, payload: Buffer): Buffer | null {
  const hostMac = parseInt(r.services.status().hostMac.replace(/:/g, ''), 16);
  r.deliver(ipv4UdpFrame(MAC_A, hostMac, GUEST_IP, HOST_IP, 40000, 53, payload));
  const frames = r.sink.take();
  return frames.length === 0 ? null : Buffer.from(decodeUdp(frames[0]).payload);
}

test('a 1.5 KB query of hundreds of pointer-compressed questions gets a header-only FORMERR, no larger than the query', async () => {
  const r = await rig();
  // One long name (four 60-byte labels) in the first question, then 300 questions that point to it.
  const first = encodeDnsName(['a', 'b', 'c', 'd'].map((c) => c.repeat(60)).join('.'));
  const parts = [Buffer.alloc(12), first, Buffer.from('00010001', 'hex')];
  for (let i = 0; i < 300; i++) parts.push(Buffer.from('c00c00010001', 'hex'));
  const q = Buffer.concat(parts);
  q.writeUInt16BE(0x1234, 0);
  q.writeUInt16BE(0x0100, 2);
  q.writeUInt16BE(301, 4);
  assert.ok(q.length >= 1500 && q.length <= 2100, `query is ${q.length} bytes`);
  const reply = askRaw(r, q)!;
  assert.ok(reply.length <= q.length, `reply ${reply.length} bytes for a ${q.length}-byte query`);
  assert.equal(reply.length, 12);
  const m = parseDns(reply, 0, reply.length);
  assert.equal(m.rcode, DNS_RCODE_FORMERR);
  assert.equal(m.id, 0x1234);
  assert.equal(m.questions.length, 0);
  // A query of 0 questions and another opcode (NOTIMP) get the header alone too.
  const none = Buffer.from(q.subarray(0, 12));
  none.writeUInt16BE(0, 4);
  assert.equal(askRaw(r, none)!.length, 12);
  const notify = query('guest1.lan', DNS_TYPE_A);
  notify[2] |= 4 << 3;
  const ni = askRaw(r, notify)!;
  assert.equal(ni.length, 12);
  assert.equal(parseDns(ni, 0, 12).rcode, DNS_RCODE_NOTIMP);
  const c = r.services.status().dns!.counters;
  assert.equal(c.malformed, 2);
  assert.equal(c.notImplemented, 1);
});

test('no reply grows past its query: a question compressed into the header is answered with TC; answers point to the question', async () => {
  const r = await rig();
  // "example" then a pointer to offset 7 of the header, where ANCOUNT's low byte (2), NSCOUNT ("co")
  // and ARCOUNT's high byte (0) read as the label "co": the name is example.co, 12 bytes written
  // out against 10 in the query.
  const q = Buffer.from('0077' + '0100' + '0001' + '0002' + '636f' + '0000' + '076578616d706c65' + 'c007' + '00010001', 'hex');
  const refused = askRaw(r, q)!;
  assert.ok(refused.length <= q.length, `reply ${refused.length} > query ${q.length}`);
  const m = parseDns(refused, 0, refused.length);
  assert.equal(m.truncated, true);
  assert.equal(m.rcode, DNS_RCODE_REFUSED);
  assert.equal(m.questions.length, 0);
  assert.equal(r.services.status().dns!.counters.truncated, 1);
  // The same question written plainly is echoed as usual.
  const plain = query('example.co', DNS_TYPE_A);
  assert.equal(askRaw(r, plain)!.length, plain.length);
  // An A answer costs 16 bytes over the question: its owner name is a pointer to it.
  const ip = bind(r, MAC_B, 'guest1');
  const aq = query('guest1.lan', DNS_TYPE_A);
  const a = askRaw(r, aq)!;
  assert.equal(a.length, aq.length + 16);
  assert.equal(a.readUInt16BE(aq.length), 0xc00c);
  assert.equal(parseDns(a, 0, a.length).answers[0].data.readUInt32BE(0), ip);
  assert.equal(r.services.status().dns!.counters.handlerErrors, 0);
});

test('an exception inside the DNS responder costs only that query: counted, logged, no reply', async () => {
  const { DnsResponder } = await import('../../../src/services/dns/responder.js');
  const lines: string[] = [];
  const log = { error: (m: string) => lines.push(m), info: () => {}, debug: () => {}, child() { return log; } };
  const d = new DnsResponder('lan', HOST_IP, { network: 0x0a4d0000, mask: 0xffffff00, prefixLength: 24, broadcast: 0x0a4d00ff }, {
    lookupName: () => { throw new Error('table bug'); }, lookupAddress: () => null,
  }, log, { nowMs: () => 0 });
  assert.equal(d.handle(query('guest1.lan', DNS_TYPE_A)), null);
  assert.equal(d.counters.handlerErrors, 1);
  assert.ok(lines.some((l) => l.includes('internal error answering a DNS query') && l.includes('table bug')));
  assert.equal(parseDns(d.handle(query('example.com', DNS_TYPE_A))!, 0, 29).rcode, DNS_RCODE_REFUSED);
});
