/**
 * Noise_IKpsk2 handshake exactly as WireGuard builds it (paper §5.4.2-5.4.5; wireguard-go
 * device/noise-protocol.go). Read the paper's "First Message" and "Second Message" boxes first:
 * each step below is one line there.
 *
 *   initiator                                   responder
 *   -> e, es, s, ss, {timestamp}     (type 1)
 *                                    (type 2)   <- e, ee, se, psk, {}
 *   both: (send, recv) = KDF2(chain key, ε), swapped for the responder
 *
 * This module is pure: it reads no clock and no socket. MAC1/MAC2 are added and checked in
 * cookie.ts. The caller owns every buffer; created messages are new buffers. Secrets it derives
 * (DH results, chaining keys, AEAD keys) are zeroed once used, and a handshake's chaining key and
 * hash are zeroed when replaced or cleared. An ephemeral private key is a KeyObject, which JS
 * cannot zero: dropping it leaves that to OpenSSL, which clears X25519 keys when it frees them.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import {
  aeadOpen, aeadSeal, dh, hash, kdf, tai64nAfter, TAI64N_BYTES,
  type StaticKey,
} from '../../crypto/index.js';
import {
  CONSTRUCTION, IDENTIFIER, INITIATION_BYTES, MSG_INITIATION, MSG_RESPONSE, RESPONSE_BYTES,
  OFF_INIT_EPHEMERAL, OFF_INIT_STATIC, OFF_INIT_TIMESTAMP, OFF_RESP_EPHEMERAL, OFF_RESP_EMPTY,
  OFF_RECEIVER, OFF_SENDER,
} from './messages.js';

const EMPTY = Buffer.alloc(0);
export const ZERO_PSK = Buffer.alloc(32);
/** HASH(CONSTRUCTION): the initial chaining key. */
export const INITIAL_CHAIN_KEY = hash(Buffer.from(CONSTRUCTION));
/** HASH(INITIAL_CHAIN_KEY || IDENTIFIER): the initial transcript hash before the responder's key. */
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, Buffer.from(IDENTIFIER));

export const enum HandshakeState {
  Zeroed = 0,
  InitiationCreated = 1,
  InitiationConsumed = 2,
  ResponseCreated = 3,
  ResponseConsumed = 4,
}

/** Zeroes secrets that are no longer needed (the shared constants and null are left alone). */
function wipe(...bufs: Array<Buffer | null>): void {
  for (const b of bufs) if (b !== null && b !== INITIAL_CHAIN_KEY && b !== INITIAL_HASH && b !== ZERO_PSK) b.fill(0);
}

/** Sets a handshake's transcript hash and chaining key, zeroing the ones it held. */
function replaceSecrets(hs: Handshake, h: Buffer, ck: Buffer): void {
  if (hs.hash !== h) wipe(hs.hash);
  if (hs.chainKey !== ck) wipe(hs.chainKey);
  hs.hash = h;
  hs.chainKey = ck;
}

/** An ephemeral key pair: the KeyObject for DH and the raw public bytes. */
export interface Ephemeral { key: KeyObject; pub: Buffer }

export function generateEphemeral(): Ephemeral {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { key: privateKey, pub: Buffer.from(der.subarray(der.length - 32)) };
}

/** Per-peer handshake state; every field set at construction. */
export class Handshake {
  state: HandshakeState = HandshakeState.Zeroed;
  hash: Buffer = EMPTY;
  chainKey: Buffer = EMPTY;
  localEphemeral: Ephemeral | null = null;
  localIndex = 0;
  remoteIndex = 0;
  remoteEphemeral: Buffer = EMPTY;
  /** TAI64N of the newest initiation accepted from this peer: older ones are replays. */
  lastTimestamp: Buffer = Buffer.alloc(TAI64N_BYTES);
  lastInitiationConsumedMs = -Infinity;
  /** DH(local static, remote static), computed once per peer; null if the key is low-order. */
  readonly precomputedStaticStatic: Buffer | null;

  constructor(readonly local: StaticKey, readonly remoteStatic: Buffer, readonly presharedKey: Buffer) {
    this.precomputedStaticStatic = dh(local.keyObject, remoteStatic);
  }

  /** Forgets the handshake in progress, zeroing its hash and chaining key. */
  clear(): void {
    this.state = HandshakeState.Zeroed;
    replaceSecrets(this, EMPTY, EMPTY);
    this.localEphemeral = null;
    this.localIndex = 0;
    this.remoteIndex = 0;
    this.remoteEphemeral = EMPTY;
  }
}

/** Session keys derived at the end of a handshake. */
export interface SessionKeys {
  sendKey: Buffer;
  recvKey: Buffer;
  isInitiator: boolean;
  localIndex: number;
  remoteIndex: number;
}

function mixHash(h: Buffer, data: Uint8Array): Buffer {
  return hash(h, data);
}

/**
 * Builds a type-1 initiation (MAC fields zero) and moves `hs` to InitiationCreated.
 * `timestamp` is TAI64N (12 bytes); `localIndex` is the caller's fresh index.
 * Returns null when the remote static key is unusable (low-order point).
 */
