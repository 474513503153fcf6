/**
 * wg: encrypted peer links that speak the WireGuard protocol byte for byte (device.ts), carrying
 * Ethernet as VXLAN in IPv4/UDP between tunnel addresses (inner.ts), one switch port per peer,
 * with a spanning tree over the peer links (stp.ts) so any mesh of lanparty hosts forwards
 * without loops. A stock Linux host joins with wireguard-go, a vxlan device and a bridge.
 *
 * Stages for one socket wakeup: BatchSocket.rx → WgDevice.receive (authenticate, decrypt) →
 * onPacket: Decapsulator (IPv4 to our address from the peer's, fragments, UDP port) → VXLAN frame
 * → sink.input when the link is forwarding; hello → SpanningTree. Sending: Port.send → blocked
 * links drop → Encapsulator (IPv4/UDP/VXLAN, fragments above the tunnel MTU) → WgDevice.sendPacket.
 * A 100 ms coarse tick drives the WireGuard timers; every HELLO_MS it sends hellos and recomputes
 * the tree, adding forwarding links to the switch and removing blocked ones (which flushes their MACs).
 * Multicast groups on the same switch are shared segments of the same tree (../segment.ts): their
 * hellos are Ethernet frames on the group, and their transport follows the forwarding state we set.
 * Every HELLO_MS also: our claims (the stock peers we have a live session with) on every tree
 * port, an ICMP echo probe to each peer that never sent a hello; claims heard are relayed once.
 */
import { performance } from 'node:perf_hooks';
import { LanpartyError, socketSetupError } from '../../util/index.js';
import { PortCounters, type Port } from '../../switch/index.js';
import type { Transport, TransportContext, TransportStatus } from '../transport.js';
import type { BatchSocket } from '../../io/index.js';
import { openBatchSocket, socketStatsOf } from '../../io/index.js';
import { keyText, publicKeyOf, shortKey } from '../../crypto/index.js';
import { WgDevice, type Peer, type WgIo, type DeviceCounters } from './device.js';
import { Decapsulator, Encapsulator, INNER_CONTROL, INNER_FRAME, INNER_OVERHEAD_BYTES, ipToNumber } from './inner.js';
import {
  HELLO_BYTES, HELLO_MS, LinkState, MAX_AGE_MS, SpanningTree, bridgeIdOf, decodeEdgeClaims, decodeHello, encodeEdgeClaims, encodeHello, isEdgeRole,
  type EdgeClaims, type LinkRole,
} from './stp.js';
import { treeFrame, type SegmentListener, type SegmentRole, type SegmentTree, type SharedSegment } from '../segment.js';
import { KEEPALIVE_TIMEOUT_MS, REKEY_TIMEOUT_MS } from './messages.js';

export { WgDevice } from './device.js';

export interface WgPeerSettings {
  publicKey: Buffer;
  presharedKey: Buffer | null;
  endpoint: { host: string; port: number } | null;
  /** The peer's tunnel address (its wg0 address on a stock host). */
  address: string;
  persistentKeepaliveS: number;
}

export interface WgSettings {
  privateKey: Buffer;
  listen: { host: string; port: number };
  /** Our tunnel address. */
  address: string;
  vni: number;
  /** Largest inner IP packet (the tunnel MTU); larger ones are fragmented. */
  mtuBytes: number;
  peers: WgPeerSettings[];
  /** Handshakes per second above which cookies are required (tests lower it). */
  underLoadPerSecond?: number;
}

export interface WgPeerStatus {
  publicKey: string;
  address: string;
  endpoint: string;
  /** ISO time of the last completed handshake, or null. */
  lastHandshake: string | null;
  lastHandshakeAgoS: number | null;
  rxBytes: number;
  txBytes: number;
  reachable: boolean;
  role: LinkRole;
  forwarding: boolean;
  /** Stock peers (edge roles): the other bridges (ids) that claim a live session with it now. */
  claimedBy: string[];
  portId: number;
  counters: Record<string, number>;
  inner: Record<string, number>;
}

