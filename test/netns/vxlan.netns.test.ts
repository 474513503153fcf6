/*
 * lanparty's VXLAN port against VTEPs we did not write: the Linux kernel's `vxlan` device and Open
 * vSwitch (userspace datapath). Every party is a namespace on one underlay: a "wire" namespace
 * holds a kernel bridge with one veth to each party (10.99.0.0/24).
 *
 *   netns lp<pid>-N-wire: bridge uw0 ── veths ──┬──────────────┬──────────────┬──────────────┐
 *                                               │              │              │              │
 *   lp   10.99.0.2  lanparty up                 │   k1 10.99.0.1     k2 10.99.0.3     k3 10.99.0.4 / ovs 10.99.0.5
 *        vxlan://10.99.0.2:4789?vni=42&remote=…     vx0 id 42 ─ br0   vx0 id 42 ─ br0   vx43 id 43 ─ br0
 *        + guest g21 10.0.0.21 (udp), or the        (fdb 00:00… dst   (fdb 00:00… dst   (fdb 00:00… dst
 *          virtual host 10.77.0.1                    every other VTEP) every other VTEP) 10.99.0.2)
 *
 * 1. kernel VTEP + QEMU guest: guest pings the kernel side and back; `bridge fdb show dev vx0`
 *    learned the guest MAC at dst 10.99.0.2; lanparty's status shows k1's MAC behind 10.99.0.1.
 * 2. two kernel VTEPs + lanparty in VNI 42 all reach each other; k3 in VNI 43 reaches nothing,
 *    and lanparty counts exactly the packets k3's vx43 sent as other-VNI drops.
 * 3. Open vSwitch (ovsdb-server + ovs-vswitchd by hand, datapath_type=netdev, own run dir).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, netnsSkipReason, Netns, registerCleanup, tempDir, waitFor, log } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, startGuest, summaryLines } from '../../lab/guest.js';
import { attach, guestIp } from '../../lab/guest-lan.js';
import { cliPath, lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';
import type { VxlanStatus } from '../../src/transports/vxlan/index.js';

const skip = netnsSkipReason(['ip', 'ss', 'bridge', 'ping']);
const guestSkip = skip ?? guestSkipReason();

after(cleanupAll);
before(async () => {
  if (!guestSkip) await buildGuest();
});

interface StatusJson {
  transports: Array<{ kind: string; vxlan?: VxlanStatus }>;
  macs: Array<{ mac: string; portName: string }>;
}

function status(dir: string): StatusJson {
  return JSON.parse(execFileSync(process.execPath, [cliPath(), 'status', '--json', '--control', join(dir, 'control.sock')], { encoding: 'utf8' })) as StatusJson;
}

function vxlanOf(dir: string): VxlanStatus {
  const t = status(dir).transports.find((x) => x.kind === 'vxlan');
  assert.ok(t?.vxlan, 'status has a vxlan transport');
  return t.vxlan;
}

async function macOf(ns: Netns, dev: string): Promise<string> {
  return (await ns.run(['cat', `/sys/class/net/${dev}/address`])).stdout.trim();
}

/** The underlay: a wire namespace with bridge uw0, and `join` plugging a party into it ('' = no address). */
async function underlay(): Promise<{ join: (ns: Netns, ifname: string, addr: string) => Promise<void> }> {
  const wire = await Netns.create('wire');
  await wire.run(['ip', 'link', 'add', 'uw0', 'type', 'bridge']);
  await wire.run(['ip', 'link', 'set', 'uw0', 'up']);
  let n = 0;
  return {
    join: async (ns, ifname, addr) => {
      n++;
      await wire.run(['ip', 'link', 'add', `w${n}`, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns.name]);
      await wire.run(['ip', 'link', 'set', `w${n}`, 'master', 'uw0', 'up']);
      if (addr !== '') await ns.run(['ip', 'addr', 'add', addr, 'dev', ifname]);
      await ns.run(['ip', 'link', 'set', ifname, 'up']);
      await waitFor(`${ifname} up in ${ns.name}`, async () => (await ns.run(['cat', `/sys/class/net/${ifname}/operstate`])).stdout.trim() === 'up', 10_000);
    },
  };
}

