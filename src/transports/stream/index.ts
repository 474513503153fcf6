/**
 * QEMU stream transports: `-netdev stream` (7.2+) and `-netdev socket,listen=/connect=`, over TCP or
 * unix stream sockets, every frame preceded by a 4-byte big-endian length
 * (docs/qemu-transports.md §5).
 *
 *   tcp://HOST:PORT, unix:///PATH            lanparty listens; every accepted connection is a port.
 *   tcp+connect://HOST:PORT, unix+connect:// lanparty connects out to a QEMU with server=on and
 *                                            reconnects (backoff 100 ms .. 2 s) when that QEMU restarts.
 *
 * Receive: the addon's StreamReader (or Node's socket 'data' without it) → StreamFramer (views;
 * copies only a frame split across reads) → sink.input. Send, per port: cut-through runs written
 * straight from another stream port's read chunk, else a copy into the port's output slab, flushed
 * once per tick in one write; QUEUE_LIMIT_BYTES bounds the queue. Flow control pauses a reading
 * port while a port it sends to is congested, for at most PAUSE_MAX_MS. The stages, limits and
 * measurements behind them are in docs/transports.md, "tcp and unix".
 */
import * as net from 'node:net';
import { LanpartyError, socketSetupError, RateLimitedLog, type Logger, prepareUnixPath, removeUnixPath } from '../../util/index.js';
import { PortCounters, type Port, type PortKind } from '../../switch/index.js';
import type { Transport, TransportContext, TransportStatus } from '../transport.js';
import { StreamFramer } from './framer.js';
import { openStreamReader, streamReaderAvailable, type StreamReader } from '../../io/index.js';

export type StreamAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/**
 * Connections one listener takes at once (a datagram port takes 1024 peers the same way); more are
 * closed at accept and counted (`refusedConnections` on the transport's status row).
 */
export const MAX_STREAM_CONNECTIONS = 1024;
/** Bytes queued per connection before dropping: about 690 frames of 1514 bytes, or 16 jumbo. */
const QUEUE_LIMIT_BYTES = 1 << 20;
/** Output slab size; a frame larger than this gets a slab of its own. */
const SLAB_BYTES = 64 * 1024;
/** Queued bytes at which a stream port that is sending here is paused (well below the limit: the chunk being read still fits). */
const PAUSE_BYTES = 256 * 1024;
/** Longest a port waits for a congested one before that one counts as stuck. */
const PAUSE_MAX_MS = 200;
/** What one read of a connection takes at most (the native reader's slab; Node reads 64 KiB too). */
const READ_BYTES = 64 * 1024;
/**
 * The native reader's slab for a tcp connection once a read has filled it (a busy connection):
 * fewer, larger reads and writes. A/B in a namespace, 3 runs each of 256 KiB
 * against 64 KiB: tcp 64 B 20-30% less lanparty CPU per frame, 1514 B 0-15%; unix stream 1514 B
 * 5-30% *more* (a unix socket's send buffer, 208 KiB, takes less than one such write), so unix
 * connections keep READ_BYTES, as idle and light tcp ones do.
 */
const BUSY_TCP_READ_BYTES = 256 * 1024;

/** The stream port whose chunk is being forwarded right now (forwarding is synchronous), else null. */
let reading: StreamPort | null = null;
/**
 * The chunk it is forwarding. A frame handed on as a view of it at offset 4 or more has its length
 * in front of it: only a frame whose length was split across reads starts before 4.
 */
let readingChunk: Buffer | null = null;
/** Ports holding a run of readingChunk not yet written or copied; settled before the chunk is reused. */
const unsettled: StreamPort[] = [];
/** Set when a socket kept a view of readingChunk: the reading port must not read into it again. */
let chunkKept = false;

function settleRuns(): void {
  for (let i = 0; i < unsettled.length; i++) unsettled[i].settle(true);
  unsettled.length = 0;
}