/** A multicast group in the tree (a shared segment). */
export interface WgSegmentStatus {
  name: string;
  role: SegmentRole;
  forwarding: boolean;
  /** Other bridge ports heard on the group now: "bridgeid:port". */
  bridges: string[];
  helloRx: number;
  /** Hellos ignored because too many bridges were heard (forged ones, most likely). */
  heardFull: number;
}

export interface WgStatus {
  publicKey: string;
  listen: string;
  address: string;
  vni: number;
  mtu: number;
  bridgeId: string;
  rootId: string;
  rootCost: number;
  /** Topology changes made here or heard of (each flushed the learned MACs), and the current count. */
  topologyChanges: number;
  tcCount: number;
  underLoad: boolean;
  counters: DeviceCounters;
  /** Claims (docs/tree.md, "Stock hosts"): bridges heard claiming stock peers, and messages ignored or cut short. */
  claims: { origins: number; rx: number; relayed: number; full: number; truncated: number };
  peers: WgPeerStatus[];
  segments: WgSegmentStatus[];
}

const TICK_MS = 100;

/**
 * Starts the link's edge clock (stp.ts EDGE_DETECT_MS) once the peer has a usable session, i.e. a
 * current keypair. Not at the first authenticated packet: when both ends initiate at once, each
 * answers the other's initiation and neither response completes (WireGuard retries after
 * REKEY_TIMEOUT, 5 s), so a lanparty peer can be heard for seconds before any hello can cross;
 * counted from then, it would be taken for a stock host and forwarded at once, looping a triangle.
 */
export function noteSession(link: LinkState, peer: Peer, nowMs: number): void {
  if (link.sessionSinceMs === 0 && peer.current !== null) link.sessionSinceMs = nowMs || 1;
}

class WgPeerPort implements Port {
  id = 0;
  readonly kind = 'wg' as const;
  readonly counters = new PortCounters();
  readonly link: LinkState;
  readonly encap: Encapsulator;
  readonly decap: Decapsulator;
  /** In the switch (from start to close), forwarding or blocking. */
  inSwitch = false;
  /** What the switch was last told (`setForwarding`), following `link.forwarding`. */
  forwarding = false;
  echoSeq = 0;
  private readonly sendPacketBound: (pkt: Buffer) => void;

  constructor(readonly name: string, readonly maxFrameBytes: number, readonly peer: Peer, private readonly dev: WgDevice,
    private readonly endpointText: () => string, local: number, remote: number, mtu: number, vni: number) {
    this.link = new LinkState(name);
    this.link.edgeId = bridgeIdOf(peer.publicKey);
    this.encap = new Encapsulator(local, remote, mtu, vni);
    this.decap = new Decapsulator(local, remote, vni);
    this.sendPacketBound = (pkt) => this.dev.sendPacket(this.peer, pkt, 0, pkt.length);
  }

  endpoint(): string { return this.endpointText(); }

  send(buf: Buffer, off: number, len: number): void {
    if (!this.link.forwarding) {
      this.counters.drops['port-down']++;
      return;
    }
    if (len > this.maxFrameBytes) {
      this.counters.drops.oversize++;
      return;
    }
    this.counters.txFrames++;
    this.counters.txBytes += len;
    this.encap.frame(buf, off, len, this.sendPacketBound);
  }

  sendControl(payload: Buffer): void {
    this.encap.control(payload, this.sendPacketBound);
  }

  sendEcho(): void {
    this.encap.echo(this.echoSeq++, this.sendPacketBound);
  }

  /** Whether tree messages (hellos, claims) go to this peer: not to a known stock host. */
  get speaksTree(): boolean {
    return this.peer.endpoint >= 0 && !isEdgeRole(this.link.role);
  }

  close(): void {}
}

