import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dh, generatePrivateKey, parseKey, privateKeyObject, publicKeyOf, keyText, clamp } from '../../../src/crypto/index.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

test('X25519: RFC 7748 §6.1 Alice and Bob', () => {
  const a = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const b = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  assert.equal(publicKeyOf(a).toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(publicKeyOf(b).toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  assert.equal(dh(privateKeyObject(a), publicKeyOf(b))!.toString('hex'), shared);
  assert.equal(dh(privateKeyObject(b), publicKeyOf(a))!.toString('hex'), shared);
});

test('X25519: a low-order public key gives no shared secret', () => {
  const priv = privateKeyObject(generatePrivateKey());
  assert.equal(dh(priv, Buffer.alloc(32)), null);
  const order8 = hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');
  assert.equal(dh(priv, order8), null);
});

test('keys: generated keys are clamped; base64 round trip; bad text names the field', () => {
  const k = generatePrivateKey();
  assert.equal(k[0] & 7, 0);
  assert.equal(k[31] & 0xc0, 0x40);
  assert.deepEqual(clamp(k), k);
  assert.deepEqual(parseKey(keyText(k), 'x'), k);
  assert.throws(() => parseKey('abc', 'wg.private_key'), (e: Error & { code?: string }) => e.code === 'LP_ERR_CONFIG' && e.message.startsWith('wg.private_key:'));
  assert.throws(() => parseKey(Buffer.alloc(31).toString('base64'), 'k'));
});
