/**
 * pcapng writer (draft-ietf-opsawg-pcapng, read sections 4.1-4.3 and 3.5 first): Section Header,
 * Interface Description and Enhanced Packet Blocks, as Wireshark writes them. Little-endian, every
 * block and option padded to 32 bits, option lists closed with opt_endofopt.
 *
 * lanparty writes one Interface Description Block per switch port (if_name = the port's name), so
 * a viewer shows where each frame entered the switch. Timestamps are microseconds since the epoch
 * (the default if_tsresol of 10^-6), so no if_tsresol option is written.
 * Leaf module: imports nothing from lanparty. Allocates per block (capture is not the hot path:
 * the daemon's tap only copies into a bounded queue).
 */

export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const BLOCK_SHB = 0x0a0d0d0a;
export const BLOCK_IDB = 0x00000001;
export const BLOCK_EPB = 0x00000006;
export const LINKTYPE_ETHERNET = 1;

const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_HARDWARE = 2;
const SHB_OS = 3;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;

export interface PcapngOption {
  code: number;
  value: Buffer;
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Options area: each option padded to 32 bits, then opt_endofopt; empty when there are none. */
export function encodeOptions(opts: PcapngOption[]): Buffer {
  if (opts.length === 0) return Buffer.alloc(0);
  let size = 4;
  for (const o of opts) size += 4 + pad4(o.value.length);
  const b = Buffer.alloc(size);
  let p = 0;
  for (const o of opts) {
    b.writeUInt16LE(o.code, p);
    b.writeUInt16LE(o.value.length, p + 2);
    o.value.copy(b, p + 4);
    p += 4 + pad4(o.value.length);
  }
  b.writeUInt16LE(OPT_ENDOFOPT, p);
  b.writeUInt16LE(0, p + 2);
  return b;
}

function textOption(code: number, text: string | undefined, into: PcapngOption[]): void {
  if (text !== undefined && text.length > 0) into.push({ code, value: Buffer.from(text, 'utf8') });
}

/** Wraps a block body: type, total length, body, total length again. */
function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(total, 4);
  body.copy(b, 8);
  b.writeUInt32LE(total, total - 4);
  return b;
}

export interface SectionHeaderOptions {
  hardware?: string;
  os?: string;
  application?: string;
  comment?: string;
}

/** A Section Header Block, version 1.0, section length -1 (unknown: we stream). */
export function sectionHeaderBlock(o: SectionHeaderOptions = {}): Buffer {
  const opts: PcapngOption[] = [];
  textOption(OPT_COMMENT, o.comment, opts);
  textOption(SHB_HARDWARE, o.hardware, opts);
  textOption(SHB_OS, o.os, opts);
  textOption(SHB_USERAPPL, o.application, opts);
  const optBytes = encodeOptions(opts);
  const body = Buffer.alloc(16 + optBytes.length);
  body.writeUInt32LE(PCAPNG_BYTE_ORDER_MAGIC, 0);
  body.writeUInt16LE(1, 4);
  body.writeUInt16LE(0, 6);
  body.writeUInt32LE(0xffffffff, 8);   // section length -1 as a 64-bit value
  body.writeUInt32LE(0xffffffff, 12);
  optBytes.copy(body, 16);
  return block(BLOCK_SHB, body);
}

export interface InterfaceOptions {
  /** if_name: the switch port's name, e.g. "udp 127.0.0.1:40001". */
  name?: string;
  /** if_description, e.g. the port's kind and endpoint. */
  description?: string;
  /** Largest number of bytes captured per frame; 0 = no limit. */
  snapLen?: number;
}

/** An Interface Description Block for Ethernet frames; microsecond timestamps (default tsresol). */
export function interfaceDescriptionBlock(o: InterfaceOptions = {}): Buffer {
  const opts: PcapngOption[] = [];
  textOption(IF_NAME, o.name, opts);
  textOption(IF_DESCRIPTION, o.description, opts);
  const optBytes = encodeOptions(opts);
  const body = Buffer.alloc(8 + optBytes.length);
  body.writeUInt16LE(LINKTYPE_ETHERNET, 0);
  body.writeUInt16LE(0, 2);
  body.writeUInt32LE(o.snapLen ?? 0, 4);
  optBytes.copy(body, 8);
  return block(BLOCK_IDB, body);
}

/**
 * An Enhanced Packet Block. `interfaceId` is the index of the IDB in this section (0-based, in the
 * order written); `timestampUs` is microseconds since 1970 (exact below 2^53). The frame is copied;
 * the caller keeps `buf`. `originalBytes` defaults to the captured length.
 */
export function enhancedPacketBlock(interfaceId: number, timestampUs: number, buf: Buffer, off = 0, len = buf.length - off, originalBytes = len): Buffer {
  const body = Buffer.alloc(20 + pad4(len));
  body.writeUInt32LE(interfaceId, 0);
  body.writeUInt32LE(Math.floor(timestampUs / 0x100000000), 4);
  body.writeUInt32LE(timestampUs % 0x100000000, 8);
  body.writeUInt32LE(len, 12);
  body.writeUInt32LE(originalBytes, 16);
  buf.copy(body, 20, off, off + len);
  return block(BLOCK_EPB, body);
}

/**
 * Keeps the interface table of one section: `blockFor(key, ...)` returns the IDB to write the
 * first time a key (a switch port id) is seen, and the interface id to use in its EPBs.
 * A new file in a ring starts a new section: call `reset()` and write the SHB again.
 */
export class PcapngInterfaces {
  private readonly ids = new Map<number, number>();

  reset(): void {
    this.ids.clear();
  }

  /** The interface id for `key`, or -1 if no IDB has been written for it in this section. */
  idOf(key: number): number {
    return this.ids.get(key) ?? -1;
  }

  /** Registers `key` and returns its IDB; idOf(key) is valid afterwards. */
  add(key: number, o: InterfaceOptions): Buffer {
    this.ids.set(key, this.ids.size);
    return interfaceDescriptionBlock(o);
  }

  get size(): number {
    return this.ids.size;
  }
}
