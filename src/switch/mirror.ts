/**
 * Mirror: a switch tap that feeds one capture client (lanparty capture, lanparty dump).
 *
 * Stages, per frame the switch accepts:
 *   1. Filter by ingress port id and by MAC (source or destination), reading the buffer in place.
 *   2. If the frame's port was not announced yet, queue a PORT record first (so the client writes
 *      an Interface Description Block when the port is first seen).
 *   3. Copy the frame into a FRAME record and queue it. The tap never keeps the switch's buffer:
 *      the copy is what lets the frame outlive the call.
 *   4. The queue is bounded in records and bytes; when it is full the newest frame is dropped and
 *      counted (`dropped`), so a slow client costs memory up to the bound and never slows the
 *      switch beyond one copy per frame.
 * The owner drains `take()` into its socket when the socket has room (see daemon/commands/capture).
 *
 * Record format on the wire (big-endian), after the control reply line:
 *   u32 size (bytes after this field) | u8 type | body
 *   type 1 PORT:  u32 portId | UTF-8 JSON {name, kind, endpoint}
 *   type 2 FRAME: u32 portId | u32 timestamp µs high | u32 timestamp µs low | frame bytes
 *   type 3 STATS: UTF-8 JSON {frames, dropped}
 * Dependencies: wire and util only, like the rest of switch.
 */
import type { Port } from './port.js';

export const RECORD_PORT = 1;
export const RECORD_FRAME = 2;
export const RECORD_STATS = 3;
export const RECORD_HEADER_BYTES = 5;

export interface MirrorFilter {
  /** Ingress port ids to keep; empty keeps all. */
  portIds: number[];
  /** 48-bit MACs: keep frames with one of them as source or destination; empty keeps all. */
  macs: number[];
}

export interface MirrorLimits {
  maxQueuedFrames: number;
  maxQueuedBytes: number;
}

export const DEFAULT_MIRROR_LIMITS: MirrorLimits = { maxQueuedFrames: 8192, maxQueuedBytes: 16 << 20 };

export interface PortInfo { name: string; kind: string; endpoint: string }

export function portRecord(portId: number, info: PortInfo): Buffer {
  const json = Buffer.from(JSON.stringify(info), 'utf8');
  const r = Buffer.allocUnsafe(RECORD_HEADER_BYTES + 4 + json.length);
  r.writeUInt32BE(1 + 4 + json.length, 0);
  r[4] = RECORD_PORT;
  r.writeUInt32BE(portId, 5);
  json.copy(r, 9);
  return r;
}

export function statsRecord(stats: { frames: number; dropped: number }): Buffer {
  const json = Buffer.from(JSON.stringify(stats), 'utf8');
  const r = Buffer.allocUnsafe(RECORD_HEADER_BYTES + json.length);
  r.writeUInt32BE(1 + json.length, 0);
  r[4] = RECORD_STATS;
  json.copy(r, 5);
  return r;
}

