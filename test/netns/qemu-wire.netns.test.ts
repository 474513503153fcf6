/**
 * Every transport of the switch against clients that speak QEMU's exact wire formats, with real
 * sockets, in a network namespace of its own (see test/helpers/self-netns.ts).
 *
 *   netns (unshare --net), lo only
 *   ┌───────────────────────────────────────────────────────────────────────────┐
 *   │ mcast client  ─ 239.255.77.1:33000 (group, bound like QEMU, loop on) ─┐    │
 *   │ udp client    ─ 127.0.0.1:eph  → udp://127.0.0.1:33001 ───────────────┤    │
 *   │ unixgram cl.  ─ DIR/c.sock     → unixgram://DIR/dgram.sock ───────────┤ lanparty
 *   │ tcp client    ─ connect        → tcp://127.0.0.1:33002 ───────────────┤ (in-process
 *   │ unix client   ─ connect        → unix://DIR/stream.sock ──────────────┘  Daemon)
 *   └───────────────────────────────────────────────────────────────────────────┘
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inFreshNetns } from '../helpers/self-netns.js';
import { frame } from '../helpers/memory-port.js';
import { buildConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/index.js';
import { silentLogger } from '../../src/util/logger.js';
import { StreamFramer } from '../../src/transports/stream/framer.js';
import { openBatchSocket, nativeAvailable } from '../../src/io/index.js';
import type { BatchSocket } from '../../src/io/index.js';
import type { Port } from '../../src/switch/port.js';

const GROUP = '239.255.77.1';

interface Client {
  name: string;
  mac: string;
  received: Buffer[];
  send(f: Buffer): void;
  close(): void;
}

function tagged(dst: string, src: string, tag: string): Buffer {
  const f = frame(dst, src, 0x88b5, 46); // local experimental ethertype
  Buffer.from(tag.padEnd(32, '.')).copy(f, 14);
  return f;
}
const tagOf = (f: Buffer) => f.subarray(14, 46).toString().replace(/\.+$/, '');

function mcastClient(mac: string): Promise<Client> {
  // Exactly like QEMU's net_socket_mcast_create: SO_REUSEADDR, bind group:port, join, loop on,
  // and send to the group from the same socket.
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const c: Client = { name: 'mcast', mac, received: [], send: (f) => s.send(f, 33000, GROUP), close: () => s.close() };
  s.on('message', (m) => c.received.push(m));
  return new Promise((resolve) => s.bind(33000, GROUP, () => {
    s.addMembership(GROUP, '127.0.0.1');
    s.setMulticastInterface('127.0.0.1');
    s.setMulticastLoopback(true);
    resolve(c);
  }));
}

function udpClient(mac: string): Promise<Client> {
  const s = dgram.createSocket('udp4');
  const c: Client = { name: 'udp', mac, received: [], send: (f) => s.send(f, 33001, '127.0.0.1'), close: () => s.close() };
  s.on('message', (m) => c.received.push(m));
  return new Promise((resolve) => s.bind(0, '127.0.0.1', () => resolve(c)));
}

async function unixgramClient(mac: string, dir: string): Promise<Client> {
  const s: BatchSocket = await openBatchSocket({ kind: 'unix', bind: { path: path.join(dir, 'client.sock') } });
  const to = s.peerId({ kind: 'unix', path: path.join(dir, 'dgram.sock') });
  const c: Client = { name: 'unixgram', mac, received: [], send: (f) => { s.send(to, f, 0, f.length); s.flush(); }, close: () => s.close() };
  s.start((n) => { for (let i = 0; i < n; i++) c.received.push(Buffer.from(s.rx.bufs[i].subarray(0, s.rx.lengths[i]))); });
  return c;
}

function streamClient(name: string, mac: string, opts: net.NetConnectOpts): Promise<Client & { sock: net.Socket }> {
  const sock = net.connect(opts);
  const c = {
    name, mac, sock, received: [] as Buffer[],
    send: (f: Buffer) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); sock.write(Buffer.concat([h, f])); },
    close: () => sock.destroy(),
  };
  const framer = new StreamFramer(69632, (b, o, l) => c.received.push(Buffer.from(b.subarray(o, o + l))));
  sock.on('data', (d) => framer.push(d));
  sock.on('error', () => {});
  return new Promise((resolve) => sock.once('connect', () => resolve(c)));
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const quiet = (ms = 250) => new Promise((r) => setTimeout(r, ms));

if (inFreshNetns(import.meta.url, 'transports with QEMU wire-format clients (in a fresh netns)')) {
  let dir = '';
  let daemon: Daemon;
  let clients: Client[] = [];

  before(async () => {
    assert.ok(nativeAvailable(), 'native addon needed for unix datagrams (npm run build:native)');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-wire-'));
    const config = buildConfig({ switch: { max_frame_bytes: 9018 } }, {
      ports: [
        `mcast://${GROUP}:33000?localaddr=127.0.0.1&ttl=1`,
        'udp://127.0.0.1:33001',
        `unixgram://${dir}/dgram.sock`,
        'tcp://127.0.0.1:33002',
        `unix://${dir}/stream.sock`,
      ],
      dhcp: false,
      controlSocket: path.join(dir, 'control.sock'),
    });
    daemon = new Daemon(config, silentLogger);
    await daemon.start();
    clients = [
      await mcastClient('02:00:00:00:00:01'),
      await udpClient('02:00:00:00:00:02'),
      await unixgramClient('02:00:00:00:00:03', dir),
      await streamClient('tcp', '02:00:00:00:00:04', { host: '127.0.0.1', port: 33002 }),
      await streamClient('unix', '02:00:00:00:00:05', { path: path.join(dir, 'stream.sock') }),
    ];
    await until('stream connections as ports', () => daemon.sw.ports.length === 3);
    // A datagram guest becomes a port when lanparty first hears from it (as a QEMU guest's first
    // ARP or DHCP frame would do); until then nothing can be sent to it.
    clients[1].send(tagged('ff:ff:ff:ff:ff:ff', clients[1].mac, 'hello'));
    clients[2].send(tagged('ff:ff:ff:ff:ff:ff', clients[2].mac, 'hello'));
    await until('datagram clients as ports', () => daemon.sw.ports.length === 5);
  });

  after(async () => {
    for (const c of clients) c.close();
    await daemon?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // What a client got, excluding the mcast client's own frames looped back by the kernel (QEMU's
  // guests see those too; lanparty must not add a second copy).
  const got = (c: Client, tag: string) => c.received.filter((f) => tagOf(f) === tag && f.subarray(6, 12).toString('hex') !== c.mac.replace(/:/g, '')).length;

  test('broadcast reaches every other transport exactly once', async () => {
    for (const c of clients) c.send(tagged('ff:ff:ff:ff:ff:ff', c.mac, `b-${c.name}`));
    await until('broadcasts', () => clients.every((r) => clients.every((s) => s === r || got(r, `b-${s.name}`) === 1)));
    await quiet();
    for (const r of clients) for (const s of clients) assert.equal(got(r, `b-${s.name}`), s === r ? 0 : 1, `${s.name} → ${r.name}`);
    assert.equal(daemon.sw.ports.length, 5, 'udp and unixgram sources became ports');
    assert.equal(daemon.sw.table.size, 5);
  });

  test('known unicast goes to the right transport only, for every pair', async () => {
    for (const s of clients) for (const r of clients) if (s !== r) s.send(tagged(r.mac, s.mac, `u-${s.name}-${r.name}`));
    await until('unicasts', () => clients.every((r) => clients.every((s) => s === r || got(r, `u-${s.name}-${r.name}`) === 1)));
    await quiet();
    for (const r of clients) {
      const mine = r.received.filter((f) => tagOf(f).startsWith('u-') && f.subarray(6, 12).toString('hex') !== r.mac.replace(/:/g, ''));
      assert.equal(mine.length, clients.length - 1, `${r.name} got only its own unicasts`);
      for (const f of mine) assert.ok(tagOf(f).endsWith(`-${r.name}`), `${r.name} got ${tagOf(f)}`);
    }
    assert.equal(daemon.sw.counters.unicasts, 20);
  });

  test('unknown unicast floods once to every other transport', async () => {
    for (const c of clients) c.send(tagged('02:99:00:00:00:01', c.mac, `x-${c.name}`));
    await until('floods', () => clients.every((r) => clients.every((s) => s === r || got(r, `x-${s.name}`) === 1)));
    await quiet();
    for (const r of clients) for (const s of clients) assert.equal(got(r, `x-${s.name}`), s === r ? 0 : 1);
  });

  test('lanparty drops its own multicast frames and never echoes the group', () => {
    const mcastPort = daemon.sw.ports.find((p) => p.kind === 'mcast')! as typeof daemon.sw.ports[number] & { ownDroppedInKernel: boolean };
    // Every frame lanparty sent to the group came back once through multicast loopback: dropped
    // by the kernel socket filter (native: none reaches JS, so own-frame stays 0), or else
    // recognised in JS and counted as own-frame.
    assert.equal(mcastPort.ownDroppedInKernel, nativeAvailable(), 'the kernel filter is attached exactly when the addon is in use');
    assert.ok(mcastPort.counters.txFrames > 0);
    assert.equal(mcastPort.counters.drops['own-frame'], mcastPort.ownDroppedInKernel ? 0 : mcastPort.counters.txFrames);
    // The mcast client heard each of its own frames once (the kernel's loopback), not twice.
    const own = clients[0].received.filter((f) => f.subarray(6, 12).toString('hex') === '020000000001').length;
    assert.equal(own, 1 + 4 + 1); // broadcast, four unicasts, one unknown unicast
  });

  test('malformed input: counted drops, the switch keeps forwarding', async () => {
    const udp = clients[1];
    const udpPort = daemon.sw.ports.find((p) => p.kind === 'udp')!;
    const before = { ...udpPort.counters.drops };
    udp.send(Buffer.alloc(0));                  // 0-byte datagram
    udp.send(Buffer.alloc(10));                 // runt
    udp.send(Buffer.concat([tagged('ff:ff:ff:ff:ff:ff', udp.mac, 'big'), Buffer.alloc(9100)])); // over 9018
    await until('udp drops', () => udpPort.counters.drops.empty === before.empty + 1 && udpPort.counters.drops.runt === before.runt + 1 && udpPort.counters.drops.oversize === before.oversize + 1);

    // A stream with an impossible length is closed and counted; others go on.
    const bad = await streamClient('tcp', '02:00:00:00:00:06', { host: '127.0.0.1', port: 33002 });
    await until('bad client port', () => daemon.sw.ports.length === 6);
    const badPort = daemon.sw.ports[5] as Port;
    const closed = new Promise((r) => bad.sock.once('close', r));
    bad.sock.write(Buffer.from('000186a0', 'hex')); // 100000 bytes > 9018
    await closed;
    assert.equal(badPort.counters.drops['bad-length'], 1);

    // A stream cut mid-frame is counted as truncated.
    const cut = await streamClient('unix', '02:00:00:00:00:07', { path: path.join(dir, 'stream.sock') });
    await until('cut client port', () => daemon.sw.ports.length === 6);
    const cutPort = daemon.sw.ports[5] as Port;
    cut.sock.end(Buffer.concat([Buffer.from('0000003c', 'hex'), Buffer.alloc(20)]));
    await until('truncated counted', () => cutPort.counters.drops.truncated === 1);
    await until('cut port removed', () => daemon.sw.ports.length === 5);

    // A client that vanishes without a word: its port goes away, nothing else does.
    const gone = await streamClient('tcp', '02:00:00:00:00:08', { host: '127.0.0.1', port: 33002 });
    await until('gone client port', () => daemon.sw.ports.length === 6);
    gone.sock.resetAndDestroy();
    await until('gone port removed', () => daemon.sw.ports.length === 5);

    // Everyone still hears everyone.
    for (const c of clients) c.send(tagged('ff:ff:ff:ff:ff:ff', c.mac, `after-${c.name}`));
    await until('broadcasts after abuse', () => clients.every((r) => clients.every((s) => s === r || got(r, `after-${s.name}`) === 1)));
  });

  test('a fixed udp peer from the config hears the LAN before it sends anything', async () => {
    const d2dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-peer-'));
    const quietGuest = dgram.createSocket('udp4');
    const heard: Buffer[] = [];
    quietGuest.on('message', (m) => heard.push(m));
    await new Promise<void>((r) => quietGuest.bind(34999, '127.0.0.1', r));
    const d2 = new Daemon(buildConfig({}, {
      ports: ['udp://127.0.0.1:33101?peer=127.0.0.1:34999', 'tcp://127.0.0.1:33102'],
      dhcp: false,
      controlSocket: path.join(d2dir, 'control.sock'),
    }), silentLogger);
    await d2.start();
    try {
      assert.equal(d2.sw.ports.length, 1, 'the fixed peer is a port from the start');
      const talker = await streamClient('tcp', '02:00:00:00:00:31', { host: '127.0.0.1', port: 33102 });
      talker.send(tagged('ff:ff:ff:ff:ff:ff', talker.mac, 'to-fixed'));
      await until('fixed peer hears the broadcast', () => heard.some((f) => tagOf(f) === 'to-fixed'));
      talker.close();
    } finally {
      quietGuest.close();
      await d2.stop();
      fs.rmSync(d2dir, { recursive: true, force: true });
    }
  });
}
