/**
 * Stock hosts peered with several lanparty instances (docs/tree.md, "Stock hosts"), simulated: bridges
 * exchange hellos and claims every HELLO_MS over peer links (claims relayed once, as WgTransport
 * does), and each stock host is a set of edge links whose peer answers probes while alive. For
 * each stock host exactly one bridge may forward its edge port, never two at once (after the
 * first election), and the others must take over within MAX_AGE_MS + FORWARD_DELAY_MS + a hello.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLAIMS_HEADER_BYTES, CLAIMS_MAX_EDGES, CLAIMS_MAX_ORIGINS, EDGE_DETECT_MS, FORWARD_DELAY_MS, HELLO_BYTES, HELLO_MS, LinkState, MAX_AGE_MS,
  SpanningTree, decodeEdgeClaims, decodeHello, encodeEdgeClaims, encodeHello, type EdgeClaims,
} from '../../../src/transports/wg/stp.js';

const id = (i: number) => Buffer.from([0, 0, 0, 0, 0, 0, 0, i]);
const stockId = (i: number) => Buffer.from([0xee, 0, 0, 0, 0, 0, 0, i]);

test('claims: round trip, exact length in the tunnel, padding on a segment, hellos and claims never mistaken for each other', () => {
  const c: EdgeClaims = { origin: id(3), seq: 0xfffffffe, root: id(1), cost: 2, edges: [stockId(1), stockId(2)] };
  const b = encodeEdgeClaims(c);
  assert.equal(b.length, CLAIMS_HEADER_BYTES + 16);
  assert.equal(b.subarray(0, 8).toString('hex'), '4c50534501020000');
  assert.deepEqual(decodeEdgeClaims(b, 0, b.length), c);
  assert.equal(decodeEdgeClaims(b, 0, b.length - 1), null, 'one byte short');
  assert.equal(decodeEdgeClaims(Buffer.concat([b, Buffer.alloc(1)]), 0, b.length + 1), null, 'one byte long in the tunnel');
  assert.deepEqual(decodeEdgeClaims(Buffer.concat([b, Buffer.alloc(10)]), 0, b.length + 10, true), c, 'frame padding on a segment');
  const v2 = Buffer.from(b);
  v2[4] = 2;
  assert.equal(decodeEdgeClaims(v2, 0, v2.length), null, 'a later version is refused');
  const tooMany = Buffer.alloc(CLAIMS_HEADER_BYTES + 8 * (CLAIMS_MAX_EDGES + 1));
  b.copy(tooMany, 0, 0, 8);
  tooMany[5] = CLAIMS_MAX_EDGES + 1;
  assert.equal(decodeEdgeClaims(tooMany, 0, tooMany.length), null, 'over the bound');
  // The hello decoder refuses claims (magic, and length in the tunnel), even their first 32 bytes,
  // so a peer that reads only hellos drops them.
  assert.equal(decodeHello(b, 0, b.length), null);
  assert.equal(decodeHello(b, 0, HELLO_BYTES), null);
  const hello = encodeHello({ root: id(1), cost: 0, bridge: id(1), rootSeq: 5, port: 0 });
  assert.equal(decodeEdgeClaims(hello, 0, hello.length), null);
  // At most CLAIMS_MAX_EDGES ids go out.
  const many = encodeEdgeClaims({ ...c, edges: Array.from({ length: 40 }, (_, i) => stockId(i)) });
  assert.equal(many.length, CLAIMS_HEADER_BYTES + 8 * CLAIMS_MAX_EDGES);
});

interface Stock { alive: boolean; members: number[]; cut: Set<number> }

/**
 * `ids[i]`: bridge i's id byte; `links`: lanparty peer links; `stocks`: for each stock host, the
 * bridges it peers with. Sessions start at `sessionAtMs` (all at once unless `startAt` says).
 */
