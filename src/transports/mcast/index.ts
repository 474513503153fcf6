/**
 * The QEMU multicast group (`-netdev socket,mcast=GROUP:PORT[,localaddr=IP]`, and `-netdev dgram`
 * with a multicast remote) as one switch port: the group is a hub segment, and every QEMU on it
 * sends from the same address and port (QEMU binds group:port and sends on that socket), so guests
 * behind it are told apart by source MAC only (docs/qemu-transports.md §2).
 *
 * Two sockets, as QEMU's source dictates:
 *   receive: bound to GROUP:PORT with SO_REUSEADDR (shared with the QEMUs), member of the group on
 *            the interface of `localaddr`;
 *   send:    bound to localaddr:ephemeral, IP_MULTICAST_IF=localaddr, loop on (local QEMUs must
 *            hear us), TTL from the config.
 * Our own frames come back through multicast loopback; they are recognised by their source, which
 * is exactly the send socket's address, and dropped: in the kernel by a socket filter on the
 * receive socket (native path; never copied out, not counted), else in onBatch as `own-frame`. The switch never sends a frame
 * back to its ingress port, so nothing heard on the group is sent to the group again (split horizon).
 *
 * The group is also a shared segment of the spanning tree when this lanparty has peer links
 * (../segment.ts, wg/stp.ts): other lanparty instances may be on the same group. Then tree frames
 * heard on the group go to the tree, never to the switch; tree frames from other ports are not sent
 * onto the group; and when the tree blocks the group, its port blocks in the switch (frames heard
 * on it are counted as `port-down`). Without peer links none of this happens.
 */
import { LanpartyError, socketSetupError } from '../../util/index.js';
import { PortCounters, type Port } from '../../switch/index.js';
import type { Transport, TransportContext, TransportStatus } from '../transport.js';
import type { BatchSocket } from '../../io/index.js';
import { openBatchSocket, socketStatsOf } from '../../io/index.js';
import { UDP_MAX_PAYLOAD, addressText } from '../datagram.js';
import { SharedSegment, isTreeFrame, type SegmentRole } from '../segment.js';

export interface McastConfig {
  group: string;
  port: number;
  /** Interface address for membership and sending; 127.0.0.1 keeps the LAN on this host. */
  localaddr: string;
  ttl: number;
  /**
   * Whether the group takes part in the spanning tree when there is one (peer links). Off: no
   * hellos on it and tree frames are ordinary frames, for a group with untrusted guests and no
   * other lanparty (nothing then protects against a loop through it).
   */
  stp: boolean;
}

/** The group's place in the spanning tree (null in status when there is no tree: no peer links). */
export interface McastSegmentStatus {
  role: SegmentRole;
  forwarding: boolean;
  bridgesHeard: number;
  designatedBridge: string;
  treeRx: number;
  treeTx: number;
  treeFiltered: number;
}

class McastPort implements Port {
  id = 0;
  readonly counters = new PortCounters();
  readonly kind = 'mcast' as const;
  sendSock: BatchSocket | null = null;
  groupPeer = 0;
  /** Set by the transport right after construction. */
  segment: SharedSegment | null = null;
  /**
   * True when our own looped-back frames are dropped in the kernel (a socket filter on the receive
   * socket, native path): they are then never copied out, and never counted as `own-frame`.
   */
  ownDroppedInKernel = false;
  constructor(readonly name: string, readonly maxFrameBytes: number, private readonly group: string) {}
  endpoint(): string { return this.group; }
  send(buf: Buffer, off: number, len: number): void {
    const s = this.sendSock;
    if (s === null) {
      this.counters.drops['port-down']++;
      return;
    }
    // An 802.1D bridge never forwards tree frames: one from elsewhere must not reach this group.
    if (buf[off] === 0x01 && this.segment!.tree !== null && isTreeFrame(buf, off, len)) {
      this.segment!.treeFiltered++;
      return;
    }
    if (len > this.maxFrameBytes) {
      this.counters.drops.oversize++;
      return;
    }
    if (s.send(this.groupPeer, buf, off, len)) {
      this.counters.txFrames++;
      this.counters.txBytes += len;
    } else {
      this.counters.drops['send-error']++;
    }
  }
  close(): void {}
}

