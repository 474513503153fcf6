/*
 * The host joins the LAN through a TAP port, with real QEMU 7.2 guests on lanparty's udp port.
 *
 *   netns lp<pid>-N-<tag>
 *   ┌──────────────────────────────────────────────────────────────────────────────────┐
 *   │  namespace stack 10.0.0.254/24 ── TAP ── lanparty up ── udp://127.0.0.1:33001 ──┬─ guest g.. 10.0.0.N
 *   │  (ping, iperf3 -c, dnsmasq)                                                     └─ guest g.. 10.0.0.M
 *   └──────────────────────────────────────────────────────────────────────────────────┘
 *
 *   host-tcp   lanparty creates lptc0 (create=1&address=10.0.0.254/24); the namespace pings a
 *              guest and runs iperf3 (TCP) against the guest's iperf3 -s; the guest pings the host.
 *   dnsmasq    lanparty --no-dhcp; dnsmasq bound to the TAP (--interface --bind-interfaces
 *              --port=0) leases 10.0.0.100-150 to a guest with lp.dhcp=1.
 *   rootless   ip tuntap add mode tap user nobody name lpu0; lanparty runs as nobody
 *              (setpriv --reuid=nobody --regid=nogroup --clear-groups) and attaches to it.
 *   reattach   a persistent TAP is deleted mid-run: a guest started then still pings another;
 *              frames to the TAP count as port-down; the TAP is recreated, lanparty reattaches,
 *              and the namespace pings both guests again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, killProcess, log, netnsSkipReason, Netns, tempDir, waitFor } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, startGuest, summaryLines, type Guest, type GuestResult } from '../../lab/guest.js';
import { attach, guestIp } from '../../lab/guest-lan.js';
import { cliPath, lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';

const skip = netnsSkipReason(['ip', 'ss', 'ping', 'iperf3', 'dnsmasq', 'setpriv']) ?? guestSkipReason();
const HOST_IP = '10.0.0.254';

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

/** A guest on lanparty's udp port with a fixed address, lingering `waitS` after its tasks. */
function guest(ns: Netns, dir: string, n: number, cmdline: Record<string, string | number | Array<string | number>>): Promise<Guest> {
  return startGuest({
    ns,
    name: `g${n}`,
    mac: macForGuest(n),
    netdevArgs: [attach('udp', n, dir).netdev],
    cmdline: { deadline: 90, ...cmdline },
    timeoutMs: 200_000,
  });
}

/** Pings from the namespace until one answer comes (the guest may still be booting), then 3. */
async function hostPings(ns: Netns, ip: string, timeoutMs = 90_000): Promise<string> {
  await waitFor(`${ns.name} to reach ${ip}`, () => ns.run(['ping', '-c', '1', '-W', '1', ip]).then(() => true, () => false), timeoutMs, 200);
  const { stdout } = await ns.run(['ping', '-c', '3', '-i', '0.2', '-W', '2', ip]);
  assert.match(stdout, / 3 received/, stdout);
  return stdout;
}

function report(t: { diagnostic(s: string): void }, name: string, r: GuestResult): void {
  for (const line of summaryLines(name, r)) t.diagnostic(line);
}

function statusJson(dir: string): { ports: Array<{ kind: string; name: string; txFrames: number; drops: Record<string, number> }>; transports: Array<{ kind: string; state: string }> } {
  return JSON.parse(execFileSync(process.execPath, [cliPath(), 'status', '--json', '--control', join(dir, 'control.sock')], { encoding: 'utf8' }));
}

function tapPort(dir: string) {
  const s = statusJson(dir);
  return { port: s.ports.find((p) => p.kind === 'tap')!, transport: s.transports.find((x) => x.kind === 'tap')! };
}

