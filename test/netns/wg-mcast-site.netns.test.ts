/*
 * Shared segments: two lanparty instances a1 and a2 on one site join the same QEMU
 * multicast group and both have a peer link to site b. The path a1 ↔ group ↔ a2 closes a loop the
 * peer links cannot see; the group takes part in the spanning tree as a shared segment (hellos as
 * Ethernet frames on the group, transports/wg/stp.ts). Keys are chosen so that b is the root and
 * a1 beats a2: a2's group port must be the one blocked, and take over when a1 dies.
 *
 *                     group 239.77.0.1:35000 on the site LAN (sa1 ↔ sa2, 224.0.0.0/4 routed there)
 *   netns …-a1                                   netns …-a2
 *   ┌──────────────────────────┐ sa1 10.60.0.1   ┌──────────────────────────┐
 *   │ lanparty a1              ├─────────────────┤ lanparty a2              │
 *   │  mcast://239.77.0.1:35000│     10.60.0.2 sa2│  mcast://239.77.0.1:35000│
 *   │  unix://…/s.sock         │                 │  unix://…/s.sock ◄─ test (ca2)
 *   │  [wg] tunnel 10.99.0.1   │                 │  [wg] tunnel 10.99.0.2   │
 *   │ group client g ◄─ test   │                 │                          │
 *   │ va1 10.50.1.2 ───────────┼──┐           ┌──┼─ va2 10.50.2.2           │
 *   └──────────────────────────┘  │  router r │  └──────────────────────────┘
 *                                 └─ ra1  ra2 ┘
 *                                      rb 10.50.3.1 ── vb 10.50.3.2: netns …-b, lanparty b
 *                                      (unix://…/s.sock ◄─ test (cb)), tunnel 10.99.0.3, peers a1, a2
 *
 * "g" is a small script in a1's namespace that is a guest on the group (a socket bound to the
 * group as QEMU binds it, loop on), relayed to this process over a unix socket; cb and ca2 are
 * QEMU-stream clients of b's and a2's unix ports.
 */
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, log, netnsSkipReason, vethPair, waitFor } from '../../lab/netns.js';
import { lanpartyMissing, lanpartyStatus, startLanparty } from '../../lab/netns-lanparty.js';
import {
  BROADCAST, connectClient, createTopology, duplicates, peerRow, rolesText, siteStatus, sleep, startGroupClient, startSite,
  stopAllTickers, stopSites, ticker, waitConverged, type FrameClient, type Site, type SiteStatus, type Topology,
} from '../helpers/wg-sites.js';
import { generatePrivateKey, publicKeyOf } from '../../src/crypto/index.js';
import { bridgeIdOf } from '../../src/transports/wg/stp.js';

const skip = netnsSkipReason(['ip', 'ss', 'nft']);
const GROUP = '239.77.0.1';
const GROUP_PORT = 35000;
const G_MAC = '02:00:00:00:0a:01';

let topo: Topology;
let a1: Site, a2: Site, b: Site;
let clients: FrameClient[] = [];
const stops: Array<() => void> = [];

const groupUrl = (localaddr: string) => `mcast://${GROUP}:${GROUP_PORT}?localaddr=${localaddr}&ttl=1`;

before(async () => {
  if (skip) return;
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  // Bridge ids order the tree: b lowest (root), then a1, then a2.
  const keys = [generatePrivateKey(), generatePrivateKey(), generatePrivateKey()]
    .sort((x, y) => Buffer.compare(bridgeIdOf(publicKeyOf(x)), bridgeIdOf(publicKeyOf(y))));
  topo = await createTopology(['a1', 'a2', 'b'], [keys[1], keys[2], keys[0]]);
  [a1, a2, b] = topo.sites;
  await vethPair(a1.ns, 'sa1', '10.60.0.1/24', a2.ns, 'sa2', '10.60.0.2/24', { multicastRoute: true });
});

afterEach(async () => {
  if (skip) return;
  stopAllTickers();
  for (const c of clients) c.close();
  clients = [];
  for (const s of stops.splice(0)) s();
  await stopSites(topo.sites);
});

after(cleanupAll);

async function startAll(): Promise<void> {
  await Promise.all([
    startSite(a1, [{ site: b }], { ports: [groupUrl('10.60.0.1')] }),
    startSite(a2, [{ site: b }], { ports: [groupUrl('10.60.0.2')] }),
    startSite(b, [{ site: a1 }, { site: a2 }]),
  ]);
}

