/**
 * IPv4 reassembly (wire/ipv4-reassembly.ts): a packet cut into RFC 791 fragments comes out whole
 * in any order; duplicates are dropped alone; overlaps, stale packets and packets beyond the
 * limits are dropped and counted, never delivered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipv4Reassembler, type ReassemblyLimits } from '../../../src/wire/ipv4-reassembly.js';

const LIMITS: ReassemblyLimits = { maxPackets: 8, maxPacketsPerSource: 2, maxBytes: 1 << 20, timeoutMs: 1000 };
const SRC = 0x0a4d000a;

function dataOf(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

interface Frag { flagsFrag: number; data: Buffer }

/** `data` cut into fragments of `chunk` bytes (a multiple of 8). */
function fragments(data: Buffer, chunk: number): Frag[] {
  const out: Frag[] = [];
  for (let o = 0; o < data.length; o += chunk) {
    const n = Math.min(chunk, data.length - o);
    out.push({ flagsFrag: (o + n < data.length ? 0x2000 : 0) | (o / 8), data: data.subarray(o, o + n) });
  }
  return out;
}

/** Feeds fragments as the wire would (each in a receive buffer reused after the call); returns what came out. */
function feed(r: Ipv4Reassembler, frags: Frag[], key = 1, source = SRC, nowMs = 0): Buffer[] {
  const got: Buffer[] = [];
  for (const f of frags) {
    const rx = Buffer.alloc(f.data.length + 8, 0xee);
    f.data.copy(rx, 4);
    const p = r.add(source, key, f.flagsFrag, rx, 4, f.data.length, nowMs);
    if (p !== null) got.push(Buffer.from(p.buf.subarray(0, p.totalBytes)));
    rx.fill(0xdd);
  }
  return got;
}

test('in order, out of order and with a fragment twice: the packet comes out once, byte for byte', () => {
  const r = new Ipv4Reassembler(LIMITS);
  const data = dataOf(3008, 1);
  const fr = fragments(data, 1480);
  assert.deepEqual(feed(r, fr, 1), [data]);
  assert.deepEqual(feed(r, [fr[2], fr[0], fr[1]], 2), [data]);
  assert.deepEqual(feed(r, [fr[1], fr[1], fr[2], fr[0]], 3), [data]);
  assert.equal(r.counters.reassembled, 3);
  assert.equal(r.counters.fragmentsDropped, 1, 'the duplicate alone');
  assert.equal(r.bytesHeld, 0);
  assert.equal(r.packets, 0);
  // A 65,535-byte packet in 576-byte-MTU fragments (114 of them), backwards.
  const big = dataOf(65535, 2);
  assert.deepEqual(feed(r, fragments(big, 552).reverse(), 4), [big]);
});

test('overlapping fragments drop the whole packet, even when the overlap hides a gap', () => {
  const r = new Ipv4Reassembler(LIMITS);
  const data = dataOf(2400, 3);
  const a = { flagsFrag: 0x2000 | 0, data: data.subarray(0, 1200) };
  const b = { flagsFrag: 0x2000 | (800 / 8), data: data.subarray(800, 1600) };   // overlaps a
  const c = { flagsFrag: 1600 / 8, data: data.subarray(1600) };
  assert.deepEqual(feed(r, [a, b, c]), []);
  assert.equal(r.counters.overlapped, 1);
  assert.equal(r.counters.fragmentsDropped, 2, 'a and b; c starts a new packet');
  // A last fragment that disagrees with an earlier one on the end.
  const r2 = new Ipv4Reassembler(LIMITS);
  assert.deepEqual(feed(r2, [c, { flagsFrag: 2000 / 8, data: data.subarray(2000) }]), []);
  assert.equal(r2.counters.overlapped, 1);
  // A fragment that is not the last must hold a multiple of 8 bytes.
  assert.deepEqual(feed(r2, [{ flagsFrag: 0x2000, data: data.subarray(0, 100) }], 9), []);
  assert.equal(r2.counters.fragmentsDropped, 3);
});

test('a packet not complete within the timeout is dropped (injected clock)', () => {
  const r = new Ipv4Reassembler(LIMITS);
  const data = dataOf(3000, 4);
  const fr = fragments(data, 1480);
  assert.deepEqual(feed(r, [fr[0]], 1, SRC, 0), []);
  assert.deepEqual(feed(r, [fr[1], fr[2]], 1, SRC, 1001), [], 'the first fragment went stale; the rest wait for a new first one');
  assert.equal(r.counters.timedOut, 1);
  assert.equal(r.counters.fragmentsDropped, 1);
  assert.deepEqual(feed(r, [fr[0]], 1, SRC, 1500), [data], 'within the timeout of the second fragment');
  feed(r, [fr[0]], 7, SRC, 2000);
  r.expire(3001);
  assert.equal(r.counters.timedOut, 2);
  assert.equal(r.packets, 0);
  assert.equal(r.bytesHeld, 0);
});

test('limits: per source, over all sources, and bytes held; each evicts the oldest packet and counts it', () => {
  const data = dataOf(3000, 5);
  const fr = fragments(data, 1480);
  // One source may hold 2 packets: its third evicts its oldest; another source is untouched.
  const r = new Ipv4Reassembler(LIMITS);
  feed(r, [fr[0]], 100, SRC + 1);
  for (let k = 1; k <= 3; k++) feed(r, [fr[0]], k);
  assert.equal(r.packets, 3);
  assert.equal(r.counters.evicted, 1);
  assert.deepEqual(feed(r, [fr[1], fr[2]], 100, SRC + 1), [data], 'the other source still completes');
  assert.deepEqual(feed(r, [fr[1], fr[2]], 1), [], 'key 1 was evicted');
  assert.deepEqual(feed(r, [fr[1], fr[2]], 3), [data]);
  // 8 packets in all: a flood of first fragments from many sources keeps at most 8.
  const r2 = new Ipv4Reassembler(LIMITS);
  for (let s = 0; s < 100; s++) feed(r2, [fr[0]], 1, 0x0b000000 + s);
  assert.equal(r2.packets, 8);
  assert.equal(r2.counters.evicted, 92);
  assert.ok(r2.bytesHeld <= 8 * 1480);
  // Bytes: 4,000 bytes held at most; the oldest other packets go.
  const r3 = new Ipv4Reassembler({ ...LIMITS, maxPacketsPerSource: 8, maxBytes: 4000 });
  for (let k = 1; k <= 3; k++) feed(r3, [fr[0]], k);
  assert.equal(r3.bytesHeld, 2960, 'the third first fragment evicted the first packet');
  assert.equal(r3.counters.evicted, 1);
  assert.deepEqual(feed(r3, [fr[1], fr[2]], 3), [data]);
  assert.ok(r3.bytesHeld <= 4000);
});