/** A kernel VTEP: vxlan device `dev` (id vni, dstport 4789, local, dev ul0) in bridge br0 with `addr`. */
async function kernelVtep(ns: Netns, dev: string, vni: number, local: string, remotes: string[], addr: string): Promise<void> {
  // No IPv6: autoconfiguration traffic would make the exact counters below racy.
  await ns.run(['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  await ns.run(['ip', 'link', 'add', dev, 'type', 'vxlan', 'id', String(vni), 'dstport', '4789', 'local', local, 'dev', 'ul0']);
  await ns.run(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  await ns.run(['ip', 'link', 'set', dev, 'master', 'br0', 'up']);
  await ns.run(['ip', 'link', 'set', 'br0', 'up']);
  await ns.run(['ip', 'addr', 'add', addr, 'dev', 'br0']);
  for (const r of remotes) await ns.run(['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', dev, 'dst', r]);
}

test('kernel vxlan VTEP and a QEMU guest behind lanparty ping each other; both sides learn', { skip: guestSkip, timeout: 240_000 }, async (t) => {
  assert.equal(lanpartyMissing(), undefined, lanpartyMissing());
  const u = await underlay();
  const [lp, k1] = await Promise.all([Netns.create('lp'), Netns.create('k1')]);
  await u.join(lp, 'ul0', '10.99.0.2/24');
  await u.join(k1, 'ul0', '10.99.0.1/24');
  await kernelVtep(k1, 'vx0', 42, '10.99.0.1', ['10.99.0.2'], '10.0.0.50/24');
  const lan = await startLanparty({ ns: lp, ports: ['vxlan://10.99.0.2:4789?vni=42&remote=10.99.0.1', ...attach('udp', 21, tempDir('g')).ports] });
  await lp.waitListening('udp', 4789);
  const guest = await startGuest({
    ns: lp, name: 'g21', mac: macForGuest(21), netdevArgs: [attach('udp', 21, '').netdev],
    cmdline: { ip: `${guestIp(21)}/24`, ping: ['10.0.0.50'], deadline: 90, wait: 150 },
    timeoutMs: 180_000,
  });
  // The guest pings first (its pings teach the kernel the guest MAC); then the kernel side pings back.
  const r = await guest.result();
  for (const line of summaryLines('g21', r)) t.diagnostic(line);
  assert.ok(r.results.find((x) => x.kind === 'ping' && x.target === '10.0.0.50')?.ok, 'guest pinged the kernel side 10.0.0.50');
  await k1.run(['ping', '-c', '3', '-W', '2', guestIp(21)]);
  const fdb = (await k1.run(['bridge', 'fdb', 'show', 'dev', 'vx0'])).stdout;
  t.diagnostic(`k1 bridge fdb show dev vx0:\n${fdb}`);
  assert.match(fdb, new RegExp(`^${macForGuest(21)} dst 10\\.99\\.0\\.2 self`, 'm'), 'the kernel learned the guest MAC behind lanparty 10.99.0.2');
  const k1Mac = await macOf(k1, 'br0');
  const vx = vxlanOf(lan.dir);
  const vtep = vx.vteps.find((v) => v.address === '10.99.0.1');
  assert.ok(vtep?.macs.some((m) => m.mac === k1Mac), `lanparty shows ${k1Mac} behind VTEP 10.99.0.1: ${JSON.stringify(vx.vteps)}`);
  assert.equal(vx.counters.rxBadFlags + vx.counters.rxOtherVni + vx.counters.rxUnknownVtep, 0);
  guest.kill();
  await guest.exited();
  assert.equal(await lan.stop(), 0);
});

test('two kernel VTEPs and lanparty share VNI 42; a VTEP in VNI 43 stays isolated and is counted', { skip, timeout: 120_000 }, async (t) => {
  assert.equal(lanpartyMissing(), undefined, lanpartyMissing());
  const u = await underlay();
  const [lp, k1, k2, k3] = await Promise.all([Netns.create('lp'), Netns.create('k1'), Netns.create('k2'), Netns.create('k3')]);
  await u.join(lp, 'ul0', '10.99.0.2/24');
  await u.join(k1, 'ul0', '10.99.0.1/24');
  await u.join(k2, 'ul0', '10.99.0.3/24');
  await u.join(k3, 'ul0', '10.99.0.4/24');
  // What k3 puts on the wire, from before its VTEP exists, is counted with tcpdump (vx43's own tx_packets ran one short of the wire in trials here).
  const capture = k3.spawn(['tcpdump', '-lnqi', 'ul0', 'udp and dst port 4789 and dst host 10.99.0.2'], 'tcpdump k3');
  let wirePackets = 0;
  let listening = false;
  capture.stdout!.setEncoding('utf8').on('data', (d: string) => { wirePackets += d.split('\n').filter((l) => l.includes('10.99.0.2.4789')).length; });
  capture.stderr!.setEncoding('utf8').on('data', (d: string) => { if (d.includes('listening on')) listening = true; });
  await waitFor('tcpdump in k3 to listen', () => listening, 10_000);
  await kernelVtep(k1, 'vx0', 42, '10.99.0.1', ['10.99.0.2', '10.99.0.3'], '10.77.0.51/24');
  await kernelVtep(k2, 'vx0', 42, '10.99.0.3', ['10.99.0.1', '10.99.0.2'], '10.77.0.52/24');
  await kernelVtep(k3, 'vx43', 43, '10.99.0.4', ['10.99.0.2'], '10.77.0.99/24');
  // lanparty's virtual host 10.77.0.1 is the LAN member on the lanparty side.
  const lan = await startLanparty({ ns: lp, ports: ['vxlan://10.99.0.2:4789?vni=42&remote=10.99.0.1&remote=10.99.0.3&remote=10.99.0.4'] });
  await lp.waitListening('udp', 4789);
  for (const [ns, target] of [[k1, '10.77.0.1'], [k2, '10.77.0.1'], [k1, '10.77.0.52'], [k2, '10.77.0.51']] as const) {
    await ns.run(['ping', '-c', '2', '-W', '2', target]);
  }
  // Negative case: VNI 43 reaches nothing of VNI 42. Counted from a quiet baseline (the device
  // sends a little on its own when it comes up, before lanparty listens).
  await waitFor('k3 quiet on the wire', async () => {
    const before = wirePackets;
    await new Promise((r) => setTimeout(r, 1000));
    return before === wirePackets;
  }, 15_000, 0);
  const wireBase = wirePackets;
  const rxBase = vxlanOf(lan.dir).counters.rxOtherVni;
  await assert.rejects(k3.run(['ping', '-c', '3', '-W', '1', '10.77.0.1']), 'VNI 43 cannot reach lanparty in VNI 42');
  await assert.rejects(k3.run(['ping', '-c', '1', '-W', '1', '10.77.0.51']), 'VNI 43 cannot reach k1 in VNI 42');
  // ARP keeps retrying for a few seconds after ping gives up: compare once both counters are still.
  let k3Tx = -1;
  let rxSeen = -2;
  await waitFor('k3 VNI 43 packets on the wire to equal lanparty other-VNI drops', async () => {
    const before = wirePackets;
    const rx = vxlanOf(lan.dir).counters.rxOtherVni - rxBase;
    k3Tx = wirePackets - wireBase;
    rxSeen = rx;
    return before === wirePackets && rx === k3Tx;
  }, 15_000, 500).catch((err: Error) => {
    throw new Error(`${err.message}: wire ${wirePackets}, lanparty ${vxlanOf(lan.dir).counters.rxOtherVni}`);
  });
  capture.kill('SIGINT');
  const vx = vxlanOf(lan.dir);
  t.diagnostic(`lanparty vxlan: ${JSON.stringify(vx.counters)}; k3 VNI 43 packets on the wire ${k3Tx}`);
  assert.ok(k3Tx > 0);
  assert.equal(rxSeen, k3Tx, 'every packet k3 sent in VNI 43 was dropped and counted (at the same moment)');
  assert.equal(vx.counters.lastOtherVni, 43);
  const k3Mac = await macOf(k3, 'br0');
  assert.ok(!status(lan.dir).macs.some((m) => m.mac === k3Mac), 'k3 MAC never reached the switch');
  assert.ok(!(await k1.run(['bridge', 'fdb', 'show', 'br', 'br0'])).stdout.includes(k3Mac), 'k3 MAC never reached k1');
  const k1Mac = await macOf(k1, 'br0');
  const k2Mac = await macOf(k2, 'br0');
  const behind = (addr: string) => vx.vteps.find((v) => v.address === addr)?.macs.map((m) => m.mac) ?? [];
  assert.deepEqual(behind('10.99.0.1'), [k1Mac]);
  assert.deepEqual(behind('10.99.0.3'), [k2Mac]);
  assert.deepEqual(behind('10.99.0.4'), []);
  const vhostMac = status(lan.dir).macs.find((m) => m.portName.startsWith('services'))?.mac;
  assert.ok(vhostMac, 'lanparty virtual host in the MAC table');
  for (const ns of [k1, k2]) {
    const fdb = (await ns.run(['bridge', 'fdb', 'show', 'dev', 'vx0'])).stdout;
    assert.match(fdb, new RegExp(`^${vhostMac} dst 10\\.99\\.0\\.2 self`, 'm'), `${ns.name} learned the virtual host behind lanparty`);
  }
  assert.equal(await lan.stop(), 0);
});

/** Why Open vSwitch cannot run here, or undefined. */
function ovsSkipReason(): string | undefined {
  if (skip) return skip;
  for (const f of ['/usr/sbin/ovs-vswitchd', '/usr/sbin/ovsdb-server', '/usr/bin/ovs-vsctl', '/usr/share/openvswitch/vswitch.ovsschema']) {
    if (!existsSync(f)) return `Open vSwitch is not installed (${f} missing): apt-get install -y openvswitch-switch`;
  }
  return undefined;
}

test('Open vSwitch (userspace datapath) as a VTEP: ping through lanparty both ways, both learn', { skip: ovsSkipReason(), timeout: 120_000 }, async (t) => {
  assert.equal(lanpartyMissing(), undefined, lanpartyMissing());
  const u = await underlay();
  const [lp, ovs] = await Promise.all([Netns.create('lp'), Netns.create('ovs')]);
  await u.join(lp, 'ul0', '10.99.0.2/24');
  await u.join(ovs, 'ul0', '');   // the VTEP address goes on br-phy, not on the port under it
  const dir = tempDir('ovs');
  const env = ['env', `OVS_RUNDIR=${dir}`, `OVS_LOGDIR=${dir}`, `OVS_DBDIR=${dir}`];
  const vsctl = (...args: string[]) => ovs.run([...env, 'ovs-vsctl', `--db=unix:${dir}/db.sock`, '--timeout=20', ...args]);
  const appctl = (...args: string[]) => ovs.run([...env, 'ovs-appctl', '-t', `${dir}/vswitchd.ctl`, ...args]);
  await ovs.run(['ovsdb-tool', 'create', `${dir}/conf.db`, '/usr/share/openvswitch/vswitch.ovsschema']);
  ovs.spawn([...env, 'ovsdb-server', `${dir}/conf.db`, `--remote=punix:${dir}/db.sock`, `--unixctl=${dir}/ovsdb.ctl`, `--log-file=${dir}/ovsdb.log`], 'ovsdb-server');
  await ovs.waitPath(`${dir}/db.sock`);
  await vsctl('--no-wait', 'init');
  ovs.spawn([...env, 'ovs-vswitchd', `unix:${dir}/db.sock`, `--unixctl=${dir}/vswitchd.ctl`, `--log-file=${dir}/vswitchd.log`], 'ovs-vswitchd');
  registerCleanup(`ovs logs in ${dir}`, () => {
    const p = join(dir, 'vswitchd.log');
    if (existsSync(p)) log(readFileSync(p, 'utf8').split('\n').filter((l) => /WARN|ERR/.test(l) && !/mgmt|snoop|unlink/.test(l)).slice(-10).join('\n'));
  });
  await ovs.waitPath(`${dir}/vswitchd.ctl`);
  // OVS native tunnelling: the underlay port sits on bridge br-phy, which holds the VTEP address.
  await vsctl('add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=netdev', '--', 'add-port', 'br-phy', 'ul0');
  await vsctl('add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev',
    '--', 'add-port', 'br-int', 'vx1', '--', 'set', 'interface', 'vx1', 'type=vxlan', 'options:remote_ip=10.99.0.2', 'options:key=42',
    '--', 'add-port', 'br-int', 'p0', '--', 'set', 'interface', 'p0', 'type=internal');
  await ovs.run(['ip', 'addr', 'add', '10.99.0.5/24', 'dev', 'br-phy']);
  await ovs.run(['ip', 'link', 'set', 'br-phy', 'up']);
  await ovs.run(['ip', 'addr', 'add', '10.77.0.60/24', 'dev', 'p0']);
  await ovs.run(['ip', 'link', 'set', 'p0', 'up']);
  const lan = await startLanparty({ ns: lp, ports: ['vxlan://10.99.0.2:4789?vni=42&remote=10.99.0.5'] });
  await lp.waitListening('udp', 4789);
  // OVS learns its route to 10.99.0.2 from the kernel asynchronously; poll with pings.
  await waitFor('ping from OVS p0 to lanparty 10.77.0.1', async () => {
    try {
      await ovs.run(['ping', '-c', '1', '-W', '1', '10.77.0.1']);
      return true;
    } catch {
      return false;
    }
  }, 30_000, 200);
  await ovs.run(['ping', '-c', '3', '-W', '2', '10.77.0.1']);
  const fdb = (await appctl('fdb/show', 'br-int')).stdout;
  t.diagnostic(`ovs fdb/show br-int:\n${fdb}`);
  const st = status(lan.dir);
  const vhostMac = st.macs.find((m) => m.portName.startsWith('services'))?.mac;
  assert.ok(vhostMac, 'lanparty virtual host in the MAC table');
  const ofport = (await vsctl('get', 'interface', 'vx1', 'ofport')).stdout.trim();
  assert.match(fdb, new RegExp(`^\\s+${ofport}\\s+0\\s+${vhostMac}`, 'm'), 'OVS learned the lanparty-side MAC on its vxlan port');
  const p0Mac = await macOf(ovs, 'p0');
  const vx = vxlanOf(lan.dir);
  assert.ok(vx.vteps.find((v) => v.address === '10.99.0.5')?.macs.some((m) => m.mac === p0Mac), `lanparty shows OVS p0 ${p0Mac} behind 10.99.0.5: ${JSON.stringify(vx.vteps)}`);
  const drops = (await appctl('coverage/show')).stdout.match(/datapath_drop_tunnel_pop_error.*total: (\d+)/);
  assert.equal(drops, null, `OVS dropped none of lanparty's packets as tunnel pop errors: ${drops?.[0]}`);
  assert.equal(await lan.stop(), 0);
});
