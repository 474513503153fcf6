/**
 * Busy polling in the native addon (setBusyPoll), over real udp sockets on 127.0.0.1.
 *
 * The property: after a wakeup that delivered frames, a datagram that arrives on another socket
 * within the busy-poll time is read before the event loop turns, so no wake-up is needed for it.
 * setImmediate marks the turn: it runs in the loop's check phase, after the poll phase that
 * delivered the first frame. Busy polling off, the second datagram waits for the next poll phase,
 * after the immediate; on, it is read while spinning, before it.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from 'node:net';
import {
  openBatchSocketWith, nativeAvailable, nativeLoadError, setBusyPoll, busyPollState,
  openStreamReader, busyPollPolicy,
  type BatchSocket,
} from '../../../src/io/index.js';
import { openStream } from '../../../src/transports/stream/index.js';
import { Switch } from '../../../src/switch/switch.js';
import { silentLogger } from '../../../src/util/logger.js';

const skip = nativeAvailable() ? false : `native addon not loaded: ${nativeLoadError()}`;

describe('busy polling (native)', { skip }, () => {
  const sockets: BatchSocket[] = [];
  const udp = async (): Promise<BatchSocket> => {
    const s = await openBatchSocketWith('native', { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    sockets.push(s);
    return s;
  };
  const dir = mkdtempSync(join(tmpdir(), 'lp-busypoll-'));
  after(() => {
    setBusyPoll(0);
    for (const s of sockets) s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const unix = async (name: string): Promise<BatchSocket> => {
    const s = await openBatchSocketWith('native', { kind: 'unix', bind: { path: join(dir, name) } });
    sockets.push(s);
    return s;
  };

  /**
   * c sends to a; a's callback runs `alsoInA`, sends through c to b and schedules an immediate.
   * Returns the order in which a's callback, the immediate and b's callback ran.
   */
  async function relayOrder(alsoInA: () => void = () => {}): Promise<string[]> {
    const [a, b, c] = [await udp(), await udp(), await udp()];
    const order: string[] = [];
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => { done = r; });
    const check = () => { if (order.length === 3) done(); };
    const toB = c.peerId(b.localAddress());
    a.start(() => {
      order.push('a');
      alsoInA();
      c.send(toB, Buffer.from('reply'), 0, 5);
      setImmediate(() => { order.push('immediate'); check(); });
    });
    b.start(() => { order.push('b'); check(); });
    c.start(() => {});
    // Start from a turn of the loop of its own: the previous test's last callback may still be
    // spinning, and everything here (promises only) would otherwise run inside it.
    await new Promise((r) => setTimeout(r, 20));
    c.send(c.peerId(a.localAddress()), Buffer.from('probe'), 0, 5);
    const timer = setTimeout(() => done(), 3000);
    await finished;
    clearTimeout(timer);
    return order;
  }

  it('off: the reply waits for the next turn of the event loop', async () => {
    assert.equal(setBusyPoll(0)?.us, 0);
    const before = busyPollState()!;
    assert.deepEqual(await relayOrder(), ['a', 'immediate', 'b']);
    const now = busyPollState()!;
    assert.equal(now.spins, before.spins, 'no spin while off');
    assert.equal(now.frames, before.frames);
  });

  it('on: the reply is read while spinning, before the loop turns, and counted', async () => {
    // 1000 µs: generous, so a busy machine that is slow to deliver loopback still makes it.
    assert.equal(setBusyPoll(1000)?.us, 1000);
    await new Promise((r) => setTimeout(r, 20));
    const before = busyPollState()!;
    assert.deepEqual(await relayOrder(), ['a', 'b', 'immediate']);
    const now = busyPollState()!;
    assert.ok(now.spins > before.spins, `spins ${before.spins} -> ${now.spins}`);
    assert.equal(now.frames - before.frames, 1, 'one frame read while spinning');
    setBusyPoll(0);
  });

  it('does not spin while a unix peer backlog waits for the loop (it would not drain)', async () => {
    // A reader that does not read: 10 datagrams fit its kernel queue, the rest wait in the
    // sender's backlog for the loop's doorbell. Spinning on would starve that doorbell.
    setBusyPoll(1000, 100);
    const u = await unix('u.sock');
    const r = await unix('r.sock');
    u.start(() => {});
    const toR = u.peerId(r.localAddress());
    const d = Buffer.from('datagram');
    const order = await relayOrder(() => {
      for (let i = 0; i < 20; i++) u.send(toR, d, 0, d.length);
    });
    assert.ok(u.stats.sendQueued > 0, `backlog ${u.stats.sendQueued}`);
    assert.deepEqual(order, ['a', 'immediate', 'b'], 'the loop turned first');
    // Its backlog never drains (r never reads): closing drops it, or every later spin would stop.
    u.close();
    r.close();
    setBusyPoll(0, 20);
  });

  /**
   * c sends one frame to a; a's callback sends `toB` frames through c to b (flushed before the
   * spin starts) and `toD` to d; b's callback runs `inB`. Returns what the spin after a's wakeup
   * read, and how long it spun idle. The state is read after a timer: the callbacks run inside the
   * spin, and so does what their microtasks resume.
   */
  async function spinAfter(toB: number, toD = 0, inB: (d: BatchSocket) => void = () => {}): Promise<{ b: number; d: number; spins: number; frames: number; idleUs: number }> {
    const [a, b, d, c] = [await udp(), await udp(), await udp(), await udp()];
    let gotB = 0;
    let gotD = 0;
    const pb = c.peerId(b.localAddress());
    const pd = c.peerId(d.localAddress());
    a.start(() => {
      for (let i = 0; i < toB; i++) c.send(pb, Buffer.from('more'), 0, 4);
      for (let i = 0; i < toD; i++) c.send(pd, Buffer.from('more'), 0, 4);
    });
    b.start((n) => { gotB += n; inB(d); });
    d.start((n) => { gotD += n; });
    c.start(() => {});
    await new Promise((r) => setTimeout(r, 30));  // a quiet rate window, and the bucket refills
    const before = busyPollState()!;
    c.send(c.peerId(a.localAddress()), Buffer.from('probe'), 0, 5);
    const t0 = Date.now();
    while (gotB < toB && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    const now = busyPollState()!;
    return { b: gotB, d: gotD, spins: now.spins - before.spins, frames: now.frames - before.frames, idleUs: now.idleUs - before.idleUs };
  }

  it('ends a spin once it has read more than 4 frames (a stream, not a reply), and spins on after fewer', async () => {
    setBusyPoll(1000, 100);
    const five = await spinAfter(5);
    assert.deepEqual([five.b, five.spins, five.frames], [5, 1, 5], 'one spin read the 5 frames');
    assert.ok(five.idleUs < 500, `spun idle ${five.idleUs} µs after 5 frames: it ended at once`);
    const three = await spinAfter(3);
    assert.deepEqual([three.b, three.spins, three.frames], [3, 1, 3], 'one spin read the 3 frames');
    assert.ok(three.idleUs >= 900, `spun idle ${three.idleUs} µs after 3 frames: it waited its 1000 µs for more`);
    setBusyPoll(0, 20);
  });

  it('skips a socket that a callback in the same pass closed, though poll(2) found it readable', async () => {
    // b and d both have a frame when the spin polls; b (polled first: it started first) closes d.
    setBusyPoll(1000, 100);
    const r = await spinAfter(1, 1, (d) => d.close());
    assert.equal(r.b, 1);
    assert.equal(r.d, 0, 'd\'s callback never ran: it was closed before its turn');
    assert.deepEqual([r.spins, r.frames], [1, 1], 'the spin read b\'s frame only');
    setBusyPoll(0, 20);
  });

  /** A unix stream connection in this process: `client` writes, `server` is lanparty's end. */
  async function streamPair(name: string): Promise<{ client: net.Socket; server: net.Socket; close: () => Promise<void> }> {
    const path = join(dir, name);
    const srv = net.createServer({ pauseOnConnect: true });  // the addon may read it (openStreamReader)
    await new Promise<void>((r) => srv.listen(path, r));
    const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
    const client = net.connect(path);
    await new Promise<void>((r) => client.once('connect', r));
    const server = await accepted;
    return {
      client, server,
      close: async () => {
        client.destroy();
        server.destroy();
        await new Promise<void>((r) => srv.close(() => r()));
      },
    };
  }

  it('reads a stream connection in the spin, before the loop turns (the addon reads it, not Node)', async () => {
    // a's callback writes to the stream (a unix stream write lands in the reader's queue at once).
    // On, the spin after a's wakeup reads it through the StreamReader; off, it waits for the
    // next poll phase, after the immediate.
    const run = async (): Promise<{ order: string[]; frames: number }> => {
      const p = await streamPair(`r${Date.now()}.sock`);
      const reader = openStreamReader(p.server, 4096);
      assert.ok(reader, 'the addon reads stream sockets');
      const slab = reader.slab;
      assert.equal(slab.length, 4096);
      const [a, c] = [await udp(), await udp()];
      const order: string[] = [];
      let done: () => void = () => {};
      const finished = new Promise<void>((r) => { done = r; });
      const check = () => { if (order.length === 3) done(); };
      reader.start((n) => { order.push(`stream ${slab.toString('latin1', 0, n)}`); check(); return 1; });
      a.start(() => {
        order.push('a');
        p.client.write('x');
        setImmediate(() => { order.push('immediate'); check(); });
      });
      c.start(() => {});
      await new Promise((r) => setTimeout(r, 30));  // a quiet rate window, and the bucket refills
      const before = busyPollState()!;
      c.send(c.peerId(a.localAddress()), Buffer.from('probe'), 0, 5);
      const timer = setTimeout(() => done(), 3000);
      await finished;
      clearTimeout(timer);
      const now = busyPollState()!;
      reader.close();
      await p.close();
      return { order, frames: now.frames - before.frames };
    };
    setBusyPoll(0);
    const off = await run();
    assert.deepEqual(off.order, ['a', 'immediate', 'stream x']);
    assert.equal(off.frames, 0);
    await new Promise((r) => setTimeout(r, 20));
    setBusyPoll(1000, 100);
    const on = await run();
    assert.deepEqual(on.order, ['a', 'stream x', 'immediate']);
    assert.equal(on.frames, 1, 'the frame the reader reported was read while spinning');
    setBusyPoll(0, 20);
  });

  it('spins after a stream read at a light load, reading the reply before the loop turns', async () => {
    // The reader's callback forwards through c to b, as the switch would, and reports one frame.
    // On, the spin after that read reads b before the immediate.
    const run = async (): Promise<{ order: string[]; spins: number; frames: number }> => {
      const p = await streamPair(`s${Date.now()}.sock`);
      const reader = openStreamReader(p.server, 4096)!;
      const [b, c] = [await udp(), await udp()];
      const order: string[] = [];
      let done: () => void = () => {};
      const finished = new Promise<void>((r) => { done = r; });
      const check = () => { if (order.length === 3) done(); };
      const toB = c.peerId(b.localAddress());
      b.start(() => { order.push('b'); check(); });
      c.start(() => {});
      reader.start(() => {
        order.push('stream');
        c.send(toB, Buffer.from('reply'), 0, 5);
        setImmediate(() => { order.push('immediate'); check(); });
        return 1;
      });
      await new Promise((r) => setTimeout(r, 30));
      const before = busyPollState()!;
      p.client.write('frame');
      const timer = setTimeout(() => done(), 3000);
      await finished;
      clearTimeout(timer);
      const now = busyPollState()!;
      reader.close();
      await p.close();
      return { order, spins: now.spins - before.spins, frames: now.frames - before.frames };
    };
    setBusyPoll(0);
    const off = await run();
    assert.deepEqual(off.order, ['stream', 'immediate', 'b']);
    assert.equal(off.spins, 0);
    await new Promise((r) => setTimeout(r, 20));  // b's wakeup above returns before this is on
    setBusyPoll(1000, 100);
    const on = await run();
    assert.deepEqual(on.order, ['stream', 'b', 'immediate']);
    assert.equal(on.spins, 1, 'one spin, started by the stream read');
    assert.equal(on.frames, 1, 'the reply was read while spinning');
    setBusyPoll(0, 20);
  });

  it('a stream port reads its connection through the addon, and its frames start spins', async () => {
    setBusyPoll(1000, 100);
    const sw = new Switch({}, silentLogger);
    const path = join(dir, 'port.sock');
    const t = openStream(`unix://${path}`, { kind: 'unix', path }, false, { sink: sw, log: silentLogger, maxFrameBytes: 1514 });
    await t.start();
    const conn = net.connect(path);
    await new Promise<void>((r) => conn.once('connect', r));
    const t0 = Date.now();
    while (sw.ports.length < 1 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 5));
    // One 60-byte frame in QEMU's stream format: the switch floods it (no other port) and the
    // reader reports it, which starts a spin (nothing else arrives, so it idles, then sleeps).
    const frame = Buffer.alloc(64);
    frame.writeUInt32BE(60, 0);
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1]).copy(frame, 4);
    await new Promise((r) => setTimeout(r, 30));
    const before = busyPollState()!;
    conn.write(frame);
    while (sw.ports[0]?.counters.rxFrames !== 1 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(sw.ports[0].counters.rxFrames, 1);
    assert.equal(busyPollState()!.spins - before.spins, 1, 'one spin for the frame');
    conn.destroy();
    while (sw.ports.length > 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 5));
    assert.equal(sw.ports.length, 0, 'the port left the switch when its peer closed');
    await t.close();
    setBusyPoll(0, 20);
  });

  it('keeps the setting within 0-1000 µs', () => {
    assert.equal(setBusyPoll(5000)?.us, 1000);
    assert.equal(setBusyPoll(-3)?.us, 0);
    assert.equal(busyPollState()?.us, 0);
  });
});