export function createInitiation(hs: Handshake, localIndex: number, timestamp: Buffer, eph: Ephemeral = generateEphemeral()): Buffer | null {
  if (hs.precomputedStaticStatic === null) return null;
  const msg = Buffer.alloc(INITIATION_BYTES);
  msg.writeUInt32LE(MSG_INITIATION, 0);
  msg.writeUInt32LE(localIndex, OFF_SENDER);

  let h = mixHash(INITIAL_HASH, hs.remoteStatic);
  let ck: Buffer = INITIAL_CHAIN_KEY;
  // e
  eph.pub.copy(msg, OFF_INIT_EPHEMERAL);
  h = mixHash(h, eph.pub);
  ck = kdf(1, ck, eph.pub)[0];
  // es
  const es = dh(eph.key, hs.remoteStatic);
  if (es === null) {
    wipe(ck);
    return null;
  }
  let key: Buffer;
  let prev = ck;
  [ck, key] = kdf(2, ck, es);
  wipe(prev, es);
  // s
  const encStatic = aeadSeal(key, 0, hs.local.publicKey, h);
  encStatic.copy(msg, OFF_INIT_STATIC);
  h = mixHash(h, encStatic);
  wipe(key);
  // ss
  prev = ck;
  [ck, key] = kdf(2, ck, hs.precomputedStaticStatic);
  wipe(prev);
  // {timestamp}
  const encTs = aeadSeal(key, 0, timestamp, h);
  encTs.copy(msg, OFF_INIT_TIMESTAMP);
  h = mixHash(h, encTs);
  wipe(key);

  replaceSecrets(hs, h, ck);
  hs.localEphemeral = eph;
  hs.localIndex = localIndex;
  hs.remoteIndex = 0;
  hs.state = HandshakeState.InitiationCreated;
  return msg;
}

/**
 * Decrypts a type-1 message (size already checked, MAC1 already verified) with our static key.
 * Returns null when any step fails; nothing is changed until `commit` is called with the peer's
 * handshake, which also checks the timestamp (replay) and the per-peer initiation rate (flood).
 */
export function consumeInitiation(local: StaticKey, msg: Buffer, off: number, findPeer: (pub: Buffer) => Handshake | undefined): { hs: Handshake; commit: (nowMs: number, minIntervalMs: number) => boolean } | null {
  const remoteEphemeral = Buffer.from(msg.subarray(off + OFF_INIT_EPHEMERAL, off + OFF_INIT_EPHEMERAL + 32));
  let h = mixHash(INITIAL_HASH, local.publicKey);
  h = mixHash(h, remoteEphemeral);
  let ck = kdf(1, INITIAL_CHAIN_KEY, remoteEphemeral)[0];
  const es = dh(local.keyObject, remoteEphemeral);
  if (es === null) {
    wipe(ck);
    return null;
  }
  let key: Buffer;
  let prev = ck;
  [ck, key] = kdf(2, ck, es);
  wipe(prev, es);
  const encStatic = msg.subarray(off + OFF_INIT_STATIC, off + OFF_INIT_STATIC + 48);
  const remoteStatic = aeadOpen(key, 0, encStatic, h);
  wipe(key);
  if (remoteStatic === null) {
    wipe(ck);
    return null;
  }
  h = mixHash(h, encStatic);
  const hs = findPeer(remoteStatic);
  if (hs === undefined || hs.precomputedStaticStatic === null) {
    wipe(ck);
    return null;
  }
  prev = ck;
  [ck, key] = kdf(2, ck, hs.precomputedStaticStatic);
  wipe(prev);
  const encTs = msg.subarray(off + OFF_INIT_TIMESTAMP, off + OFF_INIT_TIMESTAMP + 28);
  const timestamp = aeadOpen(key, 0, encTs, h);
  wipe(key);
  if (timestamp === null) {
    wipe(ck);
    return null;
  }
  h = mixHash(h, encTs);
  const remoteIndex = msg.readUInt32LE(off + OFF_SENDER);
  const finalHash = h;
  const finalCk = ck;
  return {
    hs,
    commit(nowMs: number, minIntervalMs: number): boolean {
      // Refused (replayed or too soon): nothing of this initiation is kept (unless an earlier
      // commit of it took these very buffers).
      if (!tai64nAfter(timestamp, hs.lastTimestamp) || nowMs - hs.lastInitiationConsumedMs < minIntervalMs) {
        if (hs.chainKey !== finalCk) wipe(finalHash, finalCk);
        return false;
      }
      replaceSecrets(hs, finalHash, finalCk);
      hs.remoteIndex = remoteIndex;
      hs.remoteEphemeral = remoteEphemeral;
      hs.lastTimestamp = timestamp;
      hs.lastInitiationConsumedMs = nowMs;
      hs.localEphemeral = null;
      hs.state = HandshakeState.InitiationConsumed;
      return true;
    },
  };
}

