/**
 * WgDevice: the WireGuard protocol engine for one private key and its peers, with no socket and
 * no clock of its own (smoltcp's habit): the owner feeds received datagrams to `receive`, hands
 * inner packets to `sendPacket`, calls `tick(nowMs)` often (every 100-250 ms), and supplies an `io`
 * that sends datagrams to endpoint ids. Tests connect two devices in memory; the transport
 * (index.ts) connects one to a UDP BatchSocket. Mirrors wireguard-go device/receive.go and send.go.
 *
 * Receive stages (`receive`):
 *   1. Type word and exact size; anything else counted and dropped.
 *   2. Handshake (1, 2): mac1 must be valid. Under load, mac2 must be valid too or a 64-byte
 *      cookie reply goes back (at most COOKIE_REPLIES_PER_SOURCE a second to one IP, and
 *      COOKIE_REPLIES_PER_SECOND in all: the source is not proven yet, so this bounds what a
 *      spoofed flood reflects), and the source IP must pass the rate limiter.
 *   3. Initiation: decrypt, find the peer by static key, reject replayed timestamps and floods,
 *      answer with a response; the responder's keypair waits in `next` until data confirms it.
 *      Response: find our handshake by index, complete it, send a keepalive or staged packets.
 *   4. Cookie reply (3): store the cookie for the next mac2.
 *   5. Transport (4): find the keypair by index, decrypt, then check the replay window (only
 *      authenticated counters move it), then confirm `next`, roam the endpoint, deliver.
 * Nothing in stages 1-2 or a failed decryption changes any peer state: only counters move.
 *
 * Send stages (`sendPacket`): stage a copy → with a valid current keypair, pad to 16, encrypt
 * with the next counter, send → else start a handshake and keep the packet staged (at most
 * STAGED_MAX, the oldest dropped).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { nativeAead, type NativeAead } from '../../io/index.js';
import { ReplayWindow, staticKey, shortKey, tai64n, type StaticKey } from '../../crypto/index.js';
import { type Logger, RateLimitedLog } from '../../util/index.js';
import { CookieChecker, CookieGenerator } from './cookie.js';
import {
  COOKIE_REPLY_BYTES, INITIATION_BYTES, INITIATION_MIN_INTERVAL_MS, KEEPALIVE_TIMEOUT_MS, MSG_COOKIE_REPLY,
  MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT, OFF_COOKIE_RECEIVER, OFF_DATA_COUNTER, OFF_DATA_RECEIVER,
  OFF_RECEIVER, PADDING_MULTIPLE, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS, REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS, REKEY_TIMEOUT_MS, RESPONSE_BYTES, TRANSPORT_HEADER_BYTES, TRANSPORT_MIN_BYTES,
  messageType,
} from './messages.js';
import {
  Handshake, ZERO_PSK, consumeInitiation, consumeResponse, createInitiation, createResponse, deriveSession, freshIndex,
} from './noise.js';
import { RateLimiter } from './ratelimiter.js';
import {
  PeerTimers, runTimers, timersAnyAuthenticatedPacketReceived, timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal, timersDataReceived, timersDataSent, timersHandshakeComplete,
  timersHandshakeInitiated, timersSessionDerived,
} from './timers.js';

/** Packets waiting for a session, per peer (wireguard-go QueueStagedSize is 128). */
export const STAGED_MAX = 128;
/** Cookie replies a second to one source IP under load (a burst of 5), and to all sources. */
export const COOKIE_REPLIES_PER_SOURCE = 20;
export const COOKIE_REPLIES_PER_SECOND = 2000;
const TAG_BYTES = 16;
const NO_ENDPOINT = -1;

/** How the device reaches the network. Endpoint ids are small integers owned by the io. */
export interface WgIo {
  /** Sends one datagram; the io copies the bytes before returning. */
  send(endpoint: number, buf: Buffer, off: number, len: number): void;
  /** The source address as bytes (IPv4 then port) for cookies. */
  addressBytes(endpoint: number): Buffer;
  /** The source IP, for the rate limiter. */
  addressHost(endpoint: number): string;
  /** For logs and status ("10.0.0.2:51820"). */
  addressText(endpoint: number): string;
}

export interface WgPeerConfig {
  publicKey: Buffer;
  presharedKey: Buffer | null;
  /** Endpoint id, or -1 to wait for the peer to connect. */
  endpoint: number;
  /** 0 = off. */
  persistentKeepaliveMs: number;
}

