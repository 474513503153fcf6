/**
 * Shared segments in the spanning tree: the contract between a transport whose one port is a hub
 * that other bridges may share (mcast: a QEMU multicast group) and the transport that runs the
 * tree over peer links (wg; the design is in docs/tree.md). Neither imports the other: the
 * daemon gives every transport of a switch the same SegmentRegistry (TransportContext.segments;
 * one tree per switch, as one 802.1D bridge has one), where mcast registers its group and wg
 * listens.
 *
 * On the segment a tree frame is Ethernet: destination 01:80:C2:00:00:00 (802.1D's bridge group
 * address: an 802.1D bridge never forwards it, an STP-less bridge floods it, as a hub would), our
 * source MAC, ethertype 0x88B6 (IEEE 802 local experimental 2), the 32-byte hello, zero padding to
 * the 60-byte Ethernet minimum.
 *
 * While a tree is attached, the segment's transport hands it every tree frame it receives (never
 * to the switch), drops tree frames the switch would send onto the segment from other ports, and
 * follows `setForwarding` (a blocked segment blocks in the switch, keeping its port id). Without a
 * tree nothing changes: the port forwards, and tree frames are ordinary frames.
 */

export const TREE_DST_MAC = Buffer.from([0x01, 0x80, 0xc2, 0x00, 0x00, 0x00]);
export const TREE_ETHERTYPE = 0x88b6;
export const TREE_FRAME_BYTES = 60;
const TREE_HEADER_BYTES = 14;

/** Whether `buf[off, off+len)` is a tree frame (destination and ethertype; the payload is the tree's to judge). */
export function isTreeFrame(buf: Buffer, off: number, len: number): boolean {
  return len >= TREE_HEADER_BYTES && buf[off] === 0x01 && buf[off + 1] === 0x80 && buf[off + 2] === 0xc2 &&
    buf[off + 3] === 0 && buf[off + 4] === 0 && buf[off + 5] === 0 && buf.readUInt16BE(off + 12) === TREE_ETHERTYPE;
}

/** A tree frame carrying `payload`, from `srcMac` (6 bytes). */
export function treeFrame(srcMac: Buffer, payload: Buffer): Buffer {
  const f = Buffer.alloc(Math.max(TREE_FRAME_BYTES, TREE_HEADER_BYTES + payload.length));
  TREE_DST_MAC.copy(f, 0);
  srcMac.copy(f, 6, 0, 6);
  f.writeUInt16BE(TREE_ETHERTYPE, 12);
  payload.copy(f, TREE_HEADER_BYTES);
  return f;
}

/** The tree's side of one segment: given every tree frame's payload (a view valid for the call only). */
export interface SegmentTree {
  onTreeFrame(seg: SharedSegment, buf: Buffer, off: number, len: number): void;
}

/** What the segment's transport does for the tree. */
export interface SegmentIo {
  /** Sends one frame onto the segment (not through the switch). */
  sendFrame(frame: Buffer): void;
  /** Puts the segment's port into the switch (true) or takes it out (false, flushing its MACs). */
  setForwarding(forwarding: boolean): void;
}

export type SegmentRole = 'root' | 'designated' | 'blocked';

export class SharedSegment {
  /** The tree running over this segment, or null (then the port always forwards). */
  tree: SegmentTree | null = null;
  /** Set by the tree, for status. */
  role: SegmentRole = 'designated';
  forwarding = true;
  /** Other bridge ports heard on the segment now (from the tree). */
  bridgesHeard = 0;
  /** The designated bridge's id (hex), ours included; '' before the tree runs. */
  designatedBridge = '';
  /** Tree frames: received and given to the tree, sent, and filtered out of the switch's egress. */
  treeRx = 0;
  treeTx = 0;
  treeFiltered = 0;

  constructor(readonly name: string, private readonly io: SegmentIo) {}

  /** Transport side: a received tree frame while a tree is attached (caller checked both). */
  deliver(buf: Buffer, off: number, len: number): void {
    this.treeRx++;
    this.tree!.onTreeFrame(this, buf, off + TREE_HEADER_BYTES, len - TREE_HEADER_BYTES);
  }

  /** Tree side: sends a tree frame built by `treeFrame`. */
  send(frame: Buffer): void {
    this.treeTx++;
    this.io.sendFrame(frame);
  }

  /** Tree side: follows the port's forwarding state. */
  setForwarding(forwarding: boolean): void {
    if (forwarding === this.forwarding) return;
    this.forwarding = forwarding;
    this.io.setForwarding(forwarding);
  }
}

/** Who runs the tree: told of every segment, present and future. */
export interface SegmentListener {
  segmentAdded(seg: SharedSegment): void;
  segmentRemoved(seg: SharedSegment): void;
}

/** The shared segments of one switch and the one listener (the tree) told of them. */
export class SegmentRegistry {
  readonly segments: SharedSegment[] = [];
  private listener: SegmentListener | null = null;

  add(seg: SharedSegment): void {
    this.segments.push(seg);
    this.listener?.segmentAdded(seg);
  }

  remove(seg: SharedSegment): void {
    const i = this.segments.indexOf(seg);
    if (i < 0) return;
    this.segments.splice(i, 1);
    this.listener?.segmentRemoved(seg);
  }

  /** One tree per switch: a second listener replaces the first (one [wg] section per config). */
  listen(listener: SegmentListener | null): void {
    this.listener = listener;
    if (listener !== null) for (const s of this.segments) listener.segmentAdded(s);
  }
}