async function startGroupGuest(): Promise<FrameClient> {
  const g = await startGroupClient(a1.ns, { group: GROUP, port: GROUP_PORT, localaddr: '10.60.0.1', name: 'g', mac: G_MAC });
  stops.push(g.stop);
  clients.push(g.client);
  return g.client;
}

/** "a1: group=designated/fwd (heard 1) 10.99.0.3=root/fwd; …" */
function treeText(st: Map<Site, SiteStatus>): string {
  return rolesText(st) + ' | groups: ' + [...st].map(([s, x]) => `${s.tag}: ${x.wg.segments.map((g) => `${g.role}${g.forwarding ? '/fwd' : ''} heard [${g.bridges.join(' ')}]`).join(' ')}`).join('; ');
}

/** Waits until the peer links have converged and a1's group port is designated, a2's blocked. */
async function waitTree(timeoutMs = 30_000): Promise<Map<Site, SiteStatus>> {
  await waitConverged([a1, a2, b], timeoutMs);
  let last = '';
  try {
    return await waitFor('a1 designated and a2 blocked on the group', async () => {
      const st = new Map<Site, SiteStatus>();
      for (const s of [a1, a2, b]) st.set(s, await siteStatus(s));
      last = treeText(st);
      const g1 = st.get(a1)!.wg.segments[0];
      const g2 = st.get(a2)!.wg.segments[0];
      const links = [...st.values()].every((x) => x.wg.peers.every((p) => p.reachable && p.forwarding));
      return g1.role === 'designated' && g1.forwarding && g2.role === 'blocked' && !g2.forwarding && links ? st : undefined;
    }, timeoutMs, 250);
  } finally {
    log(`[host] tree: ${last}`);
  }
}

/** Frame totals of every port of every running site (a loop keeps them growing). */
async function frameTotals(): Promise<number> {
  let n = 0;
  for (const s of [a1, a2, b]) {
    if (s.lp === null) continue;
    for (const p of (await siteStatus(s)).ports) n += p.rxFrames + p.txFrames;
  }
  return n;
}