export class McastTransport implements Transport {
  readonly kind = 'mcast' as const;
  private recvSock: BatchSocket | null = null;
  private sendSock: BatchSocket | null = null;
  private readonly port: McastPort;
  /** ownPeer[peerId] is 1 when that source is our send socket, 2 when it is someone else. */
  private ownPeer: Uint8Array = new Uint8Array(64);
  private ownHost = '';
  private ownPort = 0;
  private readonly onBatchBound: (count: number) => void;
  private readonly segment: SharedSegment;
  /** Whether the port is in the switch (from start to close). */
  private inSwitch = false;
  /** What the switch was last told: the tree lets the port forward (true without a tree). */
  private forwarding = true;

  constructor(readonly url: string, private readonly cfg: McastConfig, private readonly ctx: TransportContext) {
    this.port = new McastPort(`mcast ${cfg.group}:${cfg.port}`, Math.min(ctx.maxFrameBytes, UDP_MAX_PAYLOAD), `${cfg.group}:${cfg.port} via ${cfg.localaddr}`);
    this.onBatchBound = this.onBatch.bind(this);
    this.segment = new SharedSegment(this.port.name, {
      sendFrame: (frame) => {
        const s = this.sendSock;
        if (s !== null) s.send(this.port.groupPeer, frame, 0, frame.length);
      },
      setForwarding: (forwarding) => this.setForwarding(forwarding),
    });
    this.port.segment = this.segment;
  }

  private setInSwitch(on: boolean): void {
    if (on === this.inSwitch) return;
    this.inSwitch = on;
    if (on) this.ctx.sink.addPort(this.port, this.forwarding);
    else this.ctx.sink.removePort(this.port);
  }

  private setForwarding(forwarding: boolean): void {
    if (forwarding === this.forwarding) return;
    this.forwarding = forwarding;
    if (this.inSwitch) this.ctx.sink.setForwarding(this.port, forwarding);
  }

