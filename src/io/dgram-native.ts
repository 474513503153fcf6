/**
 * The native BatchSocket: recvmmsg/sendmmsg through the addon into slabs allocated once here.
 */
import { parseIpv4Address } from '../wire/index.js';
import type { BatchSocket, DgramAddress, Ipv4Net, RxBatch } from './types.js';
import type { NativeHandle, NativeModule } from './addon.js';
import { MAX_BATCH_SIZE, MIN_TX_SLAB_BYTES, type Normalised } from './options.js';

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

export class NativeBatchSocket implements BatchSocket {
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
