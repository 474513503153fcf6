/*
 * Cloned guests: two busybox udhcpc clients send the same client identifier (option 61) from
 * different MACs, as guests cloned from one disk image do. By default lanparty keys leases by MAC,
 * so each clone gets its own address, and it logs one warning naming the identifier and both MACs.
 * With `[dhcp] key_by = "client-id"` (RFC 2132 semantics) the two share one lease and address.
 *
 *   netns lp<pid>-N-dhcp-clones-<key>
 *   ┌───────────────────────────────────────────────────────────────────────────────────┐
 *   │  guest cloneA 02:00:00:00:00:NN ──┐  udhcpc -x 0x3d:01c10e0000beef                │
 *   │                                   ├─ udp://127.0.0.1:33001 ── lanparty up ── 10.77.0.1
 *   │  guest cloneB 02:00:00:00:00:MM ──┘  udhcpc -x 0x3d:01c10e0000beef                │
 *   └───────────────────────────────────────────────────────────────────────────────────┘
 *     key_by mac (default)   NN,MM = 41,42: addresses .10 and .11; each resolves the other
 *     key_by client-id       NN,MM = 43,44: both hold .10; one lease record
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, Netns, tempDir } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, summaryLines, type GuestResult } from '../../lab/guest.js';
import { lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';
import { attach } from '../../lab/guest-lan.js';
import { dhcpGuest, lanStatus, resultOf } from '../helpers/dhcp-lan.js';

const skip = netnsSkipReason() ?? guestSkipReason();
/** Type 1 (Ethernet) and a made-up MAC: what both clones would carry over from the image. */
const CLIENT_ID = '01c10e0000beef';
const CLIENT_ID_SHOWN = '01:c1:0e:00:00:be:ef';

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

async function runClones(t: { diagnostic(s: string): void }, tag: string, ns: Netns, ns2: number[], configToml?: string) {
  const shared = configToml !== undefined;
  const dir = tempDir(tag);
  const lp = await startLanparty({ ns, ports: attach('udp', 0, dir).ports, configToml });
  const names = ['cloneA', 'cloneB'];
  const guests = await Promise.all(ns2.map((n, i) => dhcpGuest(ns, dir, n, names[i], {
    clientid: CLIENT_ID,
    // Each resolves the other's name, then lingers so the other can do the same. A shared lease
    // carries only the hostname that bound last, so the shared case resolves nothing.
    ...(shared ? {} : { resolve: [`${names[1 - i]}.lan`], wait: 20 }),
  }, 200_000)));
  const results: GuestResult[] = await Promise.all(guests.map((g) => g.result()));
  results.forEach((r, i) => summaryLines(names[i], r).forEach((l) => t.diagnostic(l)));
  const status = await lanStatus(lp);
  t.diagnostic(`leases: ${JSON.stringify(status.dhcp!.leases)}`);
  for (const g of guests) g.kill();
  await Promise.all(guests.map((g) => g.exited()));
  const code = await lp.stop();
  return { lp, results, status, code, names };
}

test('two clones with one client identifier get two addresses (key_by mac) and a warning naming both MACs', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('dhcp-clones-mac');
  const { lp, results, status, code, names } = await runClones(t, 'clones-mac', ns, [0x41, 0x42]);
  const ips = results.map((r, i) => resultOf(names[i], r, 'dhcp', 'eth0').fields.ip);
  assert.deepEqual([...ips].sort(), ['10.77.0.10', '10.77.0.11']);
  results.forEach((r, i) => {
    assert.equal(r.done, 'ok', `${names[i]}: ${r.reason}`);
    assert.equal(resultOf(names[i], r, 'resolve', `${names[1 - i]}.lan`).fields.ip, ips[1 - i], 'each clone resolves the other');
  });
  assert.equal(status.dhcp!.keyBy, 'mac');
  const rows = status.dhcp!.leases.map((l) => ({ mac: l.mac, ip: l.ip, clientId: l.clientId, state: l.state, hostname: l.hostname }));
  assert.deepEqual(rows.sort((a, b) => a.mac.localeCompare(b.mac)), [
    { mac: macForGuest(0x41), ip: ips[0], clientId: CLIENT_ID, state: 'bound', hostname: 'cloneA' },
    { mac: macForGuest(0x42), ip: ips[1], clientId: CLIENT_ID, state: 'bound', hostname: 'cloneB' },
  ]);
  const warnings = lp.output.filter((l) => l.startsWith('[stderr]') && l.includes(`client identifier ${CLIENT_ID_SHOWN} arrives from two MACs`));
  assert.equal(warnings.length, 1, `one warning on stderr; output:\n${lp.output.join('\n')}`);
  assert.ok(warnings[0].includes(macForGuest(0x41)) && warnings[0].includes(macForGuest(0x42)), warnings[0]);
  assert.match(warnings[0], /each gets its own address/);
  assert.equal(code, 0);
  await ns.destroy();
});

test('with key_by = "client-id" the two clones share one lease and address', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('dhcp-clones-id');
  const { lp, results, status, code, names } = await runClones(t, 'clones-id', ns, [0x43, 0x44], '[dhcp]\nkey_by = "client-id"');
  const ips = results.map((r, i) => resultOf(names[i], r, 'dhcp', 'eth0').fields.ip);
  assert.deepEqual(ips, ['10.77.0.10', '10.77.0.10']);
  assert.equal(status.dhcp!.keyBy, 'client-id');
  assert.equal(status.dhcp!.leases.length, 1, 'one record for the one client identifier');
  const [l] = status.dhcp!.leases;
  assert.equal(l.ip, '10.77.0.10');
  assert.equal(l.clientId, CLIENT_ID);
  assert.equal(l.state, 'bound');
  assert.ok([macForGuest(0x43), macForGuest(0x44)].includes(l.mac));
  const warnings = lp.output.filter((x) => x.startsWith('[stderr]') && x.includes(`client identifier ${CLIENT_ID_SHOWN} arrives from two MACs`));
  assert.equal(warnings.length, 1, lp.output.join('\n'));
  assert.match(warnings[0], /they share one address/);
  assert.equal(code, 0);
  await ns.destroy();
});
