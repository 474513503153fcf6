/**
 * Loop prevention across peer links and shared segments: a small spanning tree (802.1D's election,
 * RSTP-like timers) whose messages are lanparty's own. This file holds the tree's state per link
 * (LinkState), the hello and claims messages (encode/decode), and `recompute`, which turns what was
 * heard into port roles and forwarding states. Read IEEE 802.1D-2004 §17.4-17.6 (priority vectors)
 * first. The design (why a tree, timers, topology changes, shared segments, stock hosts on several
 * instances, the message formats) is in docs/tree.md; comments below refer to its sections.
 */
import { hash } from '../../crypto/index.js';

/**
 * Six hellos per MAX_AGE_MS: with the 100 ms tick's jitter a link survives four hellos lost in a
 * row, so a lossy path (5% per crossing: one in 160,000 hellos starts such a run) does not flap
 * the tree. At one hello per second, two lost hellos in a row would take a link down for
 * MAX_AGE_MS + FORWARD_DELAY_MS. Healing time depends on MAX_AGE_MS, not on this.
 */
export const HELLO_MS = 500;
export const MAX_AGE_MS = 3000;
export const FORWARD_DELAY_MS = 2000;
/** A peer with a session that sent no hello for this long is a stock host: an edge port. */
export const EDGE_DETECT_MS = 3000;
export const HELLO_BYTES = 32;
/** How long a new segment port listens for other bridges before peer links may forward. */
export const SEGMENT_LISTEN_MS = MAX_AGE_MS;
const MAGIC = 0x4c505354; // "LPST"

/** `edge-blocked`: a stock peer that another lanparty in the tree serves (docs/tree.md, "Stock hosts"). */
export type LinkRole = 'pending' | 'edge' | 'edge-blocked' | 'root' | 'designated' | 'blocked' | 'down';

export function isEdgeRole(role: LinkRole): boolean {
  return role === 'edge' || role === 'edge-blocked';
}

/** A stock peer is live while an authenticated packet (a probe's echo reply at least) came within this. */
export const EDGE_LIVE_MS = MAX_AGE_MS;
/** Most stock peers one claims message lists (the rest are left out and counted). */
export const CLAIMS_MAX_EDGES = 32;
/** Most claiming bridges remembered: forged claims on a group cannot grow the table. */
export const CLAIMS_MAX_ORIGINS = 64;
export const CLAIMS_HEADER_BYTES = 32;
const CLAIMS_MAGIC = 0x4c505345; // "LPSE"

/**
 * One bridge's claims: the stock peers it has a live session with (edge ids: the first 8 bytes of
 * BLAKE2s of each peer's public key, as bridge ids are made), with its root vector when it said so.
 * `seq` counts up per message from `origin`; relays pass it on unchanged.
 */
export interface EdgeClaims { origin: Buffer; seq: number; root: Buffer; cost: number; edges: Buffer[] }

/** "LPSE" ver(1)=1 count(1) reserved(2) origin(8) seq(4) root(8) cost(4), then count × edge id(8). */
export function encodeEdgeClaims(c: EdgeClaims): Buffer {
  const n = Math.min(c.edges.length, CLAIMS_MAX_EDGES);
  const b = Buffer.alloc(CLAIMS_HEADER_BYTES + 8 * n);
  b.writeUInt32BE(CLAIMS_MAGIC, 0);
  b[4] = 1;
  b[5] = n;
  c.origin.copy(b, 8);
  b.writeUInt32BE(c.seq >>> 0, 16);
  c.root.copy(b, 20);
  b.writeUInt32BE(c.cost, 28);
  for (let i = 0; i < n; i++) c.edges[i].copy(b, CLAIMS_HEADER_BYTES + 8 * i);
  return b;
}

/**
 * Checked decode. Inside the tunnel the length must be exact; on a segment (`padded`) the frame's
 * zero padding may follow. Anything else (another magic, a hello, a later version) is null.
 */
