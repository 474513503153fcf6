/**
 * The addon's ChaCha20-Poly1305 (batch-io nativeAead, used by the peer links' data path) against
 * node:crypto, an independent implementation: same ciphertext and tag for every length from 0 to
 * 1600 bytes and counters across the 32-bit boundary, opens what node:crypto sealed, and refuses a
 * flipped bit anywhere, a wrong counter, or arguments out of range.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { nativeAead, nativeAvailable, nativeLoadError } from '../../../src/io/index.js';

const aead = nativeAead();
const skip = !nativeAvailable() ? `native addon unavailable: ${nativeLoadError()}` : false;

function nodeSeal(key: Buffer, counter: number, plain: Buffer, padded: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(counter >>> 0, 4);
  nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  const body = Buffer.concat([plain, Buffer.alloc(padded - plain.length)]);
  return Buffer.concat([c.update(body), c.final(), c.getAuthTag()]);
}

test('native AEAD is built with the addon (Node ships the OpenSSL headers)', { skip }, () => {
  assert.ok(aead !== null, 'nativeAead() returned null although the addon loaded: rebuild with npm run build:native');
});

test('native seal equals node:crypto for lengths 0..1600 (with WireGuard padding) and 64-bit counters', { skip }, () => {
  const a = aead!;
  const key = randomBytes(32);
  const counters = [0, 1, 0xffffffff, 0x100000000, 2 ** 40 + 12345];
  for (let len = 0; len <= 1600; len += len < 70 ? 1 : 97) {
    const plain = randomBytes(len);
    const padded = Math.ceil(len / 16) * 16;
    for (const ctr of counters) {
      const out = Buffer.alloc(8 + padded + 16 + 8, 0xee);
      const n = a.seal(key, ctr >>> 0, Math.floor(ctr / 0x100000000), plain, 0, len, padded, out, 8);
      assert.equal(n, padded + 16);
      assert.deepEqual(out.subarray(8, 8 + n), nodeSeal(key, ctr, plain, padded), `len ${len} counter ${ctr}`);
      assert.equal(out[7], 0xee, 'nothing written before dstOff');
      assert.equal(out[8 + n], 0xee, 'nothing written after the tag');
    }
  }
});

test('native open: opens what node:crypto sealed; a flipped bit, a wrong counter or a short input is refused', { skip }, () => {
  const a = aead!;
  const key = randomBytes(32);
  const plain = randomBytes(100);
  const sealed = nodeSeal(key, 77, plain, 112);
  const dst = Buffer.alloc(200);
  assert.equal(a.open(key, 77, 0, sealed, 0, sealed.length, dst, 3), 112);
  assert.deepEqual(dst.subarray(3, 3 + 100), plain);
  assert.deepEqual(dst.subarray(103, 115), Buffer.alloc(12), 'the padding opens as zeros');
  for (const bit of [0, 8 * 50 + 3, 8 * 111 + 7, 8 * 112, 8 * 127 + 1]) {
    const bad = Buffer.from(sealed);
    bad[bit >> 3] ^= 1 << (bit & 7);
    assert.equal(a.open(key, 77, 0, bad, 0, bad.length, dst, 0), -1, `bit ${bit} flipped`);
  }
  assert.equal(a.open(key, 78, 0, sealed, 0, sealed.length, dst, 0), -1, 'wrong counter');
  assert.equal(a.open(key, 77, 1, sealed, 0, sealed.length, dst, 0), -1, 'wrong high counter half');
  assert.equal(a.open(randomBytes(32), 77, 0, sealed, 0, sealed.length, dst, 0), -1, 'wrong key');
  assert.equal(a.open(key, 77, 0, sealed, 0, 15, dst, 0), -1, 'shorter than a tag');
  assert.equal(a.open(key, 77, 0, sealed, 0, sealed.length, Buffer.alloc(50), 0), -1, 'destination too small');
  assert.equal(a.open(key, 77, 0, sealed, 10, sealed.length, dst, 0), -1, 'source range beyond the buffer');
  assert.equal(a.open(key.subarray(0, 31), 77, 0, sealed, 0, sealed.length, dst, 0), -1, 'key not 32 bytes');
  // In place (src and dst the same buffer) works too.
  const inPlace = Buffer.from(sealed);
  assert.equal(a.open(key, 77, 0, inPlace, 0, inPlace.length, inPlace, 0), 112);
  assert.deepEqual(inPlace.subarray(0, 100), plain);
});

test('native seal refuses padding beyond 15 bytes and a destination too small', { skip }, () => {
  const a = aead!;
  const key = randomBytes(32);
  const p = randomBytes(10);
  assert.equal(a.seal(key, 0, 0, p, 0, 10, 32, Buffer.alloc(100), 0), -1, '22 bytes of padding');
  assert.equal(a.seal(key, 0, 0, p, 0, 10, 8, Buffer.alloc(100), 0), -1, 'padded shorter than the plaintext');
  assert.equal(a.seal(key, 0, 0, p, 0, 10, 16, Buffer.alloc(31), 0), -1, 'no room for the tag');
});
