/*
 * Flow control between stream ports (src/transports/stream/index.ts): a sender faster than its
 * receiver is paused instead of losing frames, and a receiver that stops reading holds a sender
 * back for at most PAUSE_MAX_MS (200 ms), after which frames to it are dropped and the sender's
 * other traffic flows. Real unix stream connections to a real listener and switch, in this process.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from 'node:net';
import { openStream } from '../../../src/transports/stream/index.js';
import { Switch } from '../../../src/switch/switch.js';
import { silentLogger } from '../../../src/util/logger.js';
import type { Port } from '../../../src/switch/port.js';

const FRAME = 1000;

/** One frame in QEMU's stream format: 4-byte length, then dst, src, EtherType 0x88b5, payload. */
function frame(dst: number, src: number, fill = 0): Buffer {
  const f = Buffer.alloc(4 + FRAME, fill);
  f.writeUInt32BE(FRAME, 0);
  Buffer.from([2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x88, 0xb5]).copy(f, 4);
  return f;
}

interface Client { sock: net.Socket; frames: () => number }

describe('stream flow control', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lp-flow-'));
  const path = join(dir, 'port.sock');
  const sw = new Switch({}, silentLogger);
  const t = openStream(`unix://${path}`, { kind: 'unix', path }, false, { sink: sw, log: silentLogger, maxFrameBytes: 1514 });
  const clients: net.Socket[] = [];
  after(async () => {
    for (const c of clients) c.destroy();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const until = async (what: string, cond: () => boolean, ms = 5000): Promise<void> => {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  /** Connects, announces MAC 02:00:00:00:00:<mac> with one broadcast, and counts frames it reads. */
  async function client(mac: number): Promise<Client & { port: Port }> {
    const before = sw.ports.length;
    const sock = net.connect(path);
    clients.push(sock);
    await new Promise<void>((r) => sock.once('connect', r));
    await until('the port', () => sw.ports.length === before + 1);
    const port = sw.ports[sw.ports.length - 1];
    let bytes = 0;
    sock.on('data', (d: Buffer) => { bytes += d.length; });
    const hello = frame(0xff, mac);
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(hello, 4);
    sock.write(hello);
    await until('its MAC learned', () => port.counters.rxFrames === 1);
    return { sock, port, frames: () => Math.floor(bytes / (4 + FRAME)) };
  }

  it('a receiver slower than its sender slows the sender down: every frame arrives, none dropped', async () => {
    await t.start();
    const s = await client(1);
    const h = await client(2);
    // Broadcasts seen so far: h's hello reached s. Count from here.
    await new Promise((r) => setTimeout(r, 20));
    const seen = h.frames();
    h.sock.pause();   // h reads nothing for 100 ms (under the 200 ms a sender waits at most)
    const N = 3000;   // 3 MB: well over lanparty's 1 MiB queue and the kernel's socket buffers
    for (let i = 0; i < N; i++) s.sock.write(frame(2, 1, i & 0xff));
    setTimeout(() => h.sock.resume(), 100);
    await until(`${N} frames at h`, () => h.frames() - seen >= N, 15_000);
    assert.equal(h.frames() - seen, N);
    assert.equal(h.port.counters.drops['queue-full'], 0, 'nothing dropped at h\'s port');
    assert.ok(s.port.flow!().pauses > 0, `s was paused (${s.port.flow!().pauses} times)`);
    assert.equal(s.port.flow!().pauseTimeouts, 0, 'each pause ended when h drained');
  });

  it('a receiver that stops reading holds the sender back at most 200 ms: then frames to it are dropped, and the sender\'s other frames flow', async () => {
    const s = await client(3);
    const h = await client(4);
    const x = await client(5);
    await new Promise((r) => setTimeout(r, 20));
    const seen = h.frames();
    x.sock.pause();   // x never reads again
    const t0 = Date.now();
    for (let i = 0; i < 3000; i++) s.sock.write(frame(5, 3));
    for (let i = 0; i < 100; i++) s.sock.write(frame(4, 3));
    await until('100 frames at h', () => h.frames() - seen >= 100, 10_000);
    const ms = Date.now() - t0;
    assert.ok(s.port.flow!().pauseTimeouts >= 1, `s's wait for x ran out (${s.port.flow!().pauses} pauses, ${s.port.flow!().pauseTimeouts} ran out)`);
    assert.ok(x.port.counters.drops['queue-full'] > 0, `frames to the stuck x were dropped (${x.port.counters.drops['queue-full']})`);
    assert.equal(h.port.counters.drops['queue-full'], 0);
    assert.ok(ms < 5000, `h got its frames ${ms} ms after the burst began`);
    // Stuck, x holds nobody back again: more frames to it are dropped without a new pause.
    const pauses = s.port.flow!().pauses;
    const drops = x.port.counters.drops['queue-full'];
    for (let i = 0; i < 200; i++) s.sock.write(frame(5, 3));
    await until('more drops at x', () => x.port.counters.drops['queue-full'] >= drops + 200);
    assert.equal(s.port.flow!().pauses, pauses, 'no new pause for a stuck port');
  });

  it('a stuck receiver that drains is waited for again', async () => {
    const s = await client(6);
    const x = await client(7);
    await new Promise((r) => setTimeout(r, 20));
    const seen = x.frames();
    x.sock.pause();
    for (let i = 0; i < 3000; i++) s.sock.write(frame(7, 6));
    await until('x to be found stuck', () => s.port.flow!().pauseTimeouts === 1, 10_000);
    await until('frames to x to be dropped', () => x.port.counters.drops['queue-full'] > 0);
    await until('s to have sent everything', () => s.port.counters.rxFrames === 1 + 3000, 10_000);
    // x reads again and drains everything that was not dropped: its socket's 'drain' clears `stuck`.
    x.sock.resume();
    const dropped = x.port.counters.drops['queue-full'];
    await until('x to read what was kept', () => x.frames() - seen === 3000 - dropped, 10_000);
    // x stops reading once more: s is paused for it again, before anything is dropped.
    x.sock.pause();
    const pauses = s.port.flow!().pauses;
    for (let i = 0; i < 3000; i++) s.sock.write(frame(7, 6));
    await until('a new pause for x', () => s.port.flow!().pauses > pauses, 2000);
    assert.equal(x.port.counters.drops['queue-full'], dropped, 'waited for, not dropped');
    assert.equal(s.port.flow!().pauseTimeouts, 1);
    x.sock.resume();
  });
});
