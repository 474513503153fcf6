/**
 * What VXLAN runs over: an underlay moves datagrams between this VTEP
 * and remote VTEPs named by IPv4 address. The UDP underlay here is a BatchSocket bound to the
 * configured address and port; a later encrypted peer link can be another underlay (its sources
 * are the peers' tunnel addresses) without touching the VXLAN port.
 *
 * Outer UDP source port: every datagram leaves from the bound socket, so the source port is the
 * local VXLAN port (4789 by default). RFC 7348 §5 recommends a hash of the inner flow for ECMP
 * entropy; receivers (Linux, Open vSwitch) accept any source port, and a single socket keeps the
 * data path to one batched sendmmsg. The cost is one ECMP path per pair of VTEPs.
 *
 * Outer UDP checksum: zero, as RFC 7348 §5 says it SHOULD be (SO_NO_CHECK, native path only; the
 * Linux device sends zero too unless udpcsum is set). With a checksum, OVS's userspace datapath
 * drops our packets when they crossed a veth (the checksum is left for an offload that never
 * happens: datapath_drop_tunnel_pop_error).
 */
import { LanpartyError, socketSetupError } from '../../util/index.js';
import type { BatchSocket, RxBatch } from '../../io/index.js';
import { openBatchSocket } from '../../io/index.js';
import { parseIpv4Address } from '../../wire/index.js';

/**
 * One underlay. Source and destination ids are small integers in one space per underlay; the same
 * remote address and port always give the same id, so callers cache per id in arrays.
 */
export interface VxlanUnderlay {
  /** True when the batched native path is in use (status only). */
  readonly native: boolean;
  /**
   * Opens and starts receiving. `onBatch(rx, count)` gets `count` datagrams in rx.bufs[i] at
   * offset 0, rx.lengths[i] bytes, from source id rx.peers[i]. rx is valid only during the call.
   */
  start(onBatch: (rx: RxBatch, count: number) => void): Promise<void>;
  /** IPv4 address (the VTEP identity) of a source or destination id. */
  hostOf(id: number): string;
  /** The id to send to host:port. */
  destination(host: string, port: number): number;
  /** True when a source id is this underlay's own sending address (multicast loopback). */
  isOwn(id: number): boolean;
  /**
   * The caller keeps nothing for this source id (a source it refused): the underlay may forget
   * the address, and the id may later name another one. Ids from destination() stay.
   */
  forget(id: number): void;
  /**
   * `handler(id)` runs when the underlay had to forget a source id to make room for a new source
   * (least recently heard first; never a destination's): drop what is cached for it.
   */
  onSourceEvicted(handler: (id: number) => void): void;
  /** Queues one datagram; the bytes are copied before return. False when dropped. */
  send(id: number, buf: Buffer, off: number, len: number): boolean;
  /** Where it listens, for status ("10.0.0.1:4789", "0.0.0.0:4789 + 239.1.1.1"). */
  describe(): string;
  /** Errors counted by the sockets; notAccepted: datagrams from sources outside acceptOnly. */
  errors(): { send: number; recv: number; notAccepted: number };
  close(): void;
}

export interface UdpUnderlayConfig {
  /** Bind address; explicit, never defaulted to the wildcard. */
  host: string;
  port: number;
  /** Multicast group mode: join `group` on the interface with address `interfaceAddr`. */
  group: { address: string; interfaceAddr: string; ttl: number } | null;
  /** What to name in errors, e.g. "port vxlan://10.0.0.1:4789?vni=42". */
  what: string;
  /**
   * Unicast mode with static VTEPs only: the socket takes datagrams from these hosts (any source
   * port, as VTEPs pick theirs per flow) and drops every other before it has a peer id; null:
   * every source.
   */
  acceptOnly: string[] | null;
}

/** Largest datagram taken from the socket: the biggest UDP payload over IPv4 (65535 - 20 - 8). */
const SLOT_BYTES = 65507;

/**
 * UDP/IPv4 underlay over BatchSocket. Unicast: one socket bound to host:port. Group mode with a
 * wildcard bind: the same socket also joins the group. Group mode with a specific bind address: a
 * second socket bound to group:port (SO_REUSEADDR) receives the group, because a socket bound to a
 * unicast address never sees multicast; its source ids are translated into the first socket's id
 * space (cached per id), so callers see one space.
 */
export class UdpUnderlay implements VxlanUnderlay {
  private sock: BatchSocket | null = null;
  private groupSock: BatchSocket | null = null;
  /** groupToMain[groupSourceId] = main socket id + 1 (0: not looked up yet). */
  private groupToMain: Int32Array = new Int32Array(64);
  private ownHost = '';
  private ownPort = 0;
  /** ownById[id]: 0 unknown, 1 own, 2 someone else. */
  private ownById: Uint8Array = new Uint8Array(64);
  /** pinned[id] = 1: a destination or a group source's translation, which forget() leaves alone. */
  private pinned: Uint8Array = new Uint8Array(64);
  private evictedHandler: ((id: number) => void) | null = null;
  private onBatch: ((rx: RxBatch, count: number) => void) | null = null;
  private readonly onMainBound: (count: number) => void;
  private readonly onGroupBound: (count: number) => void;

  constructor(private readonly cfg: UdpUnderlayConfig) {
    this.onMainBound = this.onMain.bind(this);
    this.onGroupBound = this.onGroup.bind(this);
  }

  get native(): boolean {
    return this.sock !== null && this.sock.native;
  }

