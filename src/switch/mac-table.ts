/**
 * MAC learning table (IEEE 802.1D-2004 clause 7.8/7.9: learning, filtering database, ageing), with
 * Open vSwitch's defence against MAC flooding (lib/mac-learning.h: per-port fair eviction).
 *
 * Keys: one Map per VLAN ID, keyed by the 48-bit MAC as a number (a MAC plus a 12-bit VLAN does not
 * fit below 2^53). Entries record the port and `lastSeenMs`.
 * Recency: each port keeps its learned entries in a list, least recently seen first. The switch's
 * clock moves once per tick (1 s), so an entry moves to the end of its list only when a frame is
 * the first from its MAC in that tick; every other frame costs one comparison. `sweep(nowMs)`
 * removes entries older than the ageing time from the front of each list and stops at the first
 * one still live, so a sweep costs only what has expired. (The daemon's clock is the wall clock;
 * a step back only delays the expiry of entries seen after it.)
 * Size: `capacity` entries in total over all VLANs, and at most `portCapacity` on one port. A new
 * MAC on a port at its own limit replaces that port's least recently seen entry; a new MAC when
 * the table is full replaces the least recently seen entry of the port that holds the most
 * entries (a heap of ports by count finds it). Either way it is counted in `evicted`, and the
 * entry object is reused, so a flood of random source MACs neither grows memory nor allocates, and
 * it evicts only the flooding port's own MACs while that port holds the most: the guests on other
 * ports stay learned, and new guests there are still learned.
 * Moves: a MAC seen on another port is re-learned at once (a guest restarted elsewhere) and counted.
 * Hot entries: the entry last learned and the entry last looked up are kept beside the maps, so a
 * stream of frames between the same two MACs costs no Map lookup at all. Every removal or reuse
 * of an entry forgets them.
 */
import type { Port } from './port.js';

export class MacEntry {
  mac: number;
  vlan: number;
  port: Port;
  lastSeenMs: number;
  /** A static entry (802.1Q's static filtering entry): never moves, never ages, never evicted. */
  pinned = false;
  /** The port's entry list (learned entries only; null while pinned or removed). */
  owner: PortEntries | null = null;
  prev: MacEntry | null = null;
  next: MacEntry | null = null;
  constructor(mac: number, vlan: number, port: Port, nowMs: number) {
    this.mac = mac;
    this.vlan = vlan;
    this.port = port;
    this.lastSeenMs = nowMs;
  }
}

/** The learned entries of one port, least recently seen first, and their count. */
class PortEntries {
  count = 0;
  head: MacEntry | null = null;
  tail: MacEntry | null = null;
  /** Position in MacTable's heap of ports by count. */
  heapIndex = -1;
  constructor(readonly port: Port) {}
}

export class MacTableCounters {
  learned = 0;
  moved = 0;
  expired = 0;
  /** Entries replaced by a new MAC because the table or the new MAC's port was full. */
  evicted = 0;
  /** Frames whose source is a pinned MAC seen on another port (spoofing); not learned. */
  pinnedRefused = 0;
  /** Entries forgotten on topology changes (flushLearned). */
  flushed = 0;
}

export type MoveListener = (mac: number, vlan: number, from: Port, to: Port) => void;
/** Called after an eviction: the entry that went (its MAC, VLAN and port) and the limit that was hit. */
export type EvictListener = (mac: number, vlan: number, from: Port, limit: 'table' | 'port') => void;

export class MacTable {
  readonly counters = new MacTableCounters();
  /** Learned entries (pinned ones are not counted). */
  size = 0;
  /** Most learned entries on one port; `capacity` (no limit of its own) unless set lower. */
  portCapacity: number;
  private readonly untagged = new Map<number, MacEntry>();
  private readonly vlans = new Map<number, Map<number, MacEntry>>();
  private readonly byPort = new Map<Port, PortEntries>();
  /** Ports with learned entries, as a binary max-heap on `count`. */
  private readonly heap: PortEntries[] = [];
  onMove: MoveListener | null = null;
  onEvict: EvictListener | null = null;
  /** The entry of the source MAC learned last, and of the destination looked up last (or null). */
  private srcHit: MacEntry | null = null;
  private srcHitMac = -1;
  private srcHitVlan = -1;
  private dstHit: MacEntry | null = null;
  private dstHitMac = -1;
  private dstHitVlan = -1;

