/**
 * The DHCP server (RFC 2131; options from RFC 2132). Read RFC 2131 sections 4.1 (addressing of
 * replies) and 4.3 (server behaviour) first.
 *
 * Stages of `handle(ethSrc, ipSrc, payload)`:
 *   1. Parse (checked); malformed messages, and requests whose chaddr is not the frame's source
 *      MAC, are counted and dropped, never thrown.
 *   2. Key the client: by MAC (default) or by client identifier (keyBy 'client-id'), and warn when
 *      one client identifier arrives from two MACs (guests cloned from one image).
 *   3. DISCOVER: choose an address (static, the client's previous one, the requested one, a
 *      never-used one, then the longest-expired one), ARP-probe it unless the client already holds
 *      it (RFC 2131 section 3.1 step 2; probe as in RFC 5227), and OFFER it, unless the switch
 *      port the client is on already holds its limit of live leases.
 *   4. REQUEST: SELECTING, INIT-REBOOT, RENEWING or REBINDING (section 4.3.2), answered with ACK
 *      (a new binding's ACK waits until the lease file holds it) or NAK.
 *   5. DECLINE, RELEASE, INFORM.
 *   6. Address the reply per section 4.1 (broadcast flag, ciaddr, yiaddr).
 * Replies are handed to `send` synchronously, except ACKs that wait for the lease file. The
 * server never reads a clock or sets a timer of its own: both are injected. An exception in a
 * handler or timer (a bug) costs only that message: it is counted as `handlerErrors` and logged,
 * rate limited.
 */
import type { PortKind } from '../../switch/index.js';
import { type Logger, RateLimitedLog } from '../../util/index.js';
import { type ArpRepr, type DhcpRepr, BROADCAST_MAC, formatMac, IPV4_BROADCAST, formatIpv4Address, type Ipv4Cidr } from '../../wire/index.js';
import {
  BOOTREPLY, BOOTREQUEST, DHCPACK, DHCPDECLINE, DHCPDISCOVER, DHCPINFORM, DHCPNAK, DHCPOFFER, DHCPRELEASE, DHCPREQUEST,
  DHCP_CLIENT_PORT, DhcpOptionLimitError, dhcpMessageName, emptyDhcpRepr, parseDhcp,
} from '../../wire/index.js';
import { type Clock, type DhcpCounters, type DhcpDropReason, type LeaseStatus, type Timers, DHCP_DROP_REASONS, zeroMessageCounts } from '../types.js';
import { type Lease, LeaseStore } from './lease-store.js';

/** Checked runtime configuration (see resolve.ts). Addresses are unsigned 32-bit numbers. */
export interface DhcpConfig {
  subnet: Ipv4Cidr;
  hostIp: number;
  hostMac: number;
  poolStart: number;
  poolEnd: number;
  leaseSeconds: number;
  keyBy: 'mac' | 'client-id';
  router: number | null;
  dns: number[];
  domain: string;
  mtu: number | null;
  /** Static address by MAC, and by lowercase hostname. */
  staticByMac: Map<number, number>;
  staticByName: Map<string, number>;
  probeMs: number;
  /** Most live leases (offered or bound) held through one guest port (udp, unixgram, tcp, unix); 0: no limit. */
  maxLeasesPerPort: number;
  /** The same for ports many guests share (mcast, tap, vxlan, wg); 0: no limit. */
  maxLeasesPerSharedPort: number;
}

/** The switch port a MAC was last heard on, or undefined (not learned). */
export type PortLocator = (mac: number) => { readonly id: number; readonly kind: PortKind } | undefined;

/** Port kinds behind which many guests are normal: their own lease limit applies. */
const SHARED_PORT_KINDS: ReadonlySet<PortKind> = new Set<PortKind>(['mcast', 'tap', 'vxlan', 'wg']);

/** Where replies and probes go: the virtual host wraps them in UDP/IPv4/Ethernet or ARP. */
export interface DhcpOutput {
  sendDhcp(msg: DhcpRepr, dstMac: number, dstIp: number, dstPort: number): void;
  sendArpProbe(ip: number): void;
}