export function decodeEdgeClaims(buf: Buffer, off: number, len: number, padded = false): EdgeClaims | null {
  if (len < CLAIMS_HEADER_BYTES || buf.readUInt32BE(off) !== CLAIMS_MAGIC || buf[off + 4] !== 1) return null;
  const n = buf[off + 5];
  const need = CLAIMS_HEADER_BYTES + 8 * n;
  if (n > CLAIMS_MAX_EDGES || (padded ? len < need : len !== need)) return null;
  const edges: Buffer[] = [];
  for (let i = 0; i < n; i++) edges.push(Buffer.from(buf.subarray(off + CLAIMS_HEADER_BYTES + 8 * i, off + CLAIMS_HEADER_BYTES + 8 * i + 8)));
  return {
    origin: Buffer.from(buf.subarray(off + 8, off + 16)),
    seq: buf.readUInt32BE(off + 16),
    root: Buffer.from(buf.subarray(off + 20, off + 28)),
    cost: buf.readUInt32BE(off + 28),
    edges,
  };
}

export function bridgeIdOf(publicKey: Uint8Array): Buffer {
  return hash(publicKey).subarray(0, 8);
}

/**
 * `port`: the sender's segment port number (0 on peer links); breaks ties between one bridge's
 * ports. `tc`: the topology-change count (1-255; 0: none counted); see docs/tree.md,
 * "Topology changes".
 */
export interface Hello { root: Buffer; cost: number; bridge: Buffer; rootSeq: number; port: number; tc?: number }

export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b[4] = 1;
  b[5] = (h.tc ?? 0) & 0xff;
  b.writeUInt16BE(h.port, 6);
  h.root.copy(b, 8);
  b.writeUInt32BE(h.cost, 16);
  h.bridge.copy(b, 20);
  b.writeUInt32BE(h.rootSeq >>> 0, 28);
  return b;
}

export function decodeHello(buf: Buffer, off: number, len: number): Hello | null {
  if (len !== HELLO_BYTES || buf.readUInt32BE(off) !== MAGIC || buf[off + 4] !== 1) return null;
  return {
    root: Buffer.from(buf.subarray(off + 8, off + 16)),
    cost: buf.readUInt32BE(off + 16),
    bridge: Buffer.from(buf.subarray(off + 20, off + 28)),
    rootSeq: buf.readUInt32BE(off + 28),
    port: buf.readUInt16BE(off + 6),
    tc: buf[off + 5],
  };
}

/** What one remote bridge port last said on a shared segment, and when (device-clock ms). */
export interface SegmentEntry { hello: Hello; atMs: number }

/** Most bridge ports remembered per shared segment: forged hellos from a guest cannot grow it. */
export const SEGMENT_MAX_BRIDGES = 64;

/**
 * One port of the tree: a peer link (`segmentPort` 0: one remote bridge, point to point) or a
 * shared segment (`segmentPort` ≥ 1: any number of bridges heard, a multicast group).
 */
export class LinkState {
  role: LinkRole = 'pending';
  forwarding = false;
  /** When the link first entered a forwarding role without forwarding yet (-1: not waiting). */
  wantForwardSinceMs = -1;
  /** A bridge was heard on this link (ever: on a segment, from then on the forward delay applies). */
  heardBridge = false;
  lastHelloMs = -Infinity;
  /** The remote bridge's last hello; on a segment, the best one heard (the designated bridge's, or ours when null). */
  remote: Hello | null = null;
  /** Device-clock ms when the peer first had a usable session (a current keypair; 0: none yet). */
  sessionSinceMs = 0;
  helloRx = 0;
  /** Segments: the latest hello per remote bridge and port, key "bridgehex:port". */
  readonly heard = new Map<string, SegmentEntry>();
  /** Segments: hellos ignored because `heard` was full. */
  heardFull = 0;
  /** Segments: when the port joined the tree (device-clock ms). */
  upSinceMs = 0;
  /** Peer links: the peer's edge id (bridgeIdOf its public key), for claims; null: none (tests). */
  edgeId: Buffer | null = null;
  /** Peer links: device-clock ms of the peer's last authenticated packet (0: never), set by the transport. */
  peerRxMs = 0;
  /** Edge ports: another bridge was heard claiming this stock peer (ever: from then on the forward delay applies). */
  edgeContested = false;
  /** Edge ports: the other bridges claiming this stock peer now (hex ids), for status. */
  edgeClaimedBy: string[] = [];