test('one group shared by a1 and a2, both peered with b: a2 blocks the group, every frame arrives once, killing a1 heals within seconds', { skip, timeout: 180_000 }, async (t) => {
  await startAll();
  const g = await startGroupGuest();
  const [cb, ca2] = await Promise.all([connectClient(b), connectClient(a2)]);
  clients.push(cb, ca2);
  const cs = [g, cb, ca2];

  // Frames flow from the first moment, while sessions, the tree and the group's roles form: a loop
  // or a duplicate path at any point shows as a frame twice or an own frame coming back.
  const early = cs.map((x) => ticker(x, BROADCAST, `s-${x.name}`, 50));
  const conv = await waitTree();
  t.diagnostic(`tree: ${treeText(conv)}`);
  await sleep(1000);
  for (const tk of early) tk.stop();
  await sleep(500);
  for (const r of cs) {
    assert.deepEqual(duplicates(r, 's-'), [], `${r.name}: no frame twice while the tree formed`);
    assert.equal(r.counts(`s-${r.name}-`).size, 0, `${r.name}: none of its own frames came back`);
  }
  t.diagnostic(`while the tree formed: ${cs.map((r) => `${r.name} got ${r.counts('s-').size}`).join(', ')} of ${early.reduce((n, tk) => n + tk.sentAt.size, 0)} frames sent`);

  // Converged roles: b is the root, every peer link forwards at both ends, the one redundant path
  // (a1 ↔ group ↔ a2) is cut at a2's group port.
  const rootId = conv.get(b)!.wg.bridgeId;
  for (const st of conv.values()) assert.equal(st.wg.rootId, rootId, 'b is the root everywhere');
  const blocked = [...conv].flatMap(([s, st]) => [
    ...st.wg.peers.filter((p) => p.role === 'blocked').map((p) => `${s.tag}→${p.address}`),
    ...st.wg.segments.filter((x) => x.role === 'blocked').map(() => `${s.tag}→group`),
  ]);
  assert.deepEqual(blocked, ['a2→group'], `exactly one blocked port: ${treeText(conv)}`);
  assert.equal(conv.get(a2)!.mcast[0]!.forwarding, false);
  const a2Group = conv.get(a2)!.ports.filter((p) => p.kind === 'mcast');
  assert.equal(a2Group.length, 1, "a2's group port stays in its switch while blocked");
  assert.equal(a2Group[0].forwarding, false, "a2's group port is blocking");
  assert.equal(conv.get(a1)!.wg.segments[0].bridges.length, 1, 'a1 hears one other bridge on the group');
  assert.ok(conv.get(a1)!.mcast[0]!.treeRx > 0 && conv.get(a1)!.mcast[0]!.treeTx > 0);

  // Broadcasts from everyone, then unicasts between every pair (MACs learned from the broadcasts).
  const N = 100;
  for (let i = 0; i < N; i++) {
    for (const x of cs) x.send(BROADCAST, `b1-${x.name}-${i}`);
    if (i % 10 === 9) await sleep(5);
  }
  const expectAll = async (r: FrameClient, tags: string[]) => waitFor(`${r.name} to receive ${tags.length} frames (${tags[0]} …)`, () => {
    const have = new Set(r.received.map((x) => x.tag));
    return tags.every((tag) => have.has(tag));
  }, 15_000);
  for (const r of cs) await expectAll(r, cs.filter((x) => x !== r).flatMap((x) => Array.from({ length: N }, (_, i) => `b1-${x.name}-${i}`)));
  for (let i = 0; i < 30; i++) for (const x of cs) for (const y of cs) if (x !== y) x.send(y.mac, `u1-${x.name}-${y.name}-${i}`);
  for (const r of cs) await expectAll(r, cs.filter((x) => x !== r).flatMap((x) => Array.from({ length: 30 }, (_, i) => `u1-${x.name}-${r.name}-${i}`)));
  await sleep(1000);
  for (const r of cs) {
    assert.deepEqual(duplicates(r, 'b1-'), [], `${r.name}: no broadcast twice`);
    assert.equal(r.counts(`b1-${r.name}-`).size, 0, `${r.name}: its own broadcasts never came back`);
    assert.equal(r.counts('b1-').size, 2 * N);
    assert.deepEqual(duplicates(r, 'u1-'), []);
    const uni = [...r.counts('u1-').keys()];
    assert.equal(uni.length, 60, `${r.name}: exactly the 60 unicasts addressed to it`);
    assert.ok(uni.every((tag) => tag.split('-')[2] === r.name));
  }
  // No loop: with every client quiet, no port anywhere moves a frame (hellos are not frames).
  const quiet0 = await frameTotals();
  await sleep(2000);
  const quiet1 = await frameTotals();
  t.diagnostic(`frame totals over all ports, 2 s apart with the clients quiet: ${quiet0} → ${quiet1}`);
  assert.equal(quiet1, quiet0, 'nothing circulates');
  // a2's own frames reached the group through b and a1: the guest learned nothing odd.
  const a2st = await siteStatus(a2);
  assert.ok(a2st.macs.some((m) => m.mac === G_MAC && m.port === peerRow(a2st, b).portId), "a2 reaches the group's guest through b");

  // Kill a1 (SIGKILL, no goodbye): a2's group port must take over.
  const tickers = cs.map((x) => ticker(x, BROADCAST, `h-${x.name}`, 50));
  const allSent = () => new Map(tickers.flatMap((tk) => [...tk.sentAt]));
  await sleep(1500);
  await a1.lp!.kill();
  a1.lp = null;
  const killedAt = Date.now();
  const firstAfter = (r: FrameClient, prefix: string) => {
    const sent = allSent();
    for (const x of r.received) {
      const at = sent.get(x.tag);
      if (x.tag.startsWith(prefix) && at !== undefined && at > killedAt) return x.atMs;
    }
    return undefined;
  };
  const healed = await waitFor('g ↔ b traffic after a1 died', () => {
    const x = firstAfter(cb, 'h-g-');
    const y = firstAfter(g, 'h-b-');
    return x !== undefined && y !== undefined ? Math.max(x, y) : undefined;
  }, 30_000, 50);
  const healMs = healed - killedAt;
  t.diagnostic(`a1 killed: g ↔ b traffic resumed after ${healMs} ms`);
  await sleep(2000);
  const steadyFrom = Date.now();
  await sleep(2000);
  for (const tk of tickers) tk.stop();
  await sleep(1000);
  const after = new Map<Site, SiteStatus>([[a2, await siteStatus(a2)], [b, await siteStatus(b)]]);
  t.diagnostic(`after a1 died: ${treeText(after)}`);
  const g2 = after.get(a2)!.wg.segments[0];
  assert.equal(g2.role, 'designated');
  assert.ok(g2.forwarding, "a2's group port forwards");
  assert.equal(peerRow(after.get(b)!, a1).role, 'down');
  const sent = allSent();
  for (const r of cs) {
    assert.deepEqual(duplicates(r, 'h-'), [], `${r.name}: no frame twice during the failure`);
    assert.equal(r.counts(`h-${r.name}-`).size, 0, `${r.name}: no own frame came back`);
    const late = [...sent].filter(([tag, at]) => at >= steadyFrom && !tag.startsWith(`h-${r.name}-`)).map(([tag]) => tag);
    const got = r.counts('h-');
    assert.ok(late.length > 50);
    assert.deepEqual(late.filter((tag) => got.get(tag) !== 1), [], `${r.name}: every frame sent after healing arrived exactly once`);
  }
  const lost = cs.map((r) => `${r.name} lost ${[...sent].filter(([tag]) => !tag.startsWith(`h-${r.name}-`) && !r.counts('h-').has(tag)).length}`);
  t.diagnostic(`frames lost during the outage (of ${sent.size} sent, 20/s per client): ${lost.join(', ')}`);
  assert.ok(healMs <= 10_000, `healed in ${healMs} ms`);

  // a1 comes back and joins the running group: it must take its designated role back without a
  // transient loop (its peer link waits until it has listened to the group).
  const rejoin = cs.map((x) => ticker(x, BROADCAST, `r-${x.name}`, 50));
  await startSite(a1, [{ site: b }], { ports: [groupUrl('10.60.0.1')] });
  const back = await waitTree();
  t.diagnostic(`a1 back: ${treeText(back)}`);
  await sleep(1000);
  const steady2 = Date.now();
  await sleep(2000);
  for (const tk of rejoin) tk.stop();
  await sleep(1000);
  const sent2 = new Map(rejoin.flatMap((tk) => [...tk.sentAt]));
  for (const r of cs) {
    assert.deepEqual(duplicates(r, 'r-'), [], `${r.name}: no frame twice while a1 rejoined`);
    assert.equal(r.counts(`r-${r.name}-`).size, 0, `${r.name}: no own frame came back while a1 rejoined`);
    const late = [...sent2].filter(([tag, at]) => at >= steady2 && !tag.startsWith(`r-${r.name}-`)).map(([tag]) => tag);
    assert.deepEqual(late.filter((tag) => r.counts('r-').get(tag) !== 1), [], `${r.name}: exactly once after a1 rejoined`);
  }
});

