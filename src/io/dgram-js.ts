/**
 * The JS fallback BatchSocket: node:dgram, udp4 only, batches of one.
 */
import dgram from 'node:dgram';
import { LanpartyError } from '../util/index.js';
import { parseIpv4Address } from '../wire/index.js';
import type { BatchSocket, BatchSocketOptions, DgramAddress, Ipv4Net, RxBatch } from './types.js';
import { nativeLoadError } from './addon.js';
import { JS_SEND_QUEUE_LIMIT, describeBind, type Normalised } from './options.js';


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

export function openJs(n: Normalised): Promise<BatchSocket> {
  const opts = n.opts;
  if (opts.kind === 'unix') {
    return Promise.reject(new LanpartyError('LP_ERR_NATIVE',
      `batch socket ${describeBind(opts)}: unix datagram sockets need the native addon (Node has no AF_UNIX SOCK_DGRAM); ` +
      `build it with npm run build:native (needs g++ and make)` + (nativeLoadError() !== null ? ` [${nativeLoadError()}]` : '')));
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
