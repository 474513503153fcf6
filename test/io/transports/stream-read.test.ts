/*
 * Reading a stream port (src/transports/stream/index.ts): QEMU's 4-byte length framing over a
 * real unix stream connection to a real listener and switch, in this process, read by the addon
 * (StreamReader: one reused slab) and by Node (LANPARTY_STREAM_READER=0, or no addon). Both must
 * deliver the same frames byte for byte, however the bytes are cut into reads, and count the same
 * bad input: an empty frame, a length over the limit (the connection is closed), and a stream
 * that ends inside a frame. Frames from one stream port to another are copied a read's run at a
 * time (cut-through, src/transports/stream/index.ts): the receivers must still get exactly their
 * frames, in order, when runs are broken by drops, empty frames and frames for other ports.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from 'node:net';
import { openStream } from '../../../src/transports/stream/index.js';
import { nativeAvailable, type StreamReader } from '../../../src/io/index.js';
import { Switch } from '../../../src/switch/switch.js';
import { silentLogger } from '../../../src/util/logger.js';
import type { Port } from '../../../src/switch/port.js';
import { waitFor } from '../../../lab/netns.js';

/** A frame from MAC 02::<src> to broadcast, `len` bytes, its payload counting up from `seed`. */
function frame(src: number, len: number, seed: number): Buffer {
  const f = Buffer.alloc(len);
  for (let i = 14; i < len; i++) f[i] = (seed + i) & 0xff;
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, src, 0x88, 0xb5]).copy(f, 0);
  return f;
}
/** A `len`-byte frame from MAC 02::<src> to 02::<dst> (or broadcast when dst is 0xff). */
function unicast(src: number, dst: number, len: number, seed: number): Buffer {
  const f = frame(src, len, seed);
  if (dst !== 0xff) Buffer.from([2, 0, 0, 0, 0, dst]).copy(f, 0);
  return f;
}
function framed(f: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(f.length, 0);
  return Buffer.concat([h, f]);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The addon's reader of a stream port's connection (null: Node reads it). */
const readerOf = (p: Port): StreamReader | null => (p as unknown as { reader: StreamReader | null }).reader;
/** How many bytes the port's next read may take (undefined: Node reads it). */
const slabOf = (p: Port): number | undefined => readerOf(p)?.slab.length;

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

    /** Connects a, b and c and teaches the switch their MACs 02::0a, 02::0b and 02::0c (a broadcast from each, read by the other two). */
    async function threeKnown(): Promise<Array<Awaited<ReturnType<typeof connect>>>> {
      const all = [await connect(), await connect(), await connect()];
      all.forEach((who, i) => who.sock.write(framed(frame(0x0a + i, 60, 0x0a + i))));
      await until('the three hellos', () => all.every((who) => who.got().length > 0) && sw.ports.every((p) => p.counters.rxFrames === 1));
      await until('every hello delivered twice', () => all.reduce((n, who) => n + who.got().length, 0) === 6 * 64);
      return all;
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

    it('forwards runs of frames between stream ports in order, byte for byte, however they are cut and interleaved', async () => {
      const [a, b, c] = await threeKnown();
      const b0 = b.got().length;
      const c0 = c.got().length;
      // From a: runs to b, a frame to c in between, broadcasts (to both), an empty frame, a runt
      // (dropped), a frame to a itself (dropped), then more to b, sizes mixed.
      const seq: Array<{ f: Buffer; to: string }> = [];
      let seed = 0;
      const add = (dst: number, len: number, to: string): void => { seq.push({ f: unicast(0x0a, dst, len, ++seed), to }); };
      add(0x0b, 60, 'b'); add(0x0b, 1514, 'b'); add(0x0b, 64, 'b'); add(0x0c, 100, 'c'); add(0x0b, 70, 'b');
      add(0xff, 200, 'bc'); add(0xff, 61, 'bc'); add(0x0b, 99, 'b');
      seq.push({ f: Buffer.alloc(0), to: '' });  // empty: counted, not forwarded
      add(0x0b, 300, 'b');
      seq.push({ f: Buffer.alloc(10, 0x0b), to: '' });  // runt
      add(0x0a, 80, '');  // to its own port
      add(0x0b, 1000, 'b'); add(0x0c, 1400, 'c'); add(0x0c, 60, 'c'); add(0x0b, 60, 'b');
      const wire = Buffer.concat(seq.map((s) => framed(s.f)));
      const want = (who: string): Buffer => Buffer.concat(seq.filter((s) => s.to.includes(who)).map((s) => framed(s.f)));
      // Once in one write, then cut inside headers and bodies so runs end at every read.
      a.sock.write(wire);
      await until('the whole sequence once', () => b.got().length === b0 + want('b').length && c.got().length === c0 + want('c').length);
      let at = 0;
      for (const cut of [3, 70, 1590, 1600, 2000, 2777, wire.length - 1, wire.length]) {
        a.sock.write(wire.subarray(at, cut));
        at = cut;
        await sleep(15);
      }
      await until('the whole sequence twice', () => b.got().length === b0 + 2 * want('b').length && c.got().length === c0 + 2 * want('c').length);
      assert.ok(b.got().subarray(b0).equals(Buffer.concat([want('b'), want('b')])), 'b read exactly its frames, in order');
      assert.ok(c.got().subarray(c0).equals(Buffer.concat([want('c'), want('c')])), 'c read exactly its frames, in order');
      assert.equal(a.got().length, 2 * 64, 'a got only the two hellos, not its own frame back');
      assert.equal(a.port.counters.drops.runt, 2);
      assert.equal(a.port.counters.drops['self-loop'], 2);
      assert.equal(b.port.counters.txFrames, 2 + 2 * seq.filter((s) => s.to.includes('b')).length);
      for (const x of [a, b, c]) x.sock.destroy();
      await until('all ports gone', () => sw.ports.length === 0);
    });

    it('frames for two ports interleaved cost each port about one write per read, not one per frame', async () => {
      const [a, b, c] = await threeKnown();
      const b0 = b.got().length;
      const bSock = (b.port as unknown as { socket: net.Socket }).socket;
      const write = bSock.write.bind(bSock) as (d: Buffer) => boolean;
      let writes = 0;
      bSock.write = ((d: Buffer) => { writes++; return write(d); }) as typeof bSock.write;
      // 1000 frames alternating between b and c, about 100 KiB: two reads or a few more.
      const frames = Array.from({ length: 1000 }, (_, i) => unicast(0x0a, i % 2 ? 0x0b : 0x0c, 100, i));
      a.sock.write(Buffer.concat(frames.map(framed)));
      const want = Buffer.concat(frames.filter((_, i) => i % 2).map(framed));
      await until('b to read its 500', () => b.got().length === b0 + want.length);
      assert.ok(b.got().subarray(b0).equals(want), 'b read exactly its frames, in order');
      assert.ok(writes > 0 && writes <= 40, `b's socket was written ${writes} times for 500 interleaved frames`);
      for (const x of [a, b, c]) x.sock.destroy();
      await until('all ports gone', () => sw.ports.length === 0);
    });

    it('a receiver that reads slowly gets every byte: frames written straight from the read chunk are never read over', async () => {
      const a = await connect();
      const b = await connect();
      a.sock.write(framed(frame(0x0a, 60, 0)));
      b.sock.write(framed(frame(0x0b, 60, 0)));
      await until('both hellos', () => a.got().length === 64 && b.got().length === 64);
      // b stops reading: writes to it stop completing, so its socket keeps views of a's chunks
      // while a reads on (up to the pause threshold), in one write per 64 KiB here.
      b.sock.pause();
      const frames = Array.from({ length: 600 }, (_, i) => framed(unicast(0x0a, 0x0b, 1000 + (i % 7), i)));
      const wire = Buffer.concat(frames);
      for (let at = 0; at < wire.length; at += 65536) a.sock.write(wire.subarray(at, at + 65536));
      await until('a to read it all', () => a.port.counters.rxFrames === 601);
      await sleep(50);
      b.sock.resume();
      await until('b to read it all', () => b.got().length === 64 + wire.length);
      assert.ok(b.got().subarray(64).equals(wire), 'b read exactly what a sent, in order');
      assert.equal(b.port.counters.drops['queue-full'], 0);
      if (mode.env === '1') assert.equal(slabOf(a.port), 64 * 1024, 'a busy unix connection keeps reading 64 KiB at a time');
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

describe('stream port reading: a busy tcp connection', { skip: nativeAvailable() ? false : 'native addon not loaded' }, () => {
  it('reads 256 KiB at a time once a read fills its 64 KiB slab, and forwards every byte', async () => {
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const portNo = (free.address() as net.AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    const sw = new Switch({}, silentLogger);
    const t = openStream(`tcp://127.0.0.1:${portNo}`, { kind: 'tcp', host: '127.0.0.1', port: portNo }, false, { sink: sw, log: silentLogger, maxFrameBytes: 1514 });
    await t.start();
    const socks: net.Socket[] = [];
    try {
      const join = async (): Promise<{ sock: net.Socket; port: Port; got: () => Buffer }> => {
        const before = sw.ports.length;
        const sock = net.connect(portNo, '127.0.0.1');
        socks.push(sock);
        await new Promise<void>((r) => sock.once('connect', r));
        await waitFor('the port', () => sw.ports.length === before + 1, 5000, 5);
        const chunks: Buffer[] = [];
        sock.on('data', (d: Buffer) => chunks.push(d));
        return { sock, port: sw.ports[sw.ports.length - 1], got: () => Buffer.concat(chunks) };
      };
      const a = await join();
      const b = await join();
      assert.equal(slabOf(a.port), 64 * 1024, 'a new connection reads 64 KiB at a time');
      const wire = Buffer.concat(Array.from({ length: 1500 }, (_, i) => framed(frame(0x0a, 1400 + (i % 9), i))));
      a.sock.write(wire);
      await waitFor('b to read it all', () => b.got().length === wire.length, 10000, 5);
      assert.ok(b.got().equals(wire), 'b read exactly what a sent');
      assert.equal(slabOf(a.port), 256 * 1024, 'a read filled the slab: the busy connection reads 256 KiB at a time');
      assert.equal(slabOf(b.port), 64 * 1024, 'b sent nothing: it keeps 64 KiB');
    } finally {
      for (const s of socks) s.destroy();
      await t.close();
    }
  });
});
