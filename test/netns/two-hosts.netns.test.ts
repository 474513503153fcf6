/*
 * Two "hosts" (namespaces) joined by a veth link; each runs lanparty with a multicast port on the
 * link and a udp port with one guest. The guests can reach each other only through
 * guest → lanparty A → multicast over the veth → lanparty B → guest.
 *
 *   netns lp<pid>-N-hosta                               netns lp<pid>-N-hostb
 *   ┌──────────────────────────────────┐                ┌──────────────────────────────────┐
 *   │ guest a 10.0.0.31                │                │                guest b 10.0.0.32 │
 *   │   dgram → udp://127.0.0.1:33001  │                │  udp://127.0.0.1:33001 ← dgram   │
 *   │            lanparty A            │                │            lanparty B            │
 *   │ mcast://230.0.0.1:33000?         │   veth link    │ mcast://230.0.0.1:33000?         │
 *   │   localaddr=10.99.0.1&ttl=1      │                │   localaddr=10.99.0.2&ttl=1      │
 *   │              vlpa 10.99.0.1/24 ──┼────────────────┼── vlpb 10.99.0.2/24              │
 *   │   route 224.0.0.0/4 dev vlpa     │                │   route 224.0.0.0/4 dev vlpb     │
 *   └──────────────────────────────────┘                └──────────────────────────────────┘
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, Netns, tempDir, vethPair } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, startGuest, summaryLines } from '../../lab/guest.js';
import { attach, guestIp } from '../../lab/guest-lan.js';
import { lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';

const skip = netnsSkipReason() ?? guestSkipReason();

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

test('guests behind two lanparty instances joined by multicast over a veth ping each other', { skip, timeout: 240_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const [hostA, hostB] = await Promise.all([Netns.create('hosta'), Netns.create('hostb')]);
  await vethPair(hostA, 'vlpa', '10.99.0.1/24', hostB, 'vlpb', '10.99.0.2/24', { multicastRoute: true });
  const sides = [
    { ns: hostA, local: '10.99.0.1', n: 31, name: 'a', peer: 32 },
    { ns: hostB, local: '10.99.0.2', n: 32, name: 'b', peer: 31 },
  ];
  const lanparties = await Promise.all(
    sides.map((s) => startLanparty({
      ns: s.ns,
      label: `lanparty-${s.name}`,
      ports: [`mcast://230.0.0.1:33000?localaddr=${s.local}&ttl=1`, ...attach('udp', s.n, tempDir(s.name)).ports],
    })),
  );
  const guests = await Promise.all(
    sides.map((s) => startGuest({
      ns: s.ns,
      name: s.name,
      mac: macForGuest(s.n),
      netdevArgs: [attach('udp', s.n, '').netdev],
      cmdline: { ip: `${guestIp(s.n)}/24`, ping: [guestIp(s.peer)], deadline: 90, wait: 120 },
      timeoutMs: 150_000,
    })),
  );
  const results = await Promise.all(guests.map((g) => g.result()));
  for (const [i, r] of results.entries()) for (const line of summaryLines(sides[i].name, r)) t.diagnostic(line);
  for (const g of guests) g.kill();
  await Promise.all(guests.map((g) => g.exited()));
  const codes = await Promise.all(lanparties.map((l) => l.stop()));
  for (const [i, r] of results.entries()) {
    const s = sides[i];
    assert.equal(r.done, 'ok', summaryLines(s.name, r).join('\n'));
    const p = r.results.find((x) => x.kind === 'ping' && x.target === guestIp(s.peer));
    assert.ok(p?.ok, `${s.name} pinged ${guestIp(s.peer)}`);
  }
  assert.deepEqual(codes, [0, 0], 'both lanparty instances exit 0 on SIGINT');
  await hostA.destroy();
  await hostB.destroy();
});
