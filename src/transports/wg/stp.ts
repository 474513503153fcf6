/**
 * Loop prevention across peer links and shared segments: a small spanning tree (802.1D's election,
 * RSTP-like timers). Read IEEE 802.1D-2004 §17.4-17.6 (priority vectors) for the idea; the
 * messages are our own.
 *
 * Why a spanning tree: split horizon over a full mesh (never forward peer → peer) is the simplest
 * loop-free rule, but it cannot relay, so a partial mesh (A-B, B-C, no A-C) would leave A and C
 * apart. Link-state routing of MACs would give shortest paths, but needs flooding of link state
 * and per-destination trees; for a LAN of a few sites one tree is enough. Each peer link is a
 * switch port; a port the tree blocks is taken out of the switch (its MACs flushed), so the switch
 * itself stays loop-unaware.
 *
 *   hello (every HELLO_MS, inside the tunnel to LINK_CONTROL_PORT, or on a shared segment):
 *     "LPST" ver(1)=1 tc(1) port(2) root(8) cost(4) bridge(8) rootSeq(4) = 32 bytes
 *   (`tc` was a flags byte that every version wrote as 0 and ignored; see "Topology changes".)
 *   bridge id = first 8 bytes of BLAKE2s(public key); lowest id is the root. `port` is the
 *   sender's segment port number (0 on peer links; older senders wrote 0 there as "reserved").
 *   Port roles: root (best path to the root), designated (we are the better way onto that link),
 *   blocked (neither), edge (a peer that never sends hellos: a stock WireGuard host; forwarding),
 *   edge-blocked (such a peer that another lanparty serves: see "Stock hosts" below).
 *
 * Failure and healing: the root counts `rootSeq` up on each hello and every bridge relays the
 * count it heard on its root port; a root whose count stops advancing for MAX_AGE_MS is dead and
 * its stale advertisements are ignored (no count-to-infinity). A link silent for MAX_AGE_MS is
 * down. A port becomes forwarding only after FORWARD_DELAY_MS in a forwarding role, so the other
 * end has heard the change first (no transient loop); blocking is immediate. Worst-case healing:
 * MAX_AGE_MS + FORWARD_DELAY_MS + one hello per hop from the cut to the blocked link, about 6 s in
 * a ring of five (test/unit/transports/wg-stp.test.ts runs every cut with the bridges out of phase).
 *
 * Topology changes: when a port of ours starts or stops forwarding, the way to some hosts may
 * have moved, and a switch that keeps a learned MAC pointing the old way sends a quiet host's
 * frames into a dead end until it speaks again (or for the 300 s ageing time). So every bridge
 * flushes its learned MACs (the switch floods until they are heard again), as RSTP does, and
 * tells the others: a change increments our topology-change count, carried in every hello
 * (1-255, wrapping; 0 means none), and a bridge that hears a newer count (ahead by 1-127 on the
 * ring) adopts it and flushes too, so the count spreads over the tree and each bridge flushes
 * once per change it hears of. Left open: two changes on two bridges within one hello can give
 * the same count, so a bridge may flush once for both (both usually land within that hello).
 * Counts heard on a group are not authenticated: a forged one causes a flush, i.e. flooding.
 *
 * Shared segments (issue 9): several lanparty instances on one site may join the same QEMU
 * multicast group and each have peer links; the path A1 ↔ group ↔ A2 is then a loop the peer links
 * alone cannot see. The group takes part in the tree as 802.1D's shared LAN segment: every bridge
 * sends its hello onto the group as an Ethernet frame (transports/segment.ts: destination
 * 01:80:C2:00:00:00, the STP group address that 802.1D bridges never forward and an STP-less
 * bridge floods like a hub would, ethertype 0x88B6, IEEE local experimental). A segment port keeps
 * the latest hello of every bridge (and port) heard on it, each aged by MAX_AGE_MS; the best of
 * them is the segment's designated bridge. Our segment port is the root port if that is our best
 * way to the root, designated if our vector (root, cost, bridge, port) beats every one heard,
 * else blocked. Unlike 802.1D, where only designated ports send, every bridge sends on every
 * segment, blocked or not (as on peer links): each sees all the others, a blocked bridge's path is
 * known before the designated one fails, and stale paths through ourselves age out with rootSeq.
 * A blocked segment port leaves the switch entirely, local QEMU guests on the group
 * included: as in 802.1D the segment is reached through its designated bridge, so A2's other
 * ports still reach the group through B and A1.
 *   Who takes part: the tree belongs to the wg transport; without peer links there is no tree,
 * no hello on the group, and tree frames from the group are ordinary frames (an STP-less bridge
 * is transparent to them, as 802.1D expects). A lone lanparty must forward from the first frame:
 * a segment port on which no other bridge was ever heard forwards at once; the forward delay
 * applies only after some bridge was heard there (it guards the blocked → forwarding change when
 * the designated bridge goes silent but might be alive). The transient loop this allows (A2 joins
 * while A1 forwards between the group and its links) needs A2's peer links forwarding too, so
 * peer links do not start forwarding until every segment has been listened to for
 * SEGMENT_LISTEN_MS (= MAX_AGE_MS: a bridge silent that long is gone anyway). Peer links need a
 * handshake, hellos and FORWARD_DELAY_MS anyway, so this rarely delays them. Left open: two halves
 * of a partitioned group that rejoin while both forward loop until the next hello (≤ HELLO_MS),
 * as two 802.1D segments joined by a hub would.
 *   Trust: hellos on the group are not authenticated (any guest can send one, as with real STP
 * BPDUs). A forged hello acts as one more bridge on the group: it can make the tree suboptimal or,
 * changed often, flap it (outages of up to MAX_AGE_MS + FORWARD_DELAY_MS); a guest that can send
 * frames can flood the LAN anyway. Tree frames arriving from any other port are never sent onto a group (we are an 802.1D
 * bridge for them), so a guest elsewhere cannot forge hellos on a remote site's group. A group with
 * untrusted guests and no other lanparty on it can be kept out of the tree (`mcast://…?stp=0`);
 * then nothing guards against a loop through it, which is why it is not the default.
 *
 * Stock hosts on several lanparty instances (issue 9): a stock host S (wireguard-go or kernel
 * WireGuard, one vxlan device with head-end replication to each lanparty's tunnel address, a
 * bridge) sends no hellos, so each lanparty it peers with sees an edge port. Peered with A and B
 * that are also linked, both forwarded: a broadcast from S arrived at A directly and again through
 * B, and A's frames reached S twice (via A, and via B), flapping S's and our MAC tables. S's vxlan
 * device never relays between its remotes (a frame from one VTEP goes up to its bridge, which
 * never sends it back out the port it came in on), so this duplicates rather than storms; but a
 * host whose bridge has one vxlan device per remote, or that routes between them, would loop.
 *   S is, for the tree, one more shared segment, whose members are the lanparty instances with a
 * session to it, and 802.1D's answer holds: exactly one bridge, the designated one (best root
 * vector: root, root path cost, bridge id), forwards onto the segment, the others block their
 * port. The difference is that the members cannot hear one another on it (S relays nothing, and
 * speaks no protocol of ours), so what 802.1D learns from BPDUs on the segment travels through the
 * tree instead: every bridge sends, each HELLO_MS, a claims message
 *     "LPSE" ver(1)=1 count(1) reserved(2) origin(8) seq(4) root(8) cost(4) edge id(8) × count
 * (at most CLAIMS_MAX_EDGES ids; 32 + 8 × count bytes) listing the stock peers it has a live
 * session with, each by its edge id (the first 8 bytes of BLAKE2s of its public key, like a bridge
 * id: public keys are not secret, the hash only keeps it short). Every bridge keeps the latest
 * claims per origin (at most CLAIMS_MAX_ORIGINS, aged by MAX_AGE_MS) and relays a message it had
 * not seen (its origin's seq advanced) on every other tree port, blocked ones included, as hellos
 * go: so claims cross any path of lanparty links and segments, and the flood ends because nobody
 * relays a seq twice. An edge port is then 'edge' (forwarding) when no other bridge claims its
 * peer or ours is the best vector among the claimants, else 'edge-blocked': out of the switch as a
 * blocked port is, both ways. S keeps its WireGuard sessions with every lanparty; only frames are
 * suppressed, so B drops what S's head-end replication sends it, and S learns every MAC behind
 * the LAN at the forwarding bridge's tunnel address.
 *   Live session: an authenticated packet from S within EDGE_LIVE_MS (= MAX_AGE_MS, the loss a
 * peer link's hellos may have). S answers nothing of ours by itself, so lanparty sends each peer
 * that never sent a hello an ICMP echo request to its tunnel address every HELLO_MS (inner.ts);
 * its kernel's reply keeps the session live. A bridge with no live session withdraws its claim
 * (empty claims go out for MAX_AGE_MS after the last one, then nothing) and blocks as soon as
 * anyone else claims the peer; if nobody claims it, every edge port to it forwards as before, so
 * a stock host that answers no ping is duplicated rather than cut off.
 *   Healing: when the forwarding bridge dies its claims age out (MAX_AGE_MS), when it loses S
 * they are withdrawn (within a HELLO_MS); the next best claimant then forwards after
 * FORWARD_DELAY_MS, as a blocked port becoming designated does, because the old forwarder may
 * still be forwarding (claims lost, not withdrawn) and must hear of the change first. Blocking is
 * immediate. Worst case MAX_AGE_MS + FORWARD_DELAY_MS + one hello, as for peer links. S's own
 * table is S's: its vxlan device learns each MAC at the tunnel address its frames came from, so
 * after a takeover it moves a MAC to the new bridge when a frame from that MAC arrives; until then
 * S's unicast to it goes to the old bridge (dropped there, or lost with it), which for a host that
 * never sends lasts until S's fdb entry ages (300 s by default). Broadcasts are unaffected (head-end
 * replication reaches every bridge). A stock host that cannot accept that runs its vxlan device
 * with `nolearning`: every frame then goes to every bridge and the forwarding one alone takes it.
 * Announcing the MACs to S on a takeover (frames from each learned MAC, as a bond sends gratuitous
 * ARPs) would close this, but needs the switch's MAC table in the transport: left open.
 * Claims are sent while the peer is still 'pending', so when two bridges detect S at once each
 * already knows the other's claim. A lone lanparty with a stock peer forwards at once, as before:
 * the forward delay applies only to an edge whose peer another bridge has ever claimed. If A and B
 * lose their link (and every other path), each stops hearing the other's claims and both forward:
 * right, since S is then the only thing both reach. Left open: vectors in claims are up to a hello
 * old, so during a reconvergence two bridges may briefly disagree on the best; the forward delay
 * covers that as it covers 802.1D's. Claims relayed from a multicast group are not authenticated:
 * a guest there who knows S's public key could claim S with a better vector and cut S off (an
 * outage, as a forged hello can cause); `stp=0` keeps such a group out of the tree.
 *   Compatibility: the hello is unchanged; claims are a separate message, because the 32-byte
 * hello decoder of earlier versions refuses any other length, and a hello with claims appended
 * would make such a peer drop all our hellos and take us for a stock host (an edge, forwarding: a
 * loop). Earlier versions drop claims as an unknown control message (and on a group, read the
 * first 32 bytes, whose magic differs), and keep forwarding their edges as before.
 */
import { hash } from '../../crypto/index.js';

/**
 * Six hellos per MAX_AGE_MS: with the 100 ms tick's jitter a link survives four hellos lost in a
 * row, so a lossy path (5% per crossing: one in 160,000 hellos starts such a run) does not flap
 * the tree. At one hello per second two lost hellos took a link down for MAX_AGE_MS +
 * FORWARD_DELAY_MS (issue 9's three-site test caught it in CI). Healing time depends on
 * MAX_AGE_MS, not on this.
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

/** `edge-blocked`: a stock peer that another lanparty in the tree serves (see "Stock hosts" above). */
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
 * ports. `tc`: the topology-change count (1-255, 0 from senders that predate it); see "Topology
 * changes".
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
    // die. Relaying the best count heard on any port kept a dead path looking alive through a
    // neighbour that still hears the root another way (each relaying the other's count): after a
    // cut in a ring, a bridge took that dead path as its root port for a moment, its neighbour
    // blocked the link between them, and the far side was cut off for a forward delay more.
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
