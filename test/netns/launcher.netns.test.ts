/*
 * `lanparty qemu`: guests started the way a user starts them, on a real QEMU (7.2 on Debian 12).
 *
 *   netns lp<pid>-N-launcher (lo up)
 *   ┌──────────────────────────────────────────────────────────────────────────────────────┐
 *   │  lanparty qemu g1 -- ...  ──udp 127.0.0.1:33001 (its own choice)─┐                   │
 *   │                                                                  ├── lanparty up     │
 *   │  lanparty qemu g2 -t unixgram -- ...  ──unixgram─────────────────┘   DHCP 10.77.0.0/24:│
 *   │                                                            g1 → .51, g2 → .52 (MACs  │
 *   │                                                            from the names)           │
 *   └──────────────────────────────────────────────────────────────────────────────────────┘
 * The namespace has the kernel's unix datagram queue of 10, so g1's own choice is udp (with a
 * socket the launcher made, with a larger receive buffer, as QEMU's fd 3); g2 asks for unixgram
 * and is told about the queue. g1 and g2 ask DHCP for an address (lp.dhcp=1, hostname = the guest name) and ping each other;
 * while they run, lanparty's status names them; when they power off, each launcher exits 0 and
 * the names leave. Then: SIGINT to a launcher stops its QEMU, and a QEMU that fails exits the
 * launcher with QEMU's own code.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, Netns, waitFor } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, qemuVersion } from '../../lab/guest.js';
import { lanpartyMissing } from '../../lab/netns-lanparty.js';
import { launch, startUp, type UpProcess } from '../../lab/launcher.js';
import { request } from '../../src/control/client.js';
import type { StatusReport } from '../../src/daemon/status.js';
import { formatMac, macForName } from '../../src/wire/ethernet.js';

const skip = netnsSkipReason() ?? guestSkipReason();
const GUEST_TIMEOUT_MS = 150_000;

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

function config(dir: string): string {
  return [
    '[[port]]', `url = "unixgram://${dir}/dgram.sock"`,
    '[[port]]', 'url = "udp://127.0.0.1:33001"',
    '[dhcp]', 'subnet = "10.77.0.0/24"',
    '[[dhcp.static]]', `mac = "${formatMac(macForName('g1'))}"`, 'address = "10.77.0.51"',
    '[[dhcp.static]]', `mac = "${formatMac(macForName('g2'))}"`, 'address = "10.77.0.52"',
    '',
  ].join('\n');
}

interface GuestsSection { name: string; mac: string; state: string; transport: string | null; pid: number | null }

let ns: Netns;
let up: UpProcess;

test('two guests started with lanparty qemu get DHCP leases, ping each other and are named in status', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  t.diagnostic(qemuVersion());
  ns = await Netns.create('launcher');
  up = await startUp(ns, config);
  const cmd = (ip: string) => ({ dhcp: true, ping: ip, deadline: 100, wait: 25 });
  const g1 = await launch({ ns, name: 'g1', control: up.control, cmdline: cmd('10.77.0.52') });
  const g2 = await launch({ ns, name: 'g2', control: up.control, cmdline: cmd('10.77.0.51'), launcherArgs: ['--transport', 'unixgram'] });

  const [r1, r2] = await Promise.all([g1.done(GUEST_TIMEOUT_MS), g2.done(GUEST_TIMEOUT_MS)]);
  for (const [g, r] of [[g1, r1], [g2, r2]] as const) {
    t.diagnostic(`${g.name}: ${g.stderr.join(' | ')}`);
    for (const x of r.results) t.diagnostic(`  ${g.name}: ${x.line}`);
  }
  // The launcher said which transport it chose and why: QEMU 7.2, so datagrams; the namespace's
  // unix datagram queue is the kernel's 10, so udp before unixgram.
  assert.match(g1.stderr.join('\n'), /g1 \(.+\) joins via udp:\/\/127\.0\.0\.1:33001: QEMU 7\.2\.\d+ cannot reconnect a stream client.*before unixgram: unix datagram sockets queue only 10 datagrams here/);
  assert.match(g2.stderr.join('\n'), /g2 \(.+\) joins via unixgram:\/\/.*dgram\.sock: chosen with --transport/);
  // The unixgram guest is told about the queue, with the sysctl; the udp guest is not.
  assert.match(g2.stderr.join('\n'), /note: unix datagram sockets queue only 10 datagrams here .*sysctl -w net\.unix\.max_dgram_qlen=512/);
  assert.doesNotMatch(g1.stderr.join('\n'), /note:.*max_dgram_qlen/, 'a udp guest does not wait on that queue');
  // On the udp port the launcher made g1's socket, with a larger receive buffer, and QEMU uses it:
  // while g1 lingers, the one socket connected to lanparty's port is QEMU's, with that buffer.
  const said = /g1 receives on a socket lanparty made, with a (\d+) KiB buffer \(QEMU's own would have \d+ KiB, net\.core\.rmem_default\)/.exec(g1.stderr.join('\n'));
  assert.ok(said, `g1's launcher says it made the socket: ${g1.stderr.join(' | ')}`);
  assert.doesNotMatch(g2.stderr.join('\n'), /receives on a socket lanparty made/, 'QEMU makes its own unixgram socket');
  const ss = (await ns.run(['ss', '-Huamn', 'state', 'established', 'dport', '=', ':33001'])).stdout;
  const rb = [...ss.matchAll(/rb(\d+)/g)].map((m) => Number(m[1]));
  assert.deepEqual(rb, [Number(said[1]) * 1024], `one socket connected to lanparty's udp port, with the buffer the launcher set:\n${ss}`);
  const rmemDefault = Number((await ns.run(['cat', '/proc/sys/net/core/rmem_default'])).stdout.trim());
  assert.ok(rb[0] > rmemDefault, `larger than QEMU's own socket gets (net.core.rmem_default, ${rmemDefault})`);
  for (const [name, r, ip, peer] of [['g1', r1, '10.77.0.51', '10.77.0.52'], ['g2', r2, '10.77.0.52', '10.77.0.51']] as const) {
    assert.equal(r.done, 'ok', `${name}: LP-DONE ${r.done}`);
    const dhcp = r.results.find((x) => x.kind === 'dhcp');
    assert.ok(dhcp?.ok, `${name} got a DHCP lease`);
    assert.equal(dhcp.fields.ip, ip, `${name}'s lease is its static address (by the MAC from its name)`);
    assert.equal(dhcp.fields.server, '10.77.0.1', 'from lanparty\'s DHCP server');
    const link = r.results.find((x) => x.kind === 'link')!;
    assert.equal(link.fields.mac, formatMac(macForName(name)), `${name} has the stable MAC from its name`);
    assert.ok(r.results.find((x) => x.kind === 'ping' && x.target === peer)?.ok, `${name} pinged ${peer}`);
  }

  // While they linger: status names them, with the transport each one uses and its QEMU pid.
  const status = (await request(up.control, 'status')) as StatusReport;
  const services = status.services as { guests: GuestsSection[]; lan: { dhcp: { leases: Array<{ mac: string; ip: string; hostname: string | null }> } } };
  for (const [name, transport] of [['g1', /^udp:/], ['g2', /^unixgram:/]] as const) {
    const row = services.guests.find((g) => g.name === name);
    assert.ok(row, `status names ${name}: ${JSON.stringify(services.guests)}`);
    assert.equal(row.state, 'running');
    assert.equal(row.mac, formatMac(macForName(name)));
    assert.match(row.transport ?? '', transport);
    assert.ok(status.macs.some((m) => m.mac === row.mac), `${name}'s MAC is in the MAC table`);
    const lease = services.lan.dhcp.leases.find((l) => l.mac === row.mac);
    assert.equal(lease?.hostname, name, `the lease carries ${name}'s hostname (DNS answers ${name}.lan)`);
  }
  const guests = (await request(up.control, 'guests')) as Array<{ name: string; ips: string[] }>;
  assert.deepEqual(guests.filter((g) => g.name === 'g1' || g.name === 'g2').map((g) => [g.name, g.ips.includes(g.name === 'g1' ? '10.77.0.51' : '10.77.0.52')]), [['g1', true], ['g2', true]]);

  // The guests power off after lp.wait: QEMU exits 0, and so does each launcher.
  assert.equal(await g1.exited(), 0, 'lanparty qemu g1 exits with QEMU\'s code');
  assert.equal(await g2.exited(), 0, 'lanparty qemu g2 exits with QEMU\'s code');
  await waitFor('g1 and g2 to leave status', async () => {
    const s = (await request(up.control, 'status')) as StatusReport;
    return !(s.services as { guests: GuestsSection[] }).guests.some((g) => g.state === 'running');
  }, 5000);
});

test('SIGINT to lanparty qemu stops QEMU cleanly; a failing QEMU\'s exit code is the launcher\'s', { skip, timeout: 200_000 }, async () => {
  assert.ok(up, 'the first test started lanparty');
  const g3 = await launch({ ns, name: 'g3', control: up.control, cmdline: { wait: 600 } });
  await g3.line(/LP-BOOT/, GUEST_TIMEOUT_MS);
  const row = await waitFor('g3 in status', async () => {
    const s = (await request(up.control, 'status')) as StatusReport;
    return (s.services as { guests: GuestsSection[] }).guests.find((g) => g.name === 'g3' && g.pid !== null);
  }, 5000);
  g3.signal('SIGINT');
  assert.equal(await g3.exited(), 0, `QEMU stops on SIGINT and exits 0; output:\n${g3.lines.slice(-10).join('\n')}`);
  assert.throws(() => process.kill(row.pid!, 0), { code: 'ESRCH' }, 'the QEMU process is gone');

  // A QEMU that refuses its arguments exits 1; the launcher passes that on.
  const bad = await launch({ ns, name: 'g4', control: up.control, qemuArgs: ['-nodefaults', '-display', 'none', '-no-such-option'] });
  assert.equal(await bad.exited(), 1, `QEMU's exit code; stderr:\n${bad.stderr.join('\n')}`);
  assert.match(bad.lines.join('\n'), /no-such-option/);

  // g6's udp address is taken by another program: the launcher, which binds it first for QEMU,
  // says whose address it is and exits 4 before QEMU would fail on it.
  const dry = await launch({ ns, name: 'g6', control: up.control, launcherArgs: ['-t', 'udp', '-n'], qemuArgs: [] });
  assert.equal(await dry.exited(), 0);
  const port = Number(/local\.port=(\d+)/.exec(dry.lines.join('\n'))?.[1]);
  assert.ok(port > 0, `the dry run shows g6's local port: ${dry.lines.join('\n')}`);
  const holder = ns.spawn(['socat', '-u', `UDP4-RECV:${port},bind=127.0.0.1`, 'STDOUT'], 'socat holding g6\'s port');
  await ns.waitListening('udp', port);
  const taken = await launch({ ns, name: 'g6', control: up.control, launcherArgs: ['-t', 'udp'], qemuArgs: [] });
  assert.equal(await taken.exited(), 4, `address in use; stderr:\n${taken.stderr.join('\n')}`);
  assert.match(taken.stderr.join('\n'), new RegExp(`guest g6's address on udp://127\\.0\\.0\\.1:33001, udp 127\\.0\\.0\\.1:${port}, is taken by another program .*start the guest under another name`));
  holder.kill();

  // Without a lanparty the launcher fails before starting QEMU, with the control exit code.
  const none = await launch({ ns, name: 'g5', control: `${up.dir}/nothing.sock`, qemuArgs: [] });
  assert.equal(await none.exited(), 8);
  assert.match(none.stderr.join('\n'), /no lanparty is running there/);

  assert.equal(await up.stop(), 0);
  await ns.destroy();
});
