/**
 * batch-io: opens a BatchSocket (see batch-io-types.ts) backed by the native addon
 * (native/, docs/data-path.md: recvmmsg/sendmmsg into slabs allocated once here) or, when the addon
 * is missing or LANPARTY_NO_NATIVE=1, by node:dgram delivering batches of one. This is the only
 * module that loads the addon. Transports call openBatchSocket and never learn which one they got,
 * except through `native` (for status) and the unix-datagram limitation of the fallback.
 *
 * Native receive: the addon fills rx.bufs[i] / rx.lengths[i] / rx.peers[i] and calls onBatch(count).
 * Native send stages:
 *   1. send() notes (offset, length, peer, source) in typed arrays. A frame that lies in the rx slab
 *      of a native socket (a frame being forwarded) is not copied: the source is that slab's id and
 *      the addon reads it there at flush, which runs before that socket can receive again (see
 *      docs/data-path.md). Any other frame is copied into the tx slab first (one native memcpy call,
 *      no allocation), since the caller's buffer is only ours for the call.
 *   2. The first send of a tick schedules one flush with queueMicrotask (flush bound once).
 *   3. flush() hands the count to the addon: one sendmmsg for the lot; a full queue flushes early.
 *   4. Unix datagram sockets only: a datagram refused with EAGAIN (that receiver's queue is full;
 *      Linux queues only net.unix.max_dgram_qlen = 10 per receiver) waits in a bounded per-peer
 *      backlog in the addon, sent in order when the receiver has room (as QEMU itself does). A full
 *      backlog (1024 datagrams or 2 MiB) drops the newest, counted in stats.sendDropped;
 *      stats.sendQueued is how many wait right now. UDP keeps dropping on EAGAIN.
 *   5. Flow control, unix datagram sockets opened with flowControl (default: off, unless
 *      LANPARTY_UNIX_FLOW_CONTROL=1): a backlog a quarter full stops the unix socket its frames
 *      came from reading until it drains (its senders wait in their own queues, as they would
 *      sending to the slow receiver directly), at most 200 ms per wait; a receiver that holds one
 *      that long is stuck and holds nobody until its backlog empties. Counted in stats.flowPauses
 *      and stats.flowTimeouts. Off by default because one socket carries every guest of a
 *      unixgram port: pausing it holds back all of them, not only the one sending to the slow
 *      reader (bench/tools/hol-unixgram.sh: another guest's ping p99 went from 0.1 to 14-22 ms during such a flood).
 * Peer ids: the addon's PeerTable (keyed hash, random key per process) or the fallback's maps name
 * each source address; an id lives until the owner releases it (native: after the next flush, so
 * datagrams queued to it still go) or, when the owner opted in, until the full table evicts it
 * (least recently heard first) and the owner is told, before the batch that needed the room.
 * Counters live in a Float64Array the addon writes directly; `stats` reads them.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { LanpartyError } from '../util/index.js';
import { parseIpv4Address } from '../wire/index.js';
import type { BatchSocket, BatchSocketOptions, DgramAddress, Ipv4Net, RxBatch, SocketStats } from './batch-io-types.js';

export type { BatchSocket, BatchSocketOptions, DgramAddress, RxBatch, MulticastOptions } from './batch-io-types.js';

/** Which implementation to use; openBatchSocket picks 'native' when it is available. */
export type BatchImplementation = 'native' | 'js';

const DEFAULT_BATCH_SIZE = 64;
const DEFAULT_SLOT_BYTES = 69632; // QEMU's NET_BUFSIZE.
const MAX_BATCH_SIZE = 1024; // UIO_MAXIOV.
const MAX_SLOT_BYTES = 262144;
/** The tx slab holds at least this much, so a burst of full-size frames costs few sendmmsg calls. */
const MIN_TX_SLAB_BYTES = 262144;
/** Fallback: datagrams allowed to wait in libuv's send queue before new ones are dropped. */
const JS_SEND_QUEUE_LIMIT = 1024;

/** Indexes of the shared counters array; must match CounterIndex in native/common.h. */
const C_SEND_ERRORS = 0;
const C_RECV_ERRORS = 1;
const C_TRUNCATED = 2;
const C_SEND_DROPPED = 3;
const C_UNADDRESSABLE = 4;
const C_SEND_QUEUED = 5;
const C_GSO_MESSAGES = 6;
const C_GSO_DATAGRAMS = 7;
const C_FLOW_PAUSES = 8;
const C_FLOW_TIMEOUTS = 9;
const C_PEERS_LIVE = 10;
const C_PEERS_EVICTED = 11;
const C_NOT_ACCEPTED = 12;
const COUNTER_COUNT = 13;

/** Most peer ids live at once per socket (the addon's kMaxPeers; the fallback keeps the same bound). */
export const MAX_PEERS = 65536;

// ---------------------------------------------------------------------------------------------
// Loading the addon

interface NativeHandle {
  open(o: NativeOpenOptions): void;
  localAddress(): DgramAddress;
  ignoreSource(host: string, port: number): boolean;
  /** nets: [network, mask, ...]; exact: [address, port, ...] (unsigned 32-bit, host order). */
  acceptSources(nets: number[], exact: number[]): boolean;
  peerIdInet(host: string, port: number): number;
  peerIdUnix(path: string): number;
  peerAddress(id: number): DgramAddress | null;
  releasePeer(id: number): boolean;
  /** report: Int32Array(evictedMax + 1), see PeerTable in the addon. */
  enablePeerEviction(report: Int32Array): void;
  start(cb: (count: number) => void): void;
  copyIn(buf: Buffer, off: number, len: number, at: number): boolean;
  /** This socket's rx slab id for other sockets' txSrcs; 0 when the addon's registry is full. */
  rxSlabId(): number;
  flush(count: number): number;
  close(): void;
}