/** Builds a type-2 response to a consumed initiation (MAC fields zero); hs → ResponseCreated. */
export function createResponse(hs: Handshake, localIndex: number, eph: Ephemeral = generateEphemeral()): Buffer | null {
  if (hs.state !== HandshakeState.InitiationConsumed) return null;
  const msg = Buffer.alloc(RESPONSE_BYTES);
  msg.writeUInt32LE(MSG_RESPONSE, 0);
  msg.writeUInt32LE(localIndex, OFF_SENDER);
  msg.writeUInt32LE(hs.remoteIndex, OFF_RECEIVER);
  let h = hs.hash;
  let ck = hs.chainKey;
  // e
  eph.pub.copy(msg, OFF_RESP_EPHEMERAL);
  h = mixHash(h, eph.pub);
  ck = kdf(1, ck, eph.pub)[0];
  // ee
  const ee = dh(eph.key, hs.remoteEphemeral);
  if (ee === null) {
    wipe(ck);
    return null;
  }
  let prev = ck;
  ck = kdf(1, ck, ee)[0];
  wipe(prev, ee);
  // se
  const se = dh(eph.key, hs.remoteStatic);
  if (se === null) {
    wipe(ck);
    return null;
  }
  prev = ck;
  ck = kdf(1, ck, se)[0];
  wipe(prev, se);
  // psk
  const [ck2, tau, key] = kdf(3, ck, hs.presharedKey);
  wipe(ck);
  h = mixHash(h, tau);
  wipe(tau);
  // {}
  const encEmpty = aeadSeal(key, 0, EMPTY, h);
  encEmpty.copy(msg, OFF_RESP_EMPTY);
  h = mixHash(h, encEmpty);
  wipe(key);
  replaceSecrets(hs, h, ck2);
  hs.localEphemeral = eph;
  hs.localIndex = localIndex;
  hs.state = HandshakeState.ResponseCreated;
  return msg;
}

/**
 * Consumes a type-2 response for `hs` (found by the receiver index; size and MAC1 checked).
 * On success hs → ResponseConsumed; on failure nothing changes and false is returned.
 */
export function consumeResponse(hs: Handshake, msg: Buffer, off: number): boolean {
  if (hs.state !== HandshakeState.InitiationCreated || hs.localEphemeral === null) return false;
  const remoteEphemeral = Buffer.from(msg.subarray(off + OFF_RESP_EPHEMERAL, off + OFF_RESP_EPHEMERAL + 32));
  let h = mixHash(hs.hash, remoteEphemeral);
  let ck = kdf(1, hs.chainKey, remoteEphemeral)[0];
  const ee = dh(hs.localEphemeral.key, remoteEphemeral);
  if (ee === null) {
    wipe(ck);
    return false;
  }
  let prev = ck;
  ck = kdf(1, ck, ee)[0];
  wipe(prev, ee);
  const se = dh(hs.local.keyObject, remoteEphemeral);
  if (se === null) {
    wipe(ck);
    return false;
  }
  prev = ck;
  ck = kdf(1, ck, se)[0];
  wipe(prev, se);
  const [ck2, tau, key] = kdf(3, ck, hs.presharedKey);
  wipe(ck);
  h = mixHash(h, tau);
  wipe(tau);
  const encEmpty = msg.subarray(off + OFF_RESP_EMPTY, off + OFF_RESP_EMPTY + 16);
  const opened = aeadOpen(key, 0, encEmpty, h);
  wipe(key);
  if (opened === null) {
    wipe(ck2);
    return false;
  }
  h = mixHash(h, encEmpty);
  replaceSecrets(hs, h, ck2);
  hs.remoteIndex = msg.readUInt32LE(off + OFF_SENDER);
  hs.remoteEphemeral = remoteEphemeral;
  hs.state = HandshakeState.ResponseConsumed;
  return true;
}

/**
 * Derives transport keys from a finished handshake (initiator after consuming the response,
 * responder after creating it) and wipes the handshake's secrets. Returns null in any other state.
 */
export function deriveSession(hs: Handshake): SessionKeys | null {
  let isInitiator: boolean;
  if (hs.state === HandshakeState.ResponseConsumed) isInitiator = true;
  else if (hs.state === HandshakeState.ResponseCreated) isInitiator = false;
  else return null;
  const [t1, t2] = kdf(2, hs.chainKey, EMPTY);
  const keys: SessionKeys = {
    sendKey: isInitiator ? t1 : t2,
    recvKey: isInitiator ? t2 : t1,
    isInitiator,
    localIndex: hs.localIndex,
    remoteIndex: hs.remoteIndex,
  };
  const keepTs = hs.lastTimestamp;
  const keepAt = hs.lastInitiationConsumedMs;
  hs.clear();
  hs.lastTimestamp = keepTs;
  hs.lastInitiationConsumedMs = keepAt;
  return keys;
}

/** A random 32-bit index not in `taken`. */
export function freshIndex(taken: { has(i: number): boolean }): number {
  for (;;) {
    const i = randomBytes(4).readUInt32LE(0);
    if (!taken.has(i)) return i;
  }
}
