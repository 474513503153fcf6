/**
 * Inner IPv4 fragmentation and reassembly (inner.ts): a frame whose VXLAN packet exceeds the
 * tunnel MTU crosses as RFC 791 fragments and comes out whole, in any arrival order; duplicates,
 * overlaps, stale and excess partial packets are dropped and counted, never delivered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decapsulator, Encapsulator, INNER_FRAME, INNER_NONE, ipToNumber } from '../../../src/transports/wg/inner.js';

const A = ipToNumber('10.99.0.1');
const B = ipToNumber('10.99.0.2');
const VNI = 42;

function frameOf(len: number, seed: number): Buffer {
  const f = Buffer.alloc(len);
  for (let i = 0; i < len; i++) f[i] = (i * 31 + seed * 7) & 0xff;
  f[0] = 0x02; // a unicast destination
  return f;
}

/** The IP packets (copies) that carry `frame` at `mtu`. */
function packetsOf(enc: Encapsulator, frame: Buffer): Buffer[] {
  const out: Buffer[] = [];
  enc.frame(frame, 0, frame.length, (p) => out.push(Buffer.from(p)));
  return out;
}

/** Feeds packets in order; returns the frames delivered (copies). */
function feed(dec: Decapsulator, pkts: Buffer[], nowMs = 0): Buffer[] {
  const got: Buffer[] = [];
  for (const p of pkts) {
    // As on the wire: the packet sits in a receive buffer that is reused right after the call.
    const rx = Buffer.alloc(p.length + 16, 0xee);
    p.copy(rx, 8);
    const r = dec.packet(rx, 8, p.length, nowMs);
    if (r === INNER_FRAME) got.push(Buffer.from(dec.out.buf.subarray(dec.out.off, dec.out.off + dec.out.len)));
    else assert.equal(r, INNER_NONE);
    rx.fill(0xdd);
  }
  return got;
}

test('a 1514-byte frame at MTU 1420: two fragments within the MTU, delivered whole after the last', () => {
  const enc = new Encapsulator(A, B, 1420, VNI);
  const dec = new Decapsulator(B, A, VNI);
  const f = frameOf(1514, 1);
  const pkts = packetsOf(enc, f);
  assert.equal(pkts.length, 2);
  for (const p of pkts) assert.ok(p.length <= 1420, `fragment of ${p.length} bytes`);
  assert.equal(pkts[0].readUInt16BE(6) & 0x6000, 0x2000, 'first: MF set, DF clear');
  assert.equal(pkts[1].readUInt16BE(6) & 0x2000, 0, 'last: MF clear');
  assert.equal(pkts[0].readUInt16BE(4), pkts[1].readUInt16BE(4), 'one IP id');
  assert.deepEqual(feed(dec, pkts.slice(0, 1)), []);
  assert.deepEqual(feed(dec, pkts.slice(1)), [f]);
  assert.equal(dec.counters.reassembled, 1);
  assert.equal(dec.counters['fragment-dropped'], 0);
});

test('any arrival order gives the same frame, also for a 9000-byte frame in many fragments', () => {
  const enc = new Encapsulator(A, B, 576, VNI);
  const dec = new Decapsulator(B, A, VNI);
  let seed = 2;
  for (const len of [1514, 9000, 60, 4000]) {
    const f = frameOf(len, seed++);
    const pkts = packetsOf(enc, f);
    const orders = [pkts, [...pkts].reverse(), pkts.map((p, i) => pkts[(i * 7 + 3) % pkts.length])];
    for (const order of orders) {
      if (new Set(order).size !== pkts.length) continue; // (7 not coprime with the count)
      assert.deepEqual(feed(dec, order), [f], `${len} bytes, ${pkts.length} packets`);
    }
  }
  assert.equal(dec.counters['fragment-dropped'], 0);
});

test('fragments of several packets interleaved: each comes out whole, a smaller after a larger one included', () => {
  const enc = new Encapsulator(A, B, 576, VNI);
  const dec = new Decapsulator(B, A, VNI);
  const frames = [frameOf(3000, 10), frameOf(1514, 11), frameOf(700, 12)];
  const lists = frames.map((f) => packetsOf(enc, f));
  const mixed: Buffer[] = [];
  for (let i = 0; lists.some((l) => i < l.length); i++) for (const l of lists) if (i < l.length) mixed.push(l[i]);
  const got = feed(dec, mixed);
  assert.equal(got.length, 3);
  for (const f of frames) assert.ok(got.some((g) => g.equals(f)), `frame of ${f.length} bytes`);
  assert.equal(dec.counters.reassembled, 3);
});