/** Microseconds since the epoch with sub-millisecond resolution, no BigInt. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export class Mirror {
  /** Frames queued since the start (after filtering). */
  frames = 0;
  /** Frames dropped because the queue was full. */
  dropped = 0;
  readonly tap: (port: Port, buf: Buffer, off: number, len: number) => void;
  private queue: Buffer[] = [];
  private head = 0;
  private queuedBytes = 0;
  private readonly announced = new Set<number>();
  private readonly portIds: Set<number> | null;
  private readonly macs: Set<number> | null;
  private wake: (() => void) | null = null;

  constructor(filter: MirrorFilter, private readonly limits: MirrorLimits = DEFAULT_MIRROR_LIMITS) {
    this.portIds = filter.portIds.length > 0 ? new Set(filter.portIds) : null;
    this.macs = filter.macs.length > 0 ? new Set(filter.macs) : null;
    this.tap = this.onFrame.bind(this);
  }

  /** Called (once per batch of queued records) when the queue goes from empty to non-empty. */
  onReadable(fn: () => void): void {
    this.wake = fn;
  }

  /** Queues a PORT record now (ports present when the capture starts). */
  announce(port: Port): void {
    if (this.announced.has(port.id)) return;
    if (this.portIds !== null && !this.portIds.has(port.id)) return;
    this.announced.add(port.id);
    this.push(portRecord(port.id, { name: port.name, kind: port.kind, endpoint: port.endpoint() }));
  }

  private onFrame(port: Port, buf: Buffer, off: number, len: number): void {
    if (this.portIds !== null && !this.portIds.has(port.id)) return;
    if (this.macs !== null) {
      const dst = buf.readUInt32BE(off) * 0x10000 + buf.readUInt16BE(off + 4);
      const src = buf.readUInt32BE(off + 6) * 0x10000 + buf.readUInt16BE(off + 10);
      if (!this.macs.has(dst) && !this.macs.has(src)) return;
    }
    if (this.queue.length - this.head >= this.limits.maxQueuedFrames || this.queuedBytes + len > this.limits.maxQueuedBytes) {
      this.dropped++;   // newest dropped: the client sees a gap, never a reordering
      return;
    }
    if (!this.announced.has(port.id)) this.announce(port);
    const r = Buffer.allocUnsafe(RECORD_HEADER_BYTES + 12 + len);
    r.writeUInt32BE(1 + 12 + len, 0);
    r[4] = RECORD_FRAME;
    r.writeUInt32BE(port.id, 5);
    const ts = nowUs();
    r.writeUInt32BE(Math.floor(ts / 0x100000000), 9);
    r.writeUInt32BE(ts % 0x100000000, 13);
    buf.copy(r, 17, off, off + len);   // the copy: the switch owns `buf` for this call only
    this.frames++;
    this.push(r);
  }

  private push(r: Buffer): void {
    const wasEmpty = this.queue.length === this.head;
    this.queue.push(r);
    this.queuedBytes += r.length;
    if (wasEmpty && this.wake !== null) this.wake();
  }

  /** The next queued record, or undefined. */
  take(): Buffer | undefined {
    if (this.head === this.queue.length) return undefined;
    const r = this.queue[this.head++];
    this.queuedBytes -= r.length;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    return r;
  }
}

export type StreamRecord =
  | { type: 'port'; portId: number; info: PortInfo }
  | { type: 'frame'; portId: number; timestampUs: number; frame: Buffer }
  | { type: 'stats'; stats: { frames: number; dropped: number } };

/** Reassembles records from the byte stream a capture client receives. */
export class RecordReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Feeds bytes; calls `out` for each complete record. Throws on an impossible size. */
  push(chunk: Buffer, out: (r: StreamRecord) => void): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let o = 0;
    while (this.pending.length - o >= 4) {
      const size = this.pending.readUInt32BE(o);
      if (size < 1 || size > (1 << 24) + 64) throw new Error(`capture stream: record size ${size} is out of range`);
      if (this.pending.length - o - 4 < size) break;
      const type = this.pending[o + 4];
      const body = this.pending.subarray(o + 5, o + 4 + size);
      if (type === RECORD_FRAME) {
        out({ type: 'frame', portId: body.readUInt32BE(0), timestampUs: body.readUInt32BE(4) * 0x100000000 + body.readUInt32BE(8), frame: body.subarray(12) });
      } else if (type === RECORD_PORT) {
        out({ type: 'port', portId: body.readUInt32BE(0), info: JSON.parse(body.subarray(4).toString('utf8')) as PortInfo });
      } else if (type === RECORD_STATS) {
        out({ type: 'stats', stats: JSON.parse(body.toString('utf8')) as { frames: number; dropped: number } });
      }
      o += 4 + size;
    }
    this.pending = o === this.pending.length ? Buffer.alloc(0) : this.pending.subarray(o);
  }
}
