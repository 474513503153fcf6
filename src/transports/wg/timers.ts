/**
 * The WireGuard timer state machine in one file (paper §6; wireguard-go device/timers.go): one
 * named timer per purpose, an `expired…` handler for each, and `timers…` hooks that the data path
 * calls. Timers are deadlines (ms on the device clock; Infinity = not pending) checked by
 * `runTimers` from the device's coarse tick, not one setTimeout each, so tests drive them by
 * advancing a fake clock.
 *
 *   retransmitHandshake  REKEY_TIMEOUT + jitter after an initiation; retries until REKEY_ATTEMPT_TIME
 *   sendKeepalive        KEEPALIVE_TIMEOUT after data arrived and nothing was sent back
 *   newHandshake         KEEPALIVE + REKEY_TIMEOUT + jitter after data sent and nothing came back
 *   zeroKeyMaterial      3 × REJECT_AFTER_TIME after the last session: forget every key
 *   persistentKeepalive  the configured interval after any authenticated packet either way
 */
import {
  KEEPALIVE_TIMEOUT_MS, MAX_TIMER_HANDSHAKES, REJECT_AFTER_TIME_MS, REKEY_TIMEOUT_JITTER_MS, REKEY_TIMEOUT_MS,
} from './messages.js';
import type { Logger } from '../../util/index.js';

export class PeerTimers {
  retransmitHandshakeAt = Infinity;
  sendKeepaliveAt = Infinity;
  newHandshakeAt = Infinity;
  zeroKeyMaterialAt = Infinity;
  persistentKeepaliveAt = Infinity;
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  sentLastMinuteHandshake = false;
}

/** What the timers read and set on a peer (device.ts's Peer). */
export interface TimedPeer {
  readonly timers: PeerTimers;
  readonly label: string;
  readonly persistentKeepaliveMs: number;
  lastHandshakeWallMs: number;
  dropStaged(): void;
}

/**
 * What an expired timer asks of the device (device.ts's WgDevice). The device passes itself in,
 * so this file needs nothing from device.ts and the two do not import each other.
 */
export interface TimerActions<P extends TimedPeer> {
  readonly log: Logger;
  random(): number;
  sendHandshakeInitiation(peer: P, isRetry: boolean): void;
  sendKeepalive(peer: P): void;
  zeroKeys(peer: P): void;
}

function jitter(dev: TimerActions<TimedPeer>): number {
  return Math.floor(dev.random() * REKEY_TIMEOUT_JITTER_MS);
}

/** Fires every timer of `peer` whose deadline has passed. */
export function runTimers<P extends TimedPeer>(dev: TimerActions<P>, peer: P, nowMs: number): void {
  const t = peer.timers;
  if (nowMs >= t.retransmitHandshakeAt) {
    t.retransmitHandshakeAt = Infinity;
    expiredRetransmitHandshake(dev, peer, nowMs);
  }
  if (nowMs >= t.sendKeepaliveAt) {
    t.sendKeepaliveAt = Infinity;
    expiredSendKeepalive(dev, peer, nowMs);
  }
  if (nowMs >= t.newHandshakeAt) {
    t.newHandshakeAt = Infinity;
    expiredNewHandshake(dev, peer);
  }
  if (nowMs >= t.zeroKeyMaterialAt) {
    t.zeroKeyMaterialAt = Infinity;
    expiredZeroKeyMaterial(dev, peer);
  }
  if (nowMs >= t.persistentKeepaliveAt) {
    t.persistentKeepaliveAt = Infinity;
    expiredPersistentKeepalive(dev, peer);
  }
}

