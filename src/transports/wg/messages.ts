/**
 * WireGuard message layout and protocol constants (WireGuard paper §5.4 and §6; wireguard-go
 * device/noise-protocol.go and device/constants.go). Sizes are named, and every parser checks the
 * exact size for its type before reading a field. All integers on the wire are little-endian.
 *
 *   type 1 initiation (148): type(1) reserved(3) sender(4) ephemeral(32) static(32+16) timestamp(12+16) mac1(16) mac2(16)
 *   type 2 response    (92): type(1) reserved(3) sender(4) receiver(4) ephemeral(32) empty(0+16) mac1(16) mac2(16)
 *   type 3 cookie      (64): type(1) reserved(3) receiver(4) nonce(24) cookie(16+16)
 *   type 4 transport (>=32): type(1) reserved(3) receiver(4) counter(8) packet(n+16)
 * Leaf module.
 */
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const INITIATION_BYTES = 148;
export const RESPONSE_BYTES = 92;
export const COOKIE_REPLY_BYTES = 64;
export const TRANSPORT_HEADER_BYTES = 16;
export const TRANSPORT_MIN_BYTES = 32; // header + tag: a keepalive
/** Plaintext is padded to a multiple of this (paper §5.4.6). */
export const PADDING_MULTIPLE = 16;

// Field offsets.
export const OFF_SENDER = 4;
export const OFF_RECEIVER = 8; // response
export const OFF_INIT_EPHEMERAL = 8;
export const OFF_INIT_STATIC = 40;
export const OFF_INIT_TIMESTAMP = 88;
export const OFF_INIT_MAC1 = 116;
export const OFF_INIT_MAC2 = 132;
export const OFF_RESP_EPHEMERAL = 12;
export const OFF_RESP_EMPTY = 44;
export const OFF_RESP_MAC1 = 60;
export const OFF_RESP_MAC2 = 76;
export const OFF_COOKIE_RECEIVER = 4;
export const OFF_COOKIE_NONCE = 8;
export const OFF_COOKIE_BODY = 32;
export const OFF_DATA_RECEIVER = 4;
export const OFF_DATA_COUNTER = 8;

// Timers and limits (paper §6.1 table, in milliseconds and messages).
export const REKEY_AFTER_TIME_MS = 120_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
export const COOKIE_REFRESH_TIME_MS = 120_000;
/** Most random delay added to handshake retries and new-handshake timers (wireguard-go: 333 ms). */
export const REKEY_TIMEOUT_JITTER_MS = 334;
/** One initiation per peer is consumed at most every 20 ms (wireguard-go HandshakeInitationRate). */
export const INITIATION_MIN_INTERVAL_MS = 20;
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME_MS / REKEY_TIMEOUT_MS;
/**
 * WireGuard's REKEY_AFTER_MESSAGES is 2^60 and REJECT_AFTER_MESSAGES 2^64 - 2^13 - 1. Counters are
 * JS numbers here (exact below 2^53), so a session ends at 2^53 - 2^13 - 1 instead and
 * rekeys at 2^52: both are far beyond what a link sends in REKEY_AFTER_TIME.
 */
export const REKEY_AFTER_MESSAGES = 2 ** 52;
export const REJECT_AFTER_MESSAGES = 2 ** 53 - 2 ** 13 - 1;

export function messageType(buf: Buffer, off: number, len: number): number {
  // The first byte is the type and the next three must be zero: read the whole word as wireguard-go does.
  return len >= 4 ? buf.readUInt32LE(off) : 0;
}
