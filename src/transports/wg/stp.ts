/**
 * Loop prevention across peer links: a small spanning tree (802.1D's election, RSTP-like timers).
 * Read IEEE 802.1D-2004 §17.4-17.6 (priority vectors) for the idea; the messages are our own.
 *
 * Why a spanning tree: split horizon over a full mesh (never forward peer → peer) is the simplest
 * loop-free rule, but it cannot relay, so a partial mesh (A-B, B-C, no A-C) would leave A and C
 * apart. Link-state routing of MACs would give shortest paths, but needs flooding of link state
 * and per-destination trees; for a LAN of a few sites one tree is enough. Each peer link is a
 * switch port; a port the tree blocks is taken out of the switch (its MACs flushed), so the switch
 * itself stays loop-unaware.
 *
 *   hello (every HELLO_MS, inside the tunnel to LINK_CONTROL_PORT):
 *     "LPST" ver(1)=1 flags(1) reserved(2) root(8) cost(4) bridge(8) rootSeq(4) = 32 bytes
 *   bridge id = first 8 bytes of BLAKE2s(public key); lowest id is the root.
 *   Port roles: root (best path to the root), designated (we are the better way onto that link),
 *   blocked (neither), edge (a peer that never sends hellos: a stock WireGuard host; forwarding).
 *
 * Failure and healing: the root counts `rootSeq` up on each hello and every bridge relays the
 * count it heard on its root port; a root whose count stops advancing for MAX_AGE_MS is dead and
 * its stale advertisements are ignored (no count-to-infinity). A link silent for MAX_AGE_MS is
 * down. A port becomes forwarding only after FORWARD_DELAY_MS in a forwarding role, so the other
 * end has heard the change first (no transient loop); blocking is immediate. Worst-case healing:
 * MAX_AGE_MS + FORWARD_DELAY_MS + one hello, about 6 s.
 */
import { hash } from '../../crypto/index.js';

export const HELLO_MS = 1000;
export const MAX_AGE_MS = 3000;
export const FORWARD_DELAY_MS = 2000;
/** A peer with a session that sent no hello for this long is a stock host: an edge port. */
export const EDGE_DETECT_MS = 3000;
export const HELLO_BYTES = 32;
const MAGIC = 0x4c505354; // "LPST"

export type LinkRole = 'pending' | 'edge' | 'root' | 'designated' | 'blocked' | 'down';

export function bridgeIdOf(publicKey: Uint8Array): Buffer {
  return hash(publicKey).subarray(0, 8);
}

export interface Hello { root: Buffer; cost: number; bridge: Buffer; rootSeq: number }

export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b[4] = 1;
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
  };
}

export class LinkState {
  role: LinkRole = 'pending';
  forwarding = false;
  /** When the link first entered a forwarding role without forwarding yet (-1: not waiting). */
  wantForwardSinceMs = -1;
  heardBridge = false;
  lastHelloMs = -Infinity;
  remote: Hello | null = null;
  /** Device-clock ms when the peer first had a usable session (a current keypair; 0: none yet). */
  sessionSinceMs = 0;
  helloRx = 0;
  constructor(readonly name: string) {}
}

function cmpVector(rootA: Buffer, costA: number, bridgeA: Buffer, rootB: Buffer, costB: number, bridgeB: Buffer): number {
  return Buffer.compare(rootA, rootB) || costA - costB || Buffer.compare(bridgeA, bridgeB);
}

export class SpanningTree {
  root: Buffer;
  rootCost = 0;
  rootSeq = 0;
  rootLink: LinkState | null = null;
  /** Per root id (hex): the highest rootSeq heard and when it last advanced. */
  private readonly seqSeen = new Map<string, { seq: number; atMs: number }>();

  constructor(readonly bridge: Buffer) {
    this.root = bridge;
  }

  /** Records a hello heard on `link` (already authenticated by the tunnel). */
  onHello(link: LinkState, h: Hello, nowMs: number): void {
    link.heardBridge = true;
    link.lastHelloMs = nowMs;
    link.remote = h;
    link.helloRx++;
    const k = h.root.toString('hex');
    const s = this.seqSeen.get(k);
    // Sequence numbers compare with wraparound (RFC 1982 style).
    if (s === undefined || ((h.rootSeq - s.seq) | 0) > 0) this.seqSeen.set(k, { seq: h.rootSeq, atMs: nowMs });
  }

  private rootAlive(root: Buffer, nowMs: number): boolean {
    const s = this.seqSeen.get(root.toString('hex'));
    return s !== undefined && nowMs - s.atMs <= MAX_AGE_MS;
  }

  /** The hello to send now on every link. */
  hello(): Hello {
    if (this.rootLink === null) this.rootSeq = (this.rootSeq + 1) >>> 0;
    return { root: this.root, cost: this.rootCost, bridge: this.bridge, rootSeq: this.rootSeq };
  }

  /**
   * Recomputes roles and forwarding states; returns true when any link's `forwarding` changed.
   */
  recompute(links: readonly LinkState[], nowMs: number): boolean {
    let bestLink: LinkState | null = null;
    let bestRoot = this.bridge;
    let bestCost = 0;
    let bestBridge = this.bridge;
    for (const l of links) {
      if (!l.heardBridge || nowMs - l.lastHelloMs > MAX_AGE_MS || l.remote === null) continue;
      const r = l.remote;
      if (!r.root.equals(this.bridge) && !this.rootAlive(r.root, nowMs)) continue;
      if (r.root.equals(this.bridge)) continue; // A path back to ourselves is no path to the root.
      if (cmpVector(r.root, r.cost + 1, r.bridge, bestRoot, bestCost, bestBridge) < 0) {
        bestLink = l;
        bestRoot = r.root;
        bestCost = r.cost + 1;
        bestBridge = r.bridge;
      }
    }
    this.rootLink = bestLink;
    this.root = bestRoot;
    this.rootCost = bestCost;
    if (bestLink !== null) {
      const s = this.seqSeen.get(bestRoot.toString('hex'));
      this.rootSeq = s ? s.seq : 0;
    }
    let changed = false;
    for (const l of links) {
      let role: LinkRole;
      if (!l.heardBridge) {
        role = l.sessionSinceMs > 0 && nowMs - l.sessionSinceMs >= EDGE_DETECT_MS ? 'edge' : 'pending';
      } else if (nowMs - l.lastHelloMs > MAX_AGE_MS || l.remote === null) {
        role = 'down';
      } else if (l === bestLink) {
        role = 'root';
      } else {
        const r = l.remote;
        const remoteRootOk = r.root.equals(this.bridge) || r.root.equals(this.root) || this.rootAlive(r.root, nowMs);
        const ours = cmpVector(this.root, this.rootCost, this.bridge, r.root, r.cost, r.bridge) < 0;
        role = ours || !remoteRootOk ? 'designated' : 'blocked';
      }
      l.role = role;
      const want = role === 'root' || role === 'designated' || role === 'edge';
      let fwd = l.forwarding;
      if (!want) {
        fwd = false;
        l.wantForwardSinceMs = -1;
      } else if (!fwd) {
        if (l.wantForwardSinceMs < 0) l.wantForwardSinceMs = nowMs;
        // Edge ports face a host that cannot loop back into us: no delay.
        if (role === 'edge' || nowMs - l.wantForwardSinceMs >= FORWARD_DELAY_MS) fwd = true;
      }
      if (fwd !== l.forwarding) {
        l.forwarding = fwd;
        changed = true;
      }
    }
    return changed;
  }
}
