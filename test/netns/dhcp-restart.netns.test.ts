/*
 * Leases survive a lanparty restart (same lease file): busybox udhcpc guests keep their addresses,
 * and no address is given to two MACs, even to a newcomer that asks for a taken one.
 *
 *   netns lp<pid>-N-dhcp-restart
 *   ┌────────────────────────────────────────────────────────────────────────────────────────┐
 *   │  phase 1   keeper  02:..:51 ──┐                                                        │
 *   │            leaver  02:..:52 ──┼─ udp://127.0.0.1:33001 ── lanparty #1 ─┐               │
 *   │                               │                                        ├─ leases.json  │
 *   │  phase 2   keeper  (running) ─┤                                        │  (one file)   │
 *   │            leaver  (rebooted)─┼─ udp://127.0.0.1:33001 ── lanparty #2 ─┘               │
 *   │            newcomer 02:..:53 ─┘   udhcpc -r <leaver's address>                         │
 *   └────────────────────────────────────────────────────────────────────────────────────────┘
 *
 *   1. keeper and leaver get .10 and .11 from lanparty #1; leaver powers off; lanparty #1 stops
 *      (SIGINT) and the lease file holds both bindings.
 *   2. lanparty #2 starts on the same file and lists both leases bound before any guest speaks.
 *   3. keeper, still running, renews (SIGUSR1, unicast REQUEST): lanparty #2 ACKs the same address.
 *      leaver boots again (same MAC, no address in hand): it gets its old address back.
 *      newcomer asks for leaver's address in its DISCOVER: it gets a third one.
 *   4. Three records, three MACs, three addresses; no NAK.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, netnsSkipReason, Netns, tempDir } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, summaryLines, type GuestResult } from '../../lab/guest.js';
import { lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';
import { attach } from '../../lab/guest-lan.js';
import { dhcpGuest, lanStatus, resultOf, VHOST_IP, waitConsole, waitLeaseState } from '../helpers/dhcp-lan.js';

const skip = netnsSkipReason() ?? guestSkipReason();
const KEEPER = 0x51;
const LEAVER = 0x52;
const NEWCOMER = 0x53;

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

test('leases survive a lanparty restart; a renewing and a rebooting guest keep their addresses', { skip, timeout: 420_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('dhcp-restart');
  const dir = tempDir('dhcp-restart');
  const leaseFile = join(dir, 'leases.json');
  const ports = attach('udp', 0, dir).ports;
  const report = (name: string, r: GuestResult) => summaryLines(name, r).forEach((l) => t.diagnostic(l));

  // 1. lanparty #1.
  const lp1 = await startLanparty({ ns, ports, leaseFile, label: 'lanparty#1' });
  // keeper renews 60 s after binding: by then lanparty #2 is up.
  const keeper = await dhcpGuest(ns, dir, KEEPER, 'keeper', { renew: 1, pause: 60, ping: [VHOST_IP] }, 320_000);
  const leaver = await dhcpGuest(ns, dir, LEAVER, 'leaver', {});
  const leaverRun1 = await leaver.result();
  report('leaver', leaverRun1);
  assert.equal(leaverRun1.done, 'ok');
  const keeperLease = await waitLeaseState(lp1, macForGuest(KEEPER), 'bound', 120_000);
  const leaverIp = resultOf('leaver', leaverRun1, 'dhcp', 'eth0').fields.ip;
  assert.deepEqual([keeperLease.ip, leaverIp].sort(), ['10.77.0.10', '10.77.0.11']);
  await leaver.exited();
  assert.equal(await lp1.stop(), 0, lp1.output.join('\n'));
  const saved = JSON.parse(readFileSync(leaseFile, 'utf8')) as { leases: Array<{ mac: string; ip: string; state: string; hostname: string }> };
  t.diagnostic(`lease file after lanparty #1: ${JSON.stringify(saved)}`);
  assert.deepEqual(
    saved.leases.map((l) => `${l.mac} ${l.ip} ${l.state} ${l.hostname}`).sort(),
    [`${macForGuest(KEEPER)} ${keeperLease.ip} bound keeper`, `${macForGuest(LEAVER)} ${leaverIp} bound leaver`].sort(),
  );

  // 2. lanparty #2 on the same file.
  const lp2 = await startLanparty({ ns, ports, leaseFile, label: 'lanparty#2' });
  assert.equal(keeper.lines.some((l) => l.includes('LP-RESULT dhcp-renew')), false, 'keeper renewed before lanparty #2 was up; lengthen its pause');
  const loaded = await lanStatus(lp2);
  assert.deepEqual(
    loaded.dhcp!.leases.map((l) => `${l.mac} ${l.ip} ${l.state}`).sort(),
    [`${macForGuest(KEEPER)} ${keeperLease.ip} bound`, `${macForGuest(LEAVER)} ${leaverIp} bound`].sort(),
  );
  assert.equal(loaded.dhcp!.counters.rx.request, 0, 'no guest has spoken to lanparty #2 yet');

  // 3. The rebooted leaver, a newcomer asking for the leaver's address, and keeper's renewal.
  const [leaver2, newcomer] = await Promise.all([
    dhcpGuest(ns, dir, LEAVER, 'leaver2', {}),
    dhcpGuest(ns, dir, NEWCOMER, 'newcomer', { request: leaverIp }),
  ]);
  const [r2, rn, rk] = await Promise.all([leaver2.result(), newcomer.result(), keeper.result()]);
  report('leaver2', r2);
  report('newcomer', rn);
  report('keeper', rk);
  for (const [name, r] of [['leaver2', r2], ['newcomer', rn], ['keeper', rk]] as const) assert.equal(r.done, 'ok', `${name}: ${r.reason}`);
  assert.equal(resultOf('keeper', rk, 'dhcp-renew', 'eth0').fields.ip, keeperLease.ip, 'keeper renewed its address with lanparty #2');
  assert.ok(resultOf('keeper', rk, 'ping', VHOST_IP).ok);
  assert.equal(resultOf('leaver2', r2, 'dhcp', 'eth0').fields.ip, leaverIp, 'the rebooted leaver gets its address back');
  const newIp = resultOf('newcomer', rn, 'dhcp', 'eth0').fields.ip;
  assert.equal(newIp, '10.77.0.12', `newcomer asked for ${leaverIp}, which is taken`);

  // 4. One address per MAC.
  const end = await lanStatus(lp2);
  t.diagnostic(`leases: ${JSON.stringify(end.dhcp!.leases)}`);
  t.diagnostic(`dhcp counters: ${JSON.stringify(end.dhcp!.counters)}`);
  assert.deepEqual(
    end.dhcp!.leases.map((l) => `${l.mac} ${l.ip} ${l.state}`),
    [`${macForGuest(KEEPER)} ${keeperLease.ip} bound`, `${macForGuest(LEAVER)} ${leaverIp} bound`, `${macForGuest(NEWCOMER)} ${newIp} bound`]
      .sort((a, b) => a.split(' ')[1].localeCompare(b.split(' ')[1])),
  );
  const keeperNow = end.dhcp!.leases.find((l) => l.mac === macForGuest(KEEPER))!;
  assert.ok(keeperNow.expiresInS > 3500, `keeper's lease was extended by the renewal (expiresInS ${keeperNow.expiresInS})`);
  assert.equal(end.dhcp!.counters.tx.nak, 0);
  assert.equal(end.dhcp!.counters.rx.request, end.dhcp!.counters.tx.ack);
  await waitConsole(keeper, /LP-DONE/, 1000);
  for (const g of [keeper, leaver2, newcomer]) g.kill();
  await Promise.all([keeper, leaver2, newcomer].map((g) => g.exited()));
  assert.equal(await lp2.stop(), 0);
  await ns.destroy();
});

/*
 *   lease file lost: holder (02:..:54) gets .10 from lanparty #1 and stays up; lanparty #2 starts
 *   with an empty lease file, so .10 looks never-used. newcomer (02:..:55) DISCOVERs: lanparty #2
 *   ARP-probes .10, holder's kernel answers, and newcomer is offered .11 instead; .10 is held as
 *   a conflict naming holder's MAC. Then holder renews (SIGUSR1, 70 s after binding): the address
 *   is its own, so lanparty #2 ACKs it and the hold becomes holder's lease.
 */
