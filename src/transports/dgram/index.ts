/**
 * QEMU datagram transports: `-netdev dgram` (inet and unix) and `-netdev socket,udp=`.
 * lanparty binds one socket; QEMU sends every frame to it with sendto() from its own bound local
 * address, one frame per datagram, and accepts frames from any sender
 * (docs/qemu-transports.md §3-4).
 * So each source address is its own switch port, created when first heard from (or named in the
 * config as a fixed peer, which exists from the start and never ages out).
 *
 * Stages for one wakeup: BatchSocket.rx (recvmmsg batch) → per datagram: peer id → port (array
 * lookup) → empty datagrams counted → sink.input. Sends go through BatchSocket.send, flushed once
 * per tick with sendmmsg. Dynamic peers idle for `peerIdleMs` are removed; at most `maxPeers`:
 * then a new source takes the place of the least recently heard dynamic peer if that one has been
 * silent PEER_EVICT_IDLE_MS, else it is refused. A source without a port keeps no state anywhere:
 * its socket peer id is released with the port (aged, evicted) or at once (refused).
 */
import { LanpartyError, socketSetupError, prepareUnixPath, removeUnixPath } from '../../util/index.js';
import { PortCounters, type Port, type PortKind } from '../../switch/index.js';
import type { Transport, TransportContext, TransportStatus } from '../transport.js';
import type { BatchSocket, DgramAddress, Ipv4Net } from '../../io/index.js';
import { openBatchSocket, socketStatsOf } from '../../io/index.js';
import { UDP_MAX_PAYLOAD, addressText } from '../datagram.js';

/**
 * A full port (maxPeers) gives a new source the place of its least recently heard dynamic peer
 * only if that peer has been silent this long, so a flood of new sources cannot push out a guest
 * that spoke lately.
 */
export const PEER_EVICT_IDLE_MS = 10_000;
/** At most one line per this interval about refused or evicted peers (a remote triggers them). */
const PEER_LOG_INTERVAL_MS = 10_000;

/** QEMU's NET_BUFSIZE: the most a QEMU dgram reader takes in one recv(). */
export const QEMU_NET_BUFSIZE = 69632;

export interface DgramConfig {
  bind: DgramAddress;
  /** Fixed peers: QEMU guests whose local address is known in advance. */
  peers: DgramAddress[];
  /** A dynamic peer silent this long is forgotten. */
  peerIdleMs: number;
  maxPeers: number;
  /**
   * udp: the sources taken besides the fixed peers; any other datagram is dropped before it has
   * a peer id and counted (SocketStats.notAccepted). null: every source.
   */
  accept: Ipv4Net[] | null;
}

/** Drops from sources outside the accept list are logged at most this often (a remote sets the pace). */
export const NOT_ACCEPTED_LOG_INTERVAL_MS = 60_000;

/**
 * A stable UDP port for a guest's own end of a dgram netdev (QEMU needs local.port): 40000-59999,
 * from the name, so the printed arguments are exact and the same name always gets the same port.
 */
export function guestUdpPort(guest: string): number {
  let h = 2166136261;
  for (let i = 0; i < guest.length; i++) h = Math.imul(h ^ guest.charCodeAt(i), 16777619) >>> 0;
  return 40000 + (h % 20000);
}

class DgramPort implements Port {
  id = 0;
  readonly counters = new PortCounters();
  lastRxMs = 0;
  constructor(
    readonly name: string,
    readonly kind: PortKind,
    readonly maxFrameBytes: number,
    private readonly sock: BatchSocket,
    readonly peer: number,
    private readonly remote: string,
    readonly fixed: boolean,
  ) {}
  endpoint(): string { return this.remote; }
  send(buf: Buffer, off: number, len: number): void {
    if (len > this.maxFrameBytes) {
      this.counters.drops.oversize++;
      return;
    }
    if (this.sock.send(this.peer, buf, off, len)) {
      this.counters.txFrames++;
      this.counters.txBytes += len;
    } else {
      this.counters.drops['send-error']++;
    }
  }
  close(): void {}
}

export class DgramTransport implements Transport {
  readonly kind: PortKind;
  private sock: BatchSocket | null = null;
  /** Ports indexed by peer id; the common lookup per datagram. */
  private byPeer: Array<DgramPort | undefined> = [];
  private portCount = 0;
  private nowMs = 0;
  private refusedPeers = 0;
  private evictedPeers = 0;
  private agedPeers = 0;
  /** Dynamic ports silent PEER_EVICT_IDLE_MS, least recently heard first (from one scan), and the next to try. */
  private evictable: DgramPort[] = [];
  private evictableNext = 0;
  /** No dynamic port can be evicted before this (switch clock ms). */
  private noEvictUntilMs = 0;
  private refusedLoggedMs = -Infinity;
  private evictedLoggedMs = -Infinity;
  /** notAccepted as of the last log line about it, and when that line was written. */
  private notAcceptedLogged = 0;
  private notAcceptedLogMs = -Infinity;
  private readonly onBatchBound: (count: number) => void;
  private readonly onEvictedBound: (peer: number) => void;
  private readonly maxFrameBytes: number;

