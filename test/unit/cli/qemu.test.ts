/**
 * lanparty qemu: version parsing, the transport choice per QEMU version
 * (docs/qemu-transports.md §5, §8: no stream reconnect on 7.2, reconnect= from 8.0, reconnect-ms=
 * from 9.2, no dgram/stream before 7.2), the argv it builds and the exit code it passes on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseTransport, exitCodeOf, nicDevice, parseQemuVersion, qemuArgv, queueNote, type TransportInfo } from '../../../src/cli/qemu.js';
import { shortUnixQueue } from '../../../src/daemon/doctor/unix-dgram-queue.js';

// What the `transports` control command returns for lanparty's defaults (guest g1, netdev lp0).
const ALL: TransportInfo[] = [
  { url: 'mcast://230.0.0.1:33000?localaddr=127.0.0.1&ttl=1', kind: 'mcast', state: 'joined', address: '', netdev: 'socket,id=lp0,mcast=230.0.0.1:33000,localaddr=127.0.0.1' },
  { url: 'udp://127.0.0.1:33001', kind: 'udp', state: 'listening', address: '', netdev: 'dgram,id=lp0,local.type=inet,local.host=127.0.0.1,local.port=47303,remote.type=inet,remote.host=127.0.0.1,remote.port=33001' },
  { url: 'unixgram:///run/user/1000/lanparty/dgram.sock', kind: 'unixgram', state: 'listening', address: '', netdev: 'dgram,id=lp0,local.type=unix,local.path=/run/user/1000/lanparty/guest-g1.sock,remote.type=unix,remote.path=/run/user/1000/lanparty/dgram.sock' },
  { url: 'tcp://127.0.0.1:33002', kind: 'tcp', state: 'listening', address: '', netdev: 'stream,id=lp0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=33002' },
  { url: 'unix:///run/user/1000/lanparty/stream.sock', kind: 'unix', state: 'listening', address: '', netdev: 'stream,id=lp0,server=off,addr.type=unix,addr.path=/run/user/1000/lanparty/stream.sock' },
  { url: 'tcp+connect://127.0.0.1:5555', kind: 'tcp', state: 'connecting', address: '', netdev: 'stream,id=lp0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=5555' },
  { url: 'tap://lp0', kind: 'tap', state: 'up', address: '', netdev: null },
];

const v = (text: string) => parseQemuVersion(`QEMU emulator version ${text}\nCopyright (c) 2003-2022 Fabrice Bellard`)!;

test('parses qemu --version lines', () => {
  assert.deepEqual(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n'), { major: 7, minor: 2, micro: 22, text: '7.2.22' });
  assert.deepEqual(parseQemuVersion('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)'), { major: 10, minor: 0, micro: 2, text: '10.0.2' });
  assert.equal(parseQemuVersion('not qemu'), null);
});

test('QEMU 7.2: a datagram transport (unixgram first where its queue is long), never a stream client', () => {
  const c = chooseTransport(ALL, v('7.2.22'));
  assert.equal(c.transport.kind, 'unixgram');
  assert.match(c.reason, /cannot reconnect a stream client/);
  const noUnix = chooseTransport(ALL.filter((t) => t.kind !== 'unixgram'), v('7.2.0'));
  assert.equal(noUnix.transport.kind, 'udp');
  const onlyMcast = chooseTransport(ALL.filter((t) => t.kind === 'mcast' || t.kind === 'tcp'), v('7.2.0'));
  assert.equal(onlyMcast.transport.kind, 'mcast');
});

test('QEMU 7.2 on a short unix datagram queue: udp before unixgram, and the reason says why', () => {
  const c = chooseTransport(ALL, v('7.2.22'), undefined, 10);
  assert.equal(c.transport.kind, 'udp');
  assert.match(c.reason, /cannot reconnect a stream client.*before unixgram: unix datagram sockets queue only 10 datagrams here, net\.unix\.max_dgram_qlen/);
  // Without a udp port, unixgram is still the choice (and lanparty qemu adds queueNote's line).
  assert.equal(chooseTransport(ALL.filter((t) => t.kind !== 'udp'), v('7.2.22'), undefined, 10).transport.kind, 'unixgram');
  // Without a unixgram port there is nothing to put udp before: no such words.
  assert.doesNotMatch(chooseTransport(ALL.filter((t) => t.kind !== 'unixgram'), v('7.2.22'), undefined, 10).reason, /before unixgram/);
  // Asked for by name, unixgram it is.
  assert.equal(chooseTransport(ALL, v('7.2.22'), 'unixgram', 10).transport.kind, 'unixgram');
  // Streams still come first where QEMU reconnects them.
  assert.equal(chooseTransport(ALL, v('9.2.0'), undefined, 10).transport.kind, 'unix');
});

test('QEMU 7.2 with only a stream listener: used, and the caveat is said', () => {
  const c = chooseTransport(ALL.filter((t) => t.url === 'tcp://127.0.0.1:33002'), v('7.2.0'));
  assert.equal(c.netdev, ALL[3].netdev);
  assert.match(c.reason, /cannot reconnect/);
});

test('QEMU 8.0 and 9.2+: a unix stream with the reconnect option of that version', () => {
  assert.equal(chooseTransport(ALL, v('8.2.2')).netdev, `${ALL[4].netdev},reconnect=1`);
  assert.equal(chooseTransport(ALL, v('10.0.2')).netdev, `${ALL[4].netdev},reconnect-ms=1000`);
  assert.equal(chooseTransport(ALL, v('9.2.0')).netdev, `${ALL[4].netdev},reconnect-ms=1000`);
});

test('before 7.2: mcast, or udp rewritten as -netdev socket,udp=', () => {
  assert.equal(chooseTransport(ALL, v('6.2.0')).transport.kind, 'mcast');
  const udp = chooseTransport(ALL.filter((t) => t.kind === 'udp'), v('6.2.0'));
  assert.equal(udp.netdev, 'socket,id=lp0,udp=127.0.0.1:33001,localaddr=127.0.0.1:47303');
  assert.throws(() => chooseTransport(ALL.filter((t) => t.kind === 'unix'), v('7.1.0')), { code: 'LP_ERR_USAGE' });
});

test('--transport by kind or URL; unknown or non-guest transports are refused with the list', () => {
  assert.equal(chooseTransport(ALL, v('7.2.0'), 'udp').transport.kind, 'udp');
  assert.equal(chooseTransport(ALL, v('7.2.0'), 'tcp+connect://127.0.0.1:5555').netdev, ALL[5].netdev);
  assert.throws(() => chooseTransport(ALL, v('7.2.0'), 'vxlan'), (e: Error & { code?: string }) => e.code === 'LP_ERR_USAGE' && /no such transport.*udp:\/\/127\.0\.0\.1:33001/.test(e.message));
  assert.throws(() => chooseTransport(ALL, v('7.2.0'), 'tap://lp0'), /cannot join tap:\/\/lp0 directly/);
  assert.throws(() => chooseTransport([ALL[6]], v('7.2.0')), /no lanparty transport suits QEMU 7\.2\.0/);
});

test('argv: the user arguments, then -name (unless given), -netdev and the NIC', () => {
  const dev = nicDevice('virtio-net-pci,romfile=', '02:00:00:00:00:01');
  assert.equal(dev, 'virtio-net-pci,romfile=,netdev=lp0,mac=02:00:00:00:00:01');
  assert.deepEqual(qemuArgv('g1', ['-m', '256'], 'socket,id=lp0,mcast=230.0.0.1:1', dev), ['-m', '256', '-name', 'g1', '-netdev', 'socket,id=lp0,mcast=230.0.0.1:1', '-device', dev]);
  assert.deepEqual(qemuArgv('g1', ['-name', 'x'], 'N', 'D'), ['-name', 'x', '-netdev', 'N', '-device', 'D']);
});

test('exit code: QEMU\'s own, or 128+N after signal N', () => {
  assert.equal(exitCodeOf(0, null), 0);
  assert.equal(exitCodeOf(1, null), 1);
  assert.equal(exitCodeOf(null, 'SIGTERM'), 143);
  assert.equal(exitCodeOf(null, 'SIGKILL'), 137);
});

test('a unixgram guest on a short unix datagram queue gets the sysctl and the udp alternative; otherwise nothing', () => {
  assert.equal(shortUnixQueue('10'), 10);
  assert.equal(shortUnixQueue('512'), null);
  assert.equal(shortUnixQueue('4096'), null);
  assert.equal(shortUnixQueue(undefined), null, 'unreadable: say nothing');
  assert.equal(shortUnixQueue('x'), null);
  const note = queueNote('unixgram', 10);
  assert.match(note ?? '', /queue only 10 datagrams here \(net\.unix\.max_dgram_qlen\)/);
  assert.match(note ?? '', /sysctl -w net\.unix\.max_dgram_qlen=512/);
  assert.match(note ?? '', /--transport udp$/);
  assert.equal(queueNote('unixgram', null), null);
  assert.equal(queueNote('udp', 10), null, 'only unixgram waits on that queue');
});