test('a duplicate fragment is counted and the packet is delivered once', () => {
  const enc = new Encapsulator(A, B, 576, VNI);
  const dec = new Decapsulator(B, A, VNI);
  const f = frameOf(1514, 20);
  const pkts = packetsOf(enc, f);
  assert.deepEqual(feed(dec, [pkts[0], pkts[0], ...pkts.slice(1)]), [f]);
  assert.equal(dec.counters['fragment-dropped'], 1);
  assert.equal(dec.counters.reassembled, 1);
});

test('overlapping fragments never deliver a frame; bad sizes are dropped', () => {
  const enc = new Encapsulator(A, B, 576, VNI);
  const dec = new Decapsulator(B, A, VNI);
  const pkts = packetsOf(enc, frameOf(1514, 30));
  // The second fragment claims to start 8 bytes early: total bytes add up, but not the coverage.
  const shifted = Buffer.from(pkts[1]);
  shifted.writeUInt16BE(shifted.readUInt16BE(6) - 1, 6);
  const last = Buffer.from(pkts[pkts.length - 1]);
  const got = feed(dec, [pkts[0], shifted, ...pkts.slice(2, -1), last]);
  assert.deepEqual(got, []);
  assert.ok(dec.counters['fragment-dropped'] >= 1);
  // A non-final fragment whose length is not a multiple of 8, and one past 65535 bytes.
  const odd = Buffer.from(pkts[0].subarray(0, pkts[0].length - 3));
  odd.writeUInt16BE(odd.length, 2);
  const far = Buffer.from(pkts[0]);
  far.writeUInt16BE(0x2000 | 0x1fff, 6);
  const before = dec.counters['fragment-dropped'];
  assert.deepEqual(feed(dec, [odd, far]), []);
  assert.equal(dec.counters['fragment-dropped'], before + 2);
});

test('a partial packet older than the reassembly timeout is dropped; a late fragment does not complete it', () => {
  const enc = new Encapsulator(A, B, 1420, VNI);
  const dec = new Decapsulator(B, A, VNI);
  const pkts = packetsOf(enc, frameOf(1514, 40));
  assert.deepEqual(feed(dec, [pkts[0]], 0), []);
  assert.deepEqual(feed(dec, [pkts[1]], 2001), []);
  assert.equal(dec.counters['fragment-dropped'], 1, 'the stale first fragment');
  assert.equal(dec.counters.reassembled, 0);
  // Within the timeout it would have completed.
  const again = packetsOf(enc, frameOf(1514, 41));
  assert.equal(feed(dec, [again[0]], 3000).length + feed(dec, [again[1]], 4999).length, 1);
});

test('at most 16 partial packets per peer: the oldest goes first and is counted', () => {
  const enc = new Encapsulator(A, B, 1420, VNI);
  const dec = new Decapsulator(B, A, VNI);
  const all = Array.from({ length: 17 }, (_, i) => packetsOf(enc, frameOf(1514, 50 + i)));
  feed(dec, all.map((p) => p[0]));
  assert.equal(dec.counters['fragment-dropped'], 1, 'the first partial packet was evicted');
  const done = feed(dec, all.slice(1).map((p) => p[1]));
  assert.equal(done.length, 16);
  for (let i = 1; i < 17; i++) assert.ok(done[i - 1].equals(frameOf(1514, 50 + i)));
  assert.deepEqual(feed(dec, [all[0][1]]), [], 'the evicted packet\'s last fragment finds nothing to complete');
});

test('thousands of fragmented frames of changing sizes come out intact (buffers reused safely)', () => {
  const enc = new Encapsulator(A, B, 1420, VNI);
  const dec = new Decapsulator(B, A, VNI);
  const sizes = [1514, 9000, 1500, 60000, 1424, 3000];
  for (let i = 0; i < 3000; i++) {
    const f = frameOf(sizes[i % sizes.length], i);
    const got = feed(dec, packetsOf(enc, f));
    if (got.length !== 1 || !got[0].equals(f)) assert.fail(`frame ${i} (${f.length} bytes) came out wrong`);
  }
  assert.equal(dec.counters['fragment-dropped'], 0);
});