interface NativeModule {
  BatchSocket: new (
    rxSlab: Buffer, slotBytes: number, lengths: Int32Array, peers: Int32Array,
    txSlab: Buffer, txOffs: Int32Array, txLens: Int32Array, txPeers: Int32Array, txSrcs: Int32Array, counters: Float64Array,
  ) => NativeHandle;
  TapDevice: new (rxSlab: Buffer, slotBytes: number, lengths: Int32Array, counters: Float64Array) => NativeTapHandle;
  StreamReader: new (fd: number, slab: Buffer) => NativeStreamReader;
  configureInterface(name: string, address: string, prefixLength: number, mtuBytes: number, up: boolean): void;
  interfaceState(name: string): InterfaceState | null;
  /** Present when the addon was built with OpenSSL's headers (Node ships them). */
  aeadSeal?: NativeAead['seal'];
  aeadOpen?: NativeAead['open'];
  /** The per-peer unix send backlog's bounds (kBacklogDatagrams, kBacklogBytes). */
  backlogDatagrams: number;
  backlogBytes: number;
  /** Evicted peer ids reported at once, at most (kEvictedMax). */
  evictedMax: number;
  /** Sets the busy-poll time and budget when given; returns the state (see busyPollState). */
  setBusyPoll(us?: number, budgetPercent?: number): number[];
  /** The addon's interface version (kAbiVersion in native/module.cc); see ADDON_ABI_VERSION. */
  abiVersion: number;
}

interface NativeTapHandle {
  open(name: string, create: boolean): { name: string; ifindex: number };
  start(cb: (count: number) => void): void;
  write(buf: Buffer, off: number, len: number): TapWriteResult;
  close(): void;
}

interface NativeOpenOptions {
  kind: 'udp4' | 'unix';
  host: string;
  port: number;
  path: string;
  reuseAddr: boolean;
  rcvbufBytes: number;
  sndbufBytes: number;
  mcastGroup: string | null;
  mcastInterface: string;
  mcastTtl: number;
  mcastLoop: boolean;
  mcastJoin: boolean;
  noUdpChecksum: boolean;
  udpGso: boolean;
  /** Unix: a reader's deep backlog may pause this socket (step 5); off unless asked for. */
  flowControl: boolean;
  maxPeers: number;
}

// Relative to this file: dist/src/transports/ (compiled) first, then src/transports/.
const ADDON_CANDIDATES = [
  '../../../native/build/Release/lanparty_native.node',
  '../../native/build/Release/lanparty_native.node',
];

/**
 * The addon interface this file was written against: the exports, their arguments, the counter
 * and result indexes. native/module.cc exports the same number as `abiVersion`; both change
 * together whenever one side changes what the other relies on. An addon with another number
 * (built from other sources) is not used.
 */
export const ADDON_ABI_VERSION = 1;

/**
 * Why the addon at `path`, exporting `abiVersion`, cannot be used with this file (naming the file,
 * both versions and the fix), or null when the versions agree.
 */
export function abiMismatch(path: string, abiVersion: unknown): string | null {
  if (abiVersion === ADDON_ABI_VERSION) return null;
  const found = typeof abiVersion === 'number' ? `ABI version ${abiVersion}` : 'no ABI version';
  return `native addon ${path} has ${found}, this lanparty needs ABI version ${ADDON_ABI_VERSION}; rebuild it with npm run build:native`;
}

let nativeModule: NativeModule | null = null;
let loadError: string | null = null;
let loadAttempted = false;

function loadNative(): NativeModule | null {
  if (loadAttempted) return nativeModule;
  loadAttempted = true;
  if (process.env.LANPARTY_NO_NATIVE === '1') {
    loadError = 'native addon disabled by LANPARTY_NO_NATIVE=1';
    return null;
  }
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const rel of ADDON_CANDIDATES) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    tried.push(path);
    if (!existsSync(path)) continue;
    try {
      const m = require(path) as NativeModule;
      loadError = abiMismatch(path, m.abiVersion);
      if (loadError !== null) return null;
      nativeModule = m;
      return nativeModule;
    } catch (err) {
      loadError = `native addon ${path} failed to load: ${(err as Error).message}; rebuild it with npm run build:native`;
      return null;
    }
  }
  loadError = `native addon not built (looked for ${tried.join(', ')}); build it with npm run build:native (needs g++, make, python3)`;
  return null;
}

export interface BusyPollState {
  /** Microseconds of polling after the last frame before the thread goes back to libuv; 0: off. */
  us: number;
  /** Share of one core (percent) that the idle part of the spinning may use, on average. */
  budgetPercent: number;
  /** Spins started (one per libuv wakeup that delivered frames, while the budget lasts). */
  spins: number;
  /** Frames read while spinning: each arrived without waking the process. */
  frames: number;
  /** Microseconds spent spinning without frames: the CPU it cost. */
  idleUs: number;
  /** Wakeups that slept at once because the budget was spent. */
  skipped: number;
  /** Wakeups that slept at once under a load: frames came faster than `maxRate`, or the wakeup read more than `maxBatch`. */
  loaded: number;
  /** Frames a second above which it does not spin (fixed in the addon). */
  maxRate: number;
  /** Frames a second through the native sockets, TAPs and stream readers over the last measured window (20 ms, ended by a frame). */
  rate: number;
  /** Frames read at once above which it does not spin, and after which a spin ends (fixed in the addon). */
  maxBatch: number;
}

function busyState(v: number[]): BusyPollState {
  return { us: v[0], budgetPercent: v[1], spins: v[2], frames: v[3], idleUs: v[4], skipped: v[5], loaded: v[6], maxRate: v[7], rate: v[8], maxBatch: v[9] };
}

/** The addon's StreamReader object. */
interface NativeStreamReader {
  start(cb: (n: number) => number): void;
  pause(): void;
  resume(): void;
  close(): void;
  useSlab(slab: Buffer): void;
}

/**
 * Reads a connected stream socket in the addon (StreamReader there) into `slab`, on a dup of the
 * socket's fd: start(cb) calls cb(n) with n > 0 bytes at slab[0, n) for every read, and cb returns
 * how many frames they completed (busy polling's count); cb(0) at end of stream, cb(-errno) on an
 * error, once. The net.Socket must never read (open it paused: pauseOnConnect, or pause() before
 * it connects); it still writes, and closing it is the caller's business.
 */
export interface StreamReader {
  /** What the reader reads into: callback(n) means bytes [0, n) of it are new. */
  readonly slab: Buffer;
  start(cb: (n: number) => number): void;
  pause(): void;
  resume(): void;
  close(): void;
  /**
   * Reads into a new slab (of `bytes`, else the current size) from the next read on, and returns
   * it: call it (from the callback too) when something keeps a view of the current one, such as
   * a socket write that did not complete, or to read more at once.
   */
  readonly renewSlab: (bytes?: number) => Buffer;
}