function sim(ids: number[], links: Array<[number, number]>, stocks: number[][], startAt: number[] = []) {
  const n = ids.length;
  const trees = ids.map((x) => new SpanningTree(id(x)));
  const p2p = Array.from({ length: n }, () => new Map<number, LinkState>());
  for (const [a, b] of links) {
    p2p[a].set(b, new LinkState(`${a}-${b}`));
    p2p[b].set(a, new LinkState(`${b}-${a}`));
  }
  const st: Stock[] = stocks.map((members) => ({ alive: true, members, cut: new Set() }));
  /** edge[s].get(bridge) = the bridge's link to stock host s */
  const edge = stocks.map((members, s) => new Map(members.map((b) => {
    const l = new LinkState(`${b}-S${s}`);
    l.edgeId = stockId(s);
    return [b, l] as [number, LinkState];
  })));
  const dead = new Set<number>();
  const down = new Set<string>();
  const linkUp = (a: number, b: number) => !dead.has(a) && !dead.has(b) && !down.has(`${a}-${b}`) && !down.has(`${b}-${a}`);
  let now = 0;
  let claimMessages = 0;
  const allLinks = (a: number) => [...p2p[a].values(), ...edge.flatMap((m) => (m.has(a) ? [m.get(a)!] : []))];
  const step = () => {
    now += HELLO_MS;
    // Stock sessions: a session once the bridge starts; the peer answers probes while alive and not cut.
    edge.forEach((m, s) => {
      for (const [b, l] of m) {
        if (dead.has(b) || now < (startAt[b] ?? 0)) continue;
        if (l.sessionSinceMs === 0) l.sessionSinceMs = now;
        if (st[s].alive && !st[s].cut.has(b)) l.peerRxMs = now;
      }
    });
    const hellos = trees.map((t) => encodeHello(t.hello()));
    for (let a = 0; a < n; a++) {
      if (dead.has(a) || now < (startAt[a] ?? 0)) continue;
      for (const [b] of p2p[a]) if (linkUp(a, b) && now >= (startAt[b] ?? 0)) trees[b].onHello(p2p[b].get(a)!, decodeHello(hellos[a], 0, HELLO_BYTES)!, now);
    }
    // Claims: originated by each bridge, relayed hop by hop while new (a flood), through encode/decode.
    const queue: Array<{ to: number; from: number; msg: Buffer }> = [];
    for (let a = 0; a < n; a++) {
      if (dead.has(a) || now < (startAt[a] ?? 0)) continue;
      const c = trees[a].edgeClaims(allLinks(a), now);
      if (c === null) continue;
      const msg = encodeEdgeClaims(c);
      for (const [b] of p2p[a]) if (linkUp(a, b)) queue.push({ to: b, from: a, msg });
    }
    while (queue.length > 0) {
      const { to, from, msg } = queue.shift()!;
      claimMessages++;
      if (now < (startAt[to] ?? 0)) continue;
      const c = decodeEdgeClaims(msg, 0, msg.length)!;
      if (!trees[to].onEdgeClaims(c, now)) continue;
      for (const [b] of p2p[to]) if (b !== from && linkUp(to, b)) queue.push({ to: b, from: to, msg });
    }
    for (let a = 0; a < n; a++) if (!dead.has(a)) trees[a].recompute(allLinks(a), now);
  };
  /** Bridges forwarding their edge port to stock host s. */
  const forwarders = (s: number) => [...edge[s]].filter(([b, l]) => !dead.has(b) && l.forwarding).map(([b]) => b);
  return { trees, p2p, edge, st, dead, down, step, forwarders, now: () => now, claimMessages: () => claimMessages };
}

/** Runs `k` steps, asserting at each that at most one bridge forwards to each stock host (after step `from`). */
function runChecked(s: ReturnType<typeof sim>, k: number, stocks: number, from = 0): void {
  for (let i = 0; i < k; i++) {
    s.step();
    if (i < from) continue;
    for (let x = 0; x < stocks; x++) assert.ok(s.forwarders(x).length <= 1, `at ${s.now()} ms stock ${x} forwarded by ${s.forwarders(x)}`);
  }
}

const A = 0, B = 1, C = 2;
/** Steps (hellos) per second: the counts below are in seconds. */
const PER_S = 1000 / HELLO_MS;

test('a lone lanparty with one stock peer: edge and forwarding as soon as the edge is detected, no delay', () => {
  const s = sim([1], [], [[A]]);
  let firstFwd = -1;
  for (let i = 0; i < 10 * PER_S && firstFwd < 0; i++) {
    s.step();
    if (s.edge[0].get(A)!.forwarding) firstFwd = s.now();
  }
  // The session starts at the first step (HELLO_MS); the edge is detected EDGE_DETECT_MS later.
  assert.equal(firstFwd, HELLO_MS + EDGE_DETECT_MS);
  assert.equal(s.edge[0].get(A)!.role, 'edge');
  assert.equal(s.edge[0].get(A)!.edgeContested, false);
});