  constructor(public capacity: number, public ageMs: number, portCapacity = capacity) {
    this.portCapacity = Math.max(1, Math.min(portCapacity, capacity));
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
      if (hit.lastSeenMs !== nowMs) this.touch(hit, nowMs);
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
      if (e.port !== port) this.move(e, port, nowMs);
      else if (e.lastSeenMs !== nowMs) this.touch(e, nowMs);
      return;
    }
    this.insert(t, mac, vlan, port, nowMs);
  }

  /** A new learned entry, evicting one first when its port or the table is full. */
  private insert(t: Map<number, MacEntry>, mac: number, vlan: number, port: Port, nowMs: number): void {
    let pe = this.byPort.get(port);
    let victim: MacEntry | null = null;
    let limit: 'table' | 'port' = 'table';
    if (pe !== undefined && pe.count >= this.portCapacity) {
      victim = pe.head;
      limit = 'port';
    } else if (this.size >= this.capacity && this.heap.length > 0) {
      victim = this.heap[0].head;
    }
    let e: MacEntry;
    if (victim !== null) {
      const from = victim.port;
      const oldMac = victim.mac;
      const oldVlan = victim.vlan;
      this.remove(victim);
      this.counters.evicted++;
      if (this.onEvict !== null) this.onEvict(oldMac, oldVlan, from, limit);
      // The table of `vlan` may have been deleted if the victim was its last entry.
      if (vlan !== 0 && t.size === 0 && !this.vlans.has(vlan)) this.vlans.set(vlan, t);
      if (pe !== undefined && pe.count === 0) pe = undefined;
      e = victim;
      e.mac = mac;
      e.vlan = vlan;
      e.port = port;
      e.lastSeenMs = nowMs;
    } else {
      if (this.size >= this.capacity) return; // Only pinned entries, so nothing to evict.
      e = new MacEntry(mac, vlan, port, nowMs);
    }
    t.set(mac, e);
    if (pe === undefined) pe = this.portEntries(port);
    this.append(pe, e);
    this.size++;
    this.counters.learned++;
  }

  /** A learned MAC seen on another port: it follows at once (counted), within the new port's limit. */
  private move(e: MacEntry, port: Port, nowMs: number): void {
    const from = e.port;
    this.unlink(e);
    let pe = this.byPort.get(port);
    if (pe !== undefined && pe.count >= this.portCapacity && pe.head !== null) {
      const victim = pe.head;
      const oldMac = victim.mac;
      const oldVlan = victim.vlan;
      this.remove(victim);
      this.counters.evicted++;
      if (this.onEvict !== null) this.onEvict(oldMac, oldVlan, port, 'port');
      if (pe.count === 0) pe = undefined;
    }
    e.port = port;
    e.lastSeenMs = nowMs;
    this.append(pe ?? this.portEntries(port), e);
    this.counters.moved++;
    if (this.onMove !== null) this.onMove(e.mac, e.vlan, from, port);
  }

  /**
   * Pins `mac` to `port`: a MAC that belongs to lanparty itself (the virtual host) cannot be
   * taken over by a guest sending frames with it as source. Pinned entries do not count against
   * the capacity, are never evicted, and are removed only by `flushPort`.
   */
  pin(mac: number, vlan: number, port: Port, nowMs: number): void {
    const t = this.tableFor(vlan, true)!;
    const e = t.get(mac);
    if (e === undefined) {
      const n = new MacEntry(mac, vlan, port, nowMs);
      n.pinned = true;
      t.set(mac, n);
      return;
    }
    if (!e.pinned) {
      this.unlink(e);
      this.size--;
    }
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

  /** Learned entries on `port` now (0 for a port with none). */
  countOn(port: Port): number {
    return this.byPort.get(port)?.count ?? 0;
  }

  /** Removes entries not seen for `ageMs`, oldest first on each port. Returns how many went. */
  sweep(nowMs: number): number {
    let removed = 0;
    for (const pe of this.byPort.values()) {
      while (pe.head !== null && nowMs - pe.head.lastSeenMs >= this.ageMs) {
        this.remove(pe.head);
        removed++;
      }
    }
    this.counters.expired += removed;
    return removed;
  }

  /** Forgets every MAC learned on `port`, pinned ones too (the port went away). */
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
   * Deletes the entries `match` selects. Returns how many learned (not pinned) entries went:
   * pinned ones are not in `size`. Control plane only (a closure call per entry).
   */
  private removeWhere(match: (e: MacEntry) => boolean): number {
    let removed = 0;
    for (const t of [...this.vlans.values()]) {
      for (const e of [...t.values()]) {
        if (!match(e)) continue;
        if (!e.pinned) removed++;
        this.remove(e);
      }
    }
    this.srcHit = null;
    this.dstHit = null;
    return removed;
  }

  /** Takes `e` out of its VLAN's map (and the map out of `vlans` when it empties) and its port's list. */
  private remove(e: MacEntry): void {
    const t = this.tableFor(e.vlan, false);
    if (t !== undefined) {
      t.delete(e.mac);
      if (e.vlan !== 0 && t.size === 0) this.vlans.delete(e.vlan);
    }
    if (!e.pinned) {
      this.unlink(e);
      this.size--;
    }
    if (this.srcHit === e) this.srcHit = null;
    if (this.dstHit === e) this.dstHit = null;
  }

  /** Moves `e` to the end (most recent) of its port's list. */
  private touch(e: MacEntry, nowMs: number): void {
    e.lastSeenMs = nowMs;
    const pe = e.owner;
    if (pe === null || pe.tail === e) return;
    // Not the tail, so e.next is set.
    if (e.prev === null) pe.head = e.next; else e.prev.next = e.next;
    e.next!.prev = e.prev;
    e.prev = pe.tail;
    e.next = null;
    pe.tail!.next = e;
    pe.tail = e;
  }

  private portEntries(port: Port): PortEntries {
    const pe = new PortEntries(port);
    this.byPort.set(port, pe);
    pe.heapIndex = this.heap.length;
    this.heap.push(pe);
    return pe;
  }

  private append(pe: PortEntries, e: MacEntry): void {
    e.owner = pe;
    e.prev = pe.tail;
    e.next = null;
    if (pe.tail === null) pe.head = e; else pe.tail.next = e;
    pe.tail = e;
    pe.count++;
    this.siftUp(pe.heapIndex);
  }

  /** Takes `e` out of its port's list; a port left with no entries leaves the heap and `byPort`. */
  private unlink(e: MacEntry): void {
    const pe = e.owner;
    if (pe === null) return;
    if (e.prev === null) pe.head = e.next; else e.prev.next = e.next;
    if (e.next === null) pe.tail = e.prev; else e.next.prev = e.prev;
    e.prev = null;
    e.next = null;
    e.owner = null;
    pe.count--;
    if (pe.count > 0) {
      this.siftDown(pe.heapIndex);
      return;
    }
    this.byPort.delete(pe.port);
    const last = this.heap.pop()!;
    if (last !== pe) {
      this.heap[pe.heapIndex] = last;
      last.heapIndex = pe.heapIndex;
      this.siftDown(last.heapIndex);
    }
    pe.heapIndex = -1;
  }

  private siftUp(i: number): void {
    const h = this.heap;
    const pe = h[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].count >= pe.count) break;
      h[i] = h[parent];
      h[i].heapIndex = i;
      i = parent;
    }
    h[i] = pe;
    pe.heapIndex = i;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const pe = h[i];
    const n = h.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && h[child + 1].count > h[child].count) child++;
      if (h[child].count <= pe.count) break;
      h[i] = h[child];
      h[i].heapIndex = i;
      i = child;
    }
    h[i] = pe;
    pe.heapIndex = i;
  }

  /**
   * Checks the table's own bookkeeping (for tests and fuzzing): every learned entry is in its
   * port's list once, lists are in order of lastSeenMs, counts add up to `size`, the heap is a
   * max-heap, and no entry is over a limit. Returns what is wrong, or null. O(entries).
   */
  audit(): string | null {
    let learned = 0;
    for (const [vlan, t] of this.vlans) {
      if (vlan !== 0 && t.size === 0) return `empty table kept for VLAN ${vlan}`;
      for (const [mac, e] of t) {
        if (e.mac !== mac || e.vlan !== vlan) return `entry under ${mac}/${vlan} says ${e.mac}/${e.vlan}`;
        if (e.pinned !== (e.owner === null)) return `entry ${mac}: pinned ${e.pinned} but owner ${e.owner !== null}`;
        if (e.owner !== null && e.owner.port !== e.port) return `entry ${mac} listed under another port`;
        if (!e.pinned) learned++;
      }
    }
    if (learned !== this.size) return `size ${this.size}, learned entries ${learned}`;
    if (this.size > this.capacity) return `size ${this.size} over capacity ${this.capacity}`;
    let listed = 0;
    for (const [port, pe] of this.byPort) {
      if (pe.port !== port || pe.count === 0) return `port list for ${port.name} wrong or empty`;
      if (pe.count > this.portCapacity) return `port ${port.name} holds ${pe.count} over ${this.portCapacity}`;
      if (this.heap[pe.heapIndex] !== pe) return `port ${port.name} not at its heap index`;
      let n = 0;
      let prev: MacEntry | null = null;
      for (let e = pe.head; e !== null; e = e.next) {
        if (e.prev !== prev || e.owner !== pe) return `port ${port.name}: broken list`;
        if (prev !== null && prev.lastSeenMs > e.lastSeenMs) return `port ${port.name}: list out of order`;
        if (this.tableFor(e.vlan, false)?.get(e.mac) !== e) return `port ${port.name}: listed entry ${e.mac} not in its table`;
        prev = e;
        n++;
      }
      if (prev !== pe.tail || n !== pe.count) return `port ${port.name}: count ${pe.count}, listed ${n}`;
      listed += n;
    }
    if (listed !== this.size || this.heap.length !== this.byPort.size) return `listed ${listed}, heap ${this.heap.length}, ports ${this.byPort.size}`;
    for (let i = 1; i < this.heap.length; i++) if (this.heap[(i - 1) >> 1].count < this.heap[i].count) return `heap order broken at ${i}`;
    return null;
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
