/**
 * lanparty qemu and lanparty libvirt pass on only the -netdev forms lanparty makes: a `transports`
 * reply with another backend (bridge,helper=), an unknown key (script=, fd=), a second id or a
 * guest socket outside the port's directory is refused before QEMU runs. The pure check, then a
 * real `lanparty qemu` against a stand-in control socket that answers with `bridge,helper=`.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkTransports, netdevProblem, type TransportInfo } from '../../../src/cli/qemu.js';
import { buildConfig } from '../../../src/config/index.js';
import { request } from '../../../src/control/index.js';
import { Daemon } from '../../../src/daemon/index.js';
import { nativeAvailable } from '../../../src/io/index.js';
import { silentLogger } from '../../../src/util/logger.js';
import { cliPath } from '../../../lab/netns-lanparty.js';

// What the `transports` control command returns for lanparty's defaults (guest g1, netdev lp0).
const ALL: TransportInfo[] = [
  { url: 'mcast://230.0.0.1:33000?localaddr=127.0.0.1&ttl=1', kind: 'mcast', state: 'joined', address: '', netdev: 'socket,id=lp0,mcast=230.0.0.1:33000,localaddr=127.0.0.1' },
  { url: 'udp://127.0.0.1:33001', kind: 'udp', state: 'listening', address: '', netdev: 'dgram,id=lp0,local.type=inet,local.host=127.0.0.1,local.port=47303,remote.type=inet,remote.host=127.0.0.1,remote.port=33001' },
  { url: 'unixgram:///run/user/1000/lanparty/dgram.sock', kind: 'unixgram', state: 'listening', address: '', netdev: 'dgram,id=lp0,local.type=unix,local.path=/run/user/1000/lanparty/guest-g1.sock,remote.type=unix,remote.path=/run/user/1000/lanparty/dgram.sock' },
  { url: 'tcp://127.0.0.1:33002', kind: 'tcp', state: 'listening', address: '', netdev: 'stream,id=lp0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=33002' },
  { url: 'tcp://[::1]:33003', kind: 'tcp', state: 'listening', address: '', netdev: 'stream,id=lp0,server=off,addr.type=inet,addr.host=::1,addr.port=33003' },
  { url: 'unix:///run/user/1000/lanparty/stream.sock', kind: 'unix', state: 'listening', address: '', netdev: 'stream,id=lp0,server=off,addr.type=unix,addr.path=/run/user/1000/lanparty/stream.sock' },
  { url: 'tcp+connect://127.0.0.1:5555', kind: 'tcp', state: 'connecting', address: '', netdev: 'stream,id=lp0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=5555' },
  { url: 'tap://lp0', kind: 'tap', state: 'up', address: '', netdev: null },
];

test("lanparty's own forms pass unchanged", () => {
  assert.deepEqual(checkTransports(ALL, 'g1', 'lp0', '/c.sock'), ALL);
});

test('what a real lanparty answers passes, for every kind of transport a guest can join', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-qemu-forms-'));
  const ports = [
    'mcast://230.0.0.1:39431?localaddr=127.0.0.1&ttl=1', 'udp://127.0.0.1:39432', 'tcp://127.0.0.1:39433', `unix://${dir}/s.sock`,
    'tcp+connect://127.0.0.1:39434', `unix+connect://${dir}/q.sock`, ...(nativeAvailable() ? [`unixgram://${dir}/d.sock`] : []),
  ];
  const d = new Daemon(buildConfig({}, { ports, dhcp: false, controlSocket: path.join(dir, 'c.sock') }), silentLogger);
  await d.start();
  try {
    for (const [guest, id] of [['g1', 'lp0'], ['alice.test-2', 'n0']]) {
      const reply = await request(path.join(dir, 'c.sock'), 'transports', { guest, netdevId: id });
      const got = checkTransports(reply, guest, id, 'c.sock');
      assert.equal(got.filter((t) => t.netdev !== null).length, ports.length);
    }
  } finally {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('anything else is refused, saying what', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['udp', 'bridge,id=lp0,helper=/tmp/x', /backend "bridge" \(a udp transport is -netdev dgram\)/],
    ['tap', 'tap,id=lp0,script=/tmp/x', /lanparty makes no -netdev for a "tap" transport/],
    ['unix', 'stream,id=lp0,server=off,addr.type=unix,addr.path=/run/x.sock,script=/tmp/x', /option "script"/],
    ['udp', 'dgram,id=lp0,local.type=fd,local.str=3', /local\.type="fd" is not a valid value|option "local\.str"/],
    ['mcast', 'socket,id=lp0,fd=3', /option "fd"/],
    ['mcast', 'socket,id=lp0,mcast=230.0.0.1:33000,localaddr=127.0.0.1,id=lp1', /option id given twice/],
    ['tcp', 'stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=1', /id="n0" \(asked for lp0\)/],
    ['tcp', 'stream,id=lp0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=99999', /addr\.port="99999" is not a valid value/],
    ['tcp', 'stream,id=lp0,server=off,addr.type=inet,addr.host=-x,addr.port=1', /addr\.host="-x"/],
    ['unix', 'stream,id=lp0,server=off,addr.type=unix,addr.path=relative.sock', /addr\.path="relative\.sock"/],
    ['unix', 'stream,id=lp0,server=off,addr.type=unix,addr.path=/a,,b', /has no value/],
    ['unix', 'stream,id=lp0,server=off,addr.type=unix', /option addr\.path is missing/],
    ['unixgram', 'dgram,id=lp0,local.type=unix,local.path=/var/tmp/me/.bashrc,remote.type=unix,remote.path=/run/l/dgram.sock', /local\.path is not \/run\/l\/guest-g1\.sock/],
    ['udp', '{"type":"bridge","id":"lp0","helper":"/tmp/x"}', /backend/],
  ];
  for (const [kind, netdev, why] of cases) {
    const p = netdevProblem(kind, netdev, 'g1', 'lp0');
    assert.ok(p !== null, `${netdev} passed`);
    assert.match(p, why, netdev);
    assert.throws(() => checkTransports([{ url: 'x://y', kind, state: 'listening', address: '', netdev }], 'g1', 'lp0', '/c.sock'),
      (e: Error & { code: string }) => e.code === 'LP_ERR_CONTROL' && e.message.startsWith('control socket /c.sock: the transports reply gives x://y the -netdev ') &&
        /nothing of it goes to QEMU\. Check that the lanparty there is yours/.test(e.message));
  }
  assert.throws(() => checkTransports({ not: 'a list' }, 'g1', 'lp0', '/c.sock'), /the transports reply is not a list/);
  assert.throws(() => checkTransports([{ url: 1 }], 'g1', 'lp0', '/c.sock'), /has an entry \(#1\) that is not a transport/);
  assert.throws(() => checkTransports([{ url: 'a\u001b[2J', kind: 'udp', state: '', address: '', netdev: null }], 'g1', 'lp0', '/c.sock'), /not a transport/);
});

/** Runs the CLI without blocking this process, which serves the stand-in control socket. */
async function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  return { code, stderr };
}