export class WgTransport implements Transport, SegmentListener, SegmentTree {
  readonly kind = 'wg' as const;
  private sock: BatchSocket | null = null;
  private device: WgDevice | null = null;
  private ports: WgPeerPort[] = [];
  /** Shared segments (multicast groups on our switch) and their tree ports; numbered from 1. */
  private readonly segments = new Map<SharedSegment, LinkState>();
  private nextSegmentPort = 1;
  /** Source MAC of our tree frames: locally administered, from the bridge id. */
  private readonly treeMac: Buffer;
  private readonly stp: SpanningTree;
  private timer: NodeJS.Timeout | null = null;
  private lastHelloMs = -Infinity;
  private readonly onBatchBound: (count: number) => void;
  private readonly maxFrameBytes: number;
  private readonly publicKey: Buffer;
  private claimsRx = 0;
  private claimsRelayed = 0;
  /**
   * Socket peer ids that are some peer's endpoint: endpointRefs[id] counts the peers, and
   * knownEndpoint[i] is the endpoint of ports[i] as last seen. Every other source's id is released
   * after its batch, so only authenticated sources (and configured endpoints) hold one.
   */
  private endpointRefs = new Int32Array(64);
  private knownEndpoint = new Int32Array(0);

  constructor(readonly url: string, private readonly cfg: WgSettings, private readonly ctx: TransportContext) {
    this.onBatchBound = this.onBatch.bind(this);
    // Inner frames up to 65535 - IP/UDP/VXLAN; the switch maximum may be lower.
    this.maxFrameBytes = Math.min(ctx.maxFrameBytes, 65535 - INNER_OVERHEAD_BYTES);
    this.publicKey = publicKeyOf(cfg.privateKey);
    this.stp = new SpanningTree(bridgeIdOf(this.publicKey));
    this.treeMac = Buffer.from(this.stp.bridge.subarray(0, 6));
    this.treeMac[0] = (this.treeMac[0] & 0xfc) | 0x02;
  }

  segmentAdded(seg: SharedSegment): void {
    const link = new LinkState(seg.name, this.nextSegmentPort++);
    link.upSinceMs = this.now();
    this.segments.set(seg, link);
    seg.tree = this;
  }

  segmentRemoved(seg: SharedSegment): void {
    this.segments.delete(seg);
    seg.tree = null;
  }

  onTreeFrame(seg: SharedSegment, buf: Buffer, off: number, len: number): void {
    const link = this.segments.get(seg);
    // The 32-byte hello, then the padding of a minimum-size frame.
    if (link === undefined || len < HELLO_BYTES) return;
    const h = decodeHello(buf, off, HELLO_BYTES);
    if (h !== null) {
      this.stp.onHello(link, h, this.now());
      return;
    }
    const c = decodeEdgeClaims(buf, off, len, true);
    if (c !== null) this.onClaims(c, null, seg);
  }

  /** Claims heard on a peer link (`from`) or a segment (`fromSeg`): kept, and relayed once on every other tree port. */
  private onClaims(c: EdgeClaims, from: WgPeerPort | null, fromSeg: SharedSegment | null): void {
    this.claimsRx++;
    if (!this.stp.onEdgeClaims(c, this.now())) return;
    this.claimsRelayed++;
    this.sendClaims(encodeEdgeClaims(c), from, fromSeg);
  }

  private sendClaims(msg: Buffer, exceptPort: WgPeerPort | null, exceptSeg: SharedSegment | null): void {
    for (const p of this.ports) if (p !== exceptPort && p.speaksTree) p.sendControl(msg);
    if (this.segments.size === 0) return;
    const frame = treeFrame(this.treeMac, msg);
    for (const seg of this.segments.keys()) if (seg !== exceptSeg) seg.send(frame);
  }

  private now(): number { return Math.floor(performance.now()); }