/*
 * The policy that decides whether a wakeup spins, on a clock the test steps (busyPollPolicy): the
 * CPU budget, the light-load rate bound and the batch bound, without sockets or sleeps.
 */
describe('busy-poll policy (time passed in)', { skip }, () => {
  const MS = 1000;

  it('spends at most its budget spinning idle, then sleeps at once (counted), and refills at its share of a core', () => {
    // 1% of a core: the bucket starts full (20 ms) and refills at 10 µs per ms. A wakeup every
    // 2 ms with one frame and no reply: every spin is idle for its whole 1000 µs.
    const p = busyPollPolicy()!;
    p.configure(1000, 1, 0);
    let spins = 0;
    let t = 0;
    for (let i = 0; i < 60; i++) {
      t += 2 * MS;
      if (p.decide(t, 1)) {
        spins++;
        p.charge(1000);
      }
    }
    const s = p.state();
    assert.equal(s.budgetPercent, 1);
    assert.equal(spins, s.spins);
    assert.ok(s.skipped > 0, `skipped ${s.skipped}: the bucket ran dry`);
    assert.equal(spins + s.skipped + s.loaded, 60, 'every wakeup decided once');
    const idleMs = s.idleUs / 1000;
    assert.ok(idleMs <= 20 + t / MS * 0.01 + 1, `idle spinning ${idleMs} ms over ${t / MS} ms: at most the 20 ms bucket plus 1% refill`);
    assert.ok(idleMs >= 20, `idle spinning ${idleMs} ms: it spent the bucket`);
    // A quiet second refills 10 ms at 1%: enough for spins again.
    t += 1000 * MS;
    assert.equal(p.decide(t, 1), true, 'spins again once the bucket has refilled');
  });

  it('does not spin while frames come faster than its light-load bound, and spins again after a quiet window', () => {
    const p = busyPollPolicy()!;
    const first = p.configure(1000, 100, 0);
    // 4 frames every 250 µs (16,000 frames/s, above the 10,000 bound; 4 is within the batch
    // bound), for 100 ms.
    let t = 0;
    let spun = 0;
    for (let i = 0; i < 400; i++) {
      t += 250;
      if (p.decide(t, 4)) spun++;
    }
    const s = p.state();
    assert.ok(s.rate > first.maxRate, `measured ${s.rate} frames/s, bound ${first.maxRate}`);
    assert.ok(s.loaded >= 300, `loaded ${s.loaded}: only the first window, before a rate was measured, spins`);
    assert.ok(spun <= 100, `${spun} wakeups spun`);
    // Quiet for longer than the 20 ms window: a light load again.
    t += 150 * MS;
    assert.equal(p.decide(t, 1), true, 'a reply after a quiet spell spins');
    assert.equal(p.state().rate, 0, 'a quiet window resets the rate');
  });

  it('does not spin after a wakeup that read a batch (frames queued: not a light load)', () => {
    const p = busyPollPolicy()!;
    const first = p.configure(1000, 100, 0);
    assert.equal(first.maxBatch, 4);
    assert.equal(p.decide(150 * MS, 20), false, 'a wakeup that read 20 frames does not spin');
    const s = p.state();
    assert.equal(s.rate, 0, 'no window measured: the rate bound did not decide');
    assert.equal(s.loaded, 1);
    assert.equal(s.spins, 0);
    assert.equal(p.decide(200 * MS, 4), true, 'one that read 4 does');
  });

  it('never spins while off, whatever the clock says', () => {
    const p = busyPollPolicy()!;
    p.configure(0, 100, 0);
    assert.equal(p.decide(10 * MS, 1), false);
    assert.equal(p.state().spins, 0);
  });
});
