import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blake2s, Blake2s } from '../../../src/crypto/index.js';

const seq = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));

test('BLAKE2s-256("abc"): RFC 7693 Appendix B', () => {
  assert.equal(blake2s(32, undefined, Buffer.from('abc')).toString('hex'), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
});

test('keyed BLAKE2s: blake2s-kat.txt (key 00..1f), empty, one byte, one and two blocks', () => {
  const key = seq(32);
  assert.equal(blake2s(32, key).toString('hex'), '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49');
  assert.equal(blake2s(32, key, seq(1)).toString('hex'), '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1');
  // Cross-checked with Python's hashlib.blake2s (an independent implementation).
  assert.equal(blake2s(32, key, seq(64)).toString('hex'), '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4');
  assert.equal(blake2s(32, key, seq(65)).toString('hex'), '21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8');
});

test('keyed BLAKE2s-128 (WireGuard MAC shape), split updates give the same digest', () => {
  const key = seq(16);
  const want = 'b8d300fa7937e4d1e67c8468df4c9a43'; // hashlib.blake2s(range(200), key=range(16), digest_size=16)
  assert.equal(blake2s(16, key, seq(200)).toString('hex'), want);
  const data = seq(200);
  for (const cut of [0, 1, 63, 64, 65, 128, 199]) {
    const h = new Blake2s(16, key);
    h.update(data.subarray(0, cut)).update(data.subarray(cut));
    assert.equal(h.digest().toString('hex'), want, `cut at ${cut}`);
  }
});

test('BLAKE2s rejects bad sizes', () => {
  assert.throws(() => new Blake2s(0), RangeError);
  assert.throws(() => new Blake2s(33), RangeError);
  assert.throws(() => new Blake2s(32, Buffer.alloc(33)), RangeError);
});