  async start(): Promise<void> {
    const l = this.cfg.listen;
    try {
      this.sock = await openBatchSocket({ kind: 'udp4', bind: { host: l.host, port: l.port }, reuseAddr: false, slotBytes: 65536, rcvbufBytes: 4 << 20, sndbufBytes: 4 << 20 });
    } catch (err) {
      if (err instanceof LanpartyError) throw new LanpartyError(err.code, `port ${this.url}: ${err.message}`, { cause: err });
      throw socketSetupError(`port ${this.url}`, err as NodeJS.ErrnoException);
    }
    const sock = this.sock;
    const log = this.ctx.log.child(`wg ${l.host}:${l.port}`);
    const io: WgIo = {
      send: (ep, buf, off, len) => { sock.send(ep, buf, off, len); },
      addressBytes: (ep) => {
        const a = sock.peerAddress(ep);
        const b = Buffer.alloc(6);
        if (a.kind === 'udp4') { b.writeUInt32BE(ipToNumber(a.host), 0); b.writeUInt16LE(a.port, 4); }
        return b;
      },
      addressHost: (ep) => { const a = sock.peerAddress(ep); return a.kind === 'udp4' ? a.host : a.path; },
      addressText: (ep) => { const a = sock.peerAddress(ep); return a.kind === 'udp4' ? `${a.host}:${a.port}` : a.path; },
    };
    const dev = new WgDevice({
      privateKey: this.cfg.privateKey, io, log,
      onPacket: (peer, buf, off, len) => this.onPacket(peer, buf, off, len),
      onPeerEvent: (peer, ev) => {
        if (ev === 'handshake') noteSession((peer.owner as WgPeerPort).link, peer, dev.now());
      },
      underLoadPerSecond: this.cfg.underLoadPerSecond,
    });
    this.device = dev;
    const local = ipToNumber(this.cfg.address);
    for (const p of this.cfg.peers) {
      const peer = dev.addPeer({
        publicKey: p.publicKey, presharedKey: p.presharedKey,
        endpoint: p.endpoint ? sock.peerId({ kind: 'udp4', host: p.endpoint.host, port: p.endpoint.port }) : -1,
        persistentKeepaliveMs: p.persistentKeepaliveS * 1000,
      });
      const text = () => (peer.endpoint >= 0 ? io.addressText(peer.endpoint) : '(none)');
      const port = new WgPeerPort(`wg ${shortKey(p.publicKey)} ${p.address}`, this.maxFrameBytes, peer, dev, text, local, ipToNumber(p.address), this.cfg.mtuBytes, this.cfg.vni);
      peer.owner = port;
      this.ports.push(port);
    }
    this.knownEndpoint = new Int32Array(this.ports.length).fill(-1);
    this.syncEndpoints();
    sock.start(this.onBatchBound);
    const now = this.now();
    dev.tick(now);
    dev.up(now);
    log.info(`listening, public key ${keyText(this.publicKey)}, tunnel address ${this.cfg.address}, ${this.cfg.peers.length} peers`);
    // Every peer port is in the switch from the start, blocking until the tree lets it forward.
    for (const p of this.ports) {
      this.ctx.sink.addPort(p, false);
      p.inSwitch = true;
    }
    this.timer = setInterval(() => this.coarseTick(), TICK_MS);
    this.timer.unref();
    this.ctx.segments?.listen(this);
    this.coarseTick();
  }

  /**
   * Stages of one batch: every datagram to the device; then endpoint moves noted (the id a peer
   * left is released unless another peer uses it); then the id of every source that is no peer's
   * endpoint is released, so a datagram that did not authenticate leaves no per-source state
   * (replies sent to it, such as a cookie reply, still go: ids are freed after the flush).
   */
  private onBatch(count: number): void {
    const sock = this.sock!;
    const rx = sock.rx;
    const dev = this.device!;
    for (let i = 0; i < count; i++) dev.receive(rx.peers[i], rx.bufs[i], 0, rx.lengths[i]);
    this.syncEndpoints();
    const refs = this.endpointRefs;
    let last = -1;
    for (let i = 0; i < count; i++) {
      const id = rx.peers[i];
      if (id !== last && (id >= refs.length || refs[id] === 0)) sock.releasePeer(id);
      last = id;
    }
  }

