/**
 * Noise's HASH, HMAC and HKDF over BLAKE2s (WireGuard paper §5.4 "Protocol Messages" first; Noise
 * spec §4.3), and WireGuard's MAC: keyed BLAKE2s with a 16-byte digest (see blake2s.ts).
 * HASH and HMAC use Node's 'blake2s256'. Leaf module.
 */
import { createHash, createHmac } from 'node:crypto';
import { blake2s } from './blake2s.js';

export const HASH_BYTES = 32;
export const MAC_BYTES = 16;

export function hash(...parts: Uint8Array[]): Buffer {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const ONE = Buffer.from([1]);
const TWO = Buffer.from([2]);
const THREE = Buffer.from([3]);

/** HKDF with n = 1, 2 or 3 outputs (Noise §4.3 HKDF, WireGuard's KDF_n). */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Buffer[] {
  const prk = hmac(key, input);
  const t1 = hmac(prk, ONE);
  if (n === 1) {
    prk.fill(0);  // a secret in every use here (WireGuard's chaining and session keys)
    return [t1];
  }
  const t2 = hmac(prk, t1, TWO);
  const out = n === 2 ? [t1, t2] : [t1, t2, hmac(prk, t2, THREE)];
  prk.fill(0);
  return out;
}

/** WireGuard's MAC(key, input): keyed BLAKE2s-128. */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  return blake2s(MAC_BYTES, key, ...parts);
}
