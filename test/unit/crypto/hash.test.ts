import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hash, hmac, kdf, mac } from '../../../src/crypto/index.js';
import { blake2s } from '../../../src/crypto/blake2s.js';

test('HKDF over HMAC-BLAKE2s: wireguard-go kdf_test.go vector (key deadbeef, empty input)', () => {
  const [t0, t1, t2] = kdf(3, Buffer.from('deadbeef', 'hex'), Buffer.alloc(0));
  assert.equal(t0.toString('hex'), '55329dc80e690fd86bd9661f0851c9b3686df2b1fda0347bc3d27958254b32c6');
  assert.equal(t1.toString('hex'), '8dfc6d33a8118ffe408b31ddac25f72aee9115a45b69ba176ad012b243834fee');
  assert.equal(t2.toString('hex'), 'd69e852a2896569ea54a67969aa18002 87921dac53ce6db4b4e12192f263c4c4'.replace(' ', ''));
  assert.deepEqual(kdf(1, Buffer.from('deadbeef', 'hex'), Buffer.alloc(0)), [t0]);
  assert.deepEqual(kdf(2, Buffer.from('deadbeef', 'hex'), Buffer.alloc(0)), [t0, t1]);
});

test('HASH is unkeyed BLAKE2s-256 and matches our own BLAKE2s; HMAC is RFC 2104 over it', () => {
  const data = Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
  assert.deepEqual(hash(data), blake2s(32, undefined, data));
  // The initial chaining key every WireGuard implementation precomputes.
  assert.equal(hash(data).toString('hex'), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
  // RFC 2104 by hand: H((K ^ opad) || H((K ^ ipad) || m)) with a 64-byte block.
  const key = Buffer.from('key');
  const k = Buffer.alloc(64);
  key.copy(k);
  const ipad = Buffer.from(k.map((b) => b ^ 0x36));
  const opad = Buffer.from(k.map((b) => b ^ 0x5c));
  const want = blake2s(32, undefined, opad, blake2s(32, undefined, ipad, Buffer.from('msg')));
  assert.deepEqual(hmac(key, Buffer.from('msg')), want);
});

test('MAC is keyed BLAKE2s-128', () => {
  const key = Buffer.alloc(32, 7);
  assert.equal(mac(key, Buffer.from('x')).length, 16);
  assert.deepEqual(mac(key, Buffer.from('ab'), Buffer.from('c')), blake2s(16, key, Buffer.from('abc')));
});
