/** An in-memory Port that records every frame sent to it (copies, since the caller owns the buffer). */
import { PortCounters, type Port, type PortKind } from '../../src/switch/port.js';

export class MemoryPort implements Port {
  id = 0;
  readonly counters = new PortCounters();
  readonly kind: PortKind = 'test';
  readonly maxFrameBytes = 69632;
  readonly frames: Buffer[] = [];
  constructor(readonly name: string) {}
  endpoint(): string { return 'memory'; }
  send(buf: Buffer, off: number, len: number): void {
    this.frames.push(Buffer.from(buf.subarray(off, off + len)));
    this.counters.txFrames++;
    this.counters.txBytes += len;
  }
  close(): void {}
}

/** A frame from a MAC to a MAC ("02:00:00:00:00:01" style), with a small payload. */
export function frame(dst: string, src: string, ethertype = 0x0800, payloadBytes = 46): Buffer {
  const f = Buffer.alloc(14 + payloadBytes);
  Buffer.from(dst.replace(/:/g, ''), 'hex').copy(f, 0);
  Buffer.from(src.replace(/:/g, ''), 'hex').copy(f, 6);
  f.writeUInt16BE(ethertype, 12);
  for (let i = 14; i < f.length; i++) f[i] = i & 0xff;
  return f;
}
