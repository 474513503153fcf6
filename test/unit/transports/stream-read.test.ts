/*
 * Reading a stream port (src/transports/stream/index.ts): QEMU's 4-byte length framing over a
 * real unix stream connection to a real listener and switch, in this process, read by the addon
 * (StreamReader: one reused slab) and by Node (LANPARTY_STREAM_READER=0, or no addon). Both must
 * deliver the same frames byte for byte, however the bytes are cut into reads, and count the same
 * bad input: an empty frame, a length over the limit (the connection is closed), and a stream
 * that ends inside a frame.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from 'node:net';
import { openStream } from '../../../src/transports/stream/index.js';
import { nativeAvailable } from '../../../src/transports/batch-io.js';
import { Switch } from '../../../src/switch/switch.js';
import { silentLogger } from '../../../src/util/logger.js';
import type { Port } from '../../../src/switch/port.js';
import { waitFor } from '../../helpers/netns.js';

/** A frame from MAC 02::<src> to broadcast, `len` bytes, its payload counting up from `seed`. */
function frame(src: number, len: number, seed: number): Buffer {
  const f = Buffer.alloc(len);
  for (let i = 14; i < len; i++) f[i] = (seed + i) & 0xff;
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, src, 0x88, 0xb5]).copy(f, 0);
  return f;
}
function framed(f: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(f.length, 0);
  return Buffer.concat([h, f]);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const modes: Array<{ name: string; env: string; skip: string | false }> = [
  { name: 'the addon reads', env: '1', skip: nativeAvailable() ? false : 'native addon not loaded' },
  { name: 'Node reads (LANPARTY_STREAM_READER=0)', env: '0', skip: false },
];

for (const mode of modes) {
  describe(`stream port reading: ${mode.name}`, { skip: mode.skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'lp-sread-'));
    const path = join(dir, 'port.sock');
    const sw = new Switch({}, silentLogger);
    const t = openStream(`unix://${path}`, { kind: 'unix', path }, false, { sink: sw, log: silentLogger, maxFrameBytes: 1514 });
    const socks: net.Socket[] = [];
    const saved = process.env.LANPARTY_STREAM_READER;
    after(async () => {
      for (const s of socks) s.destroy();
      await t.close();
      rmSync(dir, { recursive: true, force: true });
      if (saved === undefined) delete process.env.LANPARTY_STREAM_READER;
      else process.env.LANPARTY_STREAM_READER = saved;
    });

    const until = (what: string, cond: () => boolean): Promise<boolean> => waitFor(what, cond, 5000, 5);

    /** Connects a client; returns it, its port, and the bytes it has read so far. */
    async function connect(): Promise<{ sock: net.Socket; port: Port; got: () => Buffer }> {
      process.env.LANPARTY_STREAM_READER = mode.env;
      const before = sw.ports.length;
      const sock = net.connect(path);
      socks.push(sock);
      await new Promise<void>((r) => sock.once('connect', r));
      await until('the port', () => sw.ports.length === before + 1);
      const port = sw.ports[sw.ports.length - 1];
      const chunks: Buffer[] = [];
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('error', () => {});
      return { sock, port, got: () => Buffer.concat(chunks) };
    }

    it('starts reading', async () => {
      await t.start();
    });

    it('delivers frames byte for byte however the stream is cut: many per read, split headers and bodies', async () => {
      const a = await connect();
      const b = await connect();
      assert.equal(t.status().native, mode.env === '1', 'status --json says who reads the connections');
      const frames = [frame(1, 60, 1), frame(1, 1514, 2), frame(1, 300, 3), frame(1, 1514, 4), frame(1, 61, 5)];
      const wire = Buffer.concat(frames.map(framed));
      // All at once (several frames in one read), then the same bytes again cut at awkward places:
      // inside a length, right after one, inside a body.
      a.sock.write(wire);
      await until('the first five frames', () => a.port.counters.rxFrames === 5);
      const cuts = [2, 5, 64, 70, 700, 1600, 1601, wire.length - 3, wire.length];
      let at = 0;
      for (const c of cuts) {
        a.sock.write(wire.subarray(at, c));
        at = c;
        await sleep(15);  // each piece its own read
      }
      await until('all ten frames', () => a.port.counters.rxFrames === 10);
      await until('b to read them', () => b.got().length === 2 * wire.length);
      assert.ok(b.got().equals(Buffer.concat([wire, wire])), 'b read exactly what a wrote, framing and all');
      assert.equal(a.port.counters.drops.truncated, 0);
      a.sock.destroy();
      b.sock.destroy();
      await until('both ports gone', () => sw.ports.length === 0);
    });

    it('counts an empty frame and a stream that ends inside a frame', async () => {
      const a = await connect();
      const port = a.port;
      const f = framed(frame(1, 100, 9));
      a.sock.write(Buffer.concat([Buffer.alloc(4), f, f.subarray(0, 50)]));
      await until('the whole frame', () => port.counters.rxFrames === 1);
      await sleep(20);
      a.sock.end();
      await until('the port to go', () => sw.ports.length === 0);
      assert.equal(port.counters.drops.empty, 1, 'the 0-length frame');
      assert.equal(port.counters.drops.truncated, 1, 'the frame cut short by the end of the stream');
      assert.equal(port.counters.rxFrames, 1);
    });

    it('closes a connection that sends a length over the limit, counted, and keeps serving the others', async () => {
      const bad = await connect();
      const good = await connect();
      const listener = await connect();
      const h = Buffer.alloc(4);
      h.writeUInt32BE(70000, 0);
      let closed = false;
      bad.sock.on('close', () => { closed = true; });
      const badPort = bad.port;
      // After the bad length, more than one read's worth (64 KiB) of zeros, then a good frame:
      // nothing after the bad length may be read as frames (the zeros would be empty frames).
      const after = framed(frame(3, 80, 2));
      bad.sock.write(Buffer.concat([framed(frame(3, 64, 1)), h, Buffer.alloc(70000), after]));
      await until('the bad connection to be closed', () => closed && !sw.ports.includes(badPort));
      assert.equal(badPort.counters.rxFrames, 1, 'the frame before the bad length got through');
      assert.equal(badPort.counters.drops['bad-length'], 1);
      assert.equal(badPort.counters.drops.empty, 0, 'nothing after the bad length was parsed');
      assert.ok(!listener.got().includes(after), 'the frame after the bad length was not forwarded');
      const f = framed(frame(4, 200, 7));
      good.sock.write(f);
      await until('the listener to read the good frame', () => listener.got().includes(f));
      good.sock.destroy();
      listener.sock.destroy();
      await until('all ports gone', () => sw.ports.length === 0);
    });
  });
}