/** How long an OFFER holds its address for the client (RFC 2131 leaves it to the server). */
const OFFER_HOLD_MS = 60_000;
/** Addresses tried per DISCOVER when probes keep finding them in use. */
const MAX_PROBE_ATTEMPTS = 4;
/** Clone detection remembers this many client identifiers; the map is cleared when it fills. */
const MAX_TRACKED_CLIENT_IDS = 4096;
const MAX_WARNED = 1024;

interface PendingProbe {
  key: string;
  ip: number;
  req: DhcpRepr;
  portId: number;
  timer: unknown;
  attempts: number;
  tried: Set<number>;
  conflictMac: number;
}

/** A new binding whose ACK waits for the lease file write; `req` is the newest REQUEST for it. */
interface PendingAck {
  lease: Lease;
  req: DhcpRepr;
}

export class DhcpServer {
  readonly counters: DhcpCounters;
  readonly store: LeaseStore;
  private readonly cfg: DhcpConfig;
  private readonly out: DhcpOutput;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly timers: Timers;
  /** Lease lines (granted, released, declined): a guest can trigger them, so they are rate-limited. */
  private readonly leaseLog: RateLimitedLog;
  private readonly warnLog: RateLimitedLog;
  private readonly probesByIp = new Map<number, PendingProbe>();
  private readonly probesByKey = new Map<string, PendingProbe>();
  private readonly clientIdMacs = new Map<string, number>();
  private readonly warnedClonePairs = new Set<string>();
  private readonly warnedServers = new Set<number>();
  private readonly acksPending = new Map<string, PendingAck>();
  private readonly errorLog: RateLimitedLog;
  private readonly portOf: PortLocator;
  private scanCursor: number;
  private closed = false;

  constructor(cfg: DhcpConfig, store: LeaseStore, out: DhcpOutput, log: Logger, clock: Clock, timers: Timers, portOf: PortLocator = () => undefined) {
    this.cfg = cfg;
    this.portOf = portOf;
    this.store = store;
    this.out = out;
    this.log = log;
    this.clock = clock;
    this.timers = timers;
    this.leaseLog = new RateLimitedLog((m) => log.info(m), 20, 10_000);
    this.warnLog = new RateLimitedLog((m) => log.info(m), 5, 10_000);
    this.errorLog = new RateLimitedLog((m) => log.error(m), 5, 60_000);
    const drops = {} as Record<DhcpDropReason, number>;
    for (const r of DHCP_DROP_REASONS) drops[r] = 0;
    this.counters = {
      rx: zeroMessageCounts(), tx: zeroMessageCounts(), drops, probesSent: 0, probeConflicts: 0, foreignServerReplies: 0,
      handlerErrors: 0, leaseFile: store.fileCounters,
    };
    this.scanCursor = cfg.poolStart;
  }

  /** The key for a client: see DhcpOptions.keyBy. */
  keyFor(mac: number, clientId: string | null): string {
    if (this.cfg.keyBy === 'client-id' && clientId !== null) return 'id:' + clientId;
    return 'mac:' + mac.toString(16).padStart(12, '0');
  }

  /** 1. Entry point for a UDP payload sent to port 67. `payload` is only borrowed. Never throws. */
  handle(ethSrc: number, ipSrc: number, payload: Buffer): void {
    try {
      this.handleMessage(ethSrc, ipSrc, payload);
    } catch (err) {
      this.handlerError(`DHCP message from ${formatMac(ethSrc)}`, err);
    }
  }

