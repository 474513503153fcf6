/*
 * A link that fails must heal within seconds, also for hosts that stay quiet: five lanparty
 * sites in a ring of peer links (a-b-c-d-e-a, through the router of test/helpers/wg-sites.ts), so
 * the spanning tree blocks one link. Every site's client broadcasts once (every switch learns
 * every MAC), then a forwarding link that shares no bridge with the blocked one is cut. The tree
 * heals through the blocked link, and the way to some hosts turns round at a bridge whose own
 * ports did not change: without the topology-change flush (stp.ts), its MAC table still points
 * the old way and its unicasts die at the cut until the receiver speaks (up to the 300 s ageing).
 * The receivers here never speak again, so every unicast arriving proves the flush spread.
 */
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, waitFor } from '../../lab/netns.js';
import { lanpartyMissing } from '../../lab/netns-lanparty.js';
import {
  BROADCAST, Site, connectClient, createTopology, cut, duplicates, rolesText, siteStatus, sleep, startSite, stopSites, uncutAll,
  waitConverged, type FrameClient, type SiteStatus, type Topology,
} from '../helpers/wg-sites.js';

const skip = netnsSkipReason(['ip', 'nft']);

let topo: Topology;
let clients: FrameClient[] = [];

before(async () => {
  if (skip) return;
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  topo = await createTopology(['a', 'b', 'c', 'd', 'e']);
});

afterEach(async () => {
  if (skip) return;
  for (const c of clients) c.close();
  clients = [];
  await stopSites(topo.sites);
  await uncutAll(topo.router);
});

after(cleanupAll);

/** The two ends of the ring link i → i+1. */
const ring = (sites: Site[], i: number): [Site, Site] => [sites[i % sites.length], sites[(i + 1) % sites.length]];

function forwardingBothEnds(conv: Map<Site, SiteStatus>, x: Site, y: Site): boolean {
  const end = (s: Site, peer: Site) => conv.get(s)!.wg.peers.find((p) => p.address === peer.tunnel)!;
  return end(x, y).forwarding && end(y, x).forwarding;
}

test('ring of five: a cut link heals and unicasts reach hosts that never speak again (topology change flushes MAC tables)', { skip, timeout: 150_000 }, async (t) => {
  const sites = topo.sites;
  const n = sites.length;
  await Promise.all(sites.map((s, i) => startSite(s, [{ site: sites[(i + n - 1) % n] }, { site: sites[(i + 1) % n] }])));
  clients = await Promise.all(sites.map(connectClient));
  let conv = await waitConverged(sites, 40_000);
  t.diagnostic(`roles: ${rolesText(conv)}`);
  const blocked = [...Array(n).keys()].filter((i) => !forwardingBothEnds(conv, ...ring(sites, i)));
  assert.equal(blocked.length, 1, `one ring link blocked: ${rolesText(conv)}`);
  const b = blocked[0];
  // A forwarding link that shares no bridge with the blocked one: the bridge left over (the fifth)
  // sees the way to the hosts behind the cut turn round while its own two ports stay as they were.
  const f = (b + 2) % n;
  const [fx, fy] = ring(sites, f);
  const [bx, by] = ring(sites, b);
  const untouched = sites.find((s) => ![fx, fy, bx, by].includes(s))!;
  t.diagnostic(`blocked ${bx.tag}-${by.tag}; cutting ${fx.tag}-${fy.tag}; ${untouched.tag} keeps its ports`);

  // Every MAC learned everywhere, then silence.
  for (const c of clients) c.send(BROADCAST, `hello-${c.name}`);
  await waitFor('every client hears the 4 others', () => clients.every((r) => r.counts('hello-').size === n - 1), 10_000);
  const before = new Map<Site, number>();
  for (const s of sites) before.set(s, (await siteStatus(s)).wg.topologyChanges ?? 0);

  await cut(topo.router, fx, fy);
  const cutAt = Date.now();
  await waitFor('the blocked link forwards at both ends', async () => {
    const m = new Map<Site, SiteStatus>();
    for (const s of sites) m.set(s, await siteStatus(s));
    conv = m;
    return forwardingBothEnds(m, bx, by);
  }, 20_000, 250);
  t.diagnostic(`healed after ${Date.now() - cutAt} ms: ${rolesText(conv)}`);
  await sleep(500);

  // Unicasts only: senders' MACs may be relearned, the receivers' never are.
  const K = 5;
  for (const x of clients) for (const y of clients) if (x !== y) for (let i = 0; i < K; i++) x.send(y.mac, `u-${x.name}-${y.name}-${i}`);
  const expected = (r: FrameClient) => clients.filter((x) => x !== r).flatMap((x) => Array.from({ length: K }, (_, i) => `u-${x.name}-${r.name}-${i}`));
  await waitFor('every unicast delivered', () => clients.every((r) => expected(r).every((tag) => r.counts(tag).size === 1)), 10_000).catch((err: Error) => {
    const missing = clients.flatMap((r) => expected(r).filter((tag) => r.counts(tag).size === 0));
    throw new Error(`${err.message}: ${missing.length} lost, e.g. ${missing.slice(0, 8).join(' ')}`);
  });
  await sleep(500);
  for (const r of clients) {
    // Receivers stay quiet, so unicasts to them are flooded (unknown after the flush): others get copies.
    assert.deepEqual(duplicates(r, 'u-'), [], `${r.name}: no unicast twice`);
    const mine = [...r.counts('u-').keys()].filter((tag) => tag.split('-')[2] === r.name);
    assert.equal(mine.length, K * (n - 1), `${r.name}: every unicast addressed to it`);
  }
  for (const s of sites) {
    const st = await siteStatus(s);
    const grew = (st.wg.topologyChanges ?? 0) - before.get(s)!;
    t.diagnostic(`${s.tag}: ${grew} topology changes after the cut (count ${st.wg.tcCount})`);
    assert.ok(grew >= 1, `${s.tag} heard of the change`);
  }
  const counts = await Promise.all(sites.map(async (s) => (await siteStatus(s)).wg.tcCount));
  assert.equal(new Set(counts).size, 1, `one topology-change count everywhere: ${counts.join(' ')}`);
});
