/**
 * batch-io over real sockets on 127.0.0.1 and unix paths in a private temp dir, run twice: once
 * with the native addon and once with the node:dgram fallback (openBatchSocketWith chooses), plus
 * one child process that checks LANPARTY_NO_NATIVE=1 switches openBatchSocket to the fallback.
 * Multicast stays on loopback (interface 127.0.0.1, TTL 0, a random 239.255.x.y group).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  openBatchSocketWith, nativeAvailable, nativeLoadError,
  type BatchImplementation, type BatchSocket, type BatchSocketOptions,
} from '../../../src/io/index.js';
import { Collector } from '../../helpers/batch-collector.js';

const UDP_MAX = 65507;
const UNIX_MAX = 69632;

/** Waits long enough for a datagram that should not come to have arrived. */
function settle(ms = 50): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function frameOf(seq: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seq + i) & 0xff;
  if (len >= 4) b.writeUInt32BE(seq >>> 0, 0);
  return b;
}

function randomGroup(): string {
  return `239.255.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
}

function suite(impl: BatchImplementation): void {
  const sockets: BatchSocket[] = [];
  let dir = '';
  const open = async (opts: BatchSocketOptions): Promise<BatchSocket> => {
    const s = await openBatchSocketWith(impl, opts);
    sockets.push(s);
    return s;
  };
  const udp = (port = 0, extra: Partial<BatchSocketOptions> = {}): Promise<BatchSocket> =>
    open({ kind: 'udp4', bind: { host: '127.0.0.1', port }, ...extra });
  const unix = (name: string, extra: Partial<BatchSocketOptions> = {}): Promise<BatchSocket> =>
    open({ kind: 'unix', bind: { path: join(dir, name) }, ...extra });

  before(() => { dir = mkdtempSync(join(tmpdir(), 'lp-batchio-')); });
  after(() => {
    for (const s of sockets) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`reports native=${impl === 'native'}`, async () => {
    const s = await udp();
    assert.equal(s.native, impl === 'native');
    const a = s.localAddress();
    assert.equal(a.kind, 'udp4');
    assert.ok(a.kind === 'udp4' && a.host === '127.0.0.1' && a.port > 0);
  });

  it('sends and receives a burst of udp datagrams in order, in batches on the native path', async () => {
    const a = await udp();
    const b = await udp();
    const rx = new Collector(b);
    const to = a.peerId(b.localAddress());
    for (let i = 0; i < 50; i++) assert.equal(a.send(to, frameOf(i, 60 + i), 0, 60 + i), true);
    await rx.until(50);
    for (let i = 0; i < 50; i++) assert.deepEqual(rx.frames[i].data, frameOf(i, 60 + i));
    if (impl === 'native') assert.ok(rx.largestBatch > 1, `largest batch ${rx.largestBatch}`);
    else assert.equal(rx.largestBatch, 1);
    assert.equal(a.stats.sendErrors, 0);
  });

  it('sends a sub-range of the caller buffer and copies it before returning', async () => {
    const a = await udp();
    const b = await udp();
    const rx = new Collector(b);
    const big = Buffer.from('xxxxhello worldyyyy');
    a.send(a.peerId(b.localAddress()), big, 4, 11);
    big.fill(0); // The caller owns buf again as soon as send returns.
    await rx.until(1);
    assert.equal(rx.frames[0].data.toString(), 'hello world');
  });

  it('gives stable peer ids and round-trips peer addresses', async () => {
    const a = await udp();
    const c = await udp();
    const b = await udp();
    const rx = new Collector(b);
    const bAddr = b.localAddress();
    a.send(a.peerId(bAddr), Buffer.from('a1'), 0, 2);
    c.send(c.peerId(bAddr), Buffer.from('c1'), 0, 2);
    await rx.until(2);
    a.send(a.peerId(bAddr), Buffer.from('a2'), 0, 2);
    await rx.until(3);
    const byText = new Map(rx.frames.map((f) => [f.data.toString(), f.peer]));
    const idA = byText.get('a1');
    const idC = byText.get('c1');
    assert.ok(idA !== undefined && idC !== undefined && idA >= 0 && idC >= 0);
    assert.notEqual(idA, idC);
    assert.equal(byText.get('a2'), idA);
    assert.deepEqual(b.peerAddress(idA), a.localAddress());
    assert.deepEqual(b.peerAddress(idC), c.localAddress());
    // Asking for an address's id gives the id the receive path assigned.
    assert.equal(b.peerId(a.localAddress()), idA);
    assert.equal(b.peerId({ kind: 'udp4', host: '127.0.0.1', port: 9 }), b.peerId({ kind: 'udp4', host: '127.0.0.1', port: 9 }));
    assert.throws(() => b.peerAddress(100000), RangeError);
    // A reply to the learned id reaches the sender.
    const rxA = new Collector(a);
    b.send(idA, Buffer.from('reply'), 0, 5);
    await rxA.until(1);
    assert.equal(rxA.frames[0].data.toString(), 'reply');
  });

  it('delivers 0-byte and maximum-size (65507) udp datagrams', async () => {
    const a = await udp();
    const b = await udp();
    const rx = new Collector(b);
    const to = a.peerId(b.localAddress());
    const big = frameOf(7, UDP_MAX);
    a.send(to, Buffer.alloc(0), 0, 0);
    a.send(to, big, 0, UDP_MAX);
    a.send(to, Buffer.alloc(0), 0, 0);
    await rx.until(3);
    assert.equal(rx.frames[0].data.length, 0);
    assert.deepEqual(rx.frames[1].data, big);
    assert.equal(rx.frames[2].data.length, 0);
    assert.equal(b.stats.truncated, 0);
  });

  it('counts a udp datagram too large to send (65508 bytes) as a send error', async () => {
    const a = await udp();
    const b = await udp();
    const rx = new Collector(b);
    const to = a.peerId(b.localAddress());
    a.send(to, Buffer.alloc(UDP_MAX + 1), 0, UDP_MAX + 1);
    a.send(to, Buffer.from('after'), 0, 5);
    await rx.until(1);
    await settle();
    assert.equal(rx.frames.length, 1);
    assert.equal(rx.frames[0].data.toString(), 'after');
    assert.equal(a.stats.sendErrors, 1);
  });

  it('rejects a second exclusive bind with EADDRINUSE naming the address', async () => {
    const a = await udp();
    const a0 = a.localAddress();
    assert.ok(a0.kind === 'udp4');
    await assert.rejects(udp(a0.port), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.syscall, 'bind');
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${a0.port}`));
      return true;
    });
  });

  it('rejects bad options with a message naming the option', async () => {
    await assert.rejects(udp(0, { batchSize: 0 }), /batchSize 0 out of range/);
    await assert.rejects(open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 70000 } }), /bind.port/);
  });

  it('joins a multicast group on 127.0.0.1 and hears its own datagram with loop on', async () => {
    const group = randomGroup();
    const mc = { group, interfaceAddr: '127.0.0.1', ttl: 0, loop: true, join: true };
    const r1 = await open({ kind: 'udp4', bind: { host: group, port: 0 }, reuseAddr: true, multicast: mc });
    const g = r1.localAddress();
    assert.ok(g.kind === 'udp4');
    // A second receiver on the same group:port (SO_REUSEADDR, as QEMU does).
    const r2 = await open({ kind: 'udp4', bind: { host: group, port: g.port }, reuseAddr: true, multicast: mc });
    // A send-only socket on the interface address, as the mcast transport sends.
    const tx = await open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 }, multicast: { ...mc, join: false } });
    const c1 = new Collector(r1);
    const c2 = new Collector(r2);
    const groupAddr = { kind: 'udp4' as const, host: group, port: g.port };
    tx.send(tx.peerId(groupAddr), Buffer.from('to-group'), 0, 8);
    await c1.until(1);
    await c2.until(1);
    assert.equal(c1.frames[0].data.toString(), 'to-group');
    assert.deepEqual(r1.peerAddress(c1.frames[0].peer), tx.localAddress());
    // The receiver's own datagram, looped back to itself.
    r1.send(r1.peerId(groupAddr), Buffer.from('own'), 0, 3);
    await c1.until(2);
    assert.equal(c1.frames[1].data.toString(), 'own');
  });

  it('carries 10000 frames in bursts without loss or reordering', async () => {
    const a = await udp();
    const b = await udp();
    const rx = new Collector(b);
    const to = a.peerId(b.localAddress());
    const total = 10000;
    const burst = 64;
    const scratch = Buffer.alloc(200);
    for (let sent = 0; sent < total;) {
      const n = Math.min(burst, total - sent);
      for (let i = 0; i < n; i++) {
        const len = 60 + ((sent + i) % 140);
        scratch.writeUInt32BE(sent + i, 0);
        assert.equal(a.send(to, scratch, 0, len), true);
      }
      sent += n;
      await rx.until(sent, 5000); // Moderate rate: the next burst waits for this one.
    }
    assert.equal(rx.frames.length, total);
    for (let i = 0; i < total; i++) {
      assert.equal(rx.frames[i].data.readUInt32BE(0), i);
      assert.equal(rx.frames[i].data.length, 60 + (i % 140));
    }
    assert.equal(a.stats.sendErrors, 0);
    assert.equal(b.stats.recvErrors, 0);
  });

  // UDP GSO is native only (the node:dgram fallback sends one datagram per call).
  if (impl === 'native') it('udp GSO: runs of equal-length datagrams to one peer leave as few messages and arrive one datagram per frame, byte for byte', async () => {
    const a = await udp();
    const b = await udp();
    const c = await udp();
    const rxB = new Collector(b);
    const rxC = new Collector(c);
    const toB = a.peerId(b.localAddress());
    const toC = a.peerId(c.localAddress());
    const stats = a.stats as unknown as { gsoMessages: number; gsoDatagrams: number };
    // One flush: 40 x 1000 B to b with a shorter tail (joins the run), then 3 to c, then 5 to b
    // (a new message: the run before it ended with a shorter datagram).
    const expectB: Buffer[] = [];
    const expectC: Buffer[] = [];
    for (let i = 0; i < 40; i++) { const f = frameOf(i, 1000); expectB.push(f); a.send(toB, f, 0, f.length); }
    { const f = frameOf(40, 300); expectB.push(f); a.send(toB, f, 0, f.length); }
    for (let i = 0; i < 3; i++) { const f = frameOf(100 + i, 64); expectC.push(f); a.send(toC, f, 0, f.length); }
    for (let i = 0; i < 5; i++) { const f = frameOf(200 + i, 1000); expectB.push(f); a.send(toB, f, 0, f.length); }
    await rxB.until(expectB.length);
    await rxC.until(expectC.length);
    await settle();
    assert.deepEqual(rxB.frames.map((f) => f.data), expectB);
    assert.deepEqual(rxC.frames.map((f) => f.data), expectC);
    assert.equal(stats.gsoMessages, 3, 'b: 41 datagrams, c: 3, b: 5 -> three GSO messages');
    assert.equal(stats.gsoDatagrams, 49);
    assert.equal(a.stats.sendErrors, 0);
    // Growing lengths never coalesce (a GSO message's segments are all its first one's length,
    // bar the last): the receiver still sees each length exactly.
    rxB.frames.length = 0;
    for (let i = 0; i < 20; i++) a.send(toB, frameOf(i, 100 + i), 0, 100 + i);
    await rxB.until(20);
    assert.deepEqual(rxB.frames.map((f) => f.data.length), Array.from({ length: 20 }, (_, i) => 100 + i));
    assert.equal(stats.gsoMessages, 3);
  });

  if (impl === 'native') it('ignoreSource drops one source in the kernel (socket filter); other sources and the same port elsewhere still arrive', async () => {
    const a = await udp();
    const c = await udp();
    const group = randomGroup();
    const mc = (port: number) => ({ kind: 'udp4' as const, bind: { host: group, port }, reuseAddr: true, multicast: { group, interfaceAddr: '127.0.0.1', ttl: 0, loop: true, join: true } });
    const b = await open(mc(0));
    const rx = new Collector(b);
    const bPort = (b.localAddress() as { port: number }).port;
    const aAddr = a.localAddress() as { host: string; port: number };
    assert.equal(b.ignoreSource(aAddr.host, aAddr.port), true);
    const to = (s: BatchSocket) => s.peerId({ kind: 'udp4', host: group, port: bPort });
    for (let i = 0; i < 20; i++) {
      a.send(to(a), Buffer.from(`a${i}`), 0, i < 10 ? 2 : 3);
      c.send(to(c), Buffer.from(`c${i}`), 0, i < 10 ? 2 : 3);
    }
    await rx.until(20);
    await settle(100);
    assert.deepEqual(rx.frames.map((f) => f.data.toString()), Array.from({ length: 20 }, (_, i) => `c${i}`));
    // "0.0.0.0" matches the port from any address.
    const d = await udp();
    const rx2 = new Collector(await open(mc(bPort)));
    const dAddr = d.localAddress() as { port: number };
    const e = await udp();
    assert.equal(rx2.sock.ignoreSource('0.0.0.0', dAddr.port), true);
    d.send(to(d), Buffer.from('d'), 0, 1);
    e.send(to(e), Buffer.from('e'), 0, 1);
    await rx2.until(1);
    await settle(100);
    assert.deepEqual(rx2.frames.map((f) => f.data.toString()), ['e']);
    assert.equal(b.ignoreSource('not an address', 1), false);
  });

  if (impl === 'native') it('udp GSO off (udpGso: false): every datagram is its own message', async () => {
    const a = await udp(0, { udpGso: false });
    const b = await udp();
    const rx = new Collector(b);
    const to = a.peerId(b.localAddress());
    for (let i = 0; i < 30; i++) a.send(to, frameOf(i, 500), 0, 500);
    await rx.until(30);
    assert.deepEqual(rx.frames.map((f) => f.data), Array.from({ length: 30 }, (_, i) => frameOf(i, 500)));
    assert.equal((a.stats as unknown as { gsoMessages: number }).gsoMessages, 0);
  });

  it('close is idempotent and a send after close is a counted failure', async () => {
    const a = await udp();
    const b = await udp();
    const to = a.peerId(b.localAddress());
    a.close();
    a.close();
    assert.equal(a.send(to, Buffer.from('x'), 0, 1), false);
    assert.equal(a.stats.sendErrors, 1);
  });

  if (impl === 'js') {
    it('rejects unix datagram sockets with LP_ERR_NATIVE and a build hint', async () => {
      await assert.rejects(unix('js.sock'), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'LP_ERR_NATIVE');
        assert.match(err.message, /npm run build:native/);
        assert.match(err.message, /js\.sock/);
        return true;
      });
    });
    return;
  }

  describe('unix datagrams', () => {
    it('sends and receives between two paths, with peer ids and addresses', async () => {
      const a = await unix('a.sock');
      const b = await unix('b.sock');
      const c = await unix('c.sock');
      assert.deepEqual(b.localAddress(), { kind: 'unix', path: join(dir, 'b.sock') });
      const rx = new Collector(b);
      const to = a.peerId({ kind: 'unix', path: join(dir, 'b.sock') });
      for (let i = 0; i < 8; i++) a.send(to, frameOf(i, 100), 0, 100);
      c.send(c.peerId(b.localAddress()), Buffer.from('from-c'), 0, 6);
      await rx.until(9);
      const fromA = rx.frames.filter((f) => f.data.length === 100);
      assert.equal(fromA.length, 8);
      for (let i = 0; i < 8; i++) assert.deepEqual(fromA[i].data, frameOf(i, 100));
      const idA = fromA[0].peer;
      assert.ok(fromA.every((f) => f.peer === idA));
      const fromC = rx.frames.find((f) => f.data.toString() === 'from-c');
      assert.ok(fromC && fromC.peer !== idA);
      assert.deepEqual(b.peerAddress(idA), { kind: 'unix', path: join(dir, 'a.sock') });
      assert.equal(b.peerId({ kind: 'unix', path: join(dir, 'a.sock') }), idA);
    });

    it('delivers 0-byte and maximum-size (69632) unix datagrams', async () => {
      const a = await unix('z-a.sock');
      const b = await unix('z-b.sock');
      const rx = new Collector(b);
      const to = a.peerId(b.localAddress());
      const big = frameOf(3, UNIX_MAX);
      a.send(to, Buffer.alloc(0), 0, 0);
      a.send(to, big, 0, UNIX_MAX);
      await rx.until(2);
      assert.equal(rx.frames[0].data.length, 0);
      assert.deepEqual(rx.frames[1].data, big);
      assert.equal(b.stats.truncated, 0);
    });

    it('drops and counts a datagram larger than slotBytes, keeping its neighbours', async () => {
      const a = await unix('t-a.sock');
      const b = await unix('t-b.sock', { slotBytes: 2048, batchSize: 8 });
      const to = a.peerId(b.localAddress());
      // Queue all three before the receiver starts, so they arrive in one recvmmsg batch.
      a.send(to, frameOf(1, 100), 0, 100);
      a.send(to, frameOf(2, 4000), 0, 4000);
      a.send(to, frameOf(3, 200), 0, 200);
      a.flush();
      const rx = new Collector(b);
      await rx.until(2);
      await settle();
      assert.equal(rx.frames.length, 2);
      assert.deepEqual(rx.frames[0].data, frameOf(1, 100));
      assert.deepEqual(rx.frames[1].data, frameOf(3, 200));
      assert.equal(rx.batches, 1);
      assert.equal(b.stats.truncated, 1);
    });

    it('counts a send to a vanished path as a send error and carries on', async () => {
      const a = await unix('v-a.sock');
      const b = await unix('v-b.sock');
      const rx = new Collector(b);
      const gone = a.peerId({ kind: 'unix', path: join(dir, 'nobody.sock') });
      a.send(gone, Buffer.from('lost'), 0, 4);
      a.send(a.peerId(b.localAddress()), Buffer.from('kept'), 0, 4);
      await rx.until(1);
      assert.equal(rx.frames[0].data.toString(), 'kept');
      assert.equal(a.stats.sendErrors, 1);
    });

    it('drops and counts datagrams from an unbound (unaddressable) unix sender', async (t) => {
      const b = await unix('u-b.sock');
      const rx = new Collector(b);
      const py = 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"anon", sys.argv[1])';
      const r = spawnSync('python3', ['-c', py, join(dir, 'u-b.sock')], { encoding: 'utf8', timeout: 10000 });
      if (r.error || r.status !== 0) {
        t.skip(`needs python3 to send from an unbound unix socket (${r.error?.message ?? r.stderr})`);
        return;
      }
      const a = await unix('u-a.sock');
      a.send(a.peerId(b.localAddress()), Buffer.from('named'), 0, 5);
      await rx.until(1);
      await settle();
      assert.equal(rx.frames.length, 1);
      assert.equal(rx.frames[0].data.toString(), 'named');
      assert.equal((b.stats as { unaddressable?: number }).unaddressable, 1);
    });

    it('rejects an existing path with EADDRINUSE and a missing directory with ENOENT', async () => {
      writeFileSync(join(dir, 'taken.sock'), '');
      await assert.rejects(unix('taken.sock'), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'EADDRINUSE');
        assert.equal(err.syscall, 'bind');
        assert.match(err.message, /taken\.sock/);
        return true;
      });
      await assert.rejects(unix('no/such/dir.sock'), { code: 'ENOENT', syscall: 'bind' });
    });

    it('carries 2000 frames in small bursts (the kernel queues only 10 per unix receiver)', async () => {
      const a = await unix('m-a.sock');
      const b = await unix('m-b.sock');
      const rx = new Collector(b);
      const to = a.peerId(b.localAddress());
      const scratch = Buffer.alloc(1514);
      for (let sent = 0; sent < 2000; sent += 8) {
        for (let i = 0; i < 8; i++) {
          scratch.writeUInt32BE(sent + i, 0);
          a.send(to, scratch, 0, 1514);
        }
        await rx.until(sent + 8);
      }
      for (let i = 0; i < 2000; i++) assert.equal(rx.frames[i].data.readUInt32BE(0), i);
      assert.equal(a.stats.sendErrors, 0);
    });
  });
}