  private handleMessage(ethSrc: number, ipSrc: number, payload: Buffer): void {
    let req: DhcpRepr;
    try {
      req = parseDhcp(payload, 0, payload.length);
    } catch (err) {
      this.drop(err instanceof DhcpOptionLimitError ? 'option-too-long' : 'malformed', `malformed DHCP message from ${formatMac(ethSrc)}: ${(err as Error).message}`);
      return;
    }
    if (req.op !== BOOTREQUEST) { this.drop('not-request'); return; }
    this.counters.rx[dhcpMessageName(req.messageType)]++;
    if (req.giaddr !== 0) { this.drop('relayed'); return; }
    // Without a relay (giaddr 0, checked above) a client sends its own messages, so chaddr is the
    // frame's source MAC; anything else is one guest asking on behalf of addresses it invents.
    if (req.chaddr !== ethSrc) {
      this.drop('chaddr-mismatch', `DHCP ${dhcpMessageName(req.messageType)} from ${formatMac(ethSrc)} names another client hardware address (${formatMac(req.chaddr)}); dropped`);
      return;
    }
    const clientId = req.clientId === null ? null : req.clientId.toString('hex');
    if (clientId !== null) this.noteClientId(clientId, req.chaddr);
    const key = this.keyFor(req.chaddr, clientId);
    const port = this.portOf(ethSrc);
    const portId = port === undefined ? 0 : port.id;
    switch (req.messageType) {
      case DHCPDISCOVER: this.onDiscover(key, req, portId, port === undefined ? 0 : this.portLimit(port.kind)); break;
      case DHCPREQUEST: this.onRequest(key, req, portId, port === undefined ? 0 : this.portLimit(port.kind)); break;
      case DHCPDECLINE: this.onDecline(key, req); break;
      case DHCPRELEASE: this.onRelease(key, req); break;
      case DHCPINFORM: this.onInform(req, ipSrc); break;
      default: this.drop('unsupported-type'); break;
    }
  }

  /** Sees DHCP replies (UDP 67 → 68) from other MACs: another server on the LAN. Warns once per MAC. */
  observeServerReply(ethSrc: number, ipSrc: number, payload: Buffer): void {
    if (ethSrc === this.cfg.hostMac) return;
    let msg: DhcpRepr;
    try {
      msg = parseDhcp(payload, 0, payload.length);
    } catch {
      return;
    }
    if (msg.op !== BOOTREPLY || (msg.messageType !== DHCPOFFER && msg.messageType !== DHCPACK)) return;
    this.counters.foreignServerReplies++;
    if (this.warnedServers.has(ethSrc) || this.warnedServers.size >= MAX_WARNED) return;
    this.warnedServers.add(ethSrc);
    const serverId = msg.serverId === null ? 'none' : formatIpv4Address(msg.serverId);
    this.log.info(`warning: another DHCP server is answering on this LAN: MAC ${formatMac(ethSrc)}, address ${formatIpv4Address(ipSrc)} (server identifier ${serverId}); guests may take leases from it; stop it, or turn lanparty's DHCP off`);
  }

  /** Sees every ARP packet reaching the virtual host: an answer from the probed address is a conflict. */
  observeArp(arp: ArpRepr): void {
    if (arp.senderIp === 0) return;
    const p = this.probesByIp.get(arp.senderIp);
    if (p === undefined || arp.senderMac === p.req.chaddr) return;
    p.conflictMac = arp.senderMac;
  }

  status(nowMs: number): { leases: LeaseStatus[]; inUse: number } {
    const leases: LeaseStatus[] = [];
    let inUse = 0;
    for (const l of this.store.all()) {
      const live = l.expiresAtMs > nowMs;
      if (live) inUse++;
      leases.push({
        mac: formatMac(l.mac), ip: formatIpv4Address(l.ip), hostname: l.hostname,
        expiresInS: Math.floor((l.expiresAtMs - nowMs) / 1000), clientId: l.clientId, state: l.state,
        static: this.staticFor(l.mac, l.hostname) === l.ip,
      });
    }
    leases.sort((a, b) => ipSortKey(a.ip) - ipSortKey(b.ip));
    return { leases, inUse };
  }

  /** The hostname's newest live binding, for DNS A queries. `name` is lowercase. */
  lookupName(name: string): number | null {
    const now = this.clock.nowMs();
    let best: Lease | null = null;
    for (const l of this.store.all()) {
      if (l.state !== 'bound' || l.expiresAtMs <= now || l.hostname === null) continue;
      if (dnsLabel(l.hostname) !== name) continue;
      if (best === null || l.boundAtMs > best.boundAtMs) best = l;
    }
    return best === null ? null : best.ip;
  }

  /** The hostname (as a DNS label) bound to `ip`, for PTR queries. */
  lookupAddress(ip: number): string | null {
    const l = this.store.getByIp(ip);
    if (l === undefined || l.state !== 'bound' || l.expiresAtMs <= this.clock.nowMs() || l.hostname === null) return null;
    return dnsLabel(l.hostname);
  }

