/**
 * A batch socket's options checked and filled in once, for either implementation.
 */
import type { BatchSocketOptions } from './types.js';
import type { NativeOpenOptions } from './addon.js';

export const DEFAULT_BATCH_SIZE = 64;
export const DEFAULT_SLOT_BYTES = 69632; // QEMU's NET_BUFSIZE.
export const MAX_BATCH_SIZE = 1024; // UIO_MAXIOV.
export const MAX_SLOT_BYTES = 262144;
/** The tx slab holds at least this much, so a burst of full-size frames costs few sendmmsg calls. */
export const MIN_TX_SLAB_BYTES = 262144;
/** Fallback: datagrams allowed to wait in libuv's send queue before new ones are dropped. */
export const JS_SEND_QUEUE_LIMIT = 1024;

/** Most peer ids live at once per socket (the addon's kMaxPeers; the fallback keeps the same bound). */
export const MAX_PEERS = 65536;

export interface Normalised {
  opts: BatchSocketOptions;
  batchSize: number;
  slotBytes: number;
  open: NativeOpenOptions;
}

export function describeBind(opts: BatchSocketOptions): string {
  const b = opts.bind as { host?: string; port?: number; path?: string };
  return opts.kind === 'unix' ? `unix:${b.path}` : `udp://${b.host}:${b.port}`;
}

export function normalise(opts: BatchSocketOptions): Normalised {
  const what = `batch socket ${describeBind(opts)}`;
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const slotBytes = opts.slotBytes ?? DEFAULT_SLOT_BYTES;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new RangeError(`${what}: batchSize ${batchSize} out of range (1..${MAX_BATCH_SIZE})`);
  }
  if (!Number.isInteger(slotBytes) || slotBytes < 1 || slotBytes > MAX_SLOT_BYTES) {
    throw new RangeError(`${what}: slotBytes ${slotBytes} out of range (1..${MAX_SLOT_BYTES})`);
  }
  const maxPeers = opts.maxPeers ?? MAX_PEERS;
  if (!Number.isInteger(maxPeers) || maxPeers < 1 || maxPeers > MAX_PEERS) {
    throw new RangeError(`${what}: maxPeers ${maxPeers} out of range (1..${MAX_PEERS})`);
  }
  const b = opts.bind as { host?: string; port?: number; path?: string };
  if (opts.kind === 'udp4') {
    if (typeof b.host !== 'string' || !Number.isInteger(b.port) || (b.port as number) < 0 || (b.port as number) > 65535) {
      throw new TypeError(`${what}: udp4 needs bind.host (IPv4 address) and bind.port (0..65535)`);
    }
  } else if (opts.kind === 'unix') {
    if (typeof b.path !== 'string' || b.path.length === 0) throw new TypeError(`${what}: unix needs bind.path`);
    if (Buffer.byteLength(b.path) > 107) {
      throw new RangeError(`${what}: path is ${Buffer.byteLength(b.path)} bytes, longer than the 107-byte socket path limit; use a shorter path`);
    }
    if (opts.multicast) throw new TypeError(`${what}: multicast options need kind udp4`);
  } else {
    throw new TypeError(`${what}: kind ${String(opts.kind)} is not udp4 or unix`);
  }
  const m = opts.multicast;
  return {
    opts,
    batchSize,
    slotBytes,
    open: {
      kind: opts.kind,
      host: b.host ?? '',
      port: b.port ?? 0,
      path: b.path ?? '',
      reuseAddr: opts.reuseAddr === true,
      rcvbufBytes: opts.rcvbufBytes ?? 0,
      sndbufBytes: opts.sndbufBytes ?? 0,
      mcastGroup: m ? m.group : null,
      mcastInterface: m ? m.interfaceAddr : '',
      mcastTtl: m ? m.ttl : 1,
      mcastLoop: m ? m.loop : false,
      mcastJoin: m ? m.join : false,
      noUdpChecksum: opts.kind === 'udp4' && opts.udpChecksum === false,
      udpGso: opts.kind === 'udp4' && opts.udpGso !== false && process.env.LANPARTY_UDP_GSO !== '0',
      flowControl: opts.kind === 'unix' && (opts.flowControl ?? process.env.LANPARTY_UNIX_FLOW_CONTROL === '1'),
      maxPeers,
    },
  };
}