export interface WgDeviceOptions {
  privateKey: Buffer;
  io: WgIo;
  log: Logger;
  /** A decrypted inner packet (padding included) from `peer`; buf is valid during the call only. */
  onPacket: (peer: Peer, buf: Buffer, off: number, len: number) => void;
  /** A session with `peer` became usable or its endpoint moved. */
  onPeerEvent?: (peer: Peer, event: 'handshake' | 'endpoint') => void;
  /** Wall clock for TAI64N timestamps (ms since 1970). */
  wallMs?: () => number;
  /** [0, 1) for timer jitter. */
  random?: () => number;
  /** Handshake messages per second above which the device is "under load" (cookies required). */
  underLoadPerSecond?: number;
}

export class Keypair {
  sendCounter = 0;
  /** Zeroes both keys: the keypair is being discarded (never used again). */
  wipe(): void {
    this.sendKey.fill(0);
    this.recvKey.fill(0);
  }
  readonly replay = new ReplayWindow();
  constructor(
    readonly sendKey: Buffer,
    readonly recvKey: Buffer,
    readonly isInitiator: boolean,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly createdMs: number,
  ) {}
}

/** Per-peer protocol counters, reported in status. */
export class PeerCounters {
  rxBytes = 0;       // authenticated datagram bytes received (as `wg show` transfer)
  txBytes = 0;
  rxData = 0;
  txData = 0;
  rxKeepalives = 0;
  txKeepalives = 0;
  handshakes = 0;
  rxReplayed = 0;     // data packets whose counter was seen before or is too old
  rxInitiationReplayed = 0;
  stagedDropped = 0;
}

export class Peer {
  readonly handshake: Handshake;
  readonly cookies: CookieGenerator;
  readonly timers = new PeerTimers();
  readonly counters = new PeerCounters();
  readonly label: string;
  endpoint: number;
  current: Keypair | null = null;
  previous: Keypair | null = null;
  next: Keypair | null = null;
  staged: Buffer[] = [];
  lastSentHandshakeMs = -Infinity;
  lastHandshakeWallMs = 0;
  /** Device-clock ms of the last authenticated packet from this peer (0 = never). */
  lastRxMs = 0;
  readonly persistentKeepaliveMs: number;
  /** Free for the owner (the transport keeps its port here). */
  owner: unknown = null;

  constructor(local: StaticKey, readonly publicKey: Buffer, cfg: WgPeerConfig) {
    this.handshake = new Handshake(local, publicKey, cfg.presharedKey ?? ZERO_PSK);
    this.cookies = new CookieGenerator(publicKey);
    this.endpoint = cfg.endpoint;
    this.persistentKeepaliveMs = cfg.persistentKeepaliveMs;
    this.label = `wg peer ${shortKey(publicKey)}`;
  }

  dropStaged(): void {
    this.counters.stagedDropped += this.staged.length;
    this.staged = [];
  }

  hasSession(): boolean {
    return this.current !== null;
  }
}

/** Device-wide counters of packets that never reached a peer (or failed to authenticate). */
export class DeviceCounters {
  rxPackets = 0;
  rxBadType = 0;
  rxBadSize = 0;
  rxBadMac1 = 0;
  rxBadMac2 = 0;
  rxRateLimited = 0;
  rxUnknownIndex = 0;
  rxHandshakeFailed = 0;
  rxDecryptFailed = 0;
  rxBadCookie = 0;
  txCookieReplies = 0;
  /** Cookie replies not sent: over the per-source or the overall rate (COOKIE_REPLIES_PER_*). */
  txCookieRepliesLimited = 0;
}

type IndexEntry = { peer: Peer; keypair: Keypair | null };

export class WgDevice {
  readonly local: StaticKey;
  readonly counters = new DeviceCounters();
  readonly log: Logger;
  readonly random: () => number;
  private readonly io: WgIo;
  private readonly checker: CookieChecker;
  private readonly limiter = new RateLimiter();
  private readonly cookieLimiter = new RateLimiter({ packetsPerSecond: COOKIE_REPLIES_PER_SOURCE });
  private readonly cookieBudget = new RateLimiter({ packetsPerSecond: COOKIE_REPLIES_PER_SECOND, burst: COOKIE_REPLIES_PER_SECOND / 10, maxEntries: 1 });
  /** Every transport message is sealed here; io.send copies it before returning. */
  private readonly sealBuffer = Buffer.allocUnsafe(SEAL_BUFFER_BYTES);
  private readonly peersByKey = new Map<string, Peer>();
  readonly peers: Peer[] = [];
  private readonly indices = new Map<number, IndexEntry>();
  private readonly wallMs: () => number;
  private readonly underLoadPerSecond: number;
  private readonly findHandshake: (pub: Buffer) => Handshake | undefined;
  private readonly rlog: RateLimitedLog;
  private nowMs = 0;
  private loadWindowStartMs = 0;
  private loadCount = 0;
  private underLoadUntilMs = -Infinity;