test('the host pings a guest and opens a TCP connection (iperf3) to it through a created TAP', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('tap-tcp');
  const dir = tempDir('tap-tcp');
  const lp = await startLanparty({ ns, ports: ['udp://127.0.0.1:33001', `tap://lptc0?create=1&address=${HOST_IP}/24&mtu=1500`], extraArgs: ['--no-dhcp'] });
  assert.ok(lp.output.includes(`    the host is ${HOST_IP} on this LAN via lptc0`), lp.output.join('\n'));
  await ns.run(['ip', '-4', 'addr', 'show', 'dev', 'lptc0']);
  const g = await guest(ns, dir, 11, { ip: `${guestIp(11)}/24`, ping: [HOST_IP], iperf: 'server', wait: 30 });
  await waitFor('g11 iperf3 server', () => g.lines.some((l) => l.includes('LP-RESULT iperf-server listening ok')), 120_000, 200);
  await hostPings(ns, guestIp(11));
  let iperf = '';
  await waitFor('iperf3 -c to connect', async () => {
    try {
      iperf = (await ns.run(['iperf3', '-c', guestIp(11), '-t', '2', '-f', 'm'])).stdout;
      return true;
    } catch {
      return false;
    }
  }, 30_000, 500);
  const mbps = /([\d.]+) Mbits\/sec.*receiver/.exec(iperf);
  assert.ok(mbps && Number(mbps[1]) > 0, iperf);
  t.diagnostic(`host → g11 through the TAP: iperf3 ${mbps![1]} Mbit/s (TCG guest)`);
  const r = await g.result();
  report(t, 'g11', r);
  assert.equal(r.done, 'ok');
  assert.ok(r.results.some((x) => x.kind === 'ping' && x.target === HOST_IP && x.ok), 'the guest pings the host');
  assert.ok(r.results.some((x) => x.kind === 'iperf' && x.ok), 'the guest saw the iperf3 test');
  const { port } = tapPort(lp.dir);
  assert.ok(port.txFrames > 0);
  assert.equal(port.drops['send-error'], 0);
  assert.equal(port.drops['queue-full'], 0);
  g.kill();
  await g.exited();
  assert.equal(await lp.stop(), 0);
  await ns.run(['sh', '-c', '! ip link show dev lptc0 2>/dev/null']); // created TAP gone with lanparty
  await ns.destroy();
});

test('dnsmasq bound to the TAP leases an address to a guest (lanparty --no-dhcp)', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('tap-dhcp');
  const dir = tempDir('tap-dhcp');
  const lp = await startLanparty({ ns, ports: ['udp://127.0.0.1:33001', `tap://lpdh0?create=1&address=${HOST_IP}/24`], extraArgs: ['--no-dhcp'] });
  const dnsmasq = ns.spawn([
    'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--user=root',
    '--interface=lpdh0', '--bind-interfaces', '--dhcp-range=10.0.0.100,10.0.0.150,255.255.255.0,1h',
    `--dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`, `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--log-dhcp',
  ], 'dnsmasq');
  const dnsmasqLog: string[] = [];
  dnsmasq.stderr!.setEncoding('utf8').on('data', (d: string) => dnsmasqLog.push(...d.split('\n').filter(Boolean).map((l) => `dnsmasq| ${l}`)));
  await ns.waitListening('udp', 67);
  const g = await guest(ns, dir, 31, { dhcp: 1, ping: [HOST_IP] });
  const r = await g.result();
  report(t, 'g31', r);
  for (const l of dnsmasqLog.filter((l) => /DHCPACK|DHCPOFFER/.test(l))) t.diagnostic(l);
  const lease = r.results.find((x) => x.kind === 'dhcp');
  assert.ok(lease?.ok, `no lease:\n${dnsmasqLog.join('\n')}`);
  const last = Number(lease!.fields.ip.split('.')[3]);
  assert.ok(lease!.fields.ip.startsWith('10.0.0.') && last >= 100 && last <= 150, `lease ${lease!.fields.ip} outside dnsmasq's range`);
  assert.equal(lease!.fields.server, HOST_IP, 'the lease comes from dnsmasq on the TAP');
  assert.equal(r.done, 'ok');
  killProcess(dnsmasq, 'dnsmasq');
  assert.equal(await lp.stop(), 0);
  await ns.destroy();
});

/** Starts `lanparty up` as nobody inside the namespace and waits for "ready". */
async function startLanpartyAsNobody(ns: Netns, dir: string, ports: string[]): Promise<{ child: ChildProcess; output: string[]; stop(): Promise<number | null> }> {
  const config = join(dir, 'lanparty.toml');
  writeFileSync(config, ports.map((u) => `[[port]]\nurl = ${JSON.stringify(u)}\n`).join('\n'));
  chmodSync(config, 0o644);
  const child = ns.spawn(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--',
    process.execPath, cliPath(), 'up', '--config', config, '--control', join(dir, 'control.sock'),
    '--lease-file', join(dir, 'leases.json'), '--no-dhcp'], 'lanparty (nobody)', { env: { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir } });
  const output: string[] = [];
  const exit = new Promise<number | null>((res) => child.once('exit', (code, sig) => res(code ?? (sig ? 128 : null))));
  for (const s of [child.stdout!, child.stderr!]) {
    s.setEncoding('utf8').on('data', (d: string) => {
      for (const line of d.split('\n').filter(Boolean)) {
        output.push(line);
        log(`  lanparty(nobody)| ${line}`);
      }
    });
  }
  await Promise.race([
    waitFor('lanparty (nobody) ready', () => output.includes('ready'), 20_000),
    exit.then((c) => { throw new Error(`lanparty as nobody exited (${c}) before ready:\n${output.join('\n')}`); }),
  ]);
  return {
    child, output,
    stop: async () => {
      child.kill('SIGINT');
      return exit;
    },
  };
}