/**
 * A native reader for `sock` (see StreamReader), or null: no addon, no fd,
 * LANPARTY_STREAM_READER=0, or no fd left to dup (then Node reads the socket).
 */
export function openStreamReader(sock: object, slabBytes: number): StreamReader | null {
  const m = streamReaderAvailable() ? loadNative() : null;
  // net.Socket has no public fd; its libuv handle (TCP or Pipe wrap) has one on Unix.
  const fd = (sock as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (m === null || typeof fd !== 'number' || fd < 0) return null;
  // Allocated here, once the addon will read: a connection Node reads needs no slab of its own.
  let native: NativeStreamReader;
  let slab = Buffer.allocUnsafe(slabBytes);
  try {
    native = new m.StreamReader(fd, slab);
  } catch {
    return null;  // dup failed (EMFILE: out of file descriptors): Node reads this one
  }
  return {
    get slab() { return slab; },
    start: (cb) => native.start(cb),
    pause: () => native.pause(),
    resume: () => native.resume(),
    close: () => native.close(),
    renewSlab: (bytes = slab.length) => {
      slab = Buffer.allocUnsafe(bytes);
      native.useSlab(slab);
      return slab;
    },
  };
}

/** True when openStreamReader can give stream sockets to the addon (see there). */
export function streamReaderAvailable(): boolean {
  return process.env.LANPARTY_STREAM_READER !== '0' && loadNative() !== null;
}

/**
 * Busy polling of the native sockets and TAP devices (see BusySpin in the addon): after a wakeup
 * that delivered frames, keep reading for `us` microseconds since the last frame before sleeping
 * again, so the reply to a frame just forwarded is read without a scheduler wake-up; the idle
 * part of it may use `budgetPercent` of one core on average, and it does not spin at all under a
 * load (frames faster than the addon's `maxRate`, or more than `maxBatch` at once). us 0 turns it
 * off. Returns null when the addon is not loaded (the JS path has no such loop).
 */
export function setBusyPoll(us: number, budgetPercent?: number): BusyPollState | null {
  const m = loadNative();
  if (m === null) return null;
  return busyState(budgetPercent === undefined ? m.setBusyPoll(us) : m.setBusyPoll(us, budgetPercent));
}

/** How much one unix datagram peer's send backlog holds (whichever is reached first); null without the addon. */
export function unixBacklogLimits(): { datagrams: number; bytes: number } | null {
  const m = loadNative();
  return m ? { datagrams: m.backlogDatagrams, bytes: m.backlogBytes } : null;
}

/** The busy-poll setting and its counts, or null without the addon. */
export function busyPollState(): BusyPollState | null {
  const m = loadNative();
  if (m === null) return null;
  return busyState(m.setBusyPoll());
}

/** True when the native recvmmsg/sendmmsg addon is loaded (and not disabled by LANPARTY_NO_NATIVE=1). */
export function nativeAvailable(): boolean {
  return loadNative() !== null;
}

/**
 * ChaCha20-Poly1305 with WireGuard's nonce (32 zero bits, then the 64-bit little-endian counter
 * as lo/hi halves), done in the addon with one reused OpenSSL context per direction: no object
 * and no Buffer per packet (node:crypto builds a Cipheriv per packet, which costs more than the
 * cipher). Both return bytes written, or -1 (a bad tag on open, or arguments out of range).
 */
export interface NativeAead {
  /** Seals src[srcOff, +srcLen) plus (padded - srcLen) zero bytes into dst at dstOff, tag after: padded + 16. */
  seal(key: Buffer, ctrLo: number, ctrHi: number, src: Buffer, srcOff: number, srcLen: number, padded: number, dst: Buffer, dstOff: number): number;
  /** Opens ciphertext + tag src[srcOff, +srcLen) into dst at dstOff: srcLen - 16. */
  open(key: Buffer, ctrLo: number, ctrHi: number, src: Buffer, srcOff: number, srcLen: number, dst: Buffer, dstOff: number): number;
}

/** The addon's AEAD, or null (no addon, built without OpenSSL headers, or LANPARTY_NATIVE_AEAD=0). */
export function nativeAead(): NativeAead | null {
  const m = loadNative();
  if (m === null || !m.aeadSeal || !m.aeadOpen || process.env.LANPARTY_NATIVE_AEAD === '0') return null;
  return { seal: m.aeadSeal, open: m.aeadOpen };
}

/** Why the native addon is not in use, or null when it is. */
export function nativeLoadError(): string | null {
  loadNative();
  return loadError;
}

// ---------------------------------------------------------------------------------------------
// Opening

/**
 * Opens and binds a batch socket with the native addon when available, else node:dgram.
 * Rejects with the errno error (`.code` EADDRINUSE, EACCES, ENOENT, ENODEV, ...; `.syscall` set;
 * the message names the address), or LanpartyError LP_ERR_NATIVE for a unix socket without the addon.
 *
 * Every peer id in rx.peers is valid (>= 0, peerAddress works). Datagrams whose source cannot be
 * given one (an unbound unix sender, or a full table: maxPeers live ids, default MAX_PEERS, without
 * eviction) are dropped and counted in `stats.unaddressable`. Ids live until the owner releases
 * them or is told of their eviction (see BatchSocket.peerId, releasePeer, onPeerEvicted). Beyond the BatchSocket interface, `stats` also has `sendDropped`: the
 * part of `sendErrors` lost to a full queue (EAGAIN/ENOBUFS) rather than a fault, and (native)
 * `sendQueued`: unix datagrams waiting in per-peer backlogs for a slow receiver (see step 4 above).
 * A unix socket with backlogged datagrams keeps the event loop alive until they leave or close().
 * The socket path of a unix socket is never unlinked here; its owner removes it.
 */
export function openBatchSocket(opts: BatchSocketOptions): Promise<BatchSocket> {
  return openBatchSocketWith(nativeAvailable() ? 'native' : 'js', opts);
}

/** Like openBatchSocket with the implementation chosen by the caller (tests run both). */
export function openBatchSocketWith(impl: BatchImplementation, opts: BatchSocketOptions): Promise<BatchSocket> {
  try {
    const o = normalise(opts);
    if (impl === 'js') return openJs(o);
    const mod = loadNative();
    if (mod === null) {
      return Promise.reject(new LanpartyError('LP_ERR_NATIVE', `batch socket ${describeBind(opts)}: ${loadError ?? 'native addon unavailable'}`));
    }
    return Promise.resolve(new NativeBatchSocket(mod, o));
  } catch (err) {
    return Promise.reject(err);
  }
}

interface Normalised {
  opts: BatchSocketOptions;
  batchSize: number;
  slotBytes: number;
  open: NativeOpenOptions;
}

function describeBind(opts: BatchSocketOptions): string {
  const b = opts.bind as { host?: string; port?: number; path?: string };
  return opts.kind === 'unix' ? `unix:${b.path}` : `udp://${b.host}:${b.port}`;
}

function normalise(opts: BatchSocketOptions): Normalised {
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

// ---------------------------------------------------------------------------------------------
// Native implementation

/** Reads the counters the addon writes. Getters, so callers see `stats.sendErrors` as a number. */
class NativeStats {
  private readonly c: Float64Array;
  constructor(c: Float64Array) { this.c = c; }
  get sendErrors(): number { return this.c[C_SEND_ERRORS]; }
  get recvErrors(): number { return this.c[C_RECV_ERRORS]; }
  get truncated(): number { return this.c[C_TRUNCATED]; }
  /** The part of sendErrors dropped on EAGAIN/ENOBUFS (a full queue rather than a fault). */
  get sendDropped(): number { return this.c[C_SEND_DROPPED]; }
  /** Datagrams dropped on receive because their source has no peer id (see openBatchSocket). */
  get unaddressable(): number { return this.c[C_UNADDRESSABLE]; }
  /** Unix only: datagrams waiting right now in per-peer backlogs for a receiver's queue to drain. */
  get sendQueued(): number { return this.c[C_SEND_QUEUED]; }
  /** UDP GSO: messages sent with a UDP_SEGMENT cmsg, and the datagrams they carried. */
  get gsoMessages(): number { return this.c[C_GSO_MESSAGES]; }
  get gsoDatagrams(): number { return this.c[C_GSO_DATAGRAMS]; }
  /** Unix only: times a deep backlog here stopped a unix socket reading (flow control, step 5). */
  get flowPauses(): number { return this.c[C_FLOW_PAUSES]; }
  /** Unix only: backlogs that held a socket 200 ms without draining (stuck receivers). */
  get flowTimeouts(): number { return this.c[C_FLOW_TIMEOUTS]; }
  /** Peer ids in use (evicted ones the owner has not released yet included). */
  get peers(): number { return this.c[C_PEERS_LIVE]; }
  get peersEvicted(): number { return this.c[C_PEERS_EVICTED]; }
  /** udp4: datagrams from a source outside the accept list, dropped before they got a peer id. */
  get notAccepted(): number { return this.c[C_NOT_ACCEPTED]; }
}

/**
 * Rx slabs of open native sockets, by their ArrayBuffer: send() looks a frame's buffer up here to
 * send it from where it was received instead of copying it (stage 1). Weak: a slab whose socket
 * is gone is forgotten with it (the addon refuses its id once the socket is destroyed).
 */
const rxSlabs = new WeakMap<ArrayBufferLike, { id: number; byteOffset: number; bytes: number }>();

class NativeBatchSocket implements BatchSocket {
  readonly native = true;
  readonly rx: RxBatch;
  readonly stats: NativeStats;
  private readonly handle: NativeHandle;
  private readonly counters: Float64Array;
  private readonly txSlab: Buffer;
  private readonly txOffs: Int32Array;
  private readonly txLens: Int32Array;
  private readonly txPeers: Int32Array;
  private readonly txSrcs: Int32Array;
  /** The last rx slab a frame was sent from: one lookup per batch rather than per frame. */
  private lastSlab: ArrayBufferLike | null;
  private lastSlabId: number;
  private lastSlabBase: number;
  private lastSlabEnd: number;
  /** See BatchSocket.sentWithoutCopy. */
  sentWithoutCopy: number;
  private readonly txCapacity: number;
  private txCount: number;
  private txUsedBytes: number;
  private flushScheduled: boolean;
  private closed: boolean;
  private readonly peerCache: Array<DgramAddress | undefined>;
  private readonly flushQueued: () => void;
  /** Ids released since the last flush: the addon frees them after it, so queued sends still go. */
  private readonly releasing: number[];
  /** Eviction reports from the addon (null until onPeerEvicted), and a copy taken to handle them. */
  private evictReport: Int32Array | null;
  private evictScratch: Int32Array | null;
  private evictHandler: ((id: number) => void) | null;
  private onBatch: ((count: number) => void) | null;
  private readonly onNativeBatch: (count: number) => void;
  private readonly evictedMax: number;

  constructor(mod: NativeModule, n: Normalised) {
    const { batchSize, slotBytes } = n;
    // Slabs are allocated once, zero-filled and unpooled (the addon keeps raw pointers into them).
    const rxSlab = Buffer.alloc(batchSize * slotBytes);
    const bufs: Buffer[] = [];
    for (let i = 0; i < batchSize; i++) bufs.push(rxSlab.subarray(i * slotBytes, (i + 1) * slotBytes));
    this.rx = { bufs, lengths: new Int32Array(batchSize), peers: new Int32Array(batchSize) };
    this.counters = new Float64Array(COUNTER_COUNT);
    this.stats = new NativeStats(this.counters);
    this.txCapacity = Math.min(MAX_BATCH_SIZE, Math.max(256, batchSize));
    this.txSlab = Buffer.alloc(Math.max(MIN_TX_SLAB_BYTES, 2 * slotBytes));
    this.txOffs = new Int32Array(this.txCapacity);
    this.txLens = new Int32Array(this.txCapacity);
    this.txPeers = new Int32Array(this.txCapacity);
    this.txSrcs = new Int32Array(this.txCapacity);
    this.lastSlab = null;
    this.lastSlabId = 0;
    this.lastSlabBase = 0;
    this.lastSlabEnd = 0;
    this.sentWithoutCopy = 0;
    this.txCount = 0;
    this.txUsedBytes = 0;
    this.flushScheduled = false;
    this.closed = false;
    this.peerCache = [];
    this.flushQueued = () => {
      this.flushScheduled = false;
      this.flush();
    };
    this.releasing = [];
    this.evictReport = null;
    this.evictScratch = null;
    this.evictHandler = null;
    this.onBatch = null;
    this.evictedMax = mod.evictedMax;
    this.onNativeBatch = (count) => {
      const r = this.evictReport;
      if (r !== null && r[0] > 0) this.drainEvicted();
      this.onBatch!(count);
    };
    this.handle = new mod.BatchSocket(rxSlab, slotBytes, this.rx.lengths, this.rx.peers,
      this.txSlab, this.txOffs, this.txLens, this.txPeers, this.txSrcs, this.counters);
    this.handle.open(n.open); // Throws the errno error; nothing is left open in that case.
    // LANPARTY_ZERO_COPY=0 (for measuring): frames from this slab are copied like any other.
    const id = process.env.LANPARTY_ZERO_COPY === '0' ? 0 : this.handle.rxSlabId();
    if (id > 0) rxSlabs.set(rxSlab.buffer, { id, byteOffset: rxSlab.byteOffset, bytes: rxSlab.length });
  }

  localAddress(): DgramAddress {
    return this.handle.localAddress();
  }

  ignoreSource(host: string, port: number): boolean {
    return this.handle.ignoreSource(host, port);
  }

  acceptSources(nets: readonly Ipv4Net[], exact: ReadonlyArray<{ host: string; port: number }>): boolean {
    const netWords: number[] = [];
    for (const n of nets) netWords.push(n.network >>> 0, n.mask >>> 0);
    const exactWords: number[] = [];
    for (const e of exact) exactWords.push(parseIpv4Address(e.host), e.port);
    return this.handle.acceptSources(netWords, exactWords);
  }

  peerId(addr: DgramAddress): number {
    const id = addr.kind === 'udp4' ? this.handle.peerIdInet(addr.host, addr.port) : this.handle.peerIdUnix(addr.path);
    // Released in this tick and asked for again before the flush frees it: keep it.
    if (this.releasing.length > 0) {
      const at = this.releasing.indexOf(id);
      if (at >= 0) this.releasing.splice(at, 1);
    }
    const r = this.evictReport;
    if (r !== null && r[0] > 0) this.drainEvicted();
    return id;
  }

  peerAddress(id: number): DgramAddress {
    const cached = this.peerCache[id];
    if (cached !== undefined) return cached;
    const addr = this.handle.peerAddress(id);
    if (addr === null) throw new RangeError(`batch socket: unknown peer id ${id}`);
    this.peerCache[id] = addr;
    return addr;
  }

  releasePeer(id: number): void {
    if (this.closed || id < 0) return;
    this.peerCache[id] = undefined;
    this.releasing.push(id);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushQueued);
    }
  }

  onPeerEvicted(handler: (id: number) => void): void {
    this.evictHandler = handler;
    if (this.evictReport === null) {
      this.evictReport = new Int32Array(this.evictedMax + 1);
      this.evictScratch = new Int32Array(this.evictedMax);
      this.handle.enablePeerEviction(this.evictReport);
    }
  }

  /** Hands the ids the addon evicted to the owner, then releases them (see onPeerEvicted). */
  private drainEvicted(): void {
    const r = this.evictReport!;
    const ids = this.evictScratch!;
    while (r[0] > 0) {
      const n = Math.min(r[0], ids.length);
      for (let i = 0; i < n; i++) ids[i] = r[1 + i];
      r[0] = 0;
      for (let i = 0; i < n; i++) {
        this.evictHandler!(ids[i]);
        this.releasePeer(ids[i]);
      }
    }
  }

  start(onBatch: (count: number) => void): void {
    this.onBatch = onBatch;
    this.handle.start(this.onNativeBatch);
  }

  send(peer: number, buf: Buffer, off: number, len: number): boolean {
    if (this.closed || peer < 0 || len > this.txSlab.length) {
      this.counters[C_SEND_ERRORS]++;
      return false;
    }
    // Stage 1 without a copy: the frame is in a native socket's rx slab.
    const ab = buf.buffer;
    if (ab !== this.lastSlab) {
      const slab = rxSlabs.get(ab);
      this.lastSlab = ab;
      this.lastSlabId = slab === undefined ? 0 : slab.id;
      this.lastSlabBase = slab === undefined ? 0 : slab.byteOffset;
      this.lastSlabEnd = slab === undefined ? 0 : slab.byteOffset + slab.bytes;
    }
    if (this.lastSlabId !== 0) {
      const from = buf.byteOffset + off;
      if (off >= 0 && len >= 0 && from + len <= this.lastSlabEnd && off + len <= buf.length) {
        if (this.txCount === this.txCapacity) this.flush();
        this.sentWithoutCopy++;
        return this.queue(from - this.lastSlabBase, len, peer, this.lastSlabId);
      }
    }
    if (this.txCount === this.txCapacity || this.txUsedBytes + len > this.txSlab.length) this.flush();
    const at = this.txUsedBytes;
    // Native memcpy: Buffer#copy of a sub-range allocates a Uint8Array view per call on Node 20.
    if (!this.handle.copyIn(buf, off, len, at)) {
      this.counters[C_SEND_ERRORS]++;
      return false;
    }
    this.txUsedBytes = at + len;
    return this.queue(at, len, peer, 0);
  }

  /** Notes one datagram (at `off` in the slab `src` names, 0 = tx slab) and schedules the flush. */
  private queue(off: number, len: number, peer: number, src: number): true {
    const n = this.txCount;
    this.txOffs[n] = off;
    this.txLens[n] = len;
    this.txPeers[n] = peer;
    this.txSrcs[n] = src;
    this.txCount = n + 1;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushQueued);
    }
    return true;
  }

  flush(): void {
    const n = this.txCount;
    if (n > 0) {
      this.txCount = 0;
      this.txUsedBytes = 0;
      if (!this.closed) this.handle.flush(n);
    }
    const rel = this.releasing;
    if (rel.length > 0) {
      if (!this.closed) for (let i = 0; i < rel.length; i++) this.handle.releasePeer(rel[i]);
      rel.length = 0;
    }
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// JS fallback (node:dgram, udp4 only, batches of one)

class JsStats {
  /** Every datagram not sent; sendDropped is the part dropped because the send queue was full. */
  sendErrors = 0;
  recvErrors = 0;
  truncated = 0;
  sendDropped = 0;
  /** Datagrams dropped because the peer table was full (every udp4 source has an address). */
  unaddressable = 0;
  /** Always 0 here: no unix datagrams, so no per-peer backlogs. */
  sendQueued = 0;
  /** Always 0 here: no unix datagrams, so no flow control. */
  flowPauses = 0;
  flowTimeouts = 0;
  peers = 0;
  peersEvicted = 0;
  notAccepted = 0;
}

/** A plain copy of a socket's counters for status (null: no socket open). */
export function socketStatsOf(...socks: Array<BatchSocket | null>): SocketStats | null {
  const open = socks.filter((x): x is BatchSocket => x !== null);
  if (open.length === 0) return null;
  const sum = (k: keyof SocketStats) => open.reduce((a, x) => a + x.stats[k], 0);
  return {
    sendErrors: sum('sendErrors'), sendDropped: sum('sendDropped'), sendQueued: sum('sendQueued'),
    recvErrors: sum('recvErrors'), truncated: sum('truncated'), unaddressable: sum('unaddressable'),
    notAccepted: sum('notAccepted'), flowPauses: sum('flowPauses'), flowTimeouts: sum('flowTimeouts'),
    peers: sum('peers'), peersEvicted: sum('peersEvicted'),
  };
}

/** node:dgram's dotted IPv4 source text as an unsigned 32-bit number, -1 if not one; no allocation. */
function ipv4Number(text: string): number {
  let n = 0;
  let part = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + part;
      part = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
    } else {
      return -1;
    }
  }
  return dots === 3 ? n * 256 + part : -1;
}