class StreamPort implements Port {
  id = 0;
  readonly counters = new PortCounters();
  readonly framer: StreamFramer;
  open = true;
  /** The addon's reader of this connection (openStreamReader), or null when Node reads it. */
  reader: StreamReader | null = null;
  /** Output slab: bytes [flushedTo, used) are copied frames not yet handed to the socket. */
  private slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  private used = 0;
  private flushedTo = 0;
  private flushScheduled = false;
  private readonly flushBound: () => void;
  /** Cut-through: bytes [runStart, runEnd) of runChunk (frames with their lengths) still to write. */
  private runChunk: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  /** Flow control: the congested port this one waits for (its socket paused), and its watchdog. */
  private waitingFor: StreamPort | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  /** Ports paused until this one drains; `stuck` once one of them waited PAUSE_MAX_MS in vain. */
  private readonly waiters = new Set<StreamPort>();
  private stuck = false;
  /** Times this port paused its reading for a congested port, and pauses that ran out. */
  private pauses = 0;
  private pauseTimeouts = 0;
  constructor(
    readonly name: string,
    readonly kind: PortKind,
    readonly maxFrameBytes: number,
    private readonly remote: string,
    readonly socket: net.Socket,
    sink: TransportContext['sink'],
  ) {
    this.framer = new StreamFramer(maxFrameBytes, (buf, off, len) => sink.input(this, buf, off, len));
    this.flushBound = this.flush.bind(this);
  }
  endpoint(): string { return this.remote; }
  send(buf: Buffer, off: number, len: number): void {
    if (!this.open) {
      this.counters.drops['port-down']++;
      return;
    }
    if (len > this.maxFrameBytes) {
      this.counters.drops.oversize++;
      return;
    }
    const queued = this.socket.writableLength + (this.used - this.flushedTo) + (this.runEnd - this.runStart);
    if (queued > PAUSE_BYTES && reading !== null && reading !== this && !this.stuck) reading.waitFor(this);
    if (queued > QUEUE_LIMIT_BYTES) {
      this.counters.drops['queue-full']++;
      return;
    }
    this.counters.txFrames++;
    this.counters.txBytes += len;
    if (buf === this.runChunk && off === this.runEnd + 4) {
      // The next frame of the chunk, right behind the last one sent here.
      this.runEnd = off + len;
      return;
    }
    if (this.runChunk !== null) this.settle(false);
    if (buf === readingChunk && off >= 4) {
      this.runChunk = buf;
      this.runStart = off - 4;
      this.runEnd = off + len;
      unsettled.push(this);
      return;
    }
    const need = 4 + len;
    if (this.slab.length - this.used < need) this.newSlab(need);
    const slab = this.slab;
    slab.writeUInt32BE(len, this.used);
    buf.copy(slab, this.used + 4, off, off + len);
    this.used += need;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushBound);
    }
  }

  /**
   * Writes the pending cut-through run (`write`: the chunk has been forwarded), or copies it
   * behind what waits to be written: a run broken in the middle of a chunk (frames for this port
   * interleaved with others) is copied, so that the chunk still costs one write here, not one per
   * run.
   */
  settle(write: boolean): void {
    const chunk = this.runChunk;
    if (chunk === null) return;
    this.runChunk = null;
    const start = this.runStart;
    const end = this.runEnd;
    this.runStart = this.runEnd = 0;
    if (!this.open) return;
    if (write && this.socket.writableLength === 0) {
      // Straight from the chunk, behind what the slab holds (often a frame split across reads),
      // in one writev. A write that completes at once keeps nothing.
      const behind = this.used > this.flushedTo;
      if (behind) {
        this.socket.cork();
        this.flush();
      }
      this.socket.write(chunk.subarray(start, end));
      if (behind) this.socket.uncork();
      if (this.socket.writableLength > 0) chunkKept = true;
      return;
    }
    const n = end - start;
    if (this.slab.length - this.used < n) this.newSlab(n);
    chunk.copy(this.slab, this.used, start, end);
    this.used += n;
    this.scheduleFlush();
  }

  /** Flushes and starts a fresh slab with room for `need` bytes (the socket keeps views of the old one, so it is never rewritten). */
  private newSlab(need: number): void {
    this.flush();
    this.slab = Buffer.allocUnsafe(need > SLAB_BYTES ? need : SLAB_BYTES);
    this.used = 0;
    this.flushedTo = 0;
  }

  /** Hands the frames copied since the last flush to the socket in one write. */
  flush(): void {
    this.flushScheduled = false;
    if (this.runChunk !== null) this.settle(false);
    if (this.used === this.flushedTo || !this.open) return;
    this.socket.write(this.slab.subarray(this.flushedTo, this.used));
    this.flushedTo = this.used;
  }
  flow(): { pauses: number; pauseTimeouts: number } {
    return { pauses: this.pauses, pauseTimeouts: this.pauseTimeouts };
  }
  /** Stops reading until `congested` drains, or PAUSE_MAX_MS have passed. */
  private waitFor(congested: StreamPort): void {
    if (this.waitingFor !== null || !this.open) return;
    this.waitingFor = congested;
    this.pauses++;
    if (this.reader) this.reader.pause();
    else this.socket.pause();
    congested.waiters.add(this);
    this.watchdog = setTimeout(() => {
      this.pauseTimeouts++;
      congested.stuck = true;
      congested.releaseWaiters();
    }, PAUSE_MAX_MS).unref();
  }
  /** The socket wrote out everything queued ('drain'): not stuck, and its waiters read again. */
  drained(): void {
    this.stuck = false;
    this.releaseWaiters();
  }
  /** Lets every port waiting for this one read again. */
  private releaseWaiters(): void {
    for (const w of this.waiters) w.resume();
    this.waiters.clear();
  }
  private resume(): void {
    if (this.watchdog !== null) clearTimeout(this.watchdog);
    this.watchdog = null;
    this.waitingFor = null;
    if (!this.open) return;
    if (this.reader) this.reader.resume();
    else this.socket.resume();
  }
  /** Flow control state is dropped with the port: it waits for nobody, and nobody waits for it. */
  private endFlowControl(): void {
    if (this.waitingFor !== null) {
      this.waitingFor.waiters.delete(this);
      this.resume();
    }
    this.releaseWaiters();
  }
  close(): void {
    this.open = false;
    this.endFlowControl();
    this.reader?.close();
    this.socket.destroy();
  }
  /** The socket closed by itself. */
  gone(): void {
    this.endFlowControl();
    this.reader?.close();
  }
  /**
   * Reads chunk[0, n): every frame in it is forwarded with this port as `reading`. Returns false
   * after a bad length. A socket may keep a view of the chunk (a write that did not complete):
   * then the addon's reader gets a new slab (Node gives every read a buffer of its own).
   */
  readChunk(chunk: Buffer, n: number): boolean {
    reading = this;
    readingChunk = chunk;
    chunkKept = false;
    try {
      return this.framer.push(chunk, n);
    } finally {
      settleRuns();  // before the chunk's bytes can be read over
      if (chunkKept) this.reader?.renewSlab();
      reading = null;
      readingChunk = null;
    }
  }
}

