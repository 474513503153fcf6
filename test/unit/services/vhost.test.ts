import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { BROADCAST_MAC, ETHERTYPE_IPV4, buildFrame, dstMac, srcMac, writeMac } from '../../../src/wire/ethernet.js';
import { Ipv4Reassembler } from '../../../src/wire/ipv4-reassembly.js';
import { REASSEMBLY_MAX_PACKETS, REASSEMBLY_TIMEOUT_MS } from '../../../src/services/vhost/vhost.js';
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

/**
 * A ping larger than the MTU as Linux sends it: `ping -c1 -s 3000 -p 6c616e7061727479 10.77.0.1`
 * from 10.77.0.10 over a 1500-MTU veth (6.x kernel), captured with tcpdump -w. Three frames of 1514,
 * 1514 and 82 bytes (IP id 31677, offsets 0, 1480, 2960; ICMP id 13501, seq 1), each after a
 * 2-byte big-endian length, gzipped, base64.
 */
const LINUX_PING_3000 = 'H4sIAAAAAAACA2N9xcQABIxgkouDwZWB9U71XgUGB8Yj+7l8GbiAmJGDYd4nk70MjHUfxLJBylgnsoIohpzEvILEopLKUXqUHqVH6VF6cNOs2Mv6ncCyng1W1o+G1Sg9So/So/TQphmC0Mt6BpfqvYxFDowvnpJb1gMAYRXVLCwMAAA=';

function linuxPingFrames(hostMac: number): Buffer[] {
  const blob = gunzipSync(Buffer.from(LINUX_PING_3000, 'base64'));
  const frames: Buffer[] = [];
  for (let o = 0; o < blob.length;) {
    const n = blob.readUInt16BE(o);
    const f = Buffer.from(blob.subarray(o + 2, o + 2 + n));
    writeMac(f, 0, hostMac);                                   // captured to 02:00:00:00:00:01
    frames.push(f);
    o += 2 + n;
  }
  return frames;
}

/** Reassembles the host's reply fragments (checked parse of each) into one ICMP message. */
function replyOf(frames: Buffer[]): { icmp: ReturnType<typeof parseIcmp>; sizes: number[] } {
  const r = new Ipv4Reassembler({ maxPackets: 1, maxPacketsPerSource: 1, maxBytes: 65535, timeoutMs: 1000 });
  let whole: Buffer | null = null;
  for (const f of frames) {
    const ip = parseIpv4(f, 14, f.length - 14);
    assert.equal(ip.src, HOST_IP);
    assert.equal(ip.dst, 0x0a4d000a);
    const p = r.add(ip.src, ip.ident, f.readUInt16BE(14 + 6), f, 14 + ip.headerBytes, ip.payloadBytes, 0);
    if (p !== null) whole = Buffer.from(p.buf.subarray(0, p.totalBytes));
  }
  assert.ok(whole !== null, 'the reply fragments reassemble');
  return { icmp: parseIcmp(whole, 0, whole.length), sizes: frames.map((f) => f.length) };
}

test('a ping larger than the MTU (Linux-built fragments) is reassembled and answered with fragments that fit the MTU', async () => {
  const r = await rig();
  const frames = linuxPingFrames(hostMacOf(r));
  for (const f of frames) r.deliver(f);
  const out = r.sink.take();
  const { icmp, sizes } = replyOf(out);
  assert.deepEqual(sizes, [1514, 1514, 82]);
  assert.equal(icmp.type, 0);
  assert.equal(icmp.ident, 13501);
  assert.equal(icmp.seq, 1);
  assert.equal(icmp.data.length, 3000);
  assert.equal(icmp.data.subarray(16, 24).toString('latin1'), 'lanparty', 'ping -p pattern after the timestamp');
  const st = r.services.status().vhost;
  assert.equal(st.icmpEchoReplies, 1);
  assert.equal(st.reassembly.reassembled, 1);
  assert.equal(st.drops.fragment, 0);
});

test('fragments out of order and one twice: one reply; the duplicate is a counted fragment drop', async () => {
  const r = await rig();
  const [a, b, c] = linuxPingFrames(hostMacOf(r));
  for (const f of [c, a, a, b]) r.deliver(f);
  const out = r.sink.take();
  assert.equal(out.length, 3);
  assert.equal(replyOf(out).icmp.data.length, 3000);
  assert.equal(r.services.status().vhost.drops.fragment, 1);
});

