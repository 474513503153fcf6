/**
 * MAC1, MAC2 and cookie replies (paper §5.4.4 and §5.4.7; wireguard-go device/cookie.go).
 * Every handshake message ends in mac1 (keyed with the receiver's public key, so only someone who
 * knows it can make us do DH work) and mac2 (keyed with a cookie the receiver handed out for the
 * sender's IP and port). Under load a responder answers a message without a valid mac2 with a
 * 64-byte cookie reply, which is smaller than the 148- or 92-byte message that caused it.
 *
 *   CookieChecker:   our side as a receiver (check mac1/mac2, make cookie replies).
 *   CookieGenerator: per peer, our side as a sender (add mac1/mac2, accept cookie replies).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hash, mac, xaeadOpen, xaeadSeal, MAC_BYTES, XNONCE_BYTES } from '../../crypto/index.js';
import {
  COOKIE_REFRESH_TIME_MS, COOKIE_REPLY_BYTES, LABEL_COOKIE, LABEL_MAC1, MSG_COOKIE_REPLY,
  OFF_COOKIE_BODY, OFF_COOKIE_NONCE, OFF_COOKIE_RECEIVER, REKEY_TIMEOUT_MS, OFF_SENDER,
} from './messages.js';

const MAC1_LABEL = Buffer.from(LABEL_MAC1);
const COOKIE_LABEL = Buffer.from(LABEL_COOKIE);

export function mac1Key(pub: Uint8Array): Buffer { return hash(MAC1_LABEL, pub); }
export function cookieKey(pub: Uint8Array): Buffer { return hash(COOKIE_LABEL, pub); }

function equal16(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export class CookieChecker {
  private readonly mac1Key: Buffer;
  private readonly encKey: Buffer;
  private secret = randomBytes(32);
  private secretSetMs = -Infinity;

  constructor(ourPublicKey: Uint8Array) {
    this.mac1Key = mac1Key(ourPublicKey);
    this.encKey = cookieKey(ourPublicKey);
  }

  /** True when msg[off..off+len) carries a valid mac1 for us. */
  checkMac1(msg: Buffer, off: number, len: number): boolean {
    const want = mac(this.mac1Key, msg.subarray(off, off + len - 2 * MAC_BYTES));
    return equal16(want, msg.subarray(off + len - 2 * MAC_BYTES, off + len - MAC_BYTES));
  }

  private cookieFor(src: Buffer, nowMs: number): Buffer {
    if (nowMs - this.secretSetMs > COOKIE_REFRESH_TIME_MS) {
      this.secret = randomBytes(32);
      this.secretSetMs = nowMs;
    }
    return mac(this.secret, src);
  }

  /** True when the message's mac2 is keyed with the cookie we would give `src` (IP and port bytes). */
  checkMac2(msg: Buffer, off: number, len: number, src: Buffer, nowMs: number): boolean {
    const cookie = this.cookieFor(src, nowMs);
    const want = mac(cookie, msg.subarray(off, off + len - MAC_BYTES));
    return equal16(want, msg.subarray(off + len - MAC_BYTES, off + len));
  }

  /** A 64-byte cookie reply to the handshake message msg[off..off+len) from `src`. */
  createReply(msg: Buffer, off: number, len: number, src: Buffer, nowMs: number): Buffer {
    const out = Buffer.alloc(COOKIE_REPLY_BYTES);
    out.writeUInt32LE(MSG_COOKIE_REPLY, 0);
    out.writeUInt32LE(msg.readUInt32LE(off + OFF_SENDER), OFF_COOKIE_RECEIVER);
    const nonce = randomBytes(XNONCE_BYTES);
    nonce.copy(out, OFF_COOKIE_NONCE);
    const mac1 = msg.subarray(off + len - 2 * MAC_BYTES, off + len - MAC_BYTES);
    xaeadSeal(this.encKey, nonce, this.cookieFor(src, nowMs), mac1).copy(out, OFF_COOKIE_BODY);
    return out;
  }
}

export class CookieGenerator {
  private readonly mac1Key: Buffer;
  private readonly encKey: Buffer;
  private cookie: Buffer | null = null;
  private cookieSetMs = -Infinity;
  /** mac1 of the last handshake message we sent: the AD a cookie reply must be sealed with. */
  private lastMac1: Buffer | null = null;

  constructor(peerPublicKey: Uint8Array) {
    this.mac1Key = mac1Key(peerPublicKey);
    this.encKey = cookieKey(peerPublicKey);
  }

  /** Fills mac1 and (with a fresh cookie) mac2 of a handshake message we are about to send. */
  addMacs(msg: Buffer, nowMs: number): void {
    const len = msg.length;
    const mac1 = mac(this.mac1Key, msg.subarray(0, len - 2 * MAC_BYTES));
    mac1.copy(msg, len - 2 * MAC_BYTES);
    this.lastMac1 = mac1;
    if (this.cookie !== null && nowMs - this.cookieSetMs < COOKIE_REFRESH_TIME_MS - REKEY_TIMEOUT_MS) {
      mac(this.cookie, msg.subarray(0, len - MAC_BYTES)).copy(msg, len - MAC_BYTES);
    } else {
      msg.fill(0, len - MAC_BYTES);
    }
  }

  /** Accepts a cookie reply (size checked by the caller); false when it does not decrypt. */
  consumeReply(msg: Buffer, off: number, nowMs: number): boolean {
    if (this.lastMac1 === null) return false;
    const nonce = msg.subarray(off + OFF_COOKIE_NONCE, off + OFF_COOKIE_BODY);
    const cookie = xaeadOpen(this.encKey, nonce, msg.subarray(off + OFF_COOKIE_BODY, off + COOKIE_REPLY_BYTES), this.lastMac1);
    if (cookie === null) return false;
    this.cookie = cookie;
    this.cookieSetMs = nowMs;
    return true;
  }

  hasCookie(nowMs: number): boolean {
    return this.cookie !== null && nowMs - this.cookieSetMs < COOKIE_REFRESH_TIME_MS;
  }
}