function describe(addr: StreamAddress): string {
  return addr.kind === 'tcp' ? `${addr.host}:${addr.port}` : addr.path;
}

function remoteOf(sock: net.Socket, addr: StreamAddress): string {
  return addr.kind === 'tcp' ? `${sock.remoteAddress}:${sock.remotePort}` : `${addr.path} (peer)`;
}

/**
 * Wires a connected socket to the switch as one port, and tears it down on close. A bad length
 * closes the connection (counted as `bad-length`); a close mid-frame counts `truncated`.
 */
function attach(sock: net.Socket, name: string, kind: PortKind, addr: StreamAddress, ctx: TransportContext, log: Logger, onGone: (p: StreamPort) => void): StreamPort {
  if (addr.kind === 'tcp') sock.setNoDelay(true);
  const port = new StreamPort(name, kind, ctx.maxFrameBytes, remoteOf(sock, addr), sock, ctx.sink);
  ctx.sink.addPort(port);
  const counters = port.counters;
  const badLength = (): void => {
    counters.drops['bad-length']++;
    log.info(`port ${port.id} (${port.name}): frame length ${port.framer.badLength} exceeds ${ctx.maxFrameBytes} bytes; closing the connection (is the peer speaking QEMU's stream format?)`);
    sock.destroy();
  };
  // The socket was opened paused (it has not read a byte): the addon reads it if it can, else Node.
  const reader = openStreamReader(sock, READ_BYTES);
  if (reader !== null) {
    const busyReadBytes = addr.kind === 'tcp' ? BUSY_TCP_READ_BYTES : READ_BYTES;
    // Read like a datagram port: into one slab, no Buffer per read, and busy polling reads it
    // in its spin (measured: p50 and p99 of a 2 kHz ping through tcp and unix ports 15-25% lower
    // than Node reading them).
    port.reader = reader;
    reader.start((n) => {
      if (n <= 0) {
        if (n < 0) log.debug(`port ${port.name}: read failed (errno ${-n})`);
        sock.destroy();  // 'close' below counts a frame cut short and removes the port
        return 0;
      }
      const before = counters.rxFrames;
      const slab = reader.slab;
      if (!port.readChunk(slab, n)) {
        reader.close();  // now: what follows the bad length must not be read as frames
        badLength();
      } else if (n === slab.length && n < busyReadBytes) {
        reader.renewSlab(busyReadBytes);
      }
      return counters.rxFrames - before;
    });
  } else {
    sock.on('data', (chunk: Buffer) => {
      if (!port.readChunk(chunk, chunk.length)) badLength();
    });
    sock.resume();
  }
  sock.on('drain', () => port.drained());
  sock.on('error', (err: NodeJS.ErrnoException) => log.debug(`port ${port.name}: ${err.code ?? err.message}`));
  sock.on('close', () => {
    port.gone();
    if (!port.open) return;
    port.open = false;
    if (!port.framer.atBoundary() && port.framer.error === null) port.counters.drops.truncated++;
    port.counters.drops.empty += port.framer.emptyFrames;
    ctx.sink.removePort(port);
    onGone(port);
  });
  return port;
}