class JsBatchSocket implements BatchSocket {
  readonly native = false;
  readonly sentWithoutCopy = 0;
  readonly rx: RxBatch;
  readonly stats: JsStats;
  private readonly socket: dgram.Socket;
  private readonly mcast: BatchSocketOptions['multicast'];
  /**
   * The peer table, as the addon's (PeerTable there): host → port → id; ids reused once released;
   * at most maxPeers live; with eviction on, a full table evicts the least recently heard unpinned
   * id (a doubly linked list over ids, head least recent). Sends resolve the address at once, so
   * an id is free as soon as it is released.
   */
  private readonly peerIds: Map<string, Map<number, number>>;
  private readonly peers: Array<{ kind: 'udp4'; host: string; port: number } | undefined>;
  private readonly pinned: number[];
  private readonly lruPrev: number[];
  private readonly lruNext: number[];
  private lruHead: number;
  private lruTail: number;
  private readonly freeIds: number[];
  private readonly maxPeers: number;
  private evictHandler: ((id: number) => void) | null;
  private onBatch: ((count: number) => void) | null;
  private closed: boolean;
  /** The accept list (acceptSources) as [network, mask, ...] and [address, port, ...]; null: off. */
  private acceptNets: number[] | null;
  private acceptExact: number[];
  private readonly onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo) => void;
  private readonly onSent: (err: Error | null) => void;

  constructor(socket: dgram.Socket, mcast: BatchSocketOptions['multicast'], maxPeers: number) {
    this.socket = socket;
    this.mcast = mcast;
    this.rx = { bufs: [Buffer.alloc(0)], lengths: new Int32Array(1), peers: new Int32Array(1) };
    this.stats = new JsStats();
    this.peerIds = new Map();
    this.peers = [];
    this.pinned = [];
    this.lruPrev = [];
    this.lruNext = [];
    this.lruHead = -1;
    this.lruTail = -1;
    this.freeIds = [];
    this.maxPeers = maxPeers;
    this.evictHandler = null;
    this.onBatch = null;
    this.closed = false;
    this.acceptNets = null;
    this.acceptExact = [];
    this.onMessage = (msg, rinfo) => {
      const cb = this.onBatch;
      if (cb === null) return;
      if (this.acceptNets !== null && !this.accepts(rinfo.address, rinfo.port)) {
        this.stats.notAccepted++;
        return;
      }
      const id = this.intern(rinfo.address, rinfo.port, false);
      if (id < 0) {
        this.stats.unaddressable++;
        return;
      }
      this.rx.bufs[0] = msg;
      this.rx.lengths[0] = msg.length;
      this.rx.peers[0] = id;
      cb(1);
    };
    this.onSent = (err) => {
      if (err) this.stats.sendErrors++;
    };
    socket.on('error', () => { this.stats.recvErrors++; });
  }

  /** Applies multicast options after bind (dgram allows them only on a bound socket). */
  configureMulticast(): void {
    const m = this.mcast;
    if (!m) return;
    if (m.join) this.socket.addMembership(m.group, m.interfaceAddr);
    this.socket.setMulticastInterface(m.interfaceAddr);
    this.socket.setMulticastTTL(m.ttl);
    this.socket.setMulticastLoopback(m.loop);
  }

  /** The id for host:port, created if needed; -1 when the table is full. `pin`: asked for by peerId. */
  private intern(host: string, port: number, pin: boolean): number {
    let byPort = this.peerIds.get(host);
    let id = byPort === undefined ? undefined : byPort.get(port);
    if (id !== undefined) {
      if (this.pinned[id] === 0) {
        if (pin) {
          this.unlink(id);
          this.pinned[id] = 1;
        } else if (this.lruTail !== id) {
          this.unlink(id);
          this.append(id);
        }
      }
      return id;
    }
    if (this.stats.peers >= this.maxPeers && !this.evictOne()) return -1;
    if (this.freeIds.length > 0) {
      id = this.freeIds.pop()!;
    } else {
      id = this.peers.length;
      this.peers.push(undefined);
      this.pinned.push(0);
      this.lruPrev.push(-1);
      this.lruNext.push(-1);
    }
    if (byPort === undefined) {
      byPort = new Map();
      this.peerIds.set(host, byPort);
    }
    byPort.set(port, id);
    this.peers[id] = { kind: 'udp4', host, port };
    this.pinned[id] = pin ? 1 : 0;
    if (!pin) this.append(id);
    this.stats.peers++;
    return id;
  }

  /** Evicts the least recently heard unpinned id, telling the owner first; false when none. */
  private evictOne(): boolean {
    const id = this.lruHead;
    if (this.evictHandler === null || id < 0) return false;
    this.stats.peersEvicted++;
    this.evictHandler(id);
    this.releasePeer(id);
    return true;
  }

  private append(id: number): void {
    this.lruPrev[id] = this.lruTail;
    this.lruNext[id] = -1;
    if (this.lruTail >= 0) this.lruNext[this.lruTail] = id;
    else this.lruHead = id;
    this.lruTail = id;
  }

  private unlink(id: number): void {
    const p = this.lruPrev[id];
    const n = this.lruNext[id];
    if (p >= 0) this.lruNext[p] = n;
    else if (this.lruHead === id) this.lruHead = n;
    if (n >= 0) this.lruPrev[n] = p;
    else if (this.lruTail === id) this.lruTail = p;
    this.lruPrev[id] = -1;
    this.lruNext[id] = -1;
  }

  releasePeer(id: number): void {
    const a = this.peers[id];
    if (a === undefined) return;
    const byPort = this.peerIds.get(a.host)!;
    byPort.delete(a.port);
    if (byPort.size === 0) this.peerIds.delete(a.host);
    if (this.pinned[id] === 0) this.unlink(id);
    this.pinned[id] = 0;
    this.peers[id] = undefined;
    this.freeIds.push(id);
    this.stats.peers--;
  }

  onPeerEvicted(handler: (id: number) => void): void {
    this.evictHandler = handler;
  }

  localAddress(): DgramAddress {
    const a = this.socket.address();
    return { kind: 'udp4', host: a.address, port: a.port };
  }

  /** node:dgram has no socket filters: the caller recognises such datagrams itself. */
  ignoreSource(_host: string, _port: number): boolean {
    return false;
  }

  acceptSources(nets: readonly Ipv4Net[], exact: ReadonlyArray<{ host: string; port: number }>): boolean {
    const netWords: number[] = [];
    for (const n of nets) netWords.push(n.network >>> 0, n.mask >>> 0);
    const exactWords: number[] = [];
    for (const e of exact) exactWords.push(parseIpv4Address(e.host), e.port);
    this.acceptNets = netWords;
    this.acceptExact = exactWords;
    return true;
  }

  private accepts(host: string, port: number): boolean {
    const ip = ipv4Number(host);
    if (ip < 0) return false;
    const nets = this.acceptNets!;
    for (let i = 0; i < nets.length; i += 2) if (((ip & nets[i + 1]) >>> 0) === nets[i]) return true;
    const exact = this.acceptExact;
    for (let i = 0; i < exact.length; i += 2) if (exact[i] === ip && exact[i + 1] === port) return true;
    return false;
  }

  peerId(addr: DgramAddress): number {
    if (addr.kind !== 'udp4') throw new TypeError(`batch socket (JS fallback): cannot address unix peer ${addr.path}`);
    return this.intern(addr.host, addr.port, true);
  }

  peerAddress(id: number): DgramAddress {
    const a = this.peers[id];
    if (a === undefined) throw new RangeError(`batch socket: unknown peer id ${id}`);
    return a;
  }

  /** Datagrams that arrive before start() are discarded (node:dgram reads from bind on). */
  start(onBatch: (count: number) => void): void {
    if (this.onBatch !== null) throw new Error('batch socket: start() called twice');
    this.onBatch = onBatch;
    this.socket.on('message', this.onMessage);
  }

  send(peer: number, buf: Buffer, off: number, len: number): boolean {
    const a = this.peers[peer];
    if (this.closed || a === undefined) {
      this.stats.sendErrors++;
      return false;
    }
    // libuv queues without limit when the kernel buffer is full; bound it and drop the newest.
    if (this.socket.getSendQueueCount() >= JS_SEND_QUEUE_LIMIT) {
      this.stats.sendErrors++;
      this.stats.sendDropped++;
      return false;
    }
    // dgram may keep `buf` until the datagram leaves (DNS lookup tick, libuv send queue), but the
    // caller owns it only for this call: send a private copy.
    const copy = Buffer.allocUnsafe(len);
    buf.copy(copy, 0, off, off + len);
    this.socket.send(copy, 0, len, a.port, a.host, this.onSent);
    return true;
  }

  /** Nothing to do: dgram sends as it goes. */
  flush(): void {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}