  constructor(readonly url: string, private readonly cfg: DgramConfig, private readonly ctx: TransportContext) {
    this.kind = cfg.bind.kind === 'udp4' ? 'udp' : 'unixgram';
    this.maxFrameBytes = Math.min(ctx.maxFrameBytes, cfg.bind.kind === 'udp4' ? UDP_MAX_PAYLOAD : QEMU_NET_BUFSIZE);
    this.onBatchBound = this.onBatch.bind(this);
    this.onEvictedBound = this.onEvicted.bind(this);
  }

  async start(): Promise<void> {
    const b = this.cfg.bind;
    if (b.kind === 'unix') await prepareUnixPath(b.path, `port ${this.url}`);
    try {
      this.sock = await openBatchSocket({
        kind: b.kind,
        bind: b.kind === 'udp4' ? { host: b.host, port: b.port } : { path: b.path },
        reuseAddr: false,
        slotBytes: QEMU_NET_BUFSIZE,
        rcvbufBytes: 4 << 20,
        sndbufBytes: 4 << 20,
      });
    } catch (err) {
      if (err instanceof LanpartyError) throw new LanpartyError(err.code, `port ${this.url}: ${err.message}`, { cause: err });
      throw socketSetupError(`port ${this.url}`, err as NodeJS.ErrnoException);
    }
    const accept = this.cfg.accept;
    if (accept === null && b.kind === 'udp4' && !b.host.startsWith('127.')) {
      this.ctx.log.info(`warning: port ${this.url} takes datagrams from every source on ${b.host}:${b.port}: any host that can reach it ` +
        'can read the LAN\'s broadcasts and join it. To limit it, name the guests\' sources with accept=CIDR[,CIDR...]');
    }
    if (accept !== null && b.kind === 'udp4') {
      const exact: Array<{ host: string; port: number }> = [];
      for (const p of this.cfg.peers) if (p.kind === 'udp4') exact.push({ host: p.host, port: p.port });
      try {
        this.sock.acceptSources(accept, exact);
      } catch (err) {
        this.sock.close();
        this.sock = null;
        throw new LanpartyError((err as LanpartyError).code ?? 'LP_ERR_NATIVE', `port ${this.url}: ${(err as Error).message}`, { cause: err });
      }
    }
    for (const p of this.cfg.peers) this.portFor(this.sock.peerId(p), true);
    this.sock.onPeerEvicted(this.onEvictedBound);
    this.sock.start(this.onBatchBound);
  }

  private portFor(peer: number, fixed: boolean): DgramPort | undefined {
    const existing = this.byPeer[peer];
    if (existing !== undefined) return existing;
    if (!fixed && this.portCount >= this.cfg.maxPeers && !this.evictIdlest()) return undefined;
    const sock = this.sock!;
    const remote = addressText(sock.peerAddress(peer));
    const port = new DgramPort(`${this.kind} ${remote}`, this.kind, this.maxFrameBytes, sock, peer, remote, fixed);
    port.lastRxMs = this.nowMs;
    this.byPeer[peer] = port;
    this.portCount++;
    this.ctx.sink.addPort(port);
    return port;
  }

  private onBatch(count: number): void {
    const rx = this.sock!.rx;
    const sink = this.ctx.sink;
    for (let i = 0; i < count; i++) {
      const peer = rx.peers[i];
      let port = this.byPeer[peer];
      if (port === undefined) {
        port = this.portFor(peer, false);
        if (port === undefined) {
          this.refusedPeers++;
          this.sock!.releasePeer(peer);
          if (this.nowMs - this.refusedLoggedMs >= PEER_LOG_INTERVAL_MS) {
            this.refusedLoggedMs = this.nowMs;
            this.ctx.log.info(`port ${this.url}: ${this.portCount} peers (the most it keeps), none silent ${PEER_EVICT_IDLE_MS / 1000} s: new sources are refused (${this.refusedPeers} so far)`);
          }
          continue;
        }
      }
      port.lastRxMs = this.nowMs;
      const len = rx.lengths[i];
      if (len === 0) {
        port.counters.rxFrames++;
        port.counters.drops.empty++;
        continue;
      }
      sink.input(port, rx.bufs[i], 0, len);
    }
  }