export class StreamListener implements Transport {
  readonly kind: PortKind;
  private server: net.Server | null = null;
  private readonly conns = new Set<StreamPort>();
  private serial = 0;
  private readonly log: Logger;
  /** Connections closed at accept because maxConnections were open. */
  private refusedConnections = 0;
  /** Anyone who can reach the listener can trigger the refusal line. */
  private readonly refusedLog: RateLimitedLog;

  /** `maxConnections` is for tests; lanparty uses MAX_STREAM_CONNECTIONS. */
  constructor(readonly url: string, private readonly addr: StreamAddress, private readonly ctx: TransportContext, private readonly maxConnections = MAX_STREAM_CONNECTIONS) {
    this.kind = addr.kind;
    this.log = ctx.log;
    this.refusedLog = new RateLimitedLog((m) => this.log.info(m));
  }

  async start(): Promise<void> {
    if (this.addr.kind === 'unix') await prepareUnixPath(this.addr.path, `port ${this.url}`);
    // Paused: the addon may read the connection instead of Node (attach).
    const server = net.createServer({ pauseOnConnect: true }, (sock) => {
      const name = `${this.kind} ${describe(this.addr)}#${++this.serial}`;
      const port = attach(sock, name, this.kind, this.addr, this.ctx, this.log, (p) => this.conns.delete(p));
      this.conns.add(port);
    });
    // Node closes a connection beyond the cap as it accepts it, before any port exists for it.
    server.maxConnections = this.maxConnections;
    server.on('drop', (info?: net.DropArgument) => {
      this.refusedConnections++;
      const from = info?.remoteAddress !== undefined ? ` from ${info.remoteAddress}:${info.remotePort}` : '';
      this.refusedLog.write(Date.now(), `port ${this.url}: ${this.maxConnections} connections open, the most it takes; closed a new one${from} (${this.refusedConnections} so far)`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(socketSetupError(`port ${this.url}`, err)));
      if (this.addr.kind === 'tcp') server.listen({ host: this.addr.host, port: this.addr.port, exclusive: true }, resolve);
      else server.listen({ path: this.addr.path, exclusive: true }, resolve);
    });
    server.on('error', (err) => this.log.error(`port ${this.url}: ${err.message}`));
    this.server = server;
  }