  /** Counts each port's current endpoint in endpointRefs; an id no peer uses any more is released. */
  private syncEndpoints(): void {
    const known = this.knownEndpoint;
    for (let i = 0; i < this.ports.length; i++) {
      const ep = this.ports[i].peer.endpoint;
      const old = known[i];
      if (ep === old) continue;
      known[i] = ep;
      if (ep >= 0) {
        if (ep >= this.endpointRefs.length) {
          const grown = new Int32Array(Math.max(ep + 1, this.endpointRefs.length * 2));
          grown.set(this.endpointRefs);
          this.endpointRefs = grown;
        }
        this.endpointRefs[ep]++;
      }
      if (old >= 0 && --this.endpointRefs[old] === 0) this.sock!.releasePeer(old);
    }
  }

  private onPacket(peer: Peer, buf: Buffer, off: number, len: number): void {
    const port = peer.owner as WgPeerPort;
    const kind = port.decap.packet(buf, off, len, this.device!.now());
    const o = port.decap.out;
    if (kind === INNER_FRAME) {
      // A blocking port's frames are counted and dropped by the switch (port-down).
      if (port.inSwitch) this.ctx.sink.input(port, o.buf, o.off, o.len);
      else { port.counters.rxFrames++; port.counters.drops['port-down']++; }
    } else if (kind === INNER_CONTROL) {
      const h = decodeHello(o.buf, o.off, o.len);
      if (h !== null) {
        this.stp.onHello(port.link, h, this.device!.now());
        return;
      }
      const c = decodeEdgeClaims(o.buf, o.off, o.len);
      if (c !== null) this.onClaims(c, port, null);
    }
  }

  private coarseTick(): void {
    const dev = this.device;
    if (dev === null) return;
    const now = this.now();
    dev.tick(now);
    for (const p of this.ports) {
      noteSession(p.link, p.peer, now);
      p.link.peerRxMs = p.peer.lastRxMs;
    }
    const links = this.ports.map((p) => p.link);
    for (const link of this.segments.values()) links.push(link);
    if (now - this.lastHelloMs >= HELLO_MS) {
      // Keep the cadence (no drift of up to a tick per hello), unless a stall put us a hello behind.
      this.lastHelloMs = now - this.lastHelloMs < 2 * HELLO_MS ? this.lastHelloMs + HELLO_MS : now;
      const h = this.stp.hello();
      const hello = encodeHello(h);
      for (const p of this.ports) {
        // Hellos go to stock peers too until they prove to be edges: a hello also starts the handshake.
        if (p.speaksTree) p.sendControl(hello);
        // A peer that never sent a hello may be a stock host: its echo reply keeps it live (stp.ts).
        if (!p.link.heardBridge && p.peer.endpoint >= 0) p.sendEcho();
      }
      // On a segment every bridge sends, blocked or not, so each sees all the others.
      for (const [seg, link] of this.segments) seg.send(treeFrame(this.treeMac, encodeHello({ ...h, port: link.segmentPort })));
      const claims = this.stp.edgeClaims(links, now);
      if (claims !== null) this.sendClaims(encodeEdgeClaims(claims), null, null);
    }
    this.stp.recompute(links, now);
    for (const [seg, link] of this.segments) {
      seg.role = link.role === 'root' || link.role === 'designated' ? link.role : 'blocked';
      seg.bridgesHeard = link.heard.size;
      seg.designatedBridge = (link.role === 'designated' || link.remote === null ? this.stp.bridge : link.remote.bridge).toString('hex');
      seg.setForwarding(link.forwarding);
    }
    for (const p of this.ports) {
      if (p.inSwitch && p.link.forwarding !== p.forwarding) {
        p.forwarding = p.link.forwarding;
        this.ctx.sink.setForwarding(p, p.forwarding);
      }
    }
    // After the ports moved: MACs learned the old way are forgotten (docs/tree.md, "Topology changes").
    if (this.stp.takeFlush()) this.ctx.sink.flushLearned?.(`spanning tree, change ${this.stp.tcCount}`);
  }

