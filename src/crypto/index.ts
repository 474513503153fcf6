/**
 * crypto: the primitives WireGuard needs, each small and tested against published vectors.
 * Node supplies X25519, ChaCha20-Poly1305, BLAKE2s-256 and HMAC; this folder adds keyed BLAKE2s
 * (MAC), HChaCha20/XChaCha20-Poly1305 (cookies), HKDF, TAI64N and the replay window.
 * Leaf folder: imports nothing from lanparty except util/errors.
 */
export * from './blake2s.js';
export * from './chacha.js';
export * from './hash.js';
export * from './x25519.js';
export * from './tai64n.js';
export * from './replay.js';