  async close(): Promise<void> {
    for (const p of this.conns) {
      this.ctx.sink.removePort(p);
      p.close();
    }
    this.conns.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    if (this.addr.kind === 'unix') removeUnixPath(this.addr.path);
  }

  tick(_nowMs: number): void {}

  qemuNetdev(_guest: string, id: string): string {
    if (this.addr.kind === 'tcp') return `stream,id=${id},server=off,addr.type=inet,addr.host=${this.addr.host},addr.port=${this.addr.port}`;
    return `stream,id=${id},server=off,addr.type=unix,addr.path=${this.addr.path}`;
  }

  status(): TransportStatus {
    return {
      url: this.url, kind: this.kind, state: this.server ? 'listening' : 'closed', address: describe(this.addr), portCount: this.conns.size, native: streamReaderAvailable(),
      refusedConnections: this.refusedConnections,
    };
  }
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;

export class StreamConnector implements Transport {
  readonly kind: PortKind;
  private port: StreamPort | null = null;
  private timer: NodeJS.Timeout | null = null;
  private backoffMs = RECONNECT_MIN_MS;
  private closed = false;
  private state = 'connecting';
  private lastError = '';

  constructor(readonly url: string, private readonly addr: StreamAddress, private readonly ctx: TransportContext) {
    this.kind = addr.kind;
  }

  async start(): Promise<void> {
    this.connect();
  }

  private connect(): void {
    this.timer = null;
    if (this.closed) return;
    const sock = this.addr.kind === 'tcp' ? net.connect({ host: this.addr.host, port: this.addr.port }) : net.connect({ path: this.addr.path });
    sock.pause();  // Node must not start reading when it connects: the addon may read it instead (attach).
    let connected = false;
    sock.once('connect', () => {
      connected = true;
      this.backoffMs = RECONNECT_MIN_MS;
      this.state = 'connected';
      this.ctx.log.info(`port ${this.url}: connected`);
      this.port = attach(sock, `${this.kind} ${describe(this.addr)}`, this.kind, this.addr, this.ctx, this.ctx.log, () => {
        this.port = null;
        this.state = 'connecting';
        if (!this.closed) {
          this.ctx.log.info(`port ${this.url}: disconnected; reconnecting`);
          this.schedule();
        }
      });
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      if (connected) return;
      if (err.code !== this.lastError) this.ctx.log.debug(`port ${this.url}: connect failed (${err.code}); retrying`);
      this.lastError = err.code ?? '';
      sock.destroy();
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => this.connect(), this.backoffMs);
    this.timer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, RECONNECT_MAX_MS);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.port) {
      this.ctx.sink.removePort(this.port);
      this.port.close();
      this.port = null;
    }
    this.state = 'closed';
  }

  tick(_nowMs: number): void {}

  qemuNetdev(_guest: string, id: string): string {
    if (this.addr.kind === 'tcp') return `stream,id=${id},server=on,addr.type=inet,addr.host=${this.addr.host},addr.port=${this.addr.port}`;
    return `stream,id=${id},server=on,addr.type=unix,addr.path=${this.addr.path}`;
  }

  status(): TransportStatus {
    return { url: this.url, kind: this.kind, state: this.state, address: describe(this.addr), portCount: this.port ? 1 : 0, native: streamReaderAvailable() };
  }
}

export function openStream(url: string, addr: StreamAddress, connect: boolean, ctx: TransportContext): Transport {
  if (addr.kind === 'unix' && Buffer.byteLength(addr.path) > 107) {
    throw new LanpartyError('LP_ERR_CONFIG', `port ${url}: socket path is ${Buffer.byteLength(addr.path)} bytes, over the 107-byte limit of unix sockets; use a shorter path`);
  }
  return connect ? new StreamConnector(url, addr, ctx) : new StreamListener(url, addr, ctx);
}