  constructor(readonly name: string, readonly segmentPort = 0) {
    if (segmentPort > 0) {
      // A segment forwards from the start (a lone lanparty on a group must): see the header.
      this.role = 'designated';
      this.forwarding = true;
    }
  }

  get shared(): boolean { return this.segmentPort > 0; }
}

/** Whether topology-change count `a` is newer than `b` (both 1-255): ahead by 1-127 on the ring. */
export function tcAhead(a: number, b: number): boolean {
  const d = (a - b + 255) % 255;
  return d >= 1 && d <= 127;
}

function cmpVector(rootA: Buffer, costA: number, bridgeA: Buffer, portA: number, rootB: Buffer, costB: number, bridgeB: Buffer, portB: number): number {
  return Buffer.compare(rootA, rootB) || costA - costB || Buffer.compare(bridgeA, bridgeB) || portA - portB;
}

export class SpanningTree {
  root: Buffer;
  rootCost = 0;
  rootSeq = 0;
  rootLink: LinkState | null = null;
  /** Per root id (hex): the highest rootSeq heard and when it last advanced. */
  private readonly seqSeen = new Map<string, { seq: number; atMs: number }>();
  /** Other bridges' latest claims (origin id hex), each aged by MAX_AGE_MS from when its seq last advanced. */
  readonly claims = new Map<string, { c: EdgeClaims; atMs: number }>();
  /** Claims ignored because `claims` was full; stock peers left out of our own claims (over CLAIMS_MAX_EDGES). */
  claimsFull = 0;
  claimsTruncated = 0;
  private claimSeq = 0;
  /** When we last claimed a stock peer (device-clock ms): empty claims go out for MAX_AGE_MS after, as a withdrawal. */
  private lastClaimMs = -Infinity;
  /** Topology-change count (see the header): 0 until the first change made or heard, then 1-255. */
  tcCount = 0;
  /** Changes that asked for a flush (ours and newer counts heard), for status. */
  topologyChanges = 0;
  private flushDue = false;

  constructor(readonly bridge: Buffer) {
    this.root = bridge;
  }

  /** Records a hello heard on `link` (authenticated by the tunnel on peer links; not on segments). */
  onHello(link: LinkState, h: Hello, nowMs: number): void {
    if (link.shared) {
      // Our own hello, reflected (a hub, a guest bridge): not another bridge.
      if (h.port === link.segmentPort && h.bridge.equals(this.bridge)) return;
      const key = h.bridge.toString('hex') + ':' + h.port;
      if (!link.heard.has(key) && link.heard.size >= SEGMENT_MAX_BRIDGES) {
        link.heardFull++;
        return;
      }
      link.heard.set(key, { hello: h, atMs: nowMs });
    } else {
      link.remote = h;
    }
    link.heardBridge = true;
    link.lastHelloMs = nowMs;
    link.helloRx++;
    const k = h.root.toString('hex');
    const s = this.seqSeen.get(k);
    // Sequence numbers compare with wraparound (RFC 1982 style).
    if (s === undefined || ((h.rootSeq - s.seq) | 0) > 0) this.seqSeen.set(k, { seq: h.rootSeq, atMs: nowMs });
    const tc = h.tc ?? 0;
    if (tc !== 0 && (this.tcCount === 0 || tcAhead(tc, this.tcCount))) {
      this.tcCount = tc;
      this.topologyChanged();
    }
  }

  private topologyChanged(): void {
    this.topologyChanges++;
    this.flushDue = true;
  }

  /** True once after each topology change made or heard: the caller flushes learned MACs. */
  takeFlush(): boolean {
    const due = this.flushDue;
    this.flushDue = false;
    return due;
  }

  /**
   * Records another bridge's claims (from a peer link or a segment). Returns true when they are
   * new (the origin's seq advanced, or it was unknown or aged out): the caller relays them on every
   * other link. Our own claims, flooded back, and repeats return false, which ends the flood.
   */
  onEdgeClaims(c: EdgeClaims, nowMs: number): boolean {
    if (c.origin.equals(this.bridge)) return false;
    const key = c.origin.toString('hex');
    const had = this.claims.get(key);
    if (had !== undefined && nowMs - had.atMs <= MAX_AGE_MS && ((c.seq - had.c.seq) | 0) <= 0) return false;
    if (had === undefined && this.claims.size >= CLAIMS_MAX_ORIGINS) {
      this.claimsFull++;
      return false;
    }
    this.claims.set(key, { c, atMs: nowMs });
    return true;
  }