  constructor(private readonly opts: WgDeviceOptions) {
    this.local = staticKey(opts.privateKey);
    this.io = opts.io;
    this.log = opts.log;
    this.random = opts.random ?? Math.random;
    this.wallMs = opts.wallMs ?? Date.now;
    this.underLoadPerSecond = opts.underLoadPerSecond ?? 256;
    this.checker = new CookieChecker(this.local.publicKey);
    this.findHandshake = (pub) => this.peersByKey.get(pub.toString('base64'))?.handshake;
    this.rlog = new RateLimitedLog((m) => this.log.info(m));
  }

  addPeer(cfg: WgPeerConfig): Peer {
    const key = cfg.publicKey.toString('base64');
    if (this.peersByKey.has(key)) throw new Error(`peer ${shortKey(cfg.publicKey)} added twice`);
    const p = new Peer(this.local, cfg.publicKey, cfg);
    this.peersByKey.set(key, p);
    this.peers.push(p);
    return p;
  }

  peerByKey(pub: Buffer): Peer | undefined {
    return this.peersByKey.get(pub.toString('base64'));
  }

  now(): number { return this.nowMs; }

  /** Advances the device clock and runs due timers. */
  tick(nowMs: number): void {
    this.nowMs = nowMs;
    for (let i = 0; i < this.peers.length; i++) runTimers(this, this.peers[i], nowMs);
    this.limiter.tick(nowMs);
    this.cookieLimiter.tick(nowMs);
  }

  /** Starts every peer with persistent keepalive and an endpoint (wireguard-go does so on up). */
  up(nowMs: number): void {
    this.nowMs = nowMs;
    for (const p of this.peers) if (p.persistentKeepaliveMs > 0 && p.endpoint !== NO_ENDPOINT) this.sendKeepalive(p);
  }

  /** True while handshake messages arrive faster than `underLoadPerSecond` (and 1 s after). */
  underLoad(): boolean {
    return this.nowMs < this.underLoadUntilMs;
  }

  private noteHandshakeLoad(): void {
    if (this.nowMs - this.loadWindowStartMs >= 1000) {
      this.loadWindowStartMs = this.nowMs;
      this.loadCount = 0;
    }
    this.loadCount++;
    if (this.loadCount > this.underLoadPerSecond) this.underLoadUntilMs = this.nowMs + 1000;
  }

  // -------------------------------------------------------------------------------------------
  // Receive

  /** One datagram from `endpoint`; buf is the caller's for the length of the call. */
  receive(endpoint: number, buf: Buffer, off: number, len: number): void {
    this.counters.rxPackets++;
    const type = messageType(buf, off, len);
    switch (type) {
      case MSG_TRANSPORT:
        if (len < TRANSPORT_MIN_BYTES) { this.counters.rxBadSize++; return; }
        this.receiveTransport(endpoint, buf, off, len);
        return;
      case MSG_INITIATION:
        if (len !== INITIATION_BYTES) { this.counters.rxBadSize++; return; }
        if (!this.checkHandshakeMacs(endpoint, buf, off, len)) return;
        this.receiveInitiation(endpoint, buf, off, len);
        return;
      case MSG_RESPONSE:
        if (len !== RESPONSE_BYTES) { this.counters.rxBadSize++; return; }
        if (!this.checkHandshakeMacs(endpoint, buf, off, len)) return;
        this.receiveResponse(endpoint, buf, off, len);
        return;
      case MSG_COOKIE_REPLY:
        if (len !== COOKIE_REPLY_BYTES) { this.counters.rxBadSize++; return; }
        this.receiveCookieReply(buf, off);
        return;
      default:
        this.counters.rxBadType++;
    }
  }