test('with the lease file lost, the ARP probe keeps an address in use from a newcomer, and its holder renews it', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('dhcp-lost');
  const dir = tempDir('dhcp-lost');
  const ports = attach('udp', 0, dir).ports;
  const lp1 = await startLanparty({ ns, ports, label: 'lanparty#1' });
  const holder = await dhcpGuest(ns, dir, 0x54, 'holder', { renew: 1, pause: 70, wait: 30 }, 260_000);
  assert.match(await waitConsole(holder, /LP-RESULT dhcp eth0/, 150_000), /ok ip=10\.77\.0\.10 /);
  assert.equal(await lp1.stop(), 0);

  const lp2 = await startLanparty({ ns, ports, label: 'lanparty#2' });   // its own, empty lease file
  assert.deepEqual((await lanStatus(lp2)).dhcp!.leases, []);
  const newcomer = await dhcpGuest(ns, dir, 0x55, 'newcomer', { ping: ['10.77.0.10'] });
  const r = await newcomer.result();
  summaryLines('newcomer', r).forEach((l) => t.diagnostic(l));
  assert.equal(r.done, 'ok', r.reason);
  assert.equal(resultOf('newcomer', r, 'dhcp', 'eth0').fields.ip, '10.77.0.11');
  assert.ok(resultOf('newcomer', r, 'ping', '10.77.0.10').ok, 'holder still answers on its address');
  const s = await lanStatus(lp2);
  t.diagnostic(`leases: ${JSON.stringify(s.dhcp!.leases)}`);
  assert.equal(s.dhcp!.counters.probeConflicts, 1);
  assert.deepEqual(s.dhcp!.leases.map((l) => `${l.mac} ${l.ip} ${l.state}`), [
    `${macForGuest(0x54)} 10.77.0.10 conflict`,
    `${macForGuest(0x55)} 10.77.0.11 bound`,
  ]);
  assert.ok(lp2.output.some((l) => l.includes(`address 10.77.0.10 is already used by ${macForGuest(0x54)}`)), lp2.output.join('\n'));
  assert.equal(holder.lines.some((l) => l.includes('LP-RESULT dhcp-renew')), false, 'holder renewed before the newcomer was done; lengthen its pause');

  const rh = await holder.result();
  summaryLines('holder', rh).forEach((l) => t.diagnostic(l));
  assert.equal(resultOf('holder', rh, 'dhcp-renew', 'eth0').fields.ip, '10.77.0.10', 'the address the holder answered for is its own');
  assert.equal(rh.done, 'ok', rh.reason);
  const s2 = await lanStatus(lp2);
  t.diagnostic(`leases after the renewal: ${JSON.stringify(s2.dhcp!.leases)}`);
  assert.deepEqual(s2.dhcp!.leases.map((l) => `${l.mac} ${l.ip} ${l.state}`), [
    `${macForGuest(0x54)} 10.77.0.10 bound`,
    `${macForGuest(0x55)} 10.77.0.11 bound`,
  ]);
  assert.equal(s2.dhcp!.counters.tx.nak, 0);
  for (const g of [holder, newcomer]) g.kill();
  await Promise.all([holder, newcomer].map((g) => g.exited()));
  assert.equal(await lp2.stop(), 0);
  await ns.destroy();
});