  /**
   * Our claims to send now (every HELLO_MS): the peers that never sent a hello (stock hosts, and
   * peers not yet known to be either) with a session and a live peer, pending ones included so the
   * others know before our edge detection ends. Null when there is nothing to say: no claim now
   * and none within MAX_AGE_MS (an empty list is sent that long, so a withdrawal is heard at once).
   */
  edgeClaims(links: readonly LinkState[], nowMs: number): EdgeClaims | null {
    const edges: Buffer[] = [];
    for (const l of links) {
      if (l.shared || l.heardBridge || l.edgeId === null || !this.edgeLive(l, nowMs)) continue;
      if (edges.length < CLAIMS_MAX_EDGES) edges.push(l.edgeId);
      else this.claimsTruncated++;
    }
    if (edges.length > 0) this.lastClaimMs = nowMs;
    else if (nowMs - this.lastClaimMs > MAX_AGE_MS) return null;
    this.claimSeq = (this.claimSeq + 1) >>> 0;
    return { origin: this.bridge, seq: this.claimSeq, root: this.root, cost: this.rootCost, edges };
  }

  private edgeLive(l: LinkState, nowMs: number): boolean {
    return l.sessionSinceMs > 0 && l.peerRxMs > 0 && nowMs - l.peerRxMs <= EDGE_LIVE_MS;
  }

  /**
   * Whether a better bridge serves the stock peer behind edge link `l`: one that claims it with a
   * better vector (root, cost, bridge), or any claimant when we have no live session with it
   * ourselves. Records who claims it (status) and that it was ever contested (forward delay).
   */
  private edgeServedElsewhere(l: LinkState, nowMs: number): boolean {
    l.edgeClaimedBy = [];
    if (l.edgeId === null) return false;
    const live = this.edgeLive(l, nowMs);
    let better = false;
    for (const [key, e] of this.claims) {
      const c = e.c;
      let claims = false;
      for (const id of c.edges) if (id.equals(l.edgeId)) { claims = true; break; }
      if (!claims) continue;
      l.edgeClaimedBy.push(key);
      l.edgeContested = true;
      if (!live || cmpVector(c.root, c.cost, c.origin, 0, this.root, this.rootCost, this.bridge, 0) < 0) better = true;
    }
    return better;
  }

  private rootAlive(root: Buffer, nowMs: number): boolean {
    const s = this.seqSeen.get(root.toString('hex'));
    return s !== undefined && nowMs - s.atMs <= MAX_AGE_MS;
  }

  /** The hello to send now on every link (segments set `port` to their own number). */
  hello(): Hello {
    if (this.rootLink === null) this.rootSeq = (this.rootSeq + 1) >>> 0;
    return { root: this.root, cost: this.rootCost, bridge: this.bridge, rootSeq: this.rootSeq, port: 0, tc: this.tcCount };
  }

  /** Whether a hello offers a path to a live root other than through ourselves. */
  private offersRoot(h: Hello, nowMs: number): boolean {
    return !h.root.equals(this.bridge) && !h.bridge.equals(this.bridge) && this.rootAlive(h.root, nowMs);
  }