test('rootless: lanparty as nobody attaches to a persistent TAP that nobody owns', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('tap-rootless');
  const dir = tempDir('tap-rootless');
  chmodSync(dir, 0o777);
  await ns.run(['ip', 'tuntap', 'add', 'mode', 'tap', 'user', 'nobody', 'name', 'lpu0']);
  await ns.run(['ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', 'lpu0']);
  await ns.run(['ip', 'link', 'set', 'lpu0', 'up']);
  const lp = await startLanpartyAsNobody(ns, dir, ['udp://127.0.0.1:33001', 'tap://lpu0']);
  const uid = /^Uid:\s+(\d+)/m.exec(execFileSync('cat', [`/proc/${lp.child.pid}/status`], { encoding: 'utf8' }))![1];
  t.diagnostic(`lanparty pid ${lp.child.pid} runs as uid ${uid}`);
  assert.equal(uid, String(Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim())));
  assert.ok(lp.output.includes(`    the host is ${HOST_IP} on this LAN via lpu0`), lp.output.join('\n'));
  const g = await guest(ns, dir, 41, { ip: `${guestIp(41)}/24`, ping: [HOST_IP], wait: 20 });
  await hostPings(ns, guestIp(41));
  const r = await g.result();
  report(t, 'g41', r);
  assert.equal(r.done, 'ok');
  g.kill();
  await g.exited();
  assert.equal(await lp.stop(), 0, lp.output.join('\n'));
  await ns.run(['ip', 'link', 'show', 'dev', 'lpu0']); // the persistent TAP outlives lanparty
  await ns.destroy();
});

test('deleting the TAP mid-run keeps the LAN up; lanparty reattaches when it is recreated', { skip, timeout: 400_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('tap-reattach');
  const dir = tempDir('tap-reattach');
  const makeTap = async () => {
    await ns.run(['ip', 'tuntap', 'add', 'mode', 'tap', 'name', 'lpd0']);
    await ns.run(['ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', 'lpd0']);
    await ns.run(['ip', 'link', 'set', 'lpd0', 'up']);
  };
  await makeTap();
  const lp = await startLanparty({ ns, ports: ['udp://127.0.0.1:33001', 'tap://lpd0'], extraArgs: ['--no-dhcp'] });
  const g51 = await guest(ns, dir, 51, { ip: `${guestIp(51)}/24`, wait: 240 });
  await hostPings(ns, guestIp(51));
  t.diagnostic('before: the namespace pings g51 through lpd0');

  await ns.run(['ip', 'link', 'del', 'lpd0']);
  await waitFor('lanparty to log the TAP gone', () => lp.output.some((l) => /port lpd0: device gone/.test(l)), 10_000);
  assert.equal(tapPort(lp.dir).transport.state, 'absent');
  const g52 = await guest(ns, dir, 52, { ip: `${guestIp(52)}/24`, ping: [guestIp(51)], wait: 240 });
  await waitFor('g52 to ping g51', () => g52.lines.some((l) => /LP-DONE/.test(l)), 150_000, 200);
  const r52 = await g52.result();
  report(t, 'g52', r52);
  assert.equal(r52.done, 'ok', 'the LAN works while the TAP is gone');
  const down = tapPort(lp.dir).port;
  t.diagnostic(`tap port while absent: txFrames ${down.txFrames}, port-down drops ${down.drops['port-down']}`);
  assert.ok(down.drops['port-down'] > 0, 'frames flooded to the missing TAP count as port-down');
  assert.equal(down.drops['send-error'], 0);

  await makeTap();
  await waitFor('lanparty to reattach', () => lp.output.some((l) => /port lpd0: reattached/.test(l)), 10_000);
  // makeTap adds the device, then its address, then sets it up: a reattach between the first and
  // the last sees it down, and the next tick (1 s) sees it up. Poll for that, never assume it.
  await waitFor('the reattached TAP to be up', () => tapPort(lp.dir).transport.state === 'up', 5_000, 100);
  await hostPings(ns, guestIp(51), 30_000);
  await hostPings(ns, guestIp(52), 30_000);
  t.diagnostic('after: the namespace pings g51 and g52 through the recreated lpd0');
  for (const g of [g51, g52]) g.kill();
  await Promise.all([g51.exited(), g52.exited()]);
  assert.equal(await lp.stop(), 0);
  await ns.destroy();
});
