/**
 * IPv4 reassembly (RFC 791 §3.2, RFC 815) with bounded memory, for a host that receives
 * fragments: the virtual host, and the WireGuard link's inner packets. Read RFC 791 §3.2 first.
 *
 * A packet being reassembled lives in a slot: its data is copied into the slot's buffer (the
 * receive buffer is reused), slots and buffers are reused (a buffer grows to the largest packet it
 * held, at most 65,535 bytes), so once warm no fragment allocates. Limits, each counted:
 * - `maxPackets` slots over all sources: a new packet when all are busy evicts the oldest;
 * - `maxPacketsPerSource`: a new packet from a source at its limit evicts that source's oldest,
 *   so one source cannot take the others' slots;
 * - `maxBytes` of fragment data held over all packets: the oldest other packets go first;
 * - `timeoutMs` from a packet's first fragment: then it is dropped (checked on every fragment
 *   and by `expire`).
 * Exact duplicates are dropped alone; a fragment that overlaps another, or disagrees on the end,
 * drops the whole packet (Linux since 4.19; RFC 5722 requires it for IPv6): a gap hidden by an
 * overlap could otherwise deliver bytes nobody sent. Memory held: at most maxPackets × 64 KiB of
 * buffers. Leaf module: no imports.
 */

/** Largest IPv4 packet: the total length field is 16 bits. */
export const IPV4_MAX_PACKET_BYTES = 65535;
/** Most fragments one packet may arrive in (a 64 KiB datagram at a 576-byte MTU is 119). */
export const REASSEMBLY_MAX_PARTS = 128;

export interface ReassemblyLimits {
  maxPackets: number;
  maxPacketsPerSource: number;
  maxBytes: number;
  timeoutMs: number;
}

export class ReassemblyCounters {
  /** Packets completed. */
  reassembled = 0;
  /** Fragments dropped: alone (malformed, duplicate) or with their packet (the reasons below). */
  fragmentsDropped = 0;
  /** Packets dropped because their fragments did not all come within the timeout. */
  timedOut = 0;
  /** Packets dropped to make room (maxPackets, maxPacketsPerSource or maxBytes reached). */
  evicted = 0;
  /** Packets dropped because two of their fragments overlapped or disagreed on the end. */
  overlapped = 0;
}

/**
 * A packet being reassembled. When `add` returns it, the whole payload (what follows the IPv4
 * header) is `buf[0, totalBytes)`, valid until the next call to `add`.
 */
export class ReassembledPacket {
  source = 0;
  key = -1;
  startedMs = 0;
  /** Arrival order of the first fragment, to evict the oldest. */
  born = 0;
  totalBytes = -1;
  gotBytes = 0;
  parts = 0;
  buf = Buffer.allocUnsafe(2048);
  readonly starts = new Int32Array(REASSEMBLY_MAX_PARTS);
  readonly ends = new Int32Array(REASSEMBLY_MAX_PARTS);
}

export class Ipv4Reassembler {
  readonly counters = new ReassemblyCounters();
  private readonly slots: ReassembledPacket[] = [];
  private born = 0;
  /** Fragment data held by packets in progress. */
  bytesHeld = 0;

  constructor(readonly limits: ReassemblyLimits) {}

  /** Packets in progress now. */
  get packets(): number {
    let n = 0;
    for (const s of this.slots) if (s.key >= 0) n++;
    return n;
  }