  /** Stops probes and timers and writes pending lease changes. ACKs still waiting are not sent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.probesByKey.values()) this.timers.clearTimeout(p.timer);
    this.probesByKey.clear();
    this.probesByIp.clear();
    await this.store.flush();
  }

  /** A bug in a handler or timer: counted, logged (rate limited), and the server keeps serving. */
  private handlerError(what: string, err: unknown): void {
    this.counters.handlerErrors++;
    this.errorLog.write(this.clock.nowMs(), `internal error handling ${what} (dropped; DHCP keeps serving): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }

  // Per-port lease limits.

  private portLimit(kind: PortKind): number {
    return SHARED_PORT_KINDS.has(kind) ? this.cfg.maxLeasesPerSharedPort : this.cfg.maxLeasesPerPort;
  }

  /** True when port `portId` holds `limit` live leases of clients other than `key` (limit 0: never). */
  private portFull(portId: number, limit: number, key: string, now: number): boolean {
    if (limit <= 0 || portId === 0) return false;
    let n = 0;
    for (const l of this.store.all()) {
      if (l.portId !== portId || l.key === key || l.expiresAtMs <= now || (l.state !== 'offered' && l.state !== 'bound')) continue;
      if (++n >= limit) return true;
    }
    for (const p of this.probesByKey.values()) {
      if (p.portId === portId && p.key !== key && ++n >= limit) return true;
    }
    return false;
  }

  private dropPortFull(req: DhcpRepr, limit: number): void {
    this.drop('port-lease-limit', `no lease for ${formatMac(req.chaddr)}: its switch port already holds ${limit} live leases (services.dhcp max leases per port); one guest may be asking for many`);
  }

  // 2. Clone detection.

  private noteClientId(clientId: string, mac: number): void {
    const previous = this.clientIdMacs.get(clientId);
    if (previous === mac) return;
    if (this.clientIdMacs.size >= MAX_TRACKED_CLIENT_IDS) this.clientIdMacs.clear();
    this.clientIdMacs.set(clientId, mac);
    if (previous === undefined) return;
    const pair = clientId + (previous < mac ? `|${previous}|${mac}` : `|${mac}|${previous}`);
    if (this.warnedClonePairs.has(pair) || this.warnedClonePairs.size >= MAX_WARNED) return;
    this.warnedClonePairs.add(pair);
    const effect = this.cfg.keyBy === 'mac'
      ? 'leases are keyed by MAC, so each gets its own address'
      : '[dhcp] key_by is "client-id", so they share one address; give each clone its own /etc/machine-id or set key_by = "mac"';
    this.warnLog.write(this.clock.nowMs(), `warning: DHCP client identifier ${clientIdDisplay(clientId)} arrives from two MACs, ${formatMac(previous)} and ${formatMac(mac)} (guests cloned from one image?); ${effect}`);
  }

  // 3. DISCOVER.

  private onDiscover(key: string, req: DhcpRepr, portId: number, portLimit: number): void {
    const pending = this.probesByKey.get(key);
    if (pending !== undefined) {
      pending.req = req;   // answer the newest transaction when the probe finishes
      this.drop('probing');
      return;
    }
    const now = this.clock.nowMs();
    const current = this.store.get(key);
    // The client's own live offer or binding needs no probe: the address is already its.
    if (current !== undefined && (current.state === 'offered' || current.state === 'bound') && current.expiresAtMs > now &&
        this.availableTo(current.ip, key, req, now)) {
      this.offer(key, req, current.ip, portId);
      return;
    }
    if (this.portFull(portId, portLimit, key, now)) { this.dropPortFull(req, portLimit); return; }
    this.probeNext(key, req, portId, new Set<number>(), 0);
  }

  private probeNext(key: string, req: DhcpRepr, portId: number, tried: Set<number>, attempts: number): void {
    const now = this.clock.nowMs();
    const ip = this.chooseAddress(key, req, tried, now);
    if (ip === null) {
      this.drop('pool-full', `no free address for ${formatMac(req.chaddr)}: pool ${formatIpv4Address(this.cfg.poolStart)}-${formatIpv4Address(this.cfg.poolEnd)} is full (${this.cfg.poolEnd - this.cfg.poolStart + 1} addresses); no offer sent; widen the pool or shorten the lease time`);
      return;
    }
    if (this.cfg.probeMs <= 0 || this.isStaticFor(ip, req)) {
      this.offer(key, req, ip, portId);
      return;
    }
    const p: PendingProbe = { key, ip, req, portId, timer: null, attempts: attempts + 1, tried, conflictMac: -1 };
    tried.add(ip);
    this.probesByKey.set(key, p);
    this.probesByIp.set(ip, p);
    this.counters.probesSent++;
    this.out.sendArpProbe(ip);
    p.timer = this.timers.setTimeout(() => {
      try {
        this.probeDone(p);
      } catch (err) {
        this.handlerError(`the ARP probe of ${formatIpv4Address(p.ip)}`, err);
      }
    }, this.cfg.probeMs);
  }

  private probeDone(p: PendingProbe): void {
    if (this.closed || this.probesByKey.get(p.key) !== p) return;
    this.probesByKey.delete(p.key);
    this.probesByIp.delete(p.ip);
    if (p.conflictMac < 0) {
      this.offer(p.key, p.req, p.ip, p.portId);
      return;
    }
    const now = this.clock.nowMs();
    this.counters.probeConflicts++;
    this.hold(p.ip, p.conflictMac, 'conflict', now);
    this.warnLog.write(now, `address ${formatIpv4Address(p.ip)} is already used by ${formatMac(p.conflictMac)} (it answered the ARP probe); not offering it for ${this.cfg.leaseSeconds} s`);
    if (p.attempts >= MAX_PROBE_ATTEMPTS) {
      this.warnLog.write(now, `no offer for ${formatMac(p.req.chaddr)} after ${p.attempts} addresses were found in use; the client will retry`);
      return;
    }
    this.probeNext(p.key, p.req, p.portId, p.tried, p.attempts);
  }

  private offer(key: string, req: DhcpRepr, ip: number, portId: number): void {
    const now = this.clock.nowMs();
    const current = this.store.get(key);
    if (current !== undefined && current.ip === ip && current.state === 'bound' && current.expiresAtMs > now) {
      // Keep the binding; an OFFER to a bound client just repeats its address.
    } else {
      this.store.put({
        key, mac: req.chaddr, clientId: hexOrNull(req.clientId), ip, hostname: req.hostname,
        state: 'offered', expiresAtMs: now + OFFER_HOLD_MS, boundAtMs: current?.boundAtMs ?? 0, portId,
      });
    }
    this.reply(req, DHCPOFFER, ip, this.hostnameFor(req));
  }

  // Address choice.

  private staticFor(mac: number, hostname: string | null): number | null {
    const byMac = this.cfg.staticByMac.get(mac);
    if (byMac !== undefined) return byMac;
    if (hostname !== null) {
      const byName = this.cfg.staticByName.get(hostname.toLowerCase());
      if (byName !== undefined) return byName;
    }
    return null;
  }

  private isStaticFor(ip: number, req: DhcpRepr): boolean {
    return this.staticFor(req.chaddr, req.hostname) === ip;
  }

  private isReservedStatic(ip: number): boolean {
    for (const a of this.cfg.staticByMac.values()) if (a === ip) return true;
    for (const a of this.cfg.staticByName.values()) if (a === ip) return true;
    return false;
  }

  private inPool(ip: number): boolean {
    return ip >= this.cfg.poolStart && ip <= this.cfg.poolEnd;
  }

  /**
   * True when `ip` may be given to this client: it is its static address, or a pool address that is
   * not another client's static address, not under probe for another client, and not held by a
   * live record of another client (or a live decline hold, or a conflict hold for another MAC).
   * A conflict hold names the MAC that answered our ARP probe: that MAC is using the address (it
   * kept it across a lost lease file), so its renewal is confirmed instead of NAKed.
   */
  private availableTo(ip: number, key: string, req: DhcpRepr, now: number): boolean {
    if (ip === this.cfg.hostIp) return false;
    const mine = this.isStaticFor(ip, req);
    if (!mine && (!this.inPool(ip) || this.isReservedStatic(ip))) return false;
    const probe = this.probesByIp.get(ip);
    if (probe !== undefined && probe.key !== key) return false;
    const l = this.store.getByIp(ip);
    if (l === undefined || l.key === key) return true;
    if (l.state === 'conflict' && l.mac === req.chaddr) return true;
    return l.expiresAtMs <= now;
  }

  private chooseAddress(key: string, req: DhcpRepr, tried: Set<number>, now: number): number | null {
    const ok = (ip: number): boolean => !tried.has(ip) && this.availableTo(ip, key, req, now);
    const fixed = this.staticFor(req.chaddr, req.hostname);
    if (fixed !== null && ok(fixed)) return fixed;
    const previous = this.store.get(key);
    if (previous !== undefined && ok(previous.ip)) return previous.ip;
    if (req.requestedIp !== null && ok(req.requestedIp)) return req.requestedIp;
    // Never-used addresses first, scanning on from where the last scan stopped.
    const size = this.cfg.poolEnd - this.cfg.poolStart + 1;
    let ip = this.scanCursor;
    for (let i = 0; i < size; i++) {
      if (!this.store.getByIp(ip) && !this.probesByIp.has(ip) && ok(ip)) {
        this.scanCursor = ip === this.cfg.poolEnd ? this.cfg.poolStart : ip + 1;
        return ip;
      }
      ip = ip === this.cfg.poolEnd ? this.cfg.poolStart : ip + 1;
    }
    // Then the address whose record expired longest ago.
    let best: Lease | null = null;
    for (const l of this.store.all()) {
      if (l.expiresAtMs > now || !ok(l.ip)) continue;
      if (best === null || l.expiresAtMs < best.expiresAtMs) best = l;
    }
    return best === null ? null : best.ip;
  }

  private hold(ip: number, mac: number, state: 'declined' | 'conflict', now: number): void {
    this.store.put({
      key: `hold:${formatIpv4Address(ip)}`, mac, clientId: null, ip, hostname: null, state,
      expiresAtMs: now + this.cfg.leaseSeconds * 1000, boundAtMs: 0, portId: 0,
    });
    this.store.changed();
  }

  // 4. REQUEST.

  private onRequest(key: string, req: DhcpRepr, portId: number, portLimit: number): void {
    const now = this.clock.nowMs();
    const waiting = this.acksPending.get(key);
    if (waiting !== undefined) {
      // A retransmission while its binding is being written: the ACK answers the newest one.
      if ((req.requestedIp ?? req.ciaddr) === waiting.lease.ip) waiting.req = req;
      this.drop('writing');
      return;
    }
    if (req.serverId !== null) {
      // SELECTING: the client answers one OFFER, naming its server.
      if (req.serverId !== this.cfg.hostIp) {
        const l = this.store.get(key);
        if (l !== undefined && l.state === 'offered') this.store.remove(l);
        this.drop('other-server');
        return;
      }
      const ip = req.requestedIp ?? req.ciaddr;
      const l = this.store.get(key);
      if (l !== undefined && l.ip === ip && (l.state === 'offered' || l.state === 'bound') && this.availableTo(ip, key, req, now)) {
        this.bind(key, req, ip, now, portId, portLimit);
      } else {
        this.nak(req, `${formatIpv4Address(ip)} was not offered to this client or the offer expired`);
      }
      return;
    }
    // INIT-REBOOT carries the address in option 50; RENEWING (unicast) and REBINDING (broadcast)
    // carry it in ciaddr.
    const ip = req.requestedIp !== null ? req.requestedIp : req.ciaddr;
    if (ip === 0) { this.drop('no-address'); return; }
    if (((ip & this.cfg.subnet.mask) >>> 0) !== this.cfg.subnet.network) {
      this.nak(req, `${formatIpv4Address(ip)} is not on this LAN (${formatIpv4Address(this.cfg.subnet.network)}/${this.cfg.subnet.prefixLength})`);
      return;
    }
    const l = this.store.get(key);
    const fixed = this.staticFor(req.chaddr, req.hostname);
    if (l !== undefined && l.ip === ip && l.state !== 'declined' && l.state !== 'conflict' && this.availableTo(ip, key, req, now)) {
      this.bind(key, req, ip, now, portId, portLimit);
    } else if (l !== undefined && l.ip !== ip && l.state === 'bound' && l.expiresAtMs > now) {
      this.nak(req, `client holds ${formatIpv4Address(l.ip)}, not ${formatIpv4Address(ip)}`);
    } else if (fixed !== null && fixed !== ip && this.availableTo(fixed, key, req, now)) {
      this.nak(req, `client has static address ${formatIpv4Address(fixed)}`);
    } else if (this.availableTo(ip, key, req, now)) {
      // No record (a lease file lost, or a client that kept its address across our restart):
      // lanparty is authoritative on its LAN, so a free address is confirmed.
      this.bind(key, req, ip, now, portId, portLimit);
    } else {
      this.nak(req, `${formatIpv4Address(ip)} is in use by another client or outside the pool`);
    }
  }

  private bind(key: string, req: DhcpRepr, ip: number, now: number, portId: number, portLimit: number): void {
    const prev = this.store.get(key);
    const live = prev !== undefined && (prev.state === 'offered' || prev.state === 'bound') && prev.expiresAtMs > now;
    if (!live && this.portFull(portId, portLimit, key, now)) { this.dropPortFull(req, portLimit); return; }
    const renewal = prev !== undefined && prev.ip === ip && prev.state === 'bound' && prev.expiresAtMs > now;
    const hostname = this.hostnameFor(req);
    const lease: Lease = {
      key, mac: req.chaddr, clientId: hexOrNull(req.clientId), ip, hostname,
      state: 'bound', expiresAtMs: now + this.cfg.leaseSeconds * 1000, boundAtMs: renewal ? prev.boundAtMs : now,
      portId: portId !== 0 ? portId : (prev?.portId ?? 0),
    };
    this.store.put(lease);
    if (renewal && prev.hostname === hostname && prev.mac === req.chaddr) {
      // A renewal only moves the expiry: written with the next write, answered at once.
      this.store.changed();
      this.log.debug(`lease ${formatIpv4Address(ip)} renewed by ${formatMac(req.chaddr)}`);
      this.reply(req, DHCPACK, ip, hostname);
      return;
    }
    const pending: PendingAck = { lease, req };
    this.acksPending.set(key, pending);
    this.store.commit((ok) => {
      if (this.acksPending.get(key) === pending) this.acksPending.delete(key);
      if (this.closed) return;
      try {
        if (!ok) {
          // Not on disk, so not acknowledged: back to an offer, and the client's retry binds anew.
          if (this.store.get(key) === lease && lease.state === 'bound') {
            lease.state = 'offered';
            lease.expiresAtMs = this.clock.nowMs() + OFFER_HOLD_MS;
          }
          this.drop('lease-write-failed');
          return;
        }
        // Released, declined or replaced while the file was written: nothing to acknowledge.
        if (this.store.get(key) !== lease || lease.state !== 'bound') return;
        this.leaseLog.write(this.clock.nowMs(), `lease ${formatIpv4Address(ip)} granted to ${formatMac(lease.mac)}${hostname ? ' (' + hostname + ')' : ''} for ${this.cfg.leaseSeconds} s`);
        this.reply(pending.req, DHCPACK, ip, hostname);
      } catch (err) {
        this.handlerError(`the ACK of ${formatIpv4Address(ip)}`, err);
      }
    });
  }

  // 5. DECLINE, RELEASE, INFORM.

  private onDecline(key: string, req: DhcpRepr): void {
    if (req.serverId !== null && req.serverId !== this.cfg.hostIp) { this.drop('other-server'); return; }
    const l = this.store.get(key);
    const ip = req.requestedIp;
    // Only the client's own address can be declined, so a guest cannot drain the pool.
    if (ip === null || l === undefined || l.ip !== ip) return;
    const now = this.clock.nowMs();
    this.store.remove(l);
    this.hold(ip, req.chaddr, 'declined', now);
    this.leaseLog.write(now, `lease ${formatIpv4Address(ip)} declined by ${formatMac(req.chaddr)} (address in use on the LAN); not offering it for ${this.cfg.leaseSeconds} s`);
  }

  private onRelease(key: string, req: DhcpRepr): void {
    const l = this.store.get(key);
    if (l === undefined || l.ip !== req.ciaddr || l.state !== 'bound') return;
    const now = this.clock.nowMs();
    // Keep the record, expired, so the client gets the same address back if it is still free.
    l.state = 'released';
    l.expiresAtMs = now;
    this.store.changed();
    this.leaseLog.write(now, `lease ${formatIpv4Address(l.ip)} released by ${formatMac(req.chaddr)}`);
  }

  private onInform(req: DhcpRepr, ipSrc: number): void {
    if (req.ciaddr === 0 && ipSrc !== 0) req.ciaddr = ipSrc;
    if (req.ciaddr === 0) { this.drop('no-address'); return; }
    this.reply(req, DHCPACK, 0, null);
  }

  // 6. Replies.

  private hostnameFor(req: DhcpRepr): string | null {
    if (req.hostname !== null) return req.hostname;
    for (const [name, a] of this.cfg.staticByName) if (this.cfg.staticByMac.get(req.chaddr) === a) return name;
    return null;
  }

  private nak(req: DhcpRepr, why: string): void {
    this.warnLog.write(this.clock.nowMs(), `NAK to ${formatMac(req.chaddr)}: ${why}`);
    const m = emptyDhcpRepr();
    m.op = BOOTREPLY;
    m.xid = req.xid;
    m.chaddr = req.chaddr;
    m.messageType = DHCPNAK;
    m.serverId = this.cfg.hostIp;
    m.clientId = req.clientId;
    m.message = why.length > 200 ? why.slice(0, 200) : why;
    this.counters.tx.nak++;
    // RFC 2131 section 4.1: without a relay, a NAK is always broadcast.
    this.out.sendDhcp(m, BROADCAST_MAC, IPV4_BROADCAST, DHCP_CLIENT_PORT);
  }

  /** OFFER or ACK (an INFORM's ACK has yiaddr 0 and no lease times). */
  private reply(req: DhcpRepr, type: number, yiaddr: number, hostname: string | null): void {
    const c = this.cfg;
    const m = emptyDhcpRepr();
    m.op = BOOTREPLY;
    m.xid = req.xid;
    m.broadcast = req.broadcast;
    m.ciaddr = req.messageType === DHCPINFORM || req.messageType === DHCPREQUEST ? req.ciaddr : 0;
    m.yiaddr = yiaddr;
    m.chaddr = req.chaddr;
    m.messageType = type;
    m.serverId = c.hostIp;
    if (req.messageType !== DHCPINFORM) {
      m.leaseSeconds = c.leaseSeconds;
      m.renewalSeconds = Math.floor(c.leaseSeconds / 2);
      m.rebindingSeconds = Math.floor(c.leaseSeconds * 7 / 8);
    }
    m.subnetMask = c.subnet.mask;
    m.broadcastAddress = c.subnet.broadcast;
    m.mtu = c.mtu;
    if (c.router !== null) m.routers = [c.router];
    m.dnsServers = c.dns;
    m.domainName = c.domain;
    m.hostname = req.messageType === DHCPINFORM ? null : hostname;
    m.clientId = req.clientId;   // RFC 6842
    this.counters.tx[type === DHCPOFFER ? 'offer' : 'ack']++;
    if (m.ciaddr !== 0) {
      this.out.sendDhcp(m, req.chaddr, m.ciaddr, DHCP_CLIENT_PORT);
    } else if (req.broadcast) {
      this.out.sendDhcp(m, BROADCAST_MAC, IPV4_BROADCAST, DHCP_CLIENT_PORT);
    } else {
      // Unicast to the client's hardware address and yiaddr (the client cannot ARP yet).
      this.out.sendDhcp(m, req.chaddr, yiaddr, DHCP_CLIENT_PORT);
    }
  }

  private drop(reason: DhcpDropReason, line?: string): void {
    this.counters.drops[reason]++;
    if (line !== undefined) this.warnLog.write(this.clock.nowMs(), line);
  }
}

function hexOrNull(b: Buffer | null): string | null {
  return b === null ? null : b.toString('hex');
}

function clientIdDisplay(hex: string): string {
  const shown = hex.length > 40 ? hex.slice(0, 40) + '…' : hex;
  return shown.replace(/(..)(?!$)/g, '$1:');
}

function ipSortKey(dotted: string): number {
  return dotted.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

/**
 * The DNS label for a DHCP hostname: its first dot-separated part, lowercased, when it is a valid
 * RFC 1123 label; otherwise null (the lease works, the name is not published).
 */
export function dnsLabel(hostname: string): string | null {
  const first = hostname.split('.')[0].toLowerCase();
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(first) ? first : null;
}
