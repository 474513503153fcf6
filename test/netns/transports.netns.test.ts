/*
 * Every lanparty transport with real QEMU 7.2 guests: first each transport alone (two guests on
 * it, pinging each other through lanparty), then one LAN that mixes all of them.
 *
 *   netns lp<pid>-N-<transport>  (lo up; everything on 127.0.0.1 or in a temp dir)
 *   ┌───────────────────────────────────────────────────────────────────────────────┐
 *   │   guest g11 10.0.0.11 ──┐                           ┌── guest g12 10.0.0.12   │
 *   │                         ├── lanparty up --config ───┤                         │
 *   │   (same transport)  ────┘   one or two [[port]]s    └────  (same transport)   │
 *   └───────────────────────────────────────────────────────────────────────────────┘
 *     mcast        guests on two different groups (230.0.0.1:33000, 230.0.0.2:33010), so
 *                  only lanparty can join them
 *     udp          both QEMUs send to udp://127.0.0.1:33001 from their own local ports
 *     unixgram     both send to <tmp>/dgram.sock from <tmp>/gN.sock
 *     tcp, unix    both QEMU stream clients (server=off) connect to one listener, after "ready"
 *     tcp+connect  each QEMU is a stream server (server=on, :5555+N); lanparty connects out
 *
 *   mixed LAN (netns lp<pid>-N-mixed): g21 mcast, g22 udp, g23 unixgram, g24 tcp, g25 unix,
 *   g26 tcp+connect; every guest pings every other guest (30 pings).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, Netns, tempDir } from '../../lab/netns.js';
import { buildGuest, guestSkipReason } from '../../lab/guest.js';
import { attach, checkAllPinged, runLan, TRANSPORTS, type LanMember } from '../../lab/guest-lan.js';
import { lanpartyMissing } from '../../lab/netns-lanparty.js';
import { join } from 'node:path';
import { request } from '../../src/control/client.js';
import type { StatusReport } from '../../src/daemon/status.js';

const skip = netnsSkipReason() ?? guestSkipReason();

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

for (const kind of TRANSPORTS) {
  test(`two guests on lanparty over ${kind} ping each other`, { skip, timeout: 240_000 }, async (t) => {
    const missing = lanpartyMissing();
    assert.equal(missing, undefined, missing);
    const ns = await Netns.create(kind.replace('+', '-'));
    const dir = tempDir(kind.replace('+', '-'));
    const members: LanMember[] = [11, 12].map((n, i) => ({
      name: `g${n}`,
      n,
      attachment: attach(kind, n, dir, i === 0 ? '230.0.0.1:33000' : '230.0.0.2:33010'),
    }));
    const run = await runLan(ns, members);
    const failures = checkAllPinged(t, members, run.results);
    const code = await run.stop();
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.equal(code, 0, `lanparty exit code after SIGINT; output:\n${run.lanparty.output.join('\n')}`);
    await ns.destroy();
  });
}

test('one LAN mixing every transport: every guest pings every other', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('mixed');
  const dir = tempDir('mixed');
  const members: LanMember[] = TRANSPORTS.map((kind, i) => ({ name: `g${21 + i}`, n: 21 + i, attachment: attach(kind, 21 + i, dir) }));
  const started = Date.now();
  const run = await runLan(ns, members, { timeoutMs: 200_000 });
  t.diagnostic(`6 guests done in ${Date.now() - started} ms`);
  const failures = checkAllPinged(t, members, run.results);
  // What lanparty saw, read over its control socket (a unix path: reachable from outside the netns).
  const status = (await request(join(run.lanparty.dir, 'control.sock'), 'status')) as StatusReport;
  const code = await run.stop();
  assert.deepEqual(failures, [], failures.join('\n'));
  assert.equal(code, 0, `lanparty exit code after SIGINT; output:\n${run.lanparty.output.join('\n')}`);
  // Every guest's MAC is learned behind a port of its own transport, and nothing was dropped
  // (lanparty's own multicast frames coming back through loopback are the only expected drop).
  const kindOf: Record<string, string> = { mcast: 'mcast', udp: 'udp', unixgram: 'unixgram', tcp: 'tcp', unix: 'unix', 'tcp+connect': 'tcp' };
  for (const [i, kind] of TRANSPORTS.entries()) {
    const mac = `02:00:00:00:00:${(21 + i).toString(16).padStart(2, '0')}`;
    const row = status.macs.find((m) => m.mac === mac);
    assert.ok(row, `${mac} (${kind}) is in the MAC table: ${JSON.stringify(status.macs)}`);
    const port = status.ports.find((p) => p.id === row.port)!;
    assert.equal(port.kind, kindOf[kind], `${mac} learned on a ${kind} port`);
    assert.ok(port.rxFrames > 0 && port.txFrames > 0, `${port.name} moved frames both ways`);
  }
  for (const p of status.ports) {
    for (const [reason, n] of Object.entries(p.drops)) if (reason !== 'own-frame') assert.equal(n, 0, `${p.name} dropped ${n} frames as ${reason}`);
  }
  await ns.destroy();
});
