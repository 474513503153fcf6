/**
 * The VXLAN port's forwarding state (RFC 7348 §4.1, "Unicast VM-to-VM Communication"): which
 * remote VTEPs exist, and which VTEP each remote MAC sits behind, learned from the outer source
 * address of received packets. The switch sees the whole fabric as one port; this table decides,
 * inside that port, whether a frame goes to one VTEP (known unicast) or to all (flood).
 *
 * VTEPs are keyed by IPv4 address only: Linux picks the outer source port per flow (a hash in
 * 32768-60999), so host:port would split one VTEP into many. Static VTEPs (configured remotes)
 * receive every flood (head-end replication, like `bridge fdb append 00:00:00:00:00:00 dst ...`)
 * and never age out; dynamic VTEPs (heard from, in group mode or with accept=any) get unicast only
 * and are removed with their MACs after `vtepIdleMs` of silence.
 *
 * MAC entries are updated in place (lastSeenMs) per packet and removed by `sweep`, called once a
 * second; a sweep walks the whole map, which is bounded by `maxMacs` (4096 by default: 4096
 * comparisons a second). When the map is full, new MACs are not learned and frames to them flood,
 * which is still correct. The table never reads a clock: callers pass nowMs.
 */

export interface VtepTableOptions {
  /** A MAC not heard from for this long is forgotten (802.1D default 300 s). */
  macAgeMs: number;
  maxMacs: number;
  /** Most VTEPs, static ones included. */
  maxVteps: number;
  /** A dynamic VTEP silent for this long is removed. */
  vtepIdleMs: number;
}

export const DEFAULT_VTEP_TABLE_OPTIONS: VtepTableOptions = {
  macAgeMs: 300_000,
  maxMacs: 4096,
  maxVteps: 256,
  vtepIdleMs: 300_000,
};

/** One remote VTEP. Every field is set at construction; counters are per outer packet. */
export class Vtep {
  lastRxMs: number;
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  /** MACs currently learned behind this VTEP. */
  macCount = 0;
  /** False once removed from the table (a dynamic VTEP that went idle). */
  live = true;
  constructor(
    /** Position in VtepTable.slots, stable for the VTEP's life. */
    readonly slot: number,
    readonly host: string,
    readonly isStatic: boolean,
    /** The underlay destination id for host:dstPort. */
    readonly dest: number,
    nowMs: number,
  ) {
    this.lastRxMs = nowMs;
  }
}

export class MacEntry {
  constructor(public vtep: Vtep, public lastSeenMs: number) {}
}

export class VtepTableCounters {
  learned = 0;
  moved = 0;
  expired = 0;
  /** New MACs not learned because the table was full. */
  macTableFull = 0;
  /** Dynamic VTEPs refused because maxVteps was reached. */
  vtepsRefused = 0;
  vtepsExpired = 0;
}

export class VtepTable {
  readonly opts: VtepTableOptions;
  /** slots[i] is the VTEP with slot i, or undefined when free. */
  readonly slots: Array<Vtep | undefined> = [];
  /** Static VTEPs, in configuration order: the flood list. */
  readonly statics: Vtep[] = [];
  readonly counters = new VtepTableCounters();
  /** Bumped when a VTEP is removed, so callers can drop caches that point at it. */
  generation = 0;
  private readonly byHost = new Map<string, Vtep>();
  private readonly macs = new Map<number, MacEntry>();
  private vtepCount = 0;

  constructor(opts: Partial<VtepTableOptions> = {}) {
    this.opts = { ...DEFAULT_VTEP_TABLE_OPTIONS, ...opts };
  }

  get size(): number { return this.macs.size; }
  get vteps(): number { return this.vtepCount; }

  /** Adds a configured remote (idempotent for the same host). */
  addStatic(host: string, dest: number, nowMs: number): Vtep {
    const existing = this.byHost.get(host);
    if (existing !== undefined) return existing;
    const v = this.insert(host, true, dest, nowMs);
    this.statics.push(v);
    return v;
  }

  /** The VTEP for `host`, or undefined. */
  find(host: string): Vtep | undefined {
    return this.byHost.get(host);
  }

  /** Adds a dynamic VTEP; null when maxVteps is reached (counted). */
  addDynamic(host: string, dest: number, nowMs: number): Vtep | null {
    const existing = this.byHost.get(host);
    if (existing !== undefined) return existing;
    if (this.vtepCount >= this.opts.maxVteps) {
      this.counters.vtepsRefused++;
      return null;
    }
    return this.insert(host, false, dest, nowMs);
  }

  private insert(host: string, isStatic: boolean, dest: number, nowMs: number): Vtep {
    let slot = this.slots.indexOf(undefined);
    if (slot < 0) slot = this.slots.length;
    const v = new Vtep(slot, host, isStatic, dest, nowMs);
    this.slots[slot] = v;
    this.byHost.set(host, v);
    this.vtepCount++;
    return v;
  }

  /**
   * Records that unicast source `mac` was heard behind `vtep`. Per packet: no allocation unless
   * the MAC is new. Returns the VTEP it moved from, or null.
   */
  learn(mac: number, vtep: Vtep, nowMs: number): Vtep | null {
    const e = this.macs.get(mac);
    if (e !== undefined) {
      e.lastSeenMs = nowMs;
      if (e.vtep === vtep) return null;
      const from = e.vtep;
      from.macCount--;
      vtep.macCount++;
      e.vtep = vtep;
      this.counters.moved++;
      return from;
    }
    if (this.macs.size >= this.opts.maxMacs) {
      this.counters.macTableFull++;
      return null;
    }
    this.macs.set(mac, new MacEntry(vtep, nowMs));
    vtep.macCount++;
    this.counters.learned++;
    return null;
  }

  /** The VTEP a unicast MAC was learned behind, or undefined (flood). */
  lookup(mac: number): Vtep | undefined {
    const e = this.macs.get(mac);
    return e === undefined ? undefined : e.vtep;
  }

  /** Sets every timestamp to nowMs (the owner's first clock reading, after stamping with 0). */
  restamp(nowMs: number): void {
    for (const v of this.slots) if (v !== undefined) v.lastRxMs = nowMs;
    for (const e of this.macs.values()) e.lastSeenMs = nowMs;
  }

  /** Expires old MACs and idle dynamic VTEPs (with their MACs). Returns the VTEPs removed. */
  sweep(nowMs: number): Vtep[] {
    const removed: Vtep[] = [];
    for (const v of this.slots) {
      if (v !== undefined && !v.isStatic && nowMs - v.lastRxMs >= this.opts.vtepIdleMs) removed.push(v);
    }
    for (const v of removed) {
      v.live = false;
      this.slots[v.slot] = undefined;
      this.byHost.delete(v.host);
      this.vtepCount--;
      this.counters.vtepsExpired++;
    }
    if (removed.length > 0) this.generation++;
    for (const [mac, e] of this.macs) {
      if (!e.vtep.live || nowMs - e.lastSeenMs >= this.opts.macAgeMs) {
        this.macs.delete(mac);
        e.vtep.macCount--;
        if (e.vtep.live) this.counters.expired++;
      }
    }
    return removed;
  }

  /** MACs behind `vtep` with their age, for status (allocates; not for the data path). */
  macsBehind(vtep: Vtep, nowMs: number): Array<{ mac: number; ageMs: number }> {
    const out: Array<{ mac: number; ageMs: number }> = [];
    for (const [mac, e] of this.macs) if (e.vtep === vtep) out.push({ mac, ageMs: nowMs - e.lastSeenMs });
    return out.sort((a, b) => a.mac - b.mac);
  }
}