  /** Stage 2: mac1 always; under load mac2 (else a cookie reply) and the rate limiter. */
  private checkHandshakeMacs(endpoint: number, buf: Buffer, off: number, len: number): boolean {
    this.noteHandshakeLoad();
    if (!this.checker.checkMac1(buf, off, len)) {
      this.counters.rxBadMac1++;
      return false;
    }
    if (!this.underLoad()) return true;
    const src = this.io.addressBytes(endpoint);
    if (!this.checker.checkMac2(buf, off, len, src, this.nowMs)) {
      this.counters.rxBadMac2++;
      if (!this.cookieLimiter.allow(this.io.addressHost(endpoint), this.nowMs) || !this.cookieBudget.allow('', this.nowMs)) {
        this.counters.txCookieRepliesLimited++;
        return false;
      }
      const reply = this.checker.createReply(buf, off, len, src, this.nowMs);
      this.io.send(endpoint, reply, 0, reply.length);
      this.counters.txCookieReplies++;
      return false;
    }
    if (!this.limiter.allow(this.io.addressHost(endpoint), this.nowMs)) {
      this.counters.rxRateLimited++;
      return false;
    }
    return true;
  }

  /** A handshake message from `peer` passed authentication: count it, follow the peer (roaming), run the timers. */
  private authenticatedHandshake(peer: Peer, endpoint: number, len: number): void {
    peer.counters.rxBytes += len;
    this.setEndpoint(peer, endpoint);
    timersAnyAuthenticatedPacketTraversal(peer, this.nowMs);
    timersAnyAuthenticatedPacketReceived(peer);
    peer.lastRxMs = this.nowMs;
  }

  private receiveInitiation(endpoint: number, buf: Buffer, off: number, len: number): void {
    const r = consumeInitiation(this.local, buf, off, this.findHandshake);
    if (r === null) {
      this.counters.rxHandshakeFailed++;
      return;
    }
    const peer = this.peersByKey.get(r.hs.remoteStatic.toString('base64'))!;
    if (!r.commit(this.nowMs, INITIATION_MIN_INTERVAL_MS)) {
      peer.counters.rxInitiationReplayed++;
      return;
    }
    this.authenticatedHandshake(peer, endpoint, len);
    this.sendHandshakeResponse(peer);
  }

  private receiveResponse(endpoint: number, buf: Buffer, off: number, len: number): void {
    const entry = this.indices.get(buf.readUInt32LE(off + OFF_RECEIVER));
    if (entry === undefined || entry.keypair !== null) {
      this.counters.rxUnknownIndex++;
      return;
    }
    const peer = entry.peer;
    if (!consumeResponse(peer.handshake, buf, off)) {
      this.counters.rxHandshakeFailed++;
      return;
    }
    this.authenticatedHandshake(peer, endpoint, len);
    if (!this.beginSession(peer)) return;
    timersSessionDerived(peer, this.nowMs);
    timersHandshakeComplete(peer, this.wallMs());
    peer.counters.handshakes++;
    this.log.debug(`${peer.label}: handshake complete (initiator) with ${this.io.addressText(endpoint)}`);
    if (this.opts.onPeerEvent) this.opts.onPeerEvent(peer, 'handshake');
    // Confirm the session to the responder at once: staged packets, or a keepalive.
    if (peer.staged.length > 0) this.sendStaged(peer);
    else this.sendKeepalive(peer);
  }

  private receiveCookieReply(buf: Buffer, off: number): void {
    const entry = this.indices.get(buf.readUInt32LE(off + OFF_COOKIE_RECEIVER));
    if (entry === undefined) {
      this.counters.rxUnknownIndex++;
      return;
    }
    if (!entry.peer.cookies.consumeReply(buf, off, this.nowMs)) this.counters.rxBadCookie++;
  }

