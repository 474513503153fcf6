/*
 * iperf3 (TCP, guest to guest) through lanparty's udp dgram port, and on QEMU's plain multicast
 * group for comparison. The rates are reported (t.diagnostic), not asserted: under TCG the guests,
 * not the relay, are the bottleneck (docs/test-machine.md), so only the run has to succeed.
 *
 *   netns lp<pid>-N-iperf-lp                          netns lp<pid>-N-iperf-ref
 *   ┌──────────────────────────────────────────┐      ┌──────────────────────────────────────┐
 *   │ client 10.0.0.41      server 10.0.0.42   │      │ client 10.0.0.43   server 10.0.0.44  │
 *   │   dgram :34041 ─┐    ┌─ dgram :34042     │      │   socket,mcast=230.0.0.1:33000,      │
 *   │                 lanparty                 │      │   localaddr=127.0.0.1 (no lanparty)  │
 *   │        udp://127.0.0.1:33001             │      │                                      │
 *   └──────────────────────────────────────────┘      └──────────────────────────────────────┘
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, Netns, tempDir } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, startGuest, summaryLines, type GuestResult } from '../../lab/guest.js';
import { attach, guestIp } from '../../lab/guest-lan.js';
import { lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';

const skip = netnsSkipReason() ?? guestSkipReason();
const SECONDS = Number(process.env.LP_IPERF_SECONDS ?? 5);
const measured: Record<string, string> = {};

after(async () => {
  if (Object.keys(measured).length > 0) {
    console.log(`iperf3 guest→guest, ${SECONDS} s, TCP: ${Object.entries(measured).map(([k, v]) => `${k} ${v} Mbit/s`).join('; ')}`);
  }
  await cleanupAll();
});
before(async () => {
  if (!skip) await buildGuest();
});

async function iperfPair(ns: Netns, clientN: number, serverN: number, netdev: (n: number) => string): Promise<{ client: GuestResult; server: GuestResult }> {
  const [server, client] = await Promise.all([
    startGuest({ ns, name: `server${serverN}`, mac: macForGuest(serverN), netdevArgs: [netdev(serverN)], cmdline: { ip: `${guestIp(serverN)}/24`, iperf: 'server', deadline: 120 }, timeoutMs: 180_000 }),
    startGuest({ ns, name: `client${clientN}`, mac: macForGuest(clientN), netdevArgs: [netdev(clientN)], cmdline: { ip: `${guestIp(clientN)}/24`, iperf: `client:${guestIp(serverN)}:${SECONDS}`, deadline: 120 }, timeoutMs: 180_000 }),
  ]);
  const [c, s] = await Promise.all([client.result(), server.result()]);
  await Promise.all([client.exited(), server.exited()]);
  return { client: c, server: s };
}

function report(t: { diagnostic(msg: string): void }, label: string, r: { client: GuestResult; server: GuestResult }): string {
  for (const line of [...summaryLines('client', r.client), ...summaryLines('server', r.server)]) t.diagnostic(line);
  assert.equal(r.client.done, 'ok', summaryLines('client', r.client).join('\n'));
  assert.equal(r.server.done, 'ok', summaryLines('server', r.server).join('\n'));
  const mbps = r.client.results.find((x) => x.kind === 'iperf')?.fields.mbps;
  assert.ok(mbps && Number(mbps) > 0, 'the client reports a rate');
  t.diagnostic(`${label}: ${mbps} Mbit/s (client receiver line), server saw ${r.server.results.find((x) => x.kind === 'iperf')?.fields.mbps} Mbit/s`);
  return mbps;
}

test('iperf3 between two guests through lanparty (udp dgram port)', { skip, timeout: 240_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('iperf-lp');
  const dir = tempDir('iperf');
  const lanparty = await startLanparty({ ns, ports: attach('udp', 0, dir).ports });
  const r = await iperfPair(ns, 41, 42, (n) => attach('udp', n, dir).netdev);
  measured['lanparty udp'] = report(t, 'through lanparty udp', r);
  assert.equal(await lanparty.stop(), 0);
  await ns.destroy();
});

test('iperf3 between two guests on the plain QEMU multicast group (reference)', { skip, timeout: 240_000 }, async (t) => {
  const ns = await Netns.create('iperf-ref');
  const r = await iperfPair(ns, 43, 44, () => 'socket,id=n0,mcast=230.0.0.1:33000,localaddr=127.0.0.1');
  measured['plain mcast'] = report(t, 'plain QEMU multicast group', r);
  await ns.destroy();
});
