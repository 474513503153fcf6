/**
 * MAC learning table (IEEE 802.1D-2004 clause 7.8/7.9: learning, filtering database, ageing).
 *
 * Keys: one Map per VLAN ID, keyed by the 48-bit MAC as a number (a MAC plus a 12-bit VLAN does not
 * fit below 2^53). Entries record the port and `lastSeenMs`, refreshed in place on every frame;
 * a periodic `sweep(nowMs)` removes entries older than the ageing time, so no timer exists per entry.
 * Size: `capacity` entries in total over all VLANs. When full, unknown sources are not learned
 * (their frames still flow, destinations are flooded) and `tableFull` counts each refusal: a flood
 * of random source MACs can neither grow memory nor evict the MACs of guests already learned.
 * Moves: a MAC seen on another port is re-learned at once (a guest restarted elsewhere) and counted.
 * Hot entries: the entry last learned and the entry last looked up are kept beside the maps, so a
 * stream of frames between the same two MACs costs no Map lookup at all (measured in the issue 8
 * note). Entries change in place; only removeWhere deletes them, and it forgets both.
 */
import type { Port } from './port.js';

export class MacEntry {
  port: Port;
  lastSeenMs: number;
  /** A static entry (802.1Q's static filtering entry): never moves, never ages. */
  pinned = false;
  constructor(port: Port, nowMs: number) {
    this.port = port;
    this.lastSeenMs = nowMs;
  }
}

export class MacTableCounters {
  learned = 0;
  moved = 0;
  expired = 0;
  tableFull = 0;
  /** Frames whose source is a pinned MAC seen on another port (spoofing); not learned. */
  pinnedRefused = 0;
  /** Entries forgotten on topology changes (flushLearned). */
  flushed = 0;
}

export type MoveListener = (mac: number, vlan: number, from: Port, to: Port) => void;

export class MacTable {
  readonly counters = new MacTableCounters();
  size = 0;
  private readonly untagged = new Map<number, MacEntry>();
  private readonly vlans = new Map<number, Map<number, MacEntry>>();
  onMove: MoveListener | null = null;
  /** The entry of the source MAC learned last, and of the destination looked up last (or null). */
  private srcHit: MacEntry | null = null;
  private srcHitMac = -1;
  private srcHitVlan = -1;
  private dstHit: MacEntry | null = null;
  private dstHitMac = -1;
  private dstHitVlan = -1;

  constructor(public capacity: number, public ageMs: number) {
    this.vlans.set(0, this.untagged);
  }

  private tableFor(vlan: number, create: boolean): Map<number, MacEntry> | undefined {
    if (vlan === 0) return this.untagged;
    let t = this.vlans.get(vlan);
    if (t === undefined && create) {
      t = new Map();
      this.vlans.set(vlan, t);
    }
    return t;
  }

  /** Records that `mac` (a unicast source) was seen on `port` at `nowMs`. */
  learn(mac: number, vlan: number, port: Port, nowMs: number): void {
    const hit = this.srcHit;
    if (hit !== null && mac === this.srcHitMac && vlan === this.srcHitVlan && hit.port === port && !hit.pinned) {
      hit.lastSeenMs = nowMs;
      return;
    }
    const t = this.tableFor(vlan, true)!;
    const e = t.get(mac);
    if (e !== undefined) {
      this.srcHit = e;
      this.srcHitMac = mac;
      this.srcHitVlan = vlan;
      if (e.pinned) {
        if (e.port !== port) this.counters.pinnedRefused++;
        return;
      }
      if (e.port !== port) {
        const from = e.port;
        e.port = port;
        this.counters.moved++;
        if (this.onMove !== null) this.onMove(mac, vlan, from, port);
      }
      e.lastSeenMs = nowMs;
      return;
    }
    if (this.size >= this.capacity) {
      this.counters.tableFull++;
      return;
    }
    t.set(mac, new MacEntry(port, nowMs));
    this.size++;
    this.counters.learned++;
  }

  /**
   * Pins `mac` to `port`: a MAC that belongs to lanparty itself (the virtual host) cannot be
   * taken over by a guest sending frames with it as source. Pinned entries do not count against
   * the capacity and are removed only by `flushPort`.
   */
  pin(mac: number, vlan: number, port: Port, nowMs: number): void {
    const t = this.tableFor(vlan, true)!;
    const e = t.get(mac);
    if (e === undefined) {
      const n = new MacEntry(port, nowMs);
      n.pinned = true;
      t.set(mac, n);
      return;
    }
    if (!e.pinned) this.size--;
    e.port = port;
    e.pinned = true;
  }

  /** The port `mac` was last seen on, or undefined. Does not check age: the sweep does. */
  lookup(mac: number, vlan: number): Port | undefined {
    const hit = this.dstHit;
    if (hit !== null && mac === this.dstHitMac && vlan === this.dstHitVlan) return hit.port;
    const t = vlan === 0 ? this.untagged : this.vlans.get(vlan);
    if (t === undefined) return undefined;
    const e = t.get(mac);
    if (e === undefined) return undefined;
    this.dstHit = e;
    this.dstHitMac = mac;
    this.dstHitVlan = vlan;
    return e.port;
  }

  /** Removes entries not seen for `ageMs`. Returns how many were removed. */
  sweep(nowMs: number): number {
    const removed = this.removeWhere((e) => !e.pinned && nowMs - e.lastSeenMs >= this.ageMs);
    this.counters.expired += removed;
    return removed;
  }

  /** Forgets every MAC learned on `port` (the port went away). */
  flushPort(port: Port): number {
    return this.removeWhere((e) => e.port === port);
  }

  /**
   * Forgets every learned (not pinned) MAC: after a topology change the way to a quiet host may
   * have moved, and until it sends again a stale entry would send its frames the old way (RSTP
   * flushes likewise, 802.1D-2004 §17.11). Until relearned, frames to these MACs are flooded.
   */
  flushLearned(): number {
    const removed = this.removeWhere((e) => !e.pinned);
    this.counters.flushed += removed;
    return removed;
  }

  /**
   * Deletes the entries `match` selects, and VLAN tables left empty. Returns how many learned
   * (not pinned) entries went: pinned ones are not in `size`. Control plane only (a closure call
   * per entry).
   */
  private removeWhere(match: (e: MacEntry) => boolean): number {
    this.srcHit = null;
    this.dstHit = null;
    let removed = 0;
    for (const [vlan, t] of this.vlans) {
      for (const [mac, e] of t) {
        if (!match(e)) continue;
        t.delete(mac);
        if (!e.pinned) removed++;
      }
      if (vlan !== 0 && t.size === 0) this.vlans.delete(vlan);
    }
    this.size -= removed;
    return removed;
  }

  /** Snapshot for status: one row per entry. Allocates; control plane only. */
  entries(nowMs: number): Array<{ mac: number; vlan: number; port: Port; ageMs: number; pinned: boolean }> {
    const rows: Array<{ mac: number; vlan: number; port: Port; ageMs: number; pinned: boolean }> = [];
    for (const [vlan, t] of this.vlans) {
      for (const [mac, e] of t) rows.push({ mac, vlan, port: e.port, ageMs: e.pinned ? 0 : nowMs - e.lastSeenMs, pinned: e.pinned });
    }
    return rows;
  }
}