  /**
   * Adds one fragment. `source` and `key` name its packet (RFC 791: source, destination, protocol
   * and identification; the caller packs what varies into these two non-negative numbers);
   * `flagsFrag` is the header's flags and fragment offset field; buf[off, off+len) is the data
   * after the header (copied: the caller keeps `buf`). Returns the packet once every byte is
   * there, else null (kept for later, or dropped and counted).
   */
  add(source: number, key: number, flagsFrag: number, buf: Buffer, off: number, len: number, nowMs: number): ReassembledPacket | null {
    const start = (flagsFrag & 0x1fff) * 8;
    const end = start + len;
    const more = (flagsFrag & 0x2000) !== 0;
    const c = this.counters;
    const lim = this.limits;
    if (end > IPV4_MAX_PACKET_BYTES || (more && len % 8 !== 0)) {
      c.fragmentsDropped++;
      return null;
    }
    let slot: ReassembledPacket | null = null;
    let free: ReassembledPacket | null = null;
    let oldest: ReassembledPacket | null = null;
    let oldestOfSource: ReassembledPacket | null = null;
    let ofSource = 0;
    for (const s of this.slots) {
      if (s.key >= 0 && nowMs - s.startedMs > lim.timeoutMs) {
        c.timedOut++;
        this.drop(s, 0);
      }
      if (s.key < 0) { free ??= s; continue; }
      if (s.key === key && s.source === source) { slot = s; continue; }
      if (oldest === null || s.born < oldest.born) oldest = s;
      if (s.source === source) {
        ofSource++;
        if (oldestOfSource === null || s.born < oldestOfSource.born) oldestOfSource = s;
      }
    }
    if (slot === null) {
      if (ofSource >= lim.maxPacketsPerSource && oldestOfSource !== null) {
        free = this.evict(oldestOfSource);
      } else if (free === null && this.slots.length < lim.maxPackets) {
        this.slots.push(free = new ReassembledPacket());
      } else if (free === null) {
        free = this.evict(oldest!);
      }
      slot = free!;
      slot.source = source;
      slot.key = key;
      slot.startedMs = nowMs;
      slot.born = ++this.born;
      slot.totalBytes = -1;
      slot.gotBytes = 0;
      slot.parts = 0;
    }
    for (let i = 0; i < slot.parts; i++) {
      if (start >= slot.ends[i] || end <= slot.starts[i]) continue;
      if (start === slot.starts[i] && end === slot.ends[i]) { c.fragmentsDropped++; return null; } // duplicate
      return this.overlap(slot);
    }
    if (slot.parts === REASSEMBLY_MAX_PARTS) { c.evicted++; this.drop(slot, 1); return null; }
    if (slot.totalBytes >= 0 && (end > slot.totalBytes || (!more && end !== slot.totalBytes))) return this.overlap(slot);
    if (!more) {
      for (let i = 0; i < slot.parts; i++) if (slot.ends[i] > end) return this.overlap(slot);
      slot.totalBytes = end;
    }
    // Room for the bytes: the oldest other packets go first.
    while (this.bytesHeld + len > lim.maxBytes) {
      let victim: ReassembledPacket | null = null;
      for (const s of this.slots) if (s.key >= 0 && s !== slot && (victim === null || s.born < victim.born)) victim = s;
      if (victim === null) { c.evicted++; this.drop(slot, 1); return null; }
      this.evict(victim);
    }
    if (slot.buf.length < end) {
      const grown = Buffer.allocUnsafe(Math.min(IPV4_MAX_PACKET_BYTES, Math.max(end, slot.buf.length * 2)));
      slot.buf.copy(grown);
      slot.buf = grown;
    }
    buf.copy(slot.buf, start, off, off + len);
    slot.starts[slot.parts] = start;
    slot.ends[slot.parts] = end;
    slot.parts++;
    slot.gotBytes += len;
    this.bytesHeld += len;
    // No overlaps, so the bytes add up only when every byte is there.
    if (slot.totalBytes < 0 || slot.gotBytes !== slot.totalBytes) return null;
    this.bytesHeld -= slot.gotBytes;
    slot.key = -1;
    c.reassembled++;
    return slot;
  }

  /** Drops packets whose first fragment came more than `timeoutMs` ago. */
  expire(nowMs: number): void {
    for (const s of this.slots) {
      if (s.key >= 0 && nowMs - s.startedMs > this.limits.timeoutMs) {
        this.counters.timedOut++;
        this.drop(s, 0);
      }
    }
  }

  private evict(s: ReassembledPacket): ReassembledPacket {
    this.counters.evicted++;
    this.drop(s, 0);
    return s;
  }

  private overlap(s: ReassembledPacket): null {
    this.counters.overlapped++;
    this.drop(s, 1);
    return null;
  }

  /** Frees a slot, counting its fragments and `inHand` more (the fragment being added) as dropped. */
  private drop(s: ReassembledPacket, inHand: number): void {
    this.counters.fragmentsDropped += s.parts + inHand;
    this.bytesHeld -= s.gotBytes;
    s.gotBytes = 0;
    s.parts = 0;
    s.key = -1;
  }
}
