/**
 * X25519 keys (RFC 7748 §5) as WireGuard users know them: 32 raw bytes, written in base64.
 * Node does the curve arithmetic (KeyObject + diffieHellman); this module only converts raw keys to
 * KeyObjects and back. Private keys are clamped on generation, as `wg genkey` does, so the stored
 * bytes are the scalar actually used.
 * Leaf module: imports only node:crypto and util/errors.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';
import { LanpartyError } from '../util/index.js';

export const KEY_BYTES = 32;

// DER prefixes of a PKCS#8 private key and an SPKI public key for OID 1.3.101.110 (X25519).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** A private key ready for DH, with its public key. */
export interface StaticKey {
  readonly privateKey: Buffer;
  readonly publicKey: Buffer;
  readonly keyObject: KeyObject;
}

export function clamp(priv: Buffer): Buffer {
  const k = Buffer.from(priv);
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

export function generatePrivateKey(): Buffer {
  return clamp(randomBytes(KEY_BYTES));
}

export function privateKeyObject(priv: Uint8Array): KeyObject {
  if (priv.length !== KEY_BYTES) throw new RangeError(`x25519: private key is ${priv.length} bytes, expected 32`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

export function publicKeyObject(pub: Uint8Array): KeyObject {
  if (pub.length !== KEY_BYTES) throw new RangeError(`x25519: public key is ${pub.length} bytes, expected 32`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
}

export function publicKeyOf(priv: Uint8Array): Buffer {
  const der = createPublicKey(privateKeyObject(priv)).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - KEY_BYTES));
}

export function staticKey(priv: Uint8Array): StaticKey {
  const privateKey = Buffer.from(priv);
  return { privateKey, publicKey: publicKeyOf(privateKey), keyObject: privateKeyObject(privateKey) };
}

/**
 * X25519(priv, pub). Returns null when the result is all zeros (a low-order public key), which
 * WireGuard treats as a failed handshake rather than a usable secret.
 */
export function dh(priv: KeyObject, pub: Uint8Array): Buffer | null {
  let out: Buffer;
  try {
    out = diffieHellman({ privateKey: priv, publicKey: publicKeyObject(pub) });
  } catch {
    return null; // OpenSSL refuses an all-zero shared secret.
  }
  let acc = 0;
  for (let i = 0; i < out.length; i++) acc |= out[i];
  return acc === 0 ? null : out;
}

/** Parses a base64 key as `wg` prints it (44 characters); the error names `what`. */
export function parseKey(text: string, what: string): Buffer {
  const t = text.trim();
  const b = Buffer.from(t, 'base64');
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t) || b.length !== KEY_BYTES) {
    throw new LanpartyError('LP_ERR_CONFIG', `${what}: not a WireGuard key (expected 44 base64 characters for 32 bytes, as printed by lanparty genkey or wg genkey)`);
  }
  return b;
}

export function keyText(k: Uint8Array): string {
  return Buffer.from(k).toString('base64');
}

/** A short, log-safe form of a public key ("3f2a+Bc…"). Never use for private keys. */
export function shortKey(pub: Uint8Array): string {
  return keyText(pub).slice(0, 8) + '…';
}