  tick(nowMs: number): void {
    this.nowMs = nowMs;
    const notAccepted = this.sock === null ? 0 : this.sock.stats.notAccepted;
    if (notAccepted > this.notAcceptedLogged && nowMs - this.notAcceptedLogMs >= NOT_ACCEPTED_LOG_INTERVAL_MS) {
      this.ctx.log.info(`port ${this.url}: dropped ${notAccepted - this.notAcceptedLogged} datagrams from sources outside its accept list (${notAccepted} in all, socket.notAccepted in status)`);
      this.notAcceptedLogged = notAccepted;
      this.notAcceptedLogMs = nowMs;
    }
    for (let i = 0; i < this.byPeer.length; i++) {
      const p = this.byPeer[i];
      if (p !== undefined && !p.fixed && nowMs - p.lastRxMs >= this.cfg.peerIdleMs) {
        this.forget(p);
        this.agedPeers++;
      }
    }
  }

  /** Removes a dynamic peer's port and releases its socket peer id. */
  private forget(p: DgramPort): void {
    this.byPeer[p.peer] = undefined;
    this.portCount--;
    this.ctx.sink.removePort(p);
    this.sock!.releasePeer(p.peer);
  }

  /** The socket's peer table was full and evicted this id (never a fixed peer's: those are pinned). */
  private onEvicted(peer: number): void {
    const p = this.byPeer[peer];
    if (p === undefined) return;
    this.byPeer[peer] = undefined;
    this.portCount--;
    this.ctx.sink.removePort(p);
    this.evictedPeers++;
  }

  /**
   * Makes room for a new source at maxPeers: forgets the least recently heard dynamic peer if it
   * has been silent PEER_EVICT_IDLE_MS. One scan finds every such peer, so under a flood of new
   * sources the next evictions cost no scan until they are used up.
   */
  private evictIdlest(): boolean {
    const now = this.nowMs;
    while (this.evictableNext < this.evictable.length) {
      const p = this.evictable[this.evictableNext++];
      if (this.byPeer[p.peer] === p && now - p.lastRxMs >= PEER_EVICT_IDLE_MS) {
        this.forget(p);
        this.evictedPeers++;
        if (now - this.evictedLoggedMs >= PEER_LOG_INTERVAL_MS) {
          this.evictedLoggedMs = now;
          this.ctx.log.info(`port ${this.url}: ${this.portCount + 1} peers (the most it keeps): forgot ${p.endpoint()}, silent ${Math.round((now - p.lastRxMs) / 1000)} s, to make room for a new source (${this.evictedPeers} so far)`);
        }
        return true;
      }
    }
    if (now < this.noEvictUntilMs) return false;
    const found: DgramPort[] = [];
    let oldestLive = Infinity;
    for (let i = 0; i < this.byPeer.length; i++) {
      const p = this.byPeer[i];
      if (p === undefined || p.fixed) continue;
      if (now - p.lastRxMs >= PEER_EVICT_IDLE_MS) found.push(p);
      else if (p.lastRxMs < oldestLive) oldestLive = p.lastRxMs;
    }
    found.sort((a, b) => a.lastRxMs - b.lastRxMs);
    this.evictable = found;
    this.evictableNext = 0;
    // With none found, none can be evicted before the oldest remaining one turns idle.
    this.noEvictUntilMs = found.length > 0 ? 0 : oldestLive + PEER_EVICT_IDLE_MS;
    return found.length > 0 && this.evictIdlest();
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.byPeer.length; i++) {
      const p = this.byPeer[i];
      if (p !== undefined) this.ctx.sink.removePort(p);
    }
    this.byPeer = [];
    this.portCount = 0;
    this.evictable = [];
    if (this.sock) this.sock.close();
    this.sock = null;
    if (this.cfg.bind.kind === 'unix') removeUnixPath(this.cfg.bind.path);
  }

  qemuNetdev(guest: string, id: string): string {
    const b = this.cfg.bind;
    if (b.kind === 'udp4') {
      return `dgram,id=${id},local.type=inet,local.host=${b.host === '0.0.0.0' ? '127.0.0.1' : b.host},local.port=${guestUdpPort(guest)},remote.type=inet,remote.host=${b.host === '0.0.0.0' ? '127.0.0.1' : b.host},remote.port=${b.port}`;
    }
    const dir = b.path.slice(0, b.path.lastIndexOf('/') + 1);
    return `dgram,id=${id},local.type=unix,local.path=${dir}guest-${guest}.sock,remote.type=unix,remote.path=${b.path}`;
  }

  status(): TransportStatus {
    const addr = this.sock ? addressText(this.sock.localAddress()) : addressText(this.cfg.bind);
    return {
      url: this.url, kind: this.kind, state: this.sock ? 'listening' : 'closed', address: addr, portCount: this.portCount,
      native: this.sock ? this.sock.native : false, socket: socketStatsOf(this.sock),
      peers: { max: this.cfg.maxPeers, refused: this.refusedPeers, evicted: this.evictedPeers, aged: this.agedPeers },
    };
  }

  /** Datagrams from new sources refused because `maxPeers` was reached and no peer was idle enough to evict. */
  refused(): number { return this.refusedPeers; }
}
