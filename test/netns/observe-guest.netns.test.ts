/**
 * `lanparty dump` and `capture` with a real QEMU guest: the dump shows the guest's DHCP exchange
 * (DISCOVER, OFFER, REQUEST, ACK with xid, client MAC and addresses) and its pings to the LAN's
 * virtual host; then `inject` asks the guest who has its address, and the guest's ARP reply shows
 * up in the capture (read by tshark) on the guest's port.
 *
 *   netns lp<pid>-N-observe
 *   ┌────────────────────────────────────────────────────────────────────────────┐
 *   │ guest g31 (udhcpc, ping 10.77.0.1) ── dgram 127.0.0.1:34031 ─┐              │
 *   │                                         udp://127.0.0.1:33001 ┤ lanparty up  │
 *   │ lanparty dump / capture / inject (CLI, --control DIR/control.sock)  + DHCP   │
 *   └────────────────────────────────────────────────────────────────────────────┘
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { cleanupAll, netnsSkipReason, Netns, waitFor } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, startGuest, summarize } from '../../lab/guest.js';
import { attach } from '../../lab/guest-lan.js';
import { cliPath, startLanparty } from '../../lab/netns-lanparty.js';

const skip = netnsSkipReason() ?? guestSkipReason();

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

function background(ns: Netns, args: string[], label: string): { child: ChildProcess; out: () => string; started: Promise<void>; exit: Promise<number | null> } {
  const child = ns.spawn([process.execPath, cliPath(), ...args], label);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const started = new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; if (/capturing/.test(err)) resolve(); });
    void exit.then((c) => reject(new Error(`${label} exited ${c}: ${err}`)));
  });
  return { child, out: () => out, started, exit };
}

test('dump shows a real guest\'s DHCP exchange and pings; an injected ARP request reaches it', { skip, timeout: 240_000 }, async (t) => {
  const ns = await Netns.create('observe');
  const lp = await startLanparty({ ns, ports: ['udp://127.0.0.1:33001'] });
  const ctl = ['--control', join(lp.dir, 'control.sock')];
  const dump = background(ns, ['dump', ...ctl], 'lanparty dump');
  const pcap = join(lp.dir, 'guest.pcapng');
  const cap = background(ns, ['capture', '-w', pcap, ...ctl], 'lanparty capture');
  await Promise.all([dump.started, cap.started]);

  const mac = macForGuest(31);
  const guest = await startGuest({
    ns, name: 'g31', mac, netdevArgs: [attach('udp', 31, lp.dir).netdev],
    cmdline: { dhcp: 1, ping: ['10.77.0.1'], deadline: 120, wait: 120 }, timeoutMs: 200_000,
  });
  const r = await guest.result();
  assert.equal(r.done, 'ok', summarize('g31', r));
  const ip = r.results.find((x) => x.kind === 'dhcp')?.fields.ip;
  assert.ok(ip, summarize('g31', r));
  t.diagnostic(`g31 leased ${ip}`);

  const lines = () => dump.out().split('\n');
  await waitFor('DHCP and ICMP in the dump', () => lines().some((l) => /ICMP echo reply/.test(l)), 10_000);
  for (const l of lines().filter((x) => /DHCP|ICMP/.test(x))) t.diagnostic(l);
  const x = (re: RegExp) => lines().find((l) => re.test(l));
  const esc = (s: string) => s.replace(/\./g, '\\.');
  const discover = x(new RegExp(`${mac} > ff:ff:ff:ff:ff:ff, IPv4 0\\.0\\.0\\.0\\.68 > 255\\.255\\.255\\.255\\.67: DHCP DISCOVER, xid 0x([0-9a-f]{8}), client ${mac}`));
  assert.ok(discover, dump.out());
  const xid = /xid (0x[0-9a-f]{8})/.exec(discover)![1];
  assert.ok(x(new RegExp(`DHCP OFFER, xid ${xid}, client ${mac}, your ${esc(ip)}, server 10\\.77\\.0\\.1`)), dump.out());
  assert.ok(x(new RegExp(`DHCP REQUEST, xid ${xid}, client ${mac}, requested ${esc(ip)}`)), dump.out());
  assert.ok(x(new RegExp(`DHCP ACK, xid ${xid}, client ${mac}, your ${esc(ip)}`)), dump.out());
  assert.ok(x(new RegExp(`\\[\\d+ udp 127\\.0\\.0\\.1:34031\\] ${mac} > .*IPv4 ${esc(ip)} > 10\\.77\\.0\\.1: ICMP echo request`)), dump.out());
  assert.ok(x(new RegExp(`IPv4 10\\.77\\.0\\.1 > ${esc(ip)}: ICMP echo reply`)), dump.out());
  assert.ok(!lines().some((l) => /malformed/.test(l)), 'nothing the guest sent is malformed');

  // Ask the guest who has its address, out of its port only; it answers (it lingers for lp.wait).
  const portName = /\[(\d+) udp 127\.0\.0\.1:34031\]/.exec(discover)![1];
  const inj = await ns.run([process.execPath, cliPath(), 'inject', 'arp-request', '--target-ip', ip, '--src-ip', '10.77.0.250', '--src-mac', '02:00:00:00:99:31', '--into', portName, ...ctl]);
  assert.match(inj.stdout, /injected 60 bytes out of port \d+ \(udp 127\.0\.0\.1:34031\)/);
  await waitFor('the guest\'s ARP reply', () => x(new RegExp(`${mac} > 02:00:00:00:99:31, ARP reply ${esc(ip)} is-at ${mac}`)) !== undefined, 15_000);

  cap.child.kill('SIGINT');
  dump.child.kill('SIGINT');
  assert.equal(await cap.exit, 0);
  guest.kill();
  await guest.exited();
  const rows = await new Promise<string[]>((resolve, reject) => execFile('tshark', ['-r', pcap, '-Y', 'arp.opcode == 2 && eth.dst == 02:00:00:00:99:31', '-T', 'fields', '-e', 'frame.interface_name', '-e', 'arp.src.proto_ipv4'],
    (err, so, se) => (err ? reject(new Error(se)) : resolve(so.trim().split('\n')))));
  assert.deepEqual(rows, [`udp 127.0.0.1:34031\t${ip}`]);
  assert.equal(await lp.stop(), 0, lp.output.join('\n'));
  await ns.destroy();
});