  private receiveTransport(endpoint: number, buf: Buffer, off: number, len: number): void {
    const entry = this.indices.get(buf.readUInt32LE(off + OFF_DATA_RECEIVER));
    if (entry === undefined || entry.keypair === null) {
      this.counters.rxUnknownIndex++;
      return;
    }
    const kp = entry.keypair;
    const peer = entry.peer;
    const counter = buf.readUInt32LE(off + OFF_DATA_COUNTER) + buf.readUInt32LE(off + OFF_DATA_COUNTER + 4) * 0x100000000;
    if (this.nowMs - kp.createdMs >= REJECT_AFTER_TIME_MS || counter >= REJECT_AFTER_MESSAGES) {
      this.counters.rxDecryptFailed++;
      return;
    }
    const plain = decrypt(kp.recvKey, counter, buf, off + TRANSPORT_HEADER_BYTES, len - TRANSPORT_HEADER_BYTES);
    const plainOff = decrypted.off;
    const plainLen = len - TRANSPORT_HEADER_BYTES - TAG_BYTES;
    if (plain === null) {
      this.counters.rxDecryptFailed++;
      return;
    }
    if (!kp.replay.check(counter, REJECT_AFTER_MESSAGES)) {
      peer.counters.rxReplayed++;
      return;
    }
    peer.counters.rxBytes += len;
    peer.lastRxMs = this.nowMs;
    if (kp === peer.next) {
      // The initiator used the session we answered: it is confirmed (paper §5.4.6).
      this.rotateConfirmed(peer);
      timersHandshakeComplete(peer, this.wallMs());
      peer.counters.handshakes++;
      this.log.debug(`${peer.label}: handshake complete (responder) with ${this.io.addressText(endpoint)}`);
      if (this.opts.onPeerEvent) this.opts.onPeerEvent(peer, 'handshake');
      if (peer.staged.length > 0) this.sendStaged(peer);
    }
    this.keepKeyFreshReceiving(peer);
    timersAnyAuthenticatedPacketTraversal(peer, this.nowMs);
    timersAnyAuthenticatedPacketReceived(peer);
    this.setEndpoint(peer, endpoint);
    if (plainLen === 0) {
      peer.counters.rxKeepalives++;
      return;
    }
    timersDataReceived(this, peer, this.nowMs);
    peer.counters.rxData++;
    this.opts.onPacket(peer, plain, plainOff, plainLen);
  }

  /** Roaming: the newest authenticated packet's source becomes the peer's endpoint. */
  private setEndpoint(peer: Peer, endpoint: number): void {
    if (peer.endpoint === endpoint) return;
    const old = peer.endpoint;
    peer.endpoint = endpoint;
    this.rlog.write(this.nowMs, `${peer.label}: endpoint ${old === NO_ENDPOINT ? 'learned' : 'moved from ' + this.io.addressText(old) + ' to'} ${this.io.addressText(endpoint)}`);
    if (this.opts.onPeerEvent) this.opts.onPeerEvent(peer, 'endpoint');
  }

  // -------------------------------------------------------------------------------------------
  // Sessions

  private beginSession(peer: Peer): boolean {
    const keys = deriveSession(peer.handshake);
    if (keys === null) return false;
    const kp = new Keypair(keys.sendKey, keys.recvKey, keys.isInitiator, keys.localIndex, keys.remoteIndex, this.nowMs);
    this.indices.set(kp.localIndex, { peer, keypair: kp });
    if (kp.isInitiator) {
      if (peer.next !== null) {
        this.forget(peer.previous);
        peer.previous = peer.next;
        peer.next = null;
        this.forget(peer.current);
      } else {
        this.forget(peer.previous);
        peer.previous = peer.current;
      }
      peer.current = kp;
    } else {
      this.forget(peer.next);
      peer.next = kp;
      this.forget(peer.previous);
      peer.previous = null;
    }
    return true;
  }

  private rotateConfirmed(peer: Peer): void {
    this.forget(peer.previous);
    peer.previous = peer.current;
    peer.current = peer.next;
    peer.next = null;
  }

  /** Discards a keypair: its index goes and its keys are zeroed. */
  private forget(kp: Keypair | null): void {
    if (kp === null) return;
    if (this.indices.get(kp.localIndex)?.keypair === kp) this.indices.delete(kp.localIndex);
    kp.wipe();
  }

  /** Wipes every key of a peer (zeroKeyMaterial timer, peer removal). */
  zeroKeys(peer: Peer): void {
    this.forget(peer.previous);
    this.forget(peer.current);
    this.forget(peer.next);
    peer.previous = peer.current = peer.next = null;
    this.dropHandshakeIndex(peer.handshake);
    peer.handshake.clear();
  }

  /** Forgets the index of the handshake in progress (its state is being replaced or wiped). */
  private dropHandshakeIndex(hs: Handshake): void {
    if (hs.localIndex !== 0 && this.indices.get(hs.localIndex)?.keypair === null) this.indices.delete(hs.localIndex);
  }

  /** Receiver indices in use: one per live keypair and per handshake in flight (at most 4 a peer). */
  get indexCount(): number { return this.indices.size; }

