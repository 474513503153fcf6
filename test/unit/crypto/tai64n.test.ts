import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tai64n, tai64nAfter } from '../../../src/crypto/index.js';

test('TAI64N: label 2^62 + 10 + seconds, nanoseconds whitened to 2^24 ns', () => {
  assert.equal(tai64n(0).toString('hex'), '400000000000000a00000000');
  // 2009-02-13T23:31:30.5Z
  const t = tai64n(1234567890500);
  assert.equal(t.readUInt32BE(0), 0x40000000);
  assert.equal(t.readUInt32BE(4), 1234567890 + 10);
  const ns = t.readUInt32BE(8);
  assert.equal(ns % 0x1000000, 0);
  assert.ok(ns <= 500_000_000 && ns > 500_000_000 - 0x1000000);
});

test('TAI64N ordering', () => {
  assert.ok(tai64nAfter(tai64n(2000), tai64n(1000)));
  assert.ok(!tai64nAfter(tai64n(1000), tai64n(1000)));
  assert.ok(!tai64nAfter(tai64n(1000), tai64n(1001))); // same 16.8 ms bucket: not after
  assert.ok(tai64nAfter(tai64n(1100), tai64n(1000)));
});