function expiredRetransmitHandshake<P extends TimedPeer>(dev: TimerActions<P>, peer: P, nowMs: number): void {
  const t = peer.timers;
  if (t.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
    dev.log.debug(`${peer.label}: handshake did not complete after ${t.handshakeAttempts + 2} attempts, giving up`);
    t.sendKeepaliveAt = Infinity;
    peer.dropStaged();
    if (t.zeroKeyMaterialAt === Infinity) t.zeroKeyMaterialAt = nowMs + REJECT_AFTER_TIME_MS * 3;
    return;
  }
  t.handshakeAttempts++;
  dev.log.debug(`${peer.label}: handshake did not complete after ${REKEY_TIMEOUT_MS / 1000} s, retrying (try ${t.handshakeAttempts + 1})`);
  dev.sendHandshakeInitiation(peer, true);
}

function expiredSendKeepalive<P extends TimedPeer>(dev: TimerActions<P>, peer: P, nowMs: number): void {
  dev.sendKeepalive(peer);
  if (peer.timers.needAnotherKeepalive) {
    peer.timers.needAnotherKeepalive = false;
    peer.timers.sendKeepaliveAt = nowMs + KEEPALIVE_TIMEOUT_MS;
  }
}

function expiredNewHandshake<P extends TimedPeer>(dev: TimerActions<P>, peer: P): void {
  dev.log.debug(`${peer.label}: no reply for ${(KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS) / 1000} s, starting a new handshake`);
  dev.sendHandshakeInitiation(peer, false);
}

function expiredZeroKeyMaterial<P extends TimedPeer>(dev: TimerActions<P>, peer: P): void {
  dev.log.debug(`${peer.label}: no new session for ${(REJECT_AFTER_TIME_MS * 3) / 1000} s, wiping keys`);
  dev.zeroKeys(peer);
}

function expiredPersistentKeepalive<P extends TimedPeer>(dev: TimerActions<P>, peer: P): void {
  if (peer.persistentKeepaliveMs > 0) dev.sendKeepalive(peer);
}

// Hooks called by the data path, named after the event.

/** A data packet (not a keepalive) was sent. */
export function timersDataSent<P extends TimedPeer>(dev: TimerActions<P>, peer: P, nowMs: number): void {
  if (peer.timers.newHandshakeAt === Infinity) peer.timers.newHandshakeAt = nowMs + KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + jitter(dev);
}

/** A data packet (not a keepalive) was received. */
export function timersDataReceived<P extends TimedPeer>(_dev: TimerActions<P>, peer: P, nowMs: number): void {
  if (peer.timers.sendKeepaliveAt === Infinity) peer.timers.sendKeepaliveAt = nowMs + KEEPALIVE_TIMEOUT_MS;
  else peer.timers.needAnotherKeepalive = true;
}

/** Any authenticated packet (handshake, data, keepalive) was sent. */
export function timersAnyAuthenticatedPacketSent(peer: TimedPeer): void {
  peer.timers.sendKeepaliveAt = Infinity;
}

/** Any authenticated packet was received. */
export function timersAnyAuthenticatedPacketReceived(peer: TimedPeer): void {
  peer.timers.newHandshakeAt = Infinity;
}

/** Any authenticated packet was sent or received. */
export function timersAnyAuthenticatedPacketTraversal(peer: TimedPeer, nowMs: number): void {
  if (peer.persistentKeepaliveMs > 0) peer.timers.persistentKeepaliveAt = nowMs + peer.persistentKeepaliveMs;
}

export function timersHandshakeInitiated<P extends TimedPeer>(dev: TimerActions<P>, peer: P, nowMs: number): void {
  peer.timers.retransmitHandshakeAt = nowMs + REKEY_TIMEOUT_MS + jitter(dev);
}

export function timersHandshakeComplete(peer: TimedPeer, wallMs: number): void {
  peer.timers.retransmitHandshakeAt = Infinity;
  peer.timers.handshakeAttempts = 0;
  peer.timers.sentLastMinuteHandshake = false;
  peer.lastHandshakeWallMs = wallMs;
}

export function timersSessionDerived(peer: TimedPeer, nowMs: number): void {
  peer.timers.zeroKeyMaterialAt = nowMs + REJECT_AFTER_TIME_MS * 3;
}