  async start(onBatch: (rx: RxBatch, count: number) => void): Promise<void> {
    const c = this.cfg;
    const wildcard = c.host === '0.0.0.0';
    const g = c.group;
    try {
      this.sock = await openBatchSocket({
        kind: 'udp4', bind: { host: c.host, port: c.port }, reuseAddr: false, slotBytes: SLOT_BYTES,
        rcvbufBytes: 4 << 20, sndbufBytes: 4 << 20, udpChecksum: false,
        // Loop off: our own group sends must not come back; other local VTEPs cannot share the port.
        multicast: g ? { group: g.address, interfaceAddr: g.interfaceAddr, ttl: g.ttl, loop: false, join: wildcard } : undefined,
      });
      if (g && !wildcard) {
        this.groupSock = await openBatchSocket({
          kind: 'udp4', bind: { host: g.address, port: c.port }, reuseAddr: true, slotBytes: SLOT_BYTES, rcvbufBytes: 4 << 20,
          multicast: { group: g.address, interfaceAddr: g.interfaceAddr, ttl: g.ttl, loop: false, join: true },
        });
      }
    } catch (err) {
      this.close();
      const e = err as NodeJS.ErrnoException;
      if (g && (e.code === 'ENODEV' || e.code === 'EADDRNOTAVAIL') && e.syscall !== 'bind') {
        throw new LanpartyError('LP_ERR_NO_DEVICE', `${c.what}: cannot join ${g.address} on the interface with address ${g.interfaceAddr} (${e.code}); name an interface that is up with dev=, or bind to one of its addresses`, { cause: err });
      }
      if (err instanceof LanpartyError) throw new LanpartyError(err.code, `${c.what}: ${err.message}`, { cause: err });
      throw socketSetupError(c.what, e);
    }
    const local = this.sock.localAddress();
    if (local.kind === 'udp4') {
      this.ownHost = local.host;
      this.ownPort = local.port;
    }
    if (c.acceptOnly !== null) {
      try {
        this.sock.acceptSources(c.acceptOnly.map((h) => ({ network: parseIpv4Address(h), mask: 0xffffffff })), []);
      } catch (err) {
        this.close();
        throw new LanpartyError((err as LanpartyError).code ?? 'LP_ERR_NATIVE', `${c.what}: ${(err as Error).message}`, { cause: err });
      }
    }
    this.onBatch = onBatch;
    this.sock.onPeerEvicted((id) => {
      if (id < this.ownById.length) this.ownById[id] = 0;
      if (this.evictedHandler !== null) this.evictedHandler(id);
    });
    this.sock.start(this.onMainBound);
    this.groupSock?.start(this.onGroupBound);
  }

  private onMain(count: number): void {
    this.onBatch!(this.sock!.rx, count);
  }

  /** Rewrites the group socket's source ids into the main socket's id space, then delivers. */
  private onGroup(count: number): void {
    const rx = this.groupSock!.rx;
    const peers = rx.peers;
    for (let i = 0; i < count; i++) {
      const id = peers[i];
      if (id >= this.groupToMain.length) {
        const grown = new Int32Array(Math.max(id + 1, this.groupToMain.length * 2));
        grown.set(this.groupToMain);
        this.groupToMain = grown;
      }
      let mapped = this.groupToMain[id];
      if (mapped === 0) {
        mapped = this.sock!.peerId(this.groupSock!.peerAddress(id)) + 1;
        this.groupToMain[id] = mapped;
        if (mapped > 0) this.pin(mapped - 1);
      }
      peers[i] = mapped - 1;
    }
    this.onBatch!(rx, count);
  }

  hostOf(id: number): string {
    const a = this.sock!.peerAddress(id);
    return a.kind === 'udp4' ? a.host : a.path;
  }

  destination(host: string, port: number): number {
    const id = this.sock!.peerId({ kind: 'udp4', host, port });
    if (id >= 0) this.pin(id);
    return id;
  }

  private pin(id: number): void {
    if (id >= this.pinned.length) {
      const grown = new Uint8Array(Math.max(id + 1, this.pinned.length * 2));
      grown.set(this.pinned);
      this.pinned = grown;
    }
    this.pinned[id] = 1;
  }

  forget(id: number): void {
    if (this.sock === null || id < 0 || (id < this.pinned.length && this.pinned[id] === 1)) return;
    if (id < this.ownById.length) this.ownById[id] = 0;
    this.sock.releasePeer(id);
  }

  onSourceEvicted(handler: (id: number) => void): void {
    this.evictedHandler = handler;
  }

  isOwn(id: number): boolean {
    if (id >= this.ownById.length) {
      const grown = new Uint8Array(Math.max(id + 1, this.ownById.length * 2));
      grown.set(this.ownById);
      this.ownById = grown;
    }
    let v = this.ownById[id];
    if (v === 0) {
      const a = this.sock!.peerAddress(id);
      v = a.kind === 'udp4' && a.port === this.ownPort && a.host === this.ownHost ? 1 : 2;
      this.ownById[id] = v;
    }
    return v === 1;
  }

  send(id: number, buf: Buffer, off: number, len: number): boolean {
    const s = this.sock;
    return s !== null && s.send(id, buf, off, len);
  }

  describe(): string {
    const g = this.cfg.group;
    const base = this.sock ? `${this.ownHost}:${this.ownPort}` : `${this.cfg.host}:${this.cfg.port}`;
    return g ? `${base} + group ${g.address} on ${g.interfaceAddr} ttl ${g.ttl}` : base;
  }

  errors(): { send: number; recv: number; notAccepted: number } {
    const a = this.sock?.stats;
    const b = this.groupSock?.stats;
    return { send: (a?.sendErrors ?? 0) + (b?.sendErrors ?? 0), recv: (a?.recvErrors ?? 0) + (b?.recvErrors ?? 0), notAccepted: a?.notAccepted ?? 0 };
  }

  close(): void {
    this.sock?.close();
    this.groupSock?.close();
    this.sock = null;
    this.groupSock = null;
    this.onBatch = null;
  }
}