test('without peer links (or with stp=0) nothing changes: a lone lanparty on the group forwards from the first frame, no tree on the group', { skip, timeout: 60_000 }, async (t) => {
  a2.lp = await startLanparty({ ns: a2.ns, label: 'lanparty a2 (no wg)', ports: [`unix://${a2.streamPath}`, groupUrl('10.60.0.2')], extraArgs: ['--no-dhcp'] });
  const g = await startGroupGuest();
  const ca2 = await connectClient(a2);
  clients.push(ca2);
  // The very first frames cross at once.
  const t0 = Date.now();
  g.send(BROADCAST, 'l-0');
  ca2.send(BROADCAST, 'l-1');
  await waitFor('first frames across a2', () => ca2.counts('l-0').size === 1 && g.counts('l-1').size === 1, 5000, 20);
  t.diagnostic(`first frames crossed in ${Date.now() - t0} ms`);
  const st = await lanpartyStatus<{ transports: Array<{ kind: string; segment?: unknown }> }>(a2.lp);
  assert.equal(st.transports.find((x) => x.kind === 'mcast')!.segment, null, 'no tree on the group');
  await a2.lp.stop();
  a2.lp = null;

  // With peer links but the group kept out of the tree (stp=0): the same, and no hellos on it.
  await startSite(a2, [{ site: b }], { ports: [`${groupUrl('10.60.0.2')}&stp=0`] });
  const ca2b = await connectClient(a2);
  clients.push(ca2b);
  const t1 = Date.now();
  g.send(BROADCAST, 'l-2');
  await waitFor('a frame from the group across a2 (stp=0)', () => ca2b.counts('l-2').size === 1, 5000, 20);
  t.diagnostic(`stp=0: first frame crossed in ${Date.now() - t1} ms`);
  await sleep(2500);
  const st2 = await siteStatus(a2);
  assert.deepEqual(st2.wg.segments, [], 'the group is not in the tree');
  assert.equal(st2.mcast[0], null);
});