test('lanparty qemu against a control socket that answers -netdev bridge,helper=: refused, QEMU never runs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-qemu-netdev-'));
  const sock = path.join(dir, 'control.sock');
  const marker = path.join(dir, 'qemu-ran');
  const fakeQemu = path.join(dir, 'qemu');
  // Answers --version; run with a -netdev, it leaves the marker (as QEMU would run the helper).
  fs.writeFileSync(fakeQemu, `#!/bin/sh\ncase "$*" in *-netdev*) touch ${marker};; esac\necho 'QEMU emulator version 9.2.0'\n`, { mode: 0o755 });
  const server = net.createServer((s) => s.on('data', (d) => {
    const req = JSON.parse(d.toString().split('\n')[0]) as { id: number; cmd: string };
    const result = req.cmd === 'transports'
      ? [{ url: 'udp://127.0.0.1:33001', kind: 'udp', state: 'listening', address: '', netdev: `bridge,id=lp0,helper=${fakeQemu}` }]
      : [];
    s.write(JSON.stringify({ id: req.id, ok: true, result }) + '\n');
  }));
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const { code, stderr } = await run(['qemu', 'g1', '--control', sock, '--qemu', fakeQemu, '--', '-nographic']);
    assert.equal(code, 8, stderr);
    assert.match(stderr, new RegExp(`^lanparty: control socket ${sock}: the transports reply gives udp://127\\.0\\.0\\.1:33001 the -netdev "bridge,id=lp0,helper=.*": backend "bridge"`, 'm'));
    assert.equal(fs.existsSync(marker), false, 'QEMU (or its helper) never ran');
    const lv = await run(['libvirt', 'g1', '--control', sock]);
    assert.equal(lv.code, 8, lv.stderr);
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
