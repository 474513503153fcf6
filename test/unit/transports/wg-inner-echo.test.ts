/**
 * The liveness probe to stock peers (inner.ts): an ICMP echo request from our tunnel address to the
 * peer's, which a Linux kernel answers; the reply is counted, never delivered as a frame.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decapsulator, ECHO_ID, Encapsulator, INNER_NONE, ipToNumber } from '../../../src/transports/wg/inner.js';

function sum16(b: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += b.readUInt16BE(off + i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

test('echo request: IPv4 protocol 1, valid header and ICMP checksums, our identifier, the sequence given', () => {
  const enc = new Encapsulator(ipToNumber('10.99.0.1'), ipToNumber('10.99.0.3'), 1420, 42);
  const pkts: Buffer[] = [];
  enc.echo(0x10005, (p) => pkts.push(p));
  assert.equal(pkts.length, 1);
  const p = pkts[0];
  assert.equal(p.length, 36);
  assert.equal(p[9], 1);
  assert.equal(p.readUInt16BE(2), 36);
  assert.equal(sum16(p, 0, 20), 0xffff, 'IPv4 header checksum');
  assert.equal(p.readUInt32BE(12), ipToNumber('10.99.0.1'));
  assert.equal(p.readUInt32BE(16), ipToNumber('10.99.0.3'));
  assert.equal(p[20], 8, 'echo request');
  assert.equal(p.readUInt16BE(24), ECHO_ID);
  assert.equal(p.readUInt16BE(26), 5, 'sequence, 16 bits');
  assert.equal(sum16(p, 20, 16), 0xffff, 'ICMP checksum');
});

test('echo reply from the peer is counted and not delivered; other ICMP stays "not-udp"', () => {
  const dec = new Decapsulator(ipToNumber('10.99.0.1'), ipToNumber('10.99.0.3'), 42);
  // The reply as a kernel builds it: addresses swapped, type 0, same identifier and data.
  const enc = new Encapsulator(ipToNumber('10.99.0.3'), ipToNumber('10.99.0.1'), 1420, 42);
  let reply: Buffer = Buffer.alloc(0);
  enc.echo(1, (p) => { reply = p; });
  reply[20] = 0;
  assert.equal(dec.packet(reply, 0, reply.length, 0), INNER_NONE);
  assert.equal(dec.counters['echo-reply'], 1);
  const unreachable = Buffer.from(reply);
  unreachable[20] = 3;
  assert.equal(dec.packet(unreachable, 0, unreachable.length, 0), INNER_NONE);
  assert.equal(dec.counters['not-udp'], 1);
  assert.equal(dec.counters['echo-reply'], 1);
});
