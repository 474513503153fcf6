/*
 * A lease's whole life with real busybox udhcpc clients, plus the LAN's names: two QEMU guests
 * take addresses from lanparty's built-in virtual host, ping it, resolve each other by the
 * hostnames they sent, get a quick REFUSED for a name outside the LAN, renew (SIGUSR1) and
 * release (SIGUSR2). The host reads the lease table with `lanparty status --json` in between.
 *
 *   netns lp<pid>-N-dhcp-lease
 *   ┌──────────────────────────────────────────────────────────────────────────────────────┐
 *   │  guest alpha 02:00:00:00:00:33 ──┐                                                   │
 *   │   udhcpc -x hostname:alpha       ├─ udp://127.0.0.1:33001 ── lanparty up ── virtual  │
 *   │  guest beta  02:00:00:00:00:34 ──┘   (QEMU dgram netdevs)     (defaults)   host      │
 *   │   udhcpc -x hostname:beta                                                10.77.0.1  │
 *   │                                                              DHCP pool .10-.254, DNS *.lan
 *   └──────────────────────────────────────────────────────────────────────────────────────┘
 *
 *   Each guest: DISCOVER/OFFER/REQUEST/ACK → ping 10.77.0.1 → nslookup <peer>.lan and
 *   lanparty.lan at 10.77.0.1 → nslookup example.com (REFUSED) → pause → renew (unicast
 *   REQUEST/ACK) → pause → release. Host: both leases bound with their hostnames, then both
 *   released, and the DHCP and DNS counters add up exactly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, Netns, tempDir } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, summaryLines } from '../../lab/guest.js';
import { lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';
import { attach } from '../../lab/guest-lan.js';
import { dhcpGuest, lanStatus, resultOf, VHOST_IP, waitConsole, waitLeaseState } from '../helpers/dhcp-lan.js';

const skip = netnsSkipReason() ?? guestSkipReason();

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

test('udhcpc guests: lease granted, names resolved, renewed, released; counters exact', { skip, timeout: 360_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('dhcp-lease');
  const dir = tempDir('dhcp-lease');
  const lp = await startLanparty({ ns, ports: attach('udp', 0, dir).ports });
  const members = [{ n: 0x33, name: 'alpha', peer: 'beta' }, { n: 0x34, name: 'beta', peer: 'alpha' }];
  const guests = await Promise.all(members.map((m) => dhcpGuest(ns, dir, m.n, m.name, {
    ping: [VHOST_IP], resolve: [`${m.peer}.lan`, 'lanparty.lan'], refused: ['example.com'],
    renew: 1, release: 1, pause: 8,
  }, 240_000)));

  // Bound, as the host sees it, while the guests still hold their leases.
  const tails = () => guests.map((g) => g.lines.slice(-15).map((l) => `  ${g.name}| ${l}`).join('\n')).join('\n');
  const bound = await Promise.all(members.map((m) => waitLeaseState(lp, macForGuest(m.n), 'bound', 200_000)))
    .catch((err: Error) => { throw new Error(`${err.message}; console tails:\n${tails()}`); });
  for (const [i, m] of members.entries()) {
    t.diagnostic(`bound: ${JSON.stringify(bound[i])}`);
    assert.equal(bound[i].hostname, m.name);
    // udhcpc's default client identifier: type 1 (Ethernet) + MAC.
    assert.equal(bound[i].clientId, '01' + macForGuest(m.n).replace(/:/g, ''));
    assert.ok(bound[i].expiresInS > 3500 && bound[i].expiresInS <= 3600, `expiresInS ${bound[i].expiresInS}`);
    assert.equal(bound[i].static, false);
  }
  assert.deepEqual(bound.map((l) => l.ip).sort(), ['10.77.0.10', '10.77.0.11'], 'the first two never-used pool addresses');
  const mid = await lanStatus(lp);
  assert.equal(mid.dhcp!.pool.inUse, 2);

  // Released, as the host sees it.
  await Promise.all(guests.map((g) => waitConsole(g, /LP-RESULT dhcp-release /, 200_000)));
  const released = await Promise.all(members.map((m) => waitLeaseState(lp, macForGuest(m.n), 'released', 30_000)));
  for (const [i, l] of released.entries()) {
    assert.equal(l.ip, bound[i].ip, 'a released record keeps its address for the client');
    assert.ok(l.expiresInS <= 0, `released lease expiresInS ${l.expiresInS}`);
  }

  const results = await Promise.all(guests.map((g) => g.result()));
  for (const [i, m] of members.entries()) {
    const r = results[i];
    for (const line of summaryLines(m.name, r)) t.diagnostic(line);
    assert.equal(r.done, 'ok', `${m.name}: LP-DONE ${r.done} ${r.reason}`);
    const lease = resultOf(m.name, r, 'dhcp', 'eth0');
    assert.deepEqual(
      { ip: lease.fields.ip, mask: lease.fields.mask, subnet: lease.fields.subnet, broadcast: lease.fields.broadcast, router: lease.fields.router, dns: lease.fields.dns, lease: lease.fields.lease, server: lease.fields.server, domain: lease.fields.domain, hostname: lease.fields.hostname },
      { ip: bound[i].ip, mask: '24', subnet: '255.255.255.0', broadcast: '10.77.0.255', router: '', dns: VHOST_IP, lease: '3600', server: VHOST_IP, domain: 'lan', hostname: m.name },
      `${m.name}: lease options (no router by default)`,
    );
    assert.ok(resultOf(m.name, r, 'ping', VHOST_IP).ok);
    const peer = members.find((o) => o.name === m.peer)!;
    assert.equal(resultOf(m.name, r, 'resolve', `${m.peer}.lan`).fields.ip, bound[members.indexOf(peer)].ip);
    assert.equal(resultOf(m.name, r, 'resolve', 'lanparty.lan').fields.ip, VHOST_IP);
    const refused = resultOf(m.name, r, 'refused', 'example.com');
    assert.ok(refused.ok);
    assert.ok(Number(refused.fields.ms) < 1000, `${m.name}: REFUSED took ${refused.fields.ms} ms`);
    assert.equal(resultOf(m.name, r, 'dhcp-renew', 'eth0').fields.ip, bound[i].ip, 'renewal keeps the address');
    assert.equal(resultOf(m.name, r, 'dhcp-release', 'eth0').fields.ip, bound[i].ip);
  }

  const end = await lanStatus(lp);
  const c = end.dhcp!.counters;
  t.diagnostic(`dhcp counters: ${JSON.stringify(c)}`);
  t.diagnostic(`dns counters: ${JSON.stringify(end.dns!.counters)}`);
  t.diagnostic(`vhost: ${JSON.stringify(end.vhost)}`);
  assert.equal(end.dhcp!.pool.inUse, 0, 'both released');
  assert.equal(end.dhcp!.leases.length, 2);
  // Per guest: one REQUEST to select the offer and one to renew, every one ACKed; one RELEASE.
  // udhcpc repeats a REQUEST whose ACK takes over 2 s (-T 2), which a loaded TCG guest can see,
  // so the REQUEST count is a lower bound (4 on an idle machine).
  assert.ok(c.rx.request >= 4, `rx.request ${c.rx.request}`);
  assert.equal(c.tx.ack, c.rx.request);
  assert.equal(c.rx.release, 2);
  assert.equal(c.tx.nak, 0);
  // Every DISCOVER (udhcpc may repeat one under TCG) got an OFFER, or waited for its ARP probe.
  assert.equal(c.tx.offer + c.drops.probing, c.rx.discover);
  assert.ok(c.rx.discover >= 2);
  assert.equal(c.rx.decline + c.rx.inform + c.rx.other, 0);
  assert.equal(c.drops.malformed, 0);
  assert.equal(c.probeConflicts, 0);
  // Each guest got one answer for its peer and one for lanparty.lan (earlier tries for a peer
  // not yet bound are NXDOMAIN) and one REFUSED for example.com.
  const d = end.dns!.counters;
  assert.equal(d.answered, 4);
  assert.equal(d.refused, 2);
  assert.equal(d.queries, d.answered + d.nxdomain + d.refused);
  assert.equal(d.malformed + d.notImplemented, 0);
  assert.ok(end.vhost.icmpEchoReplies >= 8, 'each guest: one probe ping plus a burst of three');

  assert.ok(lp.output.some((l) => /lease 10\.77\.0\.1[01] granted to 02:00:00:00:00:33 \(alpha\)/.test(l)), lp.output.join('\n'));
  assert.ok(lp.output.some((l) => /lease 10\.77\.0\.1[01] released by 02:00:00:00:00:34/.test(l)), lp.output.join('\n'));
  for (const g of guests) g.kill();
  await Promise.all(guests.map((g) => g.exited()));
  assert.equal(await lp.stop(), 0);
  await ns.destroy();
});
