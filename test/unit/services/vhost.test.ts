import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BROADCAST_MAC, ETHERTYPE_IPV4, buildFrame, dstMac, srcMac } from '../../../src/wire/ethernet.js';
import { emitIcmpEcho, parseIcmp } from '../../../src/wire/icmp.js';
import { emitIpv4, parseIpv4, IP_PROTO_ICMP } from '../../../src/wire/ipv4.js';
import { internetChecksum } from '../../../src/wire/checksum.js';
import { HOST_IP, MAC_A, arpFrame, decodeArp, rig } from './fakes.js';

const GUEST_IP = 0x0a4d000a;

function hostMacOf(r: Awaited<ReturnType<typeof rig>>): number {
  return parseInt(r.services.status().hostMac.replace(/:/g, ''), 16);
}

function echoFrame(dst: number, dstIp: number, data: Buffer, badSum = false): Buffer {
  const p = Buffer.alloc(20 + 8 + data.length);
  emitIpv4({ src: GUEST_IP, dst: dstIp, protocol: IP_PROTO_ICMP, ttl: 64, ident: 9, dontFragment: true, payloadBytes: 8 + data.length }, p, 0);
  emitIcmpEcho({ type: 8, code: 0, ident: 0x4242, seq: 7, data }, p, 20);
  if (badSum) p[22] ^= 0xff;
  return buildFrame(dst, MAC_A, ETHERTYPE_IPV4, p);
}

test('answers ARP for its address with its MAC, padded to 60 bytes; ignores other targets', async () => {
  const r = await rig();
  const hostMac = hostMacOf(r);
  assert.equal(Math.floor(hostMac / 0x10000000000) & 3, 2);    // locally administered, unicast
  r.deliver(arpFrame(MAC_A, BROADCAST_MAC, { operation: 1, senderMac: MAC_A, senderIp: GUEST_IP, targetMac: 0, targetIp: HOST_IP }));
  const [f] = r.sink.take();
  assert.equal(f.length, 60);
  assert.equal(dstMac(f, 0), MAC_A);
  assert.equal(srcMac(f, 0), hostMac);
  const a = decodeArp(f);
  assert.deepEqual({ ...a }, { operation: 2, senderMac: hostMac, senderIp: HOST_IP, targetMac: MAC_A, targetIp: GUEST_IP, ethDst: MAC_A });
  r.deliver(arpFrame(MAC_A, BROADCAST_MAC, { operation: 1, senderMac: MAC_A, senderIp: GUEST_IP, targetMac: 0, targetIp: 0x0a4d0063 }));
  assert.equal(r.sink.take().length, 0);
  assert.equal(r.services.status().vhost.arpReplies, 1);
});

test('answers ICMP echo with the same id, seq and data, and correct IPv4 and ICMP checksums', async () => {
  const r = await rig();
  const hostMac = hostMacOf(r);
  const data = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef', 'latin1');
  r.deliver(echoFrame(hostMac, HOST_IP, data));
  const [f] = r.sink.take();
  assert.equal(dstMac(f, 0), MAC_A);
  const ip = parseIpv4(f, 14, f.length - 14);                  // throws on a bad header checksum
  assert.equal(internetChecksum(f, 14, 20), 0);
  assert.equal(ip.src, HOST_IP);
  assert.equal(ip.dst, GUEST_IP);
  const e = parseIcmp(f, 34, ip.payloadBytes);                 // throws on a bad ICMP checksum
  assert.equal(e.type, 0);
  assert.equal(e.ident, 0x4242);
  assert.equal(e.seq, 7);
  assert.deepEqual(e.data, data);
  assert.equal(r.services.status().vhost.icmpEchoReplies, 1);
});

test('bad frames are counted, never thrown, and the host keeps answering', async () => {
  const r = await rig();
  const hostMac = hostMacOf(r);
  r.deliver(echoFrame(hostMac, HOST_IP, Buffer.from('x'), true));        // bad ICMP checksum
  const badIp = echoFrame(hostMac, HOST_IP, Buffer.from('x'));
  badIp[14 + 10] ^= 1;                                                  // bad IPv4 header checksum
  r.deliver(badIp);
  r.deliver(echoFrame(MAC_A, GUEST_IP, Buffer.from('x')));              // unicast to another MAC
  r.deliver(echoFrame(hostMac, 0x0a4d0063, Buffer.from('x')));          // our MAC, another IP
  r.deliver(arpFrame(MAC_A, BROADCAST_MAC, { operation: 1, senderMac: MAC_A, senderIp: 1, targetMac: 0, targetIp: HOST_IP }).subarray(0, 30));
  const runt = Buffer.alloc(10);
  r.services.port.send(runt, 0, runt.length);
  assert.equal(r.sink.take().length, 0);
  const d = r.services.status().vhost.drops;
  assert.equal(d['malformed-icmp'], 1);
  assert.equal(d['malformed-ipv4'], 1);
  assert.equal(d['not-for-us'], 2);
  assert.equal(d['malformed-arp'], 1);
  assert.equal(r.services.port.counters.drops.runt, 1);
  r.deliver(echoFrame(hostMac, HOST_IP, Buffer.from('ok')));
  assert.equal(r.sink.take().length, 1);
  assert.equal(r.services.port.kind, 'service');
  assert.equal(r.services.port.counters.txFrames, 7);
});

test('random frames never throw out of send', async () => {
  const r = await rig({ probeMs: 300 });
  let seed = 11;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const hostMac = hostMacOf(r);
  for (let i = 0; i < 3000; i++) {
    const f = echoFrame(i % 2 ? hostMac : BROADCAST_MAC, HOST_IP, Buffer.alloc(rnd() % 40));
    f.writeUInt16BE([0x0800, 0x0806][i % 2], 12);
    for (let k = 0; k < 3; k++) f[14 + (rnd() % (f.length - 14))] = rnd() & 0xff;
    r.deliver(f);
  }
  assert.equal(r.services.status().vhost.drops.error, 0);
});