describe('batch-io native', { skip: nativeAvailable() ? false : `native addon unavailable: ${nativeLoadError()}` }, () => suite('native'));
describe('batch-io JS fallback', () => suite('js'));

describe('batch-io LANPARTY_NO_NATIVE=1', () => {
  it('makes openBatchSocket use node:dgram and refuse unix sockets', () => {
    const mod = new URL('../../../src/io/index.js', import.meta.url).href;
    const script = `
      import { openBatchSocket, nativeAvailable, nativeLoadError } from ${JSON.stringify(mod)};
      const s = await openBatchSocket({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
      let unixCode = null;
      try { await openBatchSocket({ kind: 'unix', bind: { path: '/nonexistent-dir/x.sock' } }); } catch (e) { unixCode = e.code; }
      console.log(JSON.stringify({ available: nativeAvailable(), reason: nativeLoadError(), native: s.native, unixCode }));
      s.close();
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, LANPARTY_NO_NATIVE: '1' }, encoding: 'utf8', timeout: 10000,
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { available: boolean; reason: string; native: boolean; unixCode: string };
    assert.equal(out.available, false);
    assert.match(out.reason, /LANPARTY_NO_NATIVE=1/);
    assert.equal(out.native, false);
    assert.equal(out.unixCode, 'LP_ERR_NATIVE');
  });
});

/**
 * Forwarding straight from rx slots (native send stage 1): a frame passed to send() as a view of
 * a native socket's rx slab is not copied; the addon reads it there at flush time, which must come
 * before that socket's next recvmmsg rewrites the slot. Small rx batches make one wakeup run many
 * recvmmsg rounds, so a flush that came too late would send rewritten slots.
 */
describe('batch-io native: sending from rx slots without a copy', { skip: nativeAvailable() ? false : `native addon unavailable: ${nativeLoadError()}` }, () => {
  const sockets: BatchSocket[] = [];
  let dir = '';
  const open = async (opts: BatchSocketOptions): Promise<BatchSocket> => {
    const s = await openBatchSocketWith('native', opts);
    sockets.push(s);
    return s;
  };
  before(() => { dir = mkdtempSync(join(tmpdir(), 'lp-batchio-zc-')); });
  after(() => {
    for (const s of sockets) s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const lengthOf = (i: number) => 60 + ((i * 97) % 1455); // 60..1514, mixed so GSO runs are short too

  it('udp: every frame forwarded from the slots, to two receivers through another socket and one through the same socket, arrives byte for byte, in order', async () => {
    const N = 400;
    const a = await open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 }, batchSize: 4, rcvbufBytes: 4 << 20 });
    const out = await open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    const src = await open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    const sinks = await Promise.all([0, 1, 2].map(() => open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 }, rcvbufBytes: 4 << 20 })));
    const cs = sinks.map((s) => new Collector(s, 5000));
    const toOut = sinks.slice(0, 2).map((s) => out.peerId(s.localAddress()));
    const fromA = a.peerId(sinks[2].localAddress());
    let wakeups = 0;
    a.start((count) => {
      wakeups++;
      for (let i = 0; i < count; i++) {
        const buf = a.rx.bufs[i];
        const len = a.rx.lengths[i];
        for (const p of toOut) assert.equal(out.send(p, buf, 0, len), true);
        assert.equal(a.send(fromA, buf, 0, len), true);
      }
    });
    const toA = src.peerId(a.localAddress());
    const sent: Buffer[] = [];
    for (let i = 0; i < N; i++) {
      const f = frameOf(i, lengthOf(i));
      sent.push(f);
      src.send(toA, f, 0, f.length);
      if (i % 100 === 99) await settle(5);
    }
    await Promise.all(cs.map((c) => c.until(N)));
    for (const c of cs) assert.deepEqual(c.frames.map((f) => f.data), sent);
    assert.equal(out.sentWithoutCopy, 2 * N, 'forwarded through another socket without a copy');
    assert.equal(a.sentWithoutCopy, N, 'forwarded through the same socket without a copy');
    assert.equal(out.stats.sendErrors + a.stats.sendErrors, 0);
    assert.ok(wakeups < N, `several frames per wakeup (${wakeups} wakeups for ${N} frames), so slots were reused within one`);
  });

  it('a frame from any other buffer is still copied at send: changing that buffer afterwards changes nothing', async () => {
    const out = await open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    const sink = await open({ kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    const c = new Collector(sink);
    const f = frameOf(7, 200);
    const want = Buffer.from(f);
    out.send(out.peerId(sink.localAddress()), f, 0, f.length);
    f.fill(0);
    await c.until(1);
    assert.deepEqual(c.frames[0].data, want);
    assert.equal(out.sentWithoutCopy, 0);
  });

  it('unix: frames forwarded from the slots to a receiver that is not reading wait in its backlog intact, and arrive in order once it reads', async () => {
    const N = 150;
    const a = await open({ kind: 'unix', bind: { path: join(dir, 'a.sock') }, batchSize: 4 });
    const src = await open({ kind: 'unix', bind: { path: join(dir, 'src.sock') } });
    const slow = await open({ kind: 'unix', bind: { path: join(dir, 'slow.sock') } });
    const toSlow = a.peerId(slow.localAddress());
    a.start((count) => {
      for (let i = 0; i < count; i++) a.send(toSlow, a.rx.bufs[i], 0, a.rx.lengths[i]);
    });
    const toA = src.peerId(a.localAddress());
    const sent: Buffer[] = [];
    for (let i = 0; i < N; i++) {
      const f = frameOf(1000 + i, lengthOf(i));
      sent.push(f);
      src.send(toA, f, 0, f.length);
      if (i % 8 === 7) await settle(2); // within a's own queue of 10
    }
    await settle(100);
    const queued = (a.stats as { sendQueued?: number }).sendQueued ?? 0;
    assert.ok(queued >= N - 12, `the rest wait in the backlog (${queued})`);
    const c = new Collector(slow, 5000);
    await c.until(N);
    assert.deepEqual(c.frames.map((f) => f.data), sent, 'copied into the backlog before their slots were reused');
    assert.equal(a.sentWithoutCopy, N);
    assert.equal(a.stats.sendErrors, 0);
  });
});