test('A-B linked, S peered with both: exactly one forwards for S (the root, best vector), never both, the other is edge-blocked', () => {
  const s = sim([1, 2], [[A, B]], [[A, B]]);
  runChecked(s, 12 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
  assert.equal(s.edge[0].get(A)!.role, 'edge');
  assert.equal(s.edge[0].get(B)!.role, 'edge-blocked');
  assert.deepEqual(s.edge[0].get(B)!.edgeClaimedBy, [id(1).toString('hex')]);
  assert.deepEqual(s.edge[0].get(A)!.edgeClaimedBy, [id(2).toString('hex')]);
  // Both know the other claims S, so neither waited "as a lone instance": the pending-phase claims did it.
  assert.ok(s.edge[0].get(A)!.edgeContested && s.edge[0].get(B)!.edgeContested);
  // The A-B link still forwards (the tree is untouched by edges).
  assert.ok(s.p2p[A].get(B)!.forwarding && s.p2p[B].get(A)!.forwarding);
});

test('the election follows the root path cost, not the id alone: C (root) - A, C - B, S on A and B, A closer to the root wins', () => {
  // Ids: C=1 (root), A=2, B=3; links C-A, C-B, A-B. A and B both have cost 1; tie on cost → lower id A.
  const s = sim([2, 3, 1], [[A, C], [B, C], [A, B]], [[A, B]]);
  runChecked(s, 12 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
  // Chain C(root) - B - A (no C-A): B has cost 1, A cost 2: B wins despite the higher id.
  const t = sim([2, 3, 1], [[B, C], [A, B]], [[A, B]]);
  runChecked(t, 12 * PER_S, 1);
  assert.deepEqual(t.forwarders(0), [B]);
});

test('claims cross a bridge that has no session to S: A - C - B chain, S on A and B, one forwards', () => {
  const s = sim([1, 3, 2], [[A, C], [C, B]], [[A, B]]);
  runChecked(s, 12 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
  assert.equal(s.edge[0].get(B)!.role, 'edge-blocked');
});

test('the forwarding bridge dies: the other forwards within MAX_AGE_MS + FORWARD_DELAY_MS + a hello, never both', () => {
  const s = sim([1, 2], [[A, B]], [[A, B]]);
  runChecked(s, 12 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
  const killedAt = s.now();
  s.dead.add(A);
  let tookOver = -1;
  for (let i = 0; i < 10 * PER_S && tookOver < 0; i++) {
    runChecked(s, 1, 1);
    if (s.forwarders(0).includes(B)) tookOver = s.now();
  }
  assert.ok(tookOver > 0, 'B took over');
  const healMs = tookOver - killedAt;
  assert.ok(healMs >= FORWARD_DELAY_MS && healMs <= MAX_AGE_MS + FORWARD_DELAY_MS + HELLO_MS, `healed in ${healMs} ms`);
  // A comes back: it is better again; B blocks at once, A forwards after the forward delay.
  s.dead.delete(A);
  runChecked(s, 12 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
});

test('the forwarding bridge loses its session to S (S cut off from it): it blocks, the other takes over, never both', () => {
  const s = sim([1, 2], [[A, B]], [[A, B]]);
  runChecked(s, 12 * PER_S, 1);
  const cutAt = s.now();
  s.st[0].cut.add(A);
  let tookOver = -1;
  for (let i = 0; i < 10 * PER_S && tookOver < 0; i++) {
    runChecked(s, 1, 1);
    if (s.forwarders(0).includes(B)) tookOver = s.now();
  }
  const healMs = tookOver - cutAt;
  assert.ok(tookOver > 0 && healMs <= MAX_AGE_MS + FORWARD_DELAY_MS + HELLO_MS, `healed in ${healMs} ms`);
  assert.equal(s.edge[0].get(A)!.role, 'edge-blocked', 'A: S not live, B claims it');
  // S back on A: A is the better claimant again.
  s.st[0].cut.delete(A);
  runChecked(s, 8 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
});

test('A and B lose their link (no other path): each stops hearing the other and both forward, S being all they share', () => {
  const s = sim([1, 2], [[A, B]], [[A, B]]);
  runChecked(s, 12 * PER_S, 1);
  s.down.add('0-1');
  s.step();
  for (let i = 0; i < 8 * PER_S; i++) s.step();
  assert.deepEqual(s.forwarders(0).sort(), [A, B]);
  // Link back: B blocks again.
  s.down.clear();
  runChecked(s, 2 * PER_S, 1);
  for (let i = 0; i < 6 * PER_S; i++) s.step();
  assert.deepEqual(s.forwarders(0), [A]);
});

test('a stock host dead for everyone: nobody claims it, every edge port forwards (nothing cut off when it returns)', () => {
  const s = sim([1, 2], [[A, B]], [[A, B]]);
  runChecked(s, 12 * PER_S, 1);
  s.st[0].alive = false;
  for (let i = 0; i < 10 * PER_S; i++) s.step();
  assert.deepEqual(s.forwarders(0).sort(), [A, B]);
  assert.equal(s.trees[A].claims.size, 0, 'claims withdrawn, then no longer sent');
  s.st[0].alive = true;
  runChecked(s, 1, 1);
  runChecked(s, 6 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
});

test('B starts while A already serves S alone: A keeps forwarding, B comes up edge-blocked, never both', () => {
  const s = sim([1, 2], [[A, B]], [[A, B]], [0, 8000]);
  runChecked(s, 20 * PER_S, 1);
  assert.deepEqual(s.forwarders(0), [A]);
  // And the other way: a better bridge joins late; the incumbent blocks at once, the newcomer waits.
  const t = sim([2, 1], [[A, B]], [[A, B]], [0, 8000]);
  runChecked(t, 20 * PER_S, 1);
  assert.deepEqual(t.forwarders(0), [B]);
});

test('several stock hosts, each elected on its own; the flood is bounded (each claim crosses each link at most twice)', () => {
  // Triangle of lanparty bridges; S0 on A and B, S1 on B and C, S2 on all three.
  const s = sim([1, 2, 3], [[A, B], [B, C], [A, C]], [[A, B], [B, C], [A, B, C]]);
  runChecked(s, 14, 3);
  assert.deepEqual(s.forwarders(0), [A]);
  assert.deepEqual(s.forwarders(1), [B]);
  assert.deepEqual(s.forwarders(2), [A]);
  // 3 origins × 3 links × 2 directions per step at most: an originated claim crosses each link once
  // each way, relays included.
  assert.ok(s.claimMessages() <= 14 * 3 * 3 * 2, `${s.claimMessages()} claim messages`);
});

test('the claims table is bounded: origins past CLAIMS_MAX_ORIGINS are ignored and counted', () => {
  const t = new SpanningTree(id(1));
  for (let i = 0; i < CLAIMS_MAX_ORIGINS + 5; i++) {
    const o = Buffer.alloc(8);
    o.writeUInt32BE(i + 100, 4);
    t.onEdgeClaims({ origin: o, seq: 1, root: id(1), cost: 1, edges: [stockId(1)] }, 1000);
  }
  assert.equal(t.claims.size, CLAIMS_MAX_ORIGINS);
  assert.equal(t.claimsFull, 5);
  // Our own claims flooded back, and repeats, are not new (the flood ends).
  assert.equal(t.onEdgeClaims({ origin: id(1), seq: 9, root: id(1), cost: 0, edges: [] }, 1000), false);
  const o = Buffer.alloc(8);
  o.writeUInt32BE(100, 4);
  assert.equal(t.onEdgeClaims({ origin: o, seq: 1, root: id(1), cost: 1, edges: [] }, 1500), false);
  assert.equal(t.onEdgeClaims({ origin: o, seq: 2, root: id(1), cost: 1, edges: [] }, 1500), true);
  // Aged out, then the origin restarts with seq 1: accepted again.
  t.recompute([], 1500 + MAX_AGE_MS + 1);
  assert.equal(t.onEdgeClaims({ origin: o, seq: 1, root: id(1), cost: 1, edges: [] }, 1500 + MAX_AGE_MS + 2), true);
});