  async start(): Promise<void> {
    const c = this.cfg;
    const what = `port ${this.url}`;
    try {
      this.recvSock = await openBatchSocket({
        kind: 'udp4', bind: { host: c.group, port: c.port }, reuseAddr: true, slotBytes: 69632, rcvbufBytes: 4 << 20,
        multicast: { group: c.group, interfaceAddr: c.localaddr, ttl: c.ttl, loop: true, join: true },
      });
      this.sendSock = await openBatchSocket({
        kind: 'udp4', bind: { host: c.localaddr, port: 0 }, reuseAddr: false, slotBytes: 2048, sndbufBytes: 4 << 20,
        multicast: { group: c.group, interfaceAddr: c.localaddr, ttl: c.ttl, loop: true, join: false },
      });
    } catch (err) {
      this.recvSock?.close();
      this.recvSock = null;
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENODEV' || e.code === 'EADDRNOTAVAIL') {
        throw new LanpartyError('LP_ERR_NO_DEVICE', `${what}: cannot join ${c.group} on the interface with address ${c.localaddr} (${e.code}); set localaddr to an address of an interface that is up (ip -4 addr), e.g. 127.0.0.1`, { cause: err });
      }
      if (err instanceof LanpartyError) throw new LanpartyError(err.code, `${what}: ${err.message}`, { cause: err });
      throw socketSetupError(what, e);
    }
    const local = this.sendSock.localAddress();
    if (local.kind === 'udp4') {
      this.ownHost = local.host;
      this.ownPort = local.port;
      // Half of a busy group's receive work is our own frames coming back: drop them in the
      // kernel. The check in onBatch stays for the JS fallback (and costs one array read).
      this.port.ownDroppedInKernel = this.recvSock.ignoreSource(local.host, local.port);
    }
    this.port.groupPeer = this.sendSock.peerId({ kind: 'udp4', host: c.group, port: c.port });
    this.port.sendSock = this.sendSock;
    this.forwarding = this.segment.forwarding;
    this.setInSwitch(true);
    if (c.stp) this.ctx.segments?.add(this.segment);
    // Every sender to the group gets a peer id; a full table forgets the least recently heard.
    this.recvSock.onPeerEvicted((id) => {
      if (id < this.ownPeer.length) this.ownPeer[id] = 0;
    });
    this.recvSock.start(this.onBatchBound);
  }

  private isOwn(peer: number): boolean {
    if (peer >= this.ownPeer.length) {
      const grown = new Uint8Array(Math.max(peer + 1, this.ownPeer.length * 2));
      grown.set(this.ownPeer);
      this.ownPeer = grown;
    }
    let v = this.ownPeer[peer];
    if (v === 0) {
      const a = this.recvSock!.peerAddress(peer);
      const own = a.kind === 'udp4' && a.port === this.ownPort && (a.host === this.ownHost || this.ownHost === '0.0.0.0');
      v = own ? 1 : 2;
      this.ownPeer[peer] = v;
    }
    return v === 1;
  }

  private onBatch(count: number): void {
    const rx = this.recvSock!.rx;
    const port = this.port;
    const sink = this.ctx.sink;
    const seg = this.segment;
    for (let i = 0; i < count; i++) {
      if (this.isOwn(rx.peers[i])) {
        port.counters.drops['own-frame']++;
        continue;
      }
      const len = rx.lengths[i];
      const buf = rx.bufs[i];
      if (len === 0) {
        port.counters.rxFrames++;
        port.counters.drops.empty++;
        continue;
      }
      if (buf[0] === 0x01 && seg.tree !== null && isTreeFrame(buf, 0, len)) {
        seg.deliver(buf, 0, len);
        continue;
      }
      if (!this.inSwitch) {
        port.counters.rxFrames++;
        port.counters.drops['port-down']++;
        continue;
      }
      // A port the tree blocks is still in the switch, which counts and drops its frames.
      sink.input(port, buf, 0, len);
    }
  }

  tick(_nowMs: number): void {}

  async close(): Promise<void> {
    this.ctx.segments?.remove(this.segment);
    this.setInSwitch(false);
    this.port.sendSock = null;
    this.recvSock?.close();
    this.sendSock?.close();
    this.recvSock = null;
    this.sendSock = null;
  }

  qemuNetdev(_guest: string, id: string): string {
    return `socket,id=${id},mcast=${this.cfg.group}:${this.cfg.port},localaddr=${this.cfg.localaddr}`;
  }

  status(): TransportStatus & { segment: McastSegmentStatus | null } {
    const addr = `${this.cfg.group}:${this.cfg.port} on ${this.cfg.localaddr} ttl ${this.cfg.ttl}` + (this.sendSock ? ` (sending from ${addressText(this.sendSock.localAddress())})` : '');
    const g = this.segment;
    const segment = g.tree === null ? null : {
      role: g.role, forwarding: g.forwarding, bridgesHeard: g.bridgesHeard, designatedBridge: g.designatedBridge,
      treeRx: g.treeRx, treeTx: g.treeTx, treeFiltered: g.treeFiltered,
    };
    const state = !this.recvSock ? 'closed' : g.tree !== null && !g.forwarding ? `joined, ${g.role} (spanning tree)` : 'joined';
    return {
      url: this.url, kind: 'mcast', state, address: addr, portCount: this.inSwitch && this.forwarding ? 1 : 0,
      native: this.recvSock ? this.recvSock.native : false, socket: socketStatsOf(this.recvSock, this.sendSock), segment,
    };
  }
}