function openJs(n: Normalised): Promise<BatchSocket> {
  const opts = n.opts;
  if (opts.kind === 'unix') {
    return Promise.reject(new LanpartyError('LP_ERR_NATIVE',
      `batch socket ${describeBind(opts)}: unix datagram sockets need the native addon (Node has no AF_UNIX SOCK_DGRAM); ` +
      `build it with npm run build:native (needs g++ and make)` + (loadError ? ` [${loadError}]` : '')));
  }
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({
      type: 'udp4',
      reuseAddr: opts.reuseAddr === true,
      recvBufferSize: opts.rcvbufBytes,
      sendBufferSize: opts.sndbufBytes,
    });
    const onError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ address: n.open.host, port: n.open.port, exclusive: true }, () => {
      socket.removeListener('error', onError);
      const s = new JsBatchSocket(socket, opts.multicast, n.open.maxPeers);
      try {
        s.configureMulticast();
      } catch (err) {
        s.close();
        reject(err);
        return;
      }
      resolve(s);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// TAP devices (native only: Node has no ioctl, so there is no JS fallback)

/** What TapDevice.write did with a frame; must match TxResult in native/tap_device.cc. */
export const TAP_SENT = 0;
/** The kernel would have had to wait (EAGAIN/ENOBUFS/ENOMEM): dropped. */
export const TAP_FULL = 1;
/** The interface is administratively down (EIO): dropped. */
export const TAP_DOWN = 2;
/** The device is gone (EBADFD/ENODEV/ENXIO, or closed): dropped; reopen it. */
export const TAP_GONE = 3;
/** Any other write error. */
export const TAP_ERROR = 4;
export type TapWriteResult = 0 | 1 | 2 | 3 | 4;

const C_TAP_RECV_ERRORS = 0;
const C_TAP_TRUNCATED = 1;
const TAP_COUNTER_COUNT = 2;

export interface TapDeviceOptions {
  /** Interface name (1-15 bytes). */
  name: string;
  /** Create the device if it does not exist (needs CAP_NET_ADMIN); else it must exist. */
  create: boolean;
  /** Largest frame received, bytes (no FCS). Longer frames are dropped and counted in `truncated`. */
  maxFrameBytes: number;
  /** Most frames read per JS call. Default 64. */
  batchSize?: number;
  /**
   * Receive memory to read into, at least tapRxSlabBytes(maxFrameBytes, batchSize) bytes. An owner
   * that reopens a device that comes and goes passes the same one every time, so no attempt
   * allocates (one open device at a time may use it). Default: a new one.
   */
  rxSlab?: Buffer;
}

/** Bytes of receive memory a TAP device needs: batchSize slots of maxFrameBytes + 1. */
export function tapRxSlabBytes(maxFrameBytes: number, batchSize = DEFAULT_BATCH_SIZE): number {
  return batchSize * (maxFrameBytes + 1);
}

/** Receive side of one wakeup. Valid only during the onBatch call; slots are reused. */
export interface TapRxBatch {
  /** rx.bufs[i] holds frame i at offset 0, rx.lengths[i] bytes. */
  bufs: Buffer[];
  lengths: Int32Array;
}

/**
 * An open TAP device: one fd from /dev/net/tun (IFF_TAP | IFF_NO_PI, O_NONBLOCK), read in batches
 * by the addon into slots allocated once, written one frame per write() straight from the caller's
 * buffer (no copy in user space). Nothing here ever blocks.
 */
export interface TapDevice {
  /** The interface name the kernel reports. */
  readonly name: string;
  /** The interface index at open; a device deleted and recreated gets a new one. */
  readonly ifindex: number;
  readonly rx: TapRxBatch;
  /**
   * Starts reading. onBatch(count) runs once per batch with count >= 1 frames in rx; it runs once
   * more with a negative count (-errno, e.g. EBADFD when the device was deleted) when reading
   * fails, after which nothing more is read: close this device and open it again later.
   */
  start(onBatch: (count: number) => void): void;
  /** Writes one frame; the caller keeps ownership of buf. Never throws, never blocks. */
  write(buf: Buffer, off: number, len: number): TapWriteResult;
  readonly stats: { recvErrors: number; truncated: number };
  close(): void;
}

class TapStats {
  private readonly c: Float64Array;
  constructor(c: Float64Array) { this.c = c; }
  get recvErrors(): number { return this.c[C_TAP_RECV_ERRORS]; }
  /** Frames longer than maxFrameBytes, dropped on receive. */
  get truncated(): number { return this.c[C_TAP_TRUNCATED]; }
}

class NativeTapDevice implements TapDevice {
  readonly name: string;
  readonly ifindex: number;
  readonly rx: TapRxBatch;
  readonly stats: TapStats;
  private readonly handle: NativeTapHandle;
  private closed = false;

  constructor(mod: NativeModule, opts: TapDeviceOptions) {
    const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
      throw new RangeError(`tap ${opts.name}: batchSize ${batchSize} out of range (1..${MAX_BATCH_SIZE})`);
    }
    if (!Number.isInteger(opts.maxFrameBytes) || opts.maxFrameBytes < 14 || opts.maxFrameBytes >= MAX_SLOT_BYTES) {
      throw new RangeError(`tap ${opts.name}: maxFrameBytes ${opts.maxFrameBytes} out of range (14..${MAX_SLOT_BYTES - 1})`);
    }
    // One byte more than the largest frame, so a frame that fills the slot is known to be too long.
    const slotBytes = opts.maxFrameBytes + 1;
    if (opts.rxSlab !== undefined && opts.rxSlab.length < batchSize * slotBytes) {
      throw new RangeError(`tap ${opts.name}: rxSlab is ${opts.rxSlab.length} bytes, needs ${batchSize * slotBytes}`);
    }
    const rxSlab = opts.rxSlab ?? Buffer.alloc(batchSize * slotBytes);
    const bufs: Buffer[] = [];
    for (let i = 0; i < batchSize; i++) bufs.push(rxSlab.subarray(i * slotBytes, (i + 1) * slotBytes));
    this.rx = { bufs, lengths: new Int32Array(batchSize) };
    const counters = new Float64Array(TAP_COUNTER_COUNT);
    this.stats = new TapStats(counters);
    this.handle = new mod.TapDevice(rxSlab, slotBytes, this.rx.lengths, counters);
    const opened = this.handle.open(opts.name, opts.create); // Throws the errno error; nothing stays open.
    this.name = opened.name;
    this.ifindex = opened.ifindex;
  }

  start(onBatch: (count: number) => void): void { this.handle.start(onBatch); }

  write(buf: Buffer, off: number, len: number): TapWriteResult {
    return this.handle.write(buf, off, len);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}

/**
 * Opens (and with `create`, creates) a TAP device. Throws the errno error from the addon (`.code`
 * EPERM, EBUSY, ENODEV for a missing device without `create`, EINVAL for a non-TAP device with
 * that name; `.syscall` "open" or "TUNSETIFF"), or LanpartyError LP_ERR_NATIVE without the addon.
 */
export function openTapDevice(opts: TapDeviceOptions): TapDevice {
  const mod = loadNative();
  if (mod === null) {
    throw new LanpartyError('LP_ERR_NATIVE', `tap ${opts.name}: TAP devices need the native addon (Node cannot ioctl /dev/net/tun): ${loadError ?? 'unavailable'}`);
  }
  return new NativeTapDevice(mod, opts);
}

/**
 * Sets an interface's MTU, IPv4 address/prefix and IFF_UP with ioctls (needs CAP_NET_ADMIN).
 * `address` null and `mtuBytes` null leave those alone. Throws the errno error (`.syscall` names
 * the ioctl, e.g. SIOCSIFMTU) or LanpartyError LP_ERR_NATIVE.
 */
export function configureInterface(name: string, cfg: { address: string | null; prefixLength: number; mtuBytes: number | null; up: boolean }): void {
  const mod = loadNative();
  if (mod === null) throw new LanpartyError('LP_ERR_NATIVE', `interface ${name}: configuring it needs the native addon: ${loadError ?? 'unavailable'}`);
  mod.configureInterface(name, cfg.address ?? '', cfg.prefixLength, cfg.mtuBytes ?? 0, cfg.up);
}

/** An interface's index and flags (IFF_UP = 0x1, ...), read with ioctls in this process's netns. */
export interface InterfaceState {
  ifindex: number;
  flags: number;
}

/**
 * The interface's current index and flags, or null when no interface has that name. Uses
 * SIOCGIFINDEX/SIOCGIFFLAGS, not /sys/class/net (which shows the namespace that mounted sysfs).
 * Throws LanpartyError LP_ERR_NATIVE without the addon.
 */
export function interfaceState(name: string): InterfaceState | null {
  const mod = loadNative();
  if (mod === null) throw new LanpartyError('LP_ERR_NATIVE', `interface ${name}: reading its state needs the native addon: ${loadError ?? 'unavailable'}`);
  return mod.interfaceState(name);
}