test('overlapping fragments are dropped with their packet, never answered', async () => {
  const r = await rig();
  const [a, b, c] = linuxPingFrames(hostMacOf(r));
  // b moved to offset 1472: it overlaps a by 8 bytes (header checksum redone).
  b.writeUInt16BE(0x2000 | (1472 / 8), 14 + 6);
  b.writeUInt16BE(0, 14 + 10);
  b.writeUInt16BE(internetChecksum(b, 14, 20), 14 + 10);
  for (const f of [a, b, c]) r.deliver(f);
  assert.equal(r.sink.take().length, 0);
  const st = r.services.status().vhost;
  assert.equal(st.reassembly.overlapped, 1);
  assert.equal(st.drops.fragment, 2, 'a and b; c waits alone for a first fragment');
});

test('fragments that do not all come within the timeout are dropped (injected clock)', async () => {
  const r = await rig();
  const [a, b, c] = linuxPingFrames(hostMacOf(r));
  r.deliver(a);
  r.deliver(b);
  r.clock.t += REASSEMBLY_TIMEOUT_MS + 1;
  r.deliver(c);
  assert.equal(r.sink.take().length, 0);
  const st = r.services.status().vhost;
  assert.equal(st.reassembly.timedOut, 1);
  assert.equal(st.drops.fragment, 2);
  // The same ping again, in time, is answered.
  for (const f of [a, b, c]) r.deliver(f);
  assert.equal(r.sink.take().length, 3);
});

test('a flood of first fragments from many sources holds at most the reassembly limits; a real ping still gets through', async () => {
  const r = await rig();
  const hostMac = hostMacOf(r);
  const [a, b, c] = linuxPingFrames(hostMac);
  for (let s = 0; s < 500; s++) {
    const f = Buffer.from(a);
    f.writeUInt32BE(0x0a4e0000 + s, 14 + 12);                   // another source
    f.writeUInt16BE(s, 14 + 4);                                 // another id
    f.writeUInt16BE(0, 14 + 10);
    f.writeUInt16BE(internetChecksum(f, 14, 20), 14 + 10);
    r.deliver(f);
  }
  const st = r.services.status().vhost;
  assert.equal(st.reassembly.evicted, 500 - REASSEMBLY_MAX_PACKETS);
  for (const f of [a, b, c]) r.deliver(f);
  assert.equal(r.sink.take().length, 3, 'a whole ping arriving together is answered');
});

test('a ping of the largest size (65,507 bytes of data) is answered; a packet over 65,535 bytes is not', async () => {
  const r = await rig();
  const hostMac = hostMacOf(r);
  const data = Buffer.alloc(65507, 0x5a);
  const icmp = Buffer.alloc(8 + data.length);
  emitIcmpEcho({ type: 8, code: 0, ident: 1, seq: 2, data }, icmp, 0);
  const frag = (o: number, n: number, more: boolean, ident = 77) => {
    const p = Buffer.alloc(20 + n);
    emitIpv4({ src: GUEST_IP, dst: HOST_IP, protocol: IP_PROTO_ICMP, ttl: 64, ident, dontFragment: false, payloadBytes: n, moreFragments: more, fragmentOffsetBytes: o }, p, 0);
    icmp.copy(p, 20, o, o + n);
    return buildFrame(hostMac, MAC_A, ETHERTYPE_IPV4, p);
  };
  for (let o = 0; o < icmp.length; o += 1480) r.deliver(frag(o, Math.min(1480, icmp.length - o), o + 1480 < icmp.length));
  const out = r.sink.take();
  assert.equal(out.length, 45);
  assert.equal(replyOf(out).icmp.data.length, 65507);
  // Ping of death: the last fragment ends at 65,528 bytes of payload, past 65,535 with a header.
  for (let o = 0; o < 65512; o += 1480) r.deliver(frag(o, Math.min(1480, 65512 - o), true, 78));
  const tail = Buffer.alloc(20 + 16);
  emitIpv4({ src: GUEST_IP, dst: HOST_IP, protocol: IP_PROTO_ICMP, ttl: 64, ident: 78, dontFragment: false, payloadBytes: 16, fragmentOffsetBytes: 65512 }, tail, 0);
  r.deliver(buildFrame(hostMac, MAC_A, ETHERTYPE_IPV4, tail));
  assert.equal(r.sink.take().length, 0);
  assert.equal(r.services.status().vhost.drops['malformed-ipv4'], 1);
});
