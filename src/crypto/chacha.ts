/**
 * ChaCha20-Poly1305 AEAD (RFC 8439 §2.8) through Node's 'chacha20-poly1305', plus what Node lacks:
 * HChaCha20 and XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §2.2-2.3), which WireGuard uses only
 * to seal cookie replies. Read RFC 8439 §2.3 (the block function) first.
 *
 * Nonces: WireGuard's AEAD nonce is 32 zero bits then a 64-bit little-endian counter. Counters are
 * numbers below 2^53 (exact in a JS number), written as two 32-bit halves.
 * Leaf module: imports only node:crypto.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';

export const AEAD_TAG_BYTES = 16;
export const AEAD_KEY_BYTES = 32;
export const XNONCE_BYTES = 24;

function nonceFor(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(counter >>> 0, 4);
  n.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  return n;
}

/** Seals `plain` into a new buffer: ciphertext followed by the 16-byte tag. */
export function aeadSeal(key: Uint8Array, counter: number, plain: Uint8Array, ad: Uint8Array): Buffer {
  return aeadSealNonce(key, nonceFor(counter), plain, ad);
}

/** Opens ciphertext+tag; returns the plaintext, or null when authentication fails. */
export function aeadOpen(key: Uint8Array, counter: number, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  return aeadOpenNonce(key, nonceFor(counter), sealed, ad);
}

function aeadSealNonce(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array, ad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  if (ad.length > 0) c.setAAD(ad, { plaintextLength: plain.length });
  const body = c.update(plain);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

function aeadOpenNonce(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  if (sealed.length < AEAD_TAG_BYTES) return null;
  const bodyBytes = sealed.length - AEAD_TAG_BYTES;
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  d.setAuthTag(sealed.subarray(bodyBytes));
  if (ad.length > 0) d.setAAD(ad, { plaintextLength: bodyBytes });
  const plain = d.update(sealed.subarray(0, bodyBytes));
  try {
    d.final();
  } catch {
    return null;
  }
  return plain;
}

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

function quarter(s: Uint32Array, a: number, b: number, c: number, d: number): void {
  s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 16);
  s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 12);
  s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 8);
  s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 7);
}

/**
 * HChaCha20 (draft-irtf-cfrg-xchacha §2.2): the ChaCha20 rounds over key and a 16-byte nonce,
 * without the final addition, returning state words 0-3 and 12-15 as a 32-byte subkey.
 */
export function hchacha20(key: Uint8Array, nonce16: Uint8Array): Buffer {
  if (key.length !== 32 || nonce16.length !== 16) throw new RangeError('hchacha20: needs a 32-byte key and a 16-byte nonce');
  const s = new Uint32Array(16);
  s[0] = 0x61707865; s[1] = 0x3320646e; s[2] = 0x79622d32; s[3] = 0x6b206574;
  const k = Buffer.from(key.buffer, key.byteOffset, key.length);
  const n = Buffer.from(nonce16.buffer, nonce16.byteOffset, nonce16.length);
  for (let i = 0; i < 8; i++) s[4 + i] = k.readUInt32LE(i * 4);
  for (let i = 0; i < 4; i++) s[12 + i] = n.readUInt32LE(i * 4);
  for (let r = 0; r < 10; r++) {
    quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15);
    quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14);
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 4; i++) {
    out.writeUInt32LE(s[i], i * 4);
    out.writeUInt32LE(s[12 + i], 16 + i * 4);
  }
  return out;
}

function xParts(key: Uint8Array, nonce24: Uint8Array): { subkey: Buffer; nonce: Buffer } {
  if (nonce24.length !== XNONCE_BYTES) throw new RangeError(`xchacha20poly1305: nonce is ${nonce24.length} bytes, expected 24`);
  const subkey = hchacha20(key, nonce24.subarray(0, 16));
  const nonce = Buffer.alloc(12);
  nonce.set(nonce24.subarray(16, 24), 4);
  return { subkey, nonce };
}

/** XChaCha20-Poly1305 seal: ciphertext followed by the 16-byte tag. */
export function xaeadSeal(key: Uint8Array, nonce24: Uint8Array, plain: Uint8Array, ad: Uint8Array): Buffer {
  const { subkey, nonce } = xParts(key, nonce24);
  return aeadSealNonce(subkey, nonce, plain, ad);
}

/** XChaCha20-Poly1305 open; null when authentication fails. */
export function xaeadOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  const { subkey, nonce } = xParts(key, nonce24);
  return aeadOpenNonce(subkey, nonce, sealed, ad);
}