  private keepKeyFreshSending(peer: Peer): void {
    const kp = peer.current;
    if (kp === null) return;
    if (kp.sendCounter > REKEY_AFTER_MESSAGES || (kp.isInitiator && this.nowMs - kp.createdMs > REKEY_AFTER_TIME_MS)) {
      this.sendHandshakeInitiation(peer, false);
    }
  }

  private keepKeyFreshReceiving(peer: Peer): void {
    if (peer.timers.sentLastMinuteHandshake) return;
    const kp = peer.current;
    if (kp === null || !kp.isInitiator) return;
    if (this.nowMs - kp.createdMs > REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS) {
      peer.timers.sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(peer, false);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Send

  sendHandshakeInitiation(peer: Peer, isRetry: boolean): void {
    if (!isRetry) peer.timers.handshakeAttempts = 0;
    if (this.nowMs - peer.lastSentHandshakeMs < REKEY_TIMEOUT_MS) return;
    if (peer.endpoint === NO_ENDPOINT) return; // It has to find us first.
    peer.lastSentHandshakeMs = this.nowMs;
    const hs = peer.handshake;
    this.dropHandshakeIndex(hs);
    const index = freshIndex(this.indices);
    const msg = createInitiation(hs, index, tai64n(this.wallMs()));
    if (msg === null) {
      this.rlog.write(this.nowMs, `${peer.label}: cannot start a handshake (the public key is a low-order point); fix the key`);
      return;
    }
    this.indices.set(index, { peer, keypair: null });
    peer.cookies.addMacs(msg, this.nowMs);
    this.io.send(peer.endpoint, msg, 0, msg.length);
    peer.counters.txBytes += msg.length;
    timersAnyAuthenticatedPacketTraversal(peer, this.nowMs);
    timersAnyAuthenticatedPacketSent(peer);
    timersHandshakeInitiated(this, peer, this.nowMs);
  }

  private sendHandshakeResponse(peer: Peer): void {
    peer.lastSentHandshakeMs = this.nowMs;
    const hs = peer.handshake;
    // Our own initiation, if one was in flight (both sides initiated at once), was just replaced
    // by theirs: its response can no longer be consumed, so its index goes.
    this.dropHandshakeIndex(hs);
    const index = freshIndex(this.indices);
    const msg = createResponse(hs, index);
    if (msg === null) {
      this.counters.rxHandshakeFailed++;
      return;
    }
    if (!this.beginSession(peer)) return;
    timersSessionDerived(peer, this.nowMs);
    peer.cookies.addMacs(msg, this.nowMs);
    this.io.send(peer.endpoint, msg, 0, msg.length);
    peer.counters.txBytes += msg.length;
    timersAnyAuthenticatedPacketTraversal(peer, this.nowMs);
    timersAnyAuthenticatedPacketSent(peer);
  }

  /**
   * Sends one inner packet to `peer` (copied; the caller keeps buf). Without a usable session the
   * packet waits in the staged queue (oldest dropped beyond STAGED_MAX) while a handshake runs.
   */
  sendPacket(peer: Peer, buf: Buffer, off: number, len: number): void {
    // Fast path: a usable session and nothing waiting, so sealed straight from the caller's bytes.
    const kp = peer.current;
    if (peer.staged.length === 0 && kp !== null && this.nowMs - kp.createdMs < REJECT_AFTER_TIME_MS &&
        kp.sendCounter < REJECT_AFTER_MESSAGES && peer.endpoint !== NO_ENDPOINT) {
      const n = encrypt(this.sealBuffer, kp, kp.sendCounter++, buf, off, len);
      this.io.send(peer.endpoint, this.sealBuffer, 0, n);
      peer.counters.txBytes += n;
      peer.counters.txData++;
      timersAnyAuthenticatedPacketTraversal(peer, this.nowMs);
      timersAnyAuthenticatedPacketSent(peer);
      timersDataSent(this, peer, this.nowMs);
      this.keepKeyFreshSending(peer);
      return;
    }
    if (peer.staged.length >= STAGED_MAX) {
      peer.staged.shift();
      peer.counters.stagedDropped++;
    }
    // Copy: the packet may outlive this call while a handshake runs.
    peer.staged.push(Buffer.from(buf.subarray(off, off + len)));
    this.sendStaged(peer);
  }

  sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(Buffer.alloc(0));
    this.sendStaged(peer);
  }

  private sendStaged(peer: Peer): void {
    const kp = peer.current;
    if (kp === null || this.nowMs - kp.createdMs >= REJECT_AFTER_TIME_MS || kp.sendCounter >= REJECT_AFTER_MESSAGES || peer.endpoint === NO_ENDPOINT) {
      this.sendHandshakeInitiation(peer, false);
      return;
    }
    const staged = peer.staged;
    peer.staged = [];
    let sentData = false;
    for (let i = 0; i < staged.length; i++) {
      const p = staged[i];
      const counter = kp.sendCounter++;
      const n = encrypt(this.sealBuffer, kp, counter, p, 0, p.length);
      this.io.send(peer.endpoint, this.sealBuffer, 0, n);
      peer.counters.txBytes += n;
      if (p.length === 0) peer.counters.txKeepalives++;
      else {
        peer.counters.txData++;
        sentData = true;
      }
    }
    if (staged.length > 0) {
      timersAnyAuthenticatedPacketTraversal(peer, this.nowMs);
      timersAnyAuthenticatedPacketSent(peer);
      if (sentData) timersDataSent(this, peer, this.nowMs);
    }
    this.keepKeyFreshSending(peer);
  }
}

/** The addon's ChaCha20-Poly1305 when built (no object or Buffer per packet), else node:crypto. */
const AEAD: NativeAead | null = nativeAead();

/** Where decrypt() left the plaintext in the buffer it returned (one object, no allocation). */
const decrypted = { off: 0 };

/** Room for the largest type-4 message: header, 65535 bytes padded to 16, tag. */
const SEAL_BUFFER_BYTES = TRANSPORT_HEADER_BYTES + 65536 + TAG_BYTES;

/**
 * Builds a type-4 message in `out` (SEAL_BUFFER_BYTES long, reused: the socket copies it before
 * send returns): header, then the plaintext src[off, +len) padded to 16 bytes and sealed.
 * Returns the message's length.
 */
function encrypt(out: Buffer, kp: Keypair, counter: number, src: Buffer, off: number, len: number): number {
  const padded = Math.ceil(len / PADDING_MULTIPLE) * PADDING_MULTIPLE;
  const total = TRANSPORT_HEADER_BYTES + padded + TAG_BYTES;
  out.writeUInt32LE(MSG_TRANSPORT, 0);
  out.writeUInt32LE(kp.remoteIndex, OFF_DATA_RECEIVER);
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x100000000);
  out.writeUInt32LE(lo, OFF_DATA_COUNTER);
  out.writeUInt32LE(hi, OFF_DATA_COUNTER + 4);
  if (AEAD !== null && AEAD.seal(kp.sendKey, lo, hi, src, off, len, padded, out, TRANSPORT_HEADER_BYTES) === padded + TAG_BYTES) return total;
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(lo, 4);
  nonce.writeUInt32LE(hi, 8);
  const c = createCipheriv('chacha20-poly1305', kp.sendKey, nonce, { authTagLength: TAG_BYTES });
  let at = TRANSPORT_HEADER_BYTES;
  at += c.update(src.subarray(off, off + len)).copy(out, at);
  if (padded > len) at += c.update(Buffer.alloc(padded - len)).copy(out, at);
  c.final();
  c.getAuthTag().copy(out, at);
  return total;
}

/**
 * Opens a sealed packet at buf[off..off+len). With the addon, in place, as the kernel's WireGuard
 * does: the plaintext replaces the ciphertext at buf[off, +len - 16) and buf itself is returned, so
 * a frame received on a native socket is forwarded from its receive slab without a copy (the
 * bytes of a packet that fails are garbage and dropped with it). Without the addon, a new buffer.
 * Returns null when authentication fails; `decrypted.off` is where the plaintext starts.
 */
function decrypt(key: Buffer, counter: number, buf: Buffer, off: number, len: number): Buffer | null {
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x100000000);
  if (AEAD !== null) {
    if (AEAD.open(key, lo, hi, buf, off, len, buf, off) !== len - TAG_BYTES) return null;
    decrypted.off = off;
    return buf;
  }
  decrypted.off = 0;
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(lo, 4);
  nonce.writeUInt32LE(hi, 8);
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  d.setAuthTag(buf.subarray(off + len - TAG_BYTES, off + len));
  const plain = d.update(buf.subarray(off, off + len - TAG_BYTES));
  try {
    d.final();
  } catch {
    return null;
  }
  return plain;
}
