/**
 * `lanparty doctor` against real problems, provoked for real: first a healthy LAN reports nothing
 * to fix, then each problem is caused and must be reported with its fix.
 *
 *   netns (unshare --net)
 *   ┌──────────────────────────────────────────────────────────────────────────────────────┐
 *   │ lo: mcast 230.0.0.1:33000, udp 127.0.0.1:33001 ── lanparty up (child, DHCP on)         │
 *   │ veth0 10.9.0.1/24 MTU 1500 ═══ veth1 10.9.0.2/24;  route 224.0.0.0/4 dev veth0          │
 *   │      └─ mcast 230.0.0.2:33010?localaddr=10.9.0.1 (a port that sends over a 1500 link)  │
 *   │ udp clients A, B (QEMU dgram wire format) on 127.0.0.1                                 │
 *   │ QEMU -M none -S: socket,mcast=230.0.0.1:33000 without localaddr (joins on veth0),      │
 *   │                  dgram to 127.0.0.1:39999 (nobody), dgram to DIR/missing.sock          │
 *   │ nft: table inet lpdoctor, udp dport 33001 drop                                         │
 *   └──────────────────────────────────────────────────────────────────────────────────────┘
 *   Provoked: wrong membership interface, QEMU pointing nowhere, duplicate MAC (A and B send
 *   with one MAC), duplicate IPv4 (gratuitous ARP for one address from two MACs), an oversized
 *   frame (1514 bytes over the 1500-byte veth), one DHCP client identifier on two MACs, and a
 *   firewall rule dropping lanparty's UDP port.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { inFreshNetns } from '../helpers/self-netns.js';
import { openGuestUdpSocket } from '../../src/cli/guest-socket.js';
import { repoRoot } from '../../lab/guest.js';
import { emitDhcp, emptyDhcpRepr, DHCPDISCOVER } from '../../src/wire/dhcp.js';
import { emitIpv4, IP_PROTO_UDP } from '../../src/wire/ipv4.js';
import { emitUdp } from '../../src/wire/udp.js';

const CLI = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

interface Run { code: number | null; stdout: string; stderr: string }
interface Report { checks: Array<{ name: string; error: string | null }>; findings: Array<{ check: string; problem: string; fix: string }> }

function sh(argv: string[]): void {
  console.log(`# ${argv.join(' ')}`);
  execFileSync(argv[0], argv.slice(1), { stdio: 'inherit' });
}

function lp(args: string[]): Promise<Run> {
  console.log(`$ lanparty ${args.join(' ')}`);
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

function hexFrame(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(14 + payload.length);
  Buffer.from(dst.replace(/:/g, ''), 'hex').copy(f, 0);
  Buffer.from(src.replace(/:/g, ''), 'hex').copy(f, 6);
  f.writeUInt16BE(type, 12);
  payload.copy(f, 14);
  return f.length < 60 ? Buffer.concat([f, Buffer.alloc(60 - f.length)]) : f;
}

function garp(mac: string, ip: number[]): Buffer {
  const m = mac.replace(/:/g, '');
  return hexFrame('ff:ff:ff:ff:ff:ff', mac, 0x0806, Buffer.from('0001080006040001' + m + Buffer.from(ip).toString('hex') + '000000000000' + Buffer.from(ip).toString('hex'), 'hex'));
}

function dhcpDiscover(mac: string, clientId: Buffer, xid: number): Buffer {
  const d = emptyDhcpRepr();
  d.xid = xid;
  d.chaddr = parseInt(mac.replace(/:/g, ''), 16);
  d.messageType = DHCPDISCOVER;
  d.clientId = clientId;
  const msg = emitDhcp(d);
  const p = Buffer.alloc(28 + msg.length);
  msg.copy(p, 28);
  emitUdp({ srcPort: 68, dstPort: 67, payloadBytes: msg.length }, p, 20, 0, 0xffffffff);
  emitIpv4({ src: 0, dst: 0xffffffff, protocol: IP_PROTO_UDP, ttl: 64, ident: 0, dontFragment: false, payloadBytes: 8 + msg.length }, p, 0);
  return hexFrame('ff:ff:ff:ff:ff:ff', mac, 0x0800, p);
}

interface UdpClient { sock: dgram.Socket; send(f: Buffer): Promise<void> }
function udpClient(): Promise<UdpClient> {
  const sock = dgram.createSocket('udp4');
  return new Promise((resolve) => sock.bind(0, '127.0.0.1', () => resolve({ sock, send: (f) => new Promise((r) => sock.send(f, 33001, '127.0.0.1', () => r())) })));
}

async function until<T>(what: string, get: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const which = (cmd: string) => (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, cmd)));

if (inFreshNetns(import.meta.url, 'doctor finds provoked problems and says nothing on a healthy LAN (in a fresh netns)')) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-doctor-'));
  const ctl = ['--control', path.join(dir, 'c.sock')];
  let up: ChildProcess;
  let qemu: ChildProcess | undefined;
  /** Every QEMU a test started: all are killed in after(), so a failed test leaves none behind. */
  const qemus: ChildProcess[] = [];
  let A: UdpClient;
  let B: UdpClient;
  const doctor = async (): Promise<{ run: Run; report: Report }> => {
    const run = await lp(['doctor', '--json', ...ctl]);
    return { run, report: JSON.parse(run.stdout) as Report };
  };
  const findingsOf = (r: Report, check: string) => r.findings.filter((f) => f.check === check);

  before(async () => {
    sh(['ip', 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1']);
    sh(['ip', 'addr', 'add', '10.9.0.1/24', 'dev', 'veth0']);
    sh(['ip', 'addr', 'add', '10.9.0.2/24', 'dev', 'veth1']);
    sh(['ip', 'link', 'set', 'veth0', 'up', 'mtu', '1500']);
    sh(['ip', 'link', 'set', 'veth1', 'up']);
    sh(['ip', 'route', 'add', '224.0.0.0/4', 'dev', 'veth0']);
    const args = [CLI, 'up', '-p', 'mcast://230.0.0.1:33000?localaddr=127.0.0.1&ttl=1', '-p', 'udp://127.0.0.1:33001', '-p', 'mcast://230.0.0.2:33010?localaddr=10.9.0.1&ttl=1',
      ...ctl, '--lease-file', path.join(dir, 'leases.json')];
    console.log(`$ lanparty ${args.slice(1).join(' ')} &`);
    up = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      up.stdout!.on('data', (d) => { out += d; if (/^ready$/m.test(out)) resolve(); });
      up.once('exit', (code) => reject(new Error(`lanparty up exited ${code}: ${out}`)));
    });
    await new Promise((r) => setTimeout(r, 1200));   // first tick (see observe.netns.test.ts)
    A = await udpClient();
    B = await udpClient();
  });

  after(async () => {
    A?.sock.close();
    B?.sock.close();
    for (const q of qemus) if (q.exitCode === null && q.signalCode === null) q.kill('SIGKILL');
    if (up && up.exitCode === null) {
      up.kill('SIGINT');
      await new Promise((r) => up.once('exit', r));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a healthy LAN with traffic reports nothing to fix (exit 0)', async () => {
    for (let i = 0; i < 3; i++) {
      await A.send(hexFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:0a:01', 0x88b5, Buffer.from('hello')));
      await B.send(hexFrame('02:00:00:00:0a:01', '02:00:00:00:0b:01', 0x88b5, Buffer.from('hi')));
    }
    await A.send(garp('02:00:00:00:0a:01', [10, 77, 0, 101]));
    await B.send(garp('02:00:00:00:0b:01', [10, 77, 0, 102]));
    const { run, report } = await doctor();
    assert.deepEqual(report.findings, [], run.stdout);
    assert.equal(run.code, 0);
    assert.deepEqual(report.checks.filter((c) => c.error !== null), []);
    assert.deepEqual(report.checks.map((c) => c.name), ['multicast-membership', 'rp-filter', 'firewall', 'path-mtu', 'duplicate-mac', 'duplicate-ip', 'dhcp-client-id', 'qemu-endpoints', 'unix-dgram-queue', 'udp-guest-buffer']);
    const human = await lp(['doctor', ...ctl]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^ok multicast-membership: /m);
    assert.match(human.stdout, /^Nothing to fix\.$/m);
  });

  test('QEMU joined on the wrong interface and pointing at ports nobody listens on', async () => {
    const argv = ['-M', 'none', '-S', '-nodefaults', '-display', 'none', '-monitor', 'none', '-name', 'stray',
      '-netdev', 'socket,id=m,mcast=230.0.0.1:33000',
      '-netdev', 'dgram,id=u,local.type=inet,local.host=127.0.0.1,local.port=34999,remote.type=inet,remote.host=127.0.0.1,remote.port=39999',
      '-netdev', `dgram,id=x,local.type=unix,local.path=${dir}/g.sock,remote.type=unix,remote.path=${dir}/missing.sock`];
    console.log(`$ qemu-system-x86_64 ${argv.join(' ')} &`);
    qemu = spawn('qemu-system-x86_64', argv, { stdio: 'ignore' });
    qemus.push(qemu);
    const report = await until('QEMU findings', async () => {
      const { report: r } = await doctor();
      return findingsOf(r, 'multicast-membership').length > 0 && findingsOf(r, 'qemu-endpoints').length === 2 ? r : undefined;
    });
    const m = findingsOf(report, 'multicast-membership');
    assert.equal(m.length, 1, JSON.stringify(m));
    assert.match(m[0].problem, /group 230\.0\.0\.1 is joined on veth0, but lanparty's port mcast:\/\/230\.0\.0\.1:33000\?localaddr=127\.0\.0\.1&ttl=1 uses lo/);
    assert.match(m[0].fix, /add localaddr=127\.0\.0\.1 to that QEMU's -netdev socket,mcast=230\.0\.0\.1:33000/);
    const q = findingsOf(report, 'qemu-endpoints').map((f) => f.problem).sort();
    assert.match(q[0], new RegExp(`QEMU pid ${qemu.pid} \\(-name stray\\) sends to udp 127\\.0\\.0\\.1:39999, where nothing listens`));
    assert.match(q[1], /sends to unix datagram socket .*missing\.sock, which does not exist/);
    const run = await lp(['doctor', ...ctl]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^X multicast-membership: group 230\.0\.0\.1 is joined on veth0/m);
    assert.match(run.stdout, /^ {4}fix: /m);
    assert.match(run.stdout, /^3 things to fix\.$/m);
    qemu.kill('SIGKILL');
    await new Promise((r) => qemu!.once('exit', r));
    await until('QEMU findings gone', async () => ((await doctor()).report.findings.length === 0 ? true : undefined));
  });

  test('a duplicate MAC (one MAC moving back and forth between ports)', async () => {
    for (let i = 0; i < 3; i++) {
      await A.send(hexFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:dd:01', 0x88b5, Buffer.from('me')));
      await B.send(hexFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:dd:01', 0x88b5, Buffer.from('no, me')));
    }
    const r = await until('duplicate-mac', async () => { const x = (await doctor()).report; return findingsOf(x, 'duplicate-mac').length ? x : undefined; });
    const f = findingsOf(r, 'duplicate-mac');
    assert.equal(f.length, 1);
    assert.match(f[0].problem, /^MAC 02:00:00:00:dd:01 moved 5 times between ports \d+ \(udp 127\.0\.0\.1:\d+\) and \d+ \(udp 127\.0\.0\.1:\d+\)/);
  });

  test('a duplicate IPv4 address (gratuitous ARP for one address from two MACs)', async () => {
    await A.send(garp('02:00:00:00:0a:01', [10, 77, 0, 200]));
    await B.send(garp('02:00:00:00:0b:01', [10, 77, 0, 200]));
    const r = await until('duplicate-ip', async () => { const x = (await doctor()).report; return findingsOf(x, 'duplicate-ip').length ? x : undefined; });
    assert.deepEqual(findingsOf(r, 'duplicate-ip').map((f) => f.problem), ['IPv4 address 10.77.0.200 is used by 2 MACs: 02:00:00:00:0a:01, 02:00:00:00:0b:01']);
  });

  test('an oversized frame: 1514 bytes over a 1500-byte link', async () => {
    const big = hexFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:0a:01', 0x88b5, Buffer.alloc(1500));
    assert.equal(big.length, 1514);
    await A.send(big);
    const r = await until('path-mtu', async () => { const x = (await doctor()).report; return findingsOf(x, 'path-mtu').length ? x : undefined; });
    const f = findingsOf(r, 'path-mtu');
    assert.equal(f.length, 1, JSON.stringify(f));
    assert.match(f[0].problem, /port \d+ \(udp 127\.0\.0\.1:\d+\) sent frames of 1514 bytes; port mcast:\/\/230\.0\.0\.2:33010\?localaddr=10\.9\.0\.1&ttl=1 carries them over veth0 \(MTU 1500\), where one UDP datagram holds at most 1472 bytes/);
    assert.match(f[0].fix, /set the guests' MTU to 1458/);
  });

  test('one DHCP client identifier on two MACs (cloned guests)', async () => {
    const cid = Buffer.from('ff00000001000100012c4f1a2b020000000001', 'hex');
    const r = await until('dhcp-client-id', async () => {
      await A.send(dhcpDiscover('02:00:00:00:c1:01', cid, 0x1001));
      await B.send(dhcpDiscover('02:00:00:00:c1:02', cid, 0x1002));
      const x = (await doctor()).report;
      return findingsOf(x, 'dhcp-client-id').length ? x : undefined;
    }, 20_000);
    const f = findingsOf(r, 'dhcp-client-id');
    assert.equal(f.length, 1);
    assert.match(f[0].problem, new RegExp(`DHCP client identifier ${cid.toString('hex')} is sent by 2 MACs \\(02:00:00:00:c1:0[12], 02:00:00:00:c1:0[12]\\)`));
  });

  test('a firewall rule dropping lanparty\'s UDP port', { skip: which('nft') ? false : 'nft is not installed (apt-get install nftables)' }, async () => {
    sh(['nft', 'add', 'table', 'inet', 'lpdoctor']);
    sh(['nft', 'add', 'chain', 'inet', 'lpdoctor', 'input', '{ type filter hook input priority 0; }']);
    sh(['nft', 'add', 'rule', 'inet', 'lpdoctor', 'input', 'udp', 'dport', '33001', 'drop']);
    try {
      const { run, report } = await doctor();
      const f = findingsOf(report, 'firewall');
      assert.equal(f.length, 1, run.stdout);
      assert.match(f[0].problem, /nftables rule in inet lpdoctor input drops traffic for 33001, which lanparty uses: "udp dport 33001 drop"/);
      assert.equal(run.code, 1);
    } finally {
      sh(['nft', 'delete', 'table', 'inet', 'lpdoctor']);
    }
  });

  /** The kernel's drop count for the udp socket bound at 127.0.0.1:port (/proc/net/udp), or undefined. */
  const udpDropsAt = (port: number): number | undefined => {
    const row = fs.readFileSync('/proc/net/udp', 'utf8').split('\n').map((l) => l.trim().split(/\s+/))
      .find((f) => f[1] === `0100007F:${port.toString(16).toUpperCase()}`);
    return row ? Number(row[12]) : undefined;
  };
  /** lanparty learns a guest's udp address from one frame, sent before the guest's socket takes the address over. */
  const learnUdpGuest = async (port: number, mac: string, text: string): Promise<void> => {
    const c = dgram.createSocket('udp4');
    await new Promise<void>((r) => c.bind(port, '127.0.0.1', () => r()));
    await new Promise<void>((r) => c.send(hexFrame('ff:ff:ff:ff:ff:ff', mac, 0x88b5, Buffer.from(text)), 33001, '127.0.0.1', () => r()));
    await new Promise((r) => setTimeout(r, 300));
    await new Promise<void>((r) => c.close(() => r()));
  };
  /**
   * 600 broadcasts of 1000 bytes from A, flooded to every udp peer, in bursts of 40 with pauses in
   * which B (this process) reads them; a guest socket that nobody reads does not.
   */
  const floodUdpPeers = async (): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      await A.send(hexFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:0a:01', 0x88b5, Buffer.alloc(986, i)));
      if (i % 40 === 39) await new Promise((res) => setTimeout(res, 30));
    }
  };
  const untilUdpGuestBuffer = () => until('udp-guest-buffer', async () => { const x = (await doctor()).report; return findingsOf(x, 'udp-guest-buffer').length ? x : undefined; });
  const untilUdpGuestBufferGone = () => until('the finding to go with the socket', async () => (findingsOf((await doctor()).report, 'udp-guest-buffer').length === 0 ? true : undefined));

  test('a guest whose udp socket drops what lanparty sends it (a paused QEMU: its receive buffer fills)', async () => {
    const GUEST = 34998;
    const dropsNow = () => udpDropsAt(GUEST);
    await learnUdpGuest(GUEST, '02:00:00:00:ee:01', 'soon paused');
    // A QEMU that never starts its CPU (-S): its virtio NIC takes no frames, so QEMU stops reading.
    const argv = ['-M', 'pc', '-S', '-nodefaults', '-display', 'none', '-monitor', 'none', '-name', 'paused',
      '-netdev', `dgram,id=u,local.type=inet,local.host=127.0.0.1,local.port=${GUEST},remote.type=inet,remote.host=127.0.0.1,remote.port=33001`,
      '-device', 'virtio-net-pci,netdev=u,romfile='];
    console.log(`$ qemu-system-x86_64 ${argv.join(' ')} &`);
    qemu = spawn('qemu-system-x86_64', argv, { stdio: 'ignore' });
    qemus.push(qemu);
    await until('QEMU to bind the guest address', async () => (dropsNow() !== undefined ? true : undefined));
    assert.equal(dropsNow(), 0);
    const { report: before } = await doctor();
    assert.deepEqual(findingsOf(before, 'udp-guest-buffer'), [], 'nothing dropped yet, nothing said');
    await floodUdpPeers();
    const r = await untilUdpGuestBuffer();
    const drops = dropsNow()!;
    assert.ok(drops > 0 && drops < 600, `the kernel dropped some at QEMU's socket (its buffer held the rest): ${drops}`);
    const f = findingsOf(r, 'udp-guest-buffer');
    assert.equal(f.length, 1, JSON.stringify(f));
    assert.match(f[0].problem, new RegExp(`^port \\d+ \\(udp 127\\.0\\.0\\.1:${GUEST}\\): QEMU pid ${qemu.pid} \\(-name paused\\) at 127\\.0\\.0\\.1:${GUEST} did not take ${drops} datagrams lanparty sent it`));
    assert.match(f[0].fix, /^start the guest with lanparty qemu NAME -t udp -- \.\.\., which makes its socket with a receive buffer of up to net\.core\.rmem_max/);
    const human = await lp(['doctor', ...ctl]);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /^X udp-guest-buffer: port \d+ /m);
    qemu.kill('SIGKILL');
    await new Promise((res) => qemu!.once('exit', res));
    await untilUdpGuestBufferGone();
  });

  test('a libvirt-style guest (JSON -netdev socket,udp=) whose socket drops: the fix is net.core.rmem_default', async () => {
    const GUEST = 34995;
    const dropsNow = () => udpDropsAt(GUEST);
    await learnUdpGuest(GUEST, '02:00:00:00:ee:03', 'libvirt');
    // What libvirt runs for <interface type='udp'>: the legacy socket backend, in JSON.
    const netdev = JSON.stringify({ type: 'socket', id: 'hostnet0', udp: '127.0.0.1:33001', localaddr: `127.0.0.1:${GUEST}` });
    const argv = ['-M', 'pc', '-S', '-nodefaults', '-display', 'none', '-monitor', 'none', '-name', 'guest=vm1,debug-threads=on',
      '-netdev', netdev, '-device', 'virtio-net-pci,netdev=hostnet0,romfile='];
    console.log(`$ qemu-system-x86_64 ${argv.join(' ')} &`);
    const vm = spawn('qemu-system-x86_64', argv, { stdio: 'ignore' });
    try {
      await until('QEMU to bind the guest address', async () => (dropsNow() !== undefined ? true : undefined));
      await floodUdpPeers();
      const r = await untilUdpGuestBuffer();
      const drops = dropsNow()!;
      assert.ok(drops > 0, `the kernel dropped some at QEMU's socket: ${drops}`);
      const f = findingsOf(r, 'udp-guest-buffer');
      assert.equal(f.length, 1, JSON.stringify(f));
      assert.match(f[0].problem, new RegExp(`^port \\d+ \\(udp 127\\.0\\.0\\.1:${GUEST}\\): QEMU pid ${vm.pid} \\(-name guest=vm1,debug-threads=on\\) at 127\\.0\\.0\\.1:${GUEST} did not take ${drops} datagrams`));
      assert.match(f[0].fix, /^this QEMU uses -netdev socket,udp= \(libvirt's <interface type='udp'> becomes that\), and QEMU makes that socket with net\.core\.rmem_default \(\d+\): raise it as root, sysctl -w net\.core\.rmem_default=2097152 /);
    } finally {
      vm.kill('SIGKILL');
      await new Promise((res) => (vm.exitCode !== null || vm.signalCode !== null ? res(null) : vm.once('exit', res)));
    }
    await untilUdpGuestBufferGone();
  });

  test('a guest socket that lanparty qemu made and that still drops: the fix is net.core.rmem_max', async () => {
    const GUEST = 34997;
    const dropsNow = () => udpDropsAt(GUEST);
    await learnUdpGuest(GUEST, '02:00:00:00:ee:02', 'launched');
    // The launcher's socket (connected to lanparty's port, never read here: QEMU would read it),
    // with a small buffer so that it overflows like a guest's that fell behind.
    const g = await openGuestUdpSocket({ host: '127.0.0.1', port: GUEST }, { host: '127.0.0.1', port: 33001 }, 32768);
    try {
      await floodUdpPeers();
      const r = await untilUdpGuestBuffer();
      const drops = dropsNow()!;
      assert.ok(drops > 0, `the kernel dropped some at the launcher's socket: ${drops}`);
      const f = findingsOf(r, 'udp-guest-buffer');
      assert.equal(f.length, 1, JSON.stringify(f));
      assert.match(f[0].problem, new RegExp(`^port \\d+ \\(udp 127\\.0\\.0\\.1:${GUEST}\\): the guest at 127\\.0\\.0\\.1:${GUEST} did not take ${drops} datagrams`));
      const rmemMax = fs.readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim();
      assert.match(f[0].fix, new RegExp(`^its socket already has the larger buffer lanparty qemu gives \\(up to net\\.core\\.rmem_max = ${rmemMax}\\); .*sysctl -w net\\.core\\.rmem_max=4194304`));
    } finally {
      g.close();
    }
    await untilUdpGuestBufferGone();
  });
}