  tick(_nowMs: number): void {
    // The WireGuard timers need finer steps than the daemon's 1 s tick: see coarseTick.
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.ctx.segments?.listen(null);
    for (const seg of this.segments.keys()) seg.tree = null;
    this.segments.clear();
    for (const p of this.ports) {
      if (p.inSwitch) this.ctx.sink.removePort(p);
      p.inSwitch = false;
      p.forwarding = false;
    }
    if (this.device) for (const p of this.device.peers) this.device.zeroKeys(p);
    if (this.sock) this.sock.close();
    this.sock = null;
    this.device = null;
  }

  qemuNetdev(): string | null {
    return null;
  }

  wgStatus(): WgStatus {
    const dev = this.device;
    const now = this.now();
    const wall = Date.now();
    return {
      publicKey: keyText(this.publicKey),
      listen: `${this.cfg.listen.host}:${this.cfg.listen.port}`,
      address: this.cfg.address,
      vni: this.cfg.vni,
      mtu: this.cfg.mtuBytes,
      bridgeId: this.stp.bridge.toString('hex'),
      rootId: this.stp.root.toString('hex'),
      rootCost: this.stp.rootCost,
      topologyChanges: this.stp.topologyChanges,
      tcCount: this.stp.tcCount,
      underLoad: dev ? dev.underLoad() : false,
      counters: dev ? { ...dev.counters } : ({} as DeviceCounters),
      claims: { origins: this.stp.claims.size, rx: this.claimsRx, relayed: this.claimsRelayed, full: this.stp.claimsFull, truncated: this.stp.claimsTruncated },
      peers: this.ports.map((p) => {
        const peer = p.peer;
        const last = peer.lastHandshakeWallMs;
        const freshMs = p.link.heardBridge ? MAX_AGE_MS : KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS;
        return {
          publicKey: keyText(peer.publicKey),
          address: this.peerAddress(p),
          endpoint: p.endpoint(),
          lastHandshake: last > 0 ? new Date(last).toISOString() : null,
          lastHandshakeAgoS: last > 0 ? Math.round((wall - last) / 1000) : null,
          rxBytes: peer.counters.rxBytes,
          txBytes: peer.counters.txBytes,
          reachable: peer.current !== null && peer.lastRxMs > 0 && now - peer.lastRxMs <= freshMs,
          role: p.link.role,
          forwarding: p.link.forwarding,
          claimedBy: isEdgeRole(p.link.role) ? [...p.link.edgeClaimedBy] : [],
          portId: p.id,
          counters: { ...peer.counters, helloRx: p.link.helloRx },
          inner: { ...(p.decap.counters as unknown as Record<string, number>) },
        };
      }),
      segments: [...this.segments].map(([seg, link]) => ({
        name: seg.name, role: seg.role, forwarding: link.forwarding,
        bridges: [...link.heard.keys()], helloRx: link.helloRx, heardFull: link.heardFull,
      })),
    };
  }

  private peerAddress(p: WgPeerPort): string {
    const i = this.ports.indexOf(p);
    return this.cfg.peers[i].address;
  }

  status(): TransportStatus & { wg: WgStatus } {
    const forwarding = this.ports.filter((p) => p.forwarding).length;
    return {
      url: this.url, kind: 'wg', state: this.sock ? 'listening' : 'closed',
      address: `${this.cfg.listen.host}:${this.cfg.listen.port}`,
      portCount: forwarding, native: this.sock ? this.sock.native : false,
      socket: socketStatsOf(this.sock),
      wg: this.wgStatus(),
    };
  }
}