  /**
   * Recomputes roles and forwarding states; returns true when any link's `forwarding` changed.
   */
  recompute(links: readonly LinkState[], nowMs: number): boolean {
    let bestLink: LinkState | null = null;
    let bestRoot = this.bridge;
    let bestCost = 0;
    let bestBridge = this.bridge;
    let bestPort = 0;
    let bestSeq = 0;
    // A hello heard on `l` is a candidate root path when it leads to a live root not through us.
    const consider = (l: LinkState, r: Hello): void => {
      if (!this.offersRoot(r, nowMs)) return;
      if (cmpVector(r.root, r.cost + 1, r.bridge, r.port, bestRoot, bestCost, bestBridge, bestPort) < 0) {
        bestLink = l;
        bestRoot = r.root;
        bestCost = r.cost + 1;
        bestBridge = r.bridge;
        bestPort = r.port;
        bestSeq = r.rootSeq;
      }
    };
    let segmentListening = false;
    for (const [k, e] of this.claims) if (nowMs - e.atMs > MAX_AGE_MS) this.claims.delete(k);
    for (const l of links) {
      if (l.shared) {
        if (nowMs - l.upSinceMs < SEGMENT_LISTEN_MS) segmentListening = true;
        let best: Hello | null = null;
        for (const [k, e] of l.heard) {
          if (nowMs - e.atMs > MAX_AGE_MS) {
            l.heard.delete(k);
            continue;
          }
          const r = e.hello;
          if (best === null || cmpVector(r.root, r.cost, r.bridge, r.port, best.root, best.cost, best.bridge, best.port) < 0) best = r;
          consider(l, r);
        }
        l.remote = best;
        continue;
      }
      if (!l.heardBridge || nowMs - l.lastHelloMs > MAX_AGE_MS || l.remote === null) continue;
      consider(l, l.remote);
    }
    this.rootLink = bestLink;
    this.root = bestRoot;
    this.rootCost = bestCost;
    // Relay the count heard on the root port, never a fresher one heard elsewhere: a bridge cut off
    // from the root must go quiet (its count frozen) so that the bridges behind it see the path
    // die. Relaying the best count heard on any port would keep a dead path looking alive through
    // a neighbour that still hears the root another way (each relaying the other's count): after a
    // cut in a ring, a bridge would take that dead path as its root port for a moment, its
    // neighbour would block the link between them, and the far side would be cut off for a
    // forward delay more.
    if (bestLink !== null) this.rootSeq = bestSeq;
    let changed = false;
    for (const l of links) {
      let role: LinkRole;
      if (l.shared) {
        role = l === bestLink ? 'root' : this.designatedOnSegment(l, nowMs) ? 'designated' : 'blocked';
      } else if (!l.heardBridge) {
        if (l.sessionSinceMs > 0 && nowMs - l.sessionSinceMs >= EDGE_DETECT_MS) role = this.edgeServedElsewhere(l, nowMs) ? 'edge-blocked' : 'edge';
        else role = 'pending';
      } else if (nowMs - l.lastHelloMs > MAX_AGE_MS || l.remote === null) {
        role = 'down';
      } else if (l === bestLink) {
        role = 'root';
      } else {
        const r = l.remote;
        const ours = cmpVector(this.root, this.rootCost, this.bridge, 0, r.root, r.cost, r.bridge, 0) < 0;
        role = ours || !this.remoteRootOk(r, nowMs) ? 'designated' : 'blocked';
      }
      l.role = role;
      const want = role === 'root' || role === 'designated' || role === 'edge';
      let fwd = l.forwarding;
      if (!want) {
        fwd = false;
        l.wantForwardSinceMs = -1;
      } else if (!fwd) {
        if (l.wantForwardSinceMs < 0) l.wantForwardSinceMs = nowMs;
        if (role === 'edge' && !l.edgeContested) {
          // A stock peer no other bridge ever claimed: it cannot loop back into us, no delay.
          fwd = true;
        } else if (l.shared && !l.heardBridge) {
          // A segment where no other bridge was ever heard: nothing to wait for.
          fwd = true;
        } else if (nowMs - l.wantForwardSinceMs >= FORWARD_DELAY_MS) {
          // A peer link also waits until every segment has been listened to (see the header).
          fwd = l.shared || !segmentListening;
        }
      }
      if (fwd !== l.forwarding) {
        l.forwarding = fwd;
        changed = true;
      }
    }
    if (changed) {
      this.tcCount = (this.tcCount % 255) + 1;
      this.topologyChanged();
    }
    return changed;
  }

  private remoteRootOk(r: Hello, nowMs: number): boolean {
    return r.root.equals(this.bridge) || r.root.equals(this.root) || this.rootAlive(r.root, nowMs);
  }

  /** 802.1D on a shared medium: designated when our vector beats every bridge port heard there. */
  private designatedOnSegment(l: LinkState, nowMs: number): boolean {
    for (const e of l.heard.values()) {
      const r = e.hello;
      if (!this.remoteRootOk(r, nowMs)) continue;
      if (cmpVector(this.root, this.rootCost, this.bridge, l.segmentPort, r.root, r.cost, r.bridge, r.port) >= 0) return false;
    }
    return true;
  }
}
