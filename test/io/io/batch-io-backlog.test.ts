/**
 * batch-io native unix-datagram send backlog, over real sockets in a private temp dir.
 *
 * Linux queues at most net.unix.max_dgram_qlen (default 10) datagrams per unix receiver, so a burst
 * of more than that to one peer gets EAGAIN. The addon keeps the rest in a bounded per-peer backlog
 * and sends it, in order, when the receiver reads (it learns that from a doorbell socket connected
 * to the peer's path). A receiver that "stops reading" here is a BatchSocket not yet started: the
 * addon polls a socket only from start() on.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import {
  openBatchSocketWith, nativeAvailable, nativeLoadError, unixBacklogLimits,
  type BatchSocket, type BatchSocketOptions,
} from '../../../src/io/index.js';
import { Collector } from '../../helpers/batch-collector.js';


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function frameOf(seq: number, len: number): Buffer {
  const b = Buffer.alloc(len, seq & 0xff);
  b.writeUInt32BE(seq, 0);
  return b;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

// The addon's bounds (kBacklogDatagrams, kBacklogBytes), read from it so the tests follow it.
const LIMITS = unixBacklogLimits() ?? { datagrams: 0, bytes: 0 };

describe('batch-io native unix send backlog', { skip: nativeAvailable() ? false : `native addon unavailable: ${nativeLoadError()}` }, () => {
  const sockets: BatchSocket[] = [];
  let dir = '';
  let n = 0;
  const unix = async (name = `s${n++}.sock`, extra: Partial<BatchSocketOptions> = {}): Promise<BatchSocket> => {
    const s = await openBatchSocketWith('native', { kind: 'unix', bind: { path: join(dir, name) }, ...extra });
    sockets.push(s);
    return s;
  };

  before(() => { dir = mkdtempSync(join(tmpdir(), 'lp-backlog-')); });
  after(() => {
    for (const s of sockets) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers a 200-datagram burst to a receiver that stops reading for 50 ms, in order, with zero drops', async () => {
    const a = await unix();
    const b = await unix();
    const to = a.peerId(b.localAddress());
    for (let i = 0; i < 200; i++) assert.equal(a.send(to, frameOf(i, 1000), 0, 1000), true);
    a.flush();
    const queued = a.stats.sendQueued;
    assert.ok(queued >= 150 && queued < 200, `backlog ${queued}`); // The kernel took about 10.
    await sleep(50);
    const rx = new Collector(b, 5000);
    await rx.until(200);
    await sleep(20);
    assert.deepEqual(rx.seqs(), range(0, 200));
    for (const f of rx.frames) assert.equal(f.data.length, 1000);
    // Backlogged datagrams leave through the bound socket: the receiver sees the sender's path.
    assert.ok(rx.frames.every((f) => f.peer === rx.frames[0].peer));
    assert.deepEqual(b.peerAddress(rx.frames[0].peer), a.localAddress());
    assert.equal(b.stats.recvErrors, 0);
    assert.equal((b.stats as unknown as { unaddressable: number }).unaddressable, 0);
    assert.equal(a.stats.sendErrors, 0);
    assert.equal(a.stats.sendDropped, 0);
    assert.equal(a.stats.sendQueued, 0);
  });

  it('keeps per-peer order across later sends while another peer is served at once', async () => {
    const a = await unix();
    const slow = await unix();
    const fast = await unix();
    const rxFast = new Collector(fast, 5000);
    const toSlow = a.peerId(slow.localAddress());
    const toFast = a.peerId(fast.localAddress());
    // Several ticks: once the slow peer has a backlog, new datagrams to it queue behind it.
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 25; i++) {
        const seq = round * 25 + i;
        a.send(toSlow, frameOf(seq, 300), 0, 300);
        a.send(toFast, frameOf(seq, 300), 0, 300);
      }
      await sleep(5);
    }
    await rxFast.until(100);
    assert.deepEqual(rxFast.seqs(), range(0, 100));
    assert.ok(a.stats.sendQueued > 0);
    const rxSlow = new Collector(slow, 5000);
    await rxSlow.until(100);
    await sleep(20);
    assert.deepEqual(rxSlow.seqs(), range(0, 100));
    assert.equal(a.stats.sendErrors, 0);
    assert.equal(a.stats.sendQueued, 0);
  });

  it(`caps the backlog of a receiver that never reads (${LIMITS.datagrams} datagrams) and counts the newest as dropped`, async () => {
    const a = await unix();
    const b = await unix();
    const to = a.peerId(b.localAddress());
    const B = LIMITS.datagrams;
    assert.ok(B >= 256 && B * 100 < LIMITS.bytes, `backlog ${B} datagrams, ${LIMITS.bytes} bytes`);
    const sent = B + 144;
    for (let i = 0; i < sent; i++) assert.equal(a.send(to, frameOf(i, 100), 0, 100), true);
    a.flush();
    await sleep(30);
    const st = a.stats;
    assert.equal(st.sendQueued, B);
    const inKernel = sent - B - st.sendDropped;
    assert.ok(inKernel >= 1 && inKernel <= 16, `kernel queue ${inKernel}`);
    assert.equal(st.sendErrors, st.sendDropped);
    // What was kept is the oldest, contiguous and in order: the drops were the newest.
    const rx = new Collector(b, 5000);
    await rx.until(inKernel + B);
    await sleep(20);
    assert.deepEqual(rx.seqs(), range(0, inKernel + B));
    assert.equal(st.sendQueued, 0);
  });

  it(`caps the backlog by bytes (${LIMITS.bytes}) for large datagrams`, async () => {
    const a = await unix();
    const b = await unix();
    const to = a.peerId(b.localAddress());
    const fit = Math.floor(LIMITS.bytes / 60000);
    const sent = fit + 30;
    for (let i = 0; i < sent; i++) a.send(to, frameOf(i, 60000), 0, 60000);
    a.flush();
    const st = a.stats;
    assert.ok(st.sendQueued >= fit - 1 && st.sendQueued <= fit + 1, `queued ${st.sendQueued}, ${LIMITS.bytes} / 60000 = ${fit}`);
    assert.ok(st.sendDropped > 0);
    const kept = sent - st.sendDropped;
    const rx = new Collector(b, 5000);
    await rx.until(kept);
    await sleep(20);
    assert.deepEqual(rx.seqs(), range(0, kept));
    assert.equal(st.sendQueued, 0);
  });

  it('waits on its own send buffer when that, not the receiver, is full (small SO_SNDBUF)', async () => {
    // Every datagram sitting in the receiver's queue is charged to the sender's SO_SNDBUF.
    const a = await unix(undefined, { sndbufBytes: 16384 });
    const b = await unix();
    const to = a.peerId(b.localAddress());
    for (let i = 0; i < 100; i++) a.send(to, frameOf(i, 4000), 0, 4000);
    a.flush();
    assert.ok(a.stats.sendQueued > 80, `queued ${a.stats.sendQueued}`);
    await sleep(30);
    const rx = new Collector(b, 5000);
    await rx.until(100);
    await sleep(20);
    assert.deepEqual(rx.seqs(), range(0, 100));
    assert.equal(a.stats.sendErrors, 0);
    assert.equal(a.stats.sendQueued, 0);
  });

  it('drops the backlog of a peer whose path vanished, and reaches it again once it is rebound', async () => {
    const a = await unix();
    const path = join(dir, 'restart.sock');
    const b = await unix('restart.sock');
    const to = a.peerId(b.localAddress());
    for (let i = 0; i < 50; i++) a.send(to, frameOf(i, 200), 0, 200);
    a.flush();
    const queued = a.stats.sendQueued;
    assert.ok(queued > 30, `queued ${queued}`);
    // The guest exits and its path goes: the doorbell wakes, the send finds ENOENT.
    b.close();
    rmSync(path);
    await waitFor('the backlog to be dropped', () => a.stats.sendQueued === 0);
    assert.equal(a.stats.sendErrors, queued);
    assert.equal(a.stats.sendDropped, 0);
    // A send while nobody is there is a plain error, not a backlog.
    a.send(to, frameOf(999, 10), 0, 10);
    a.flush();
    assert.equal(a.stats.sendQueued, 0);
    assert.equal(a.stats.sendErrors, queued + 1);
    // The guest comes back on the same path: a new burst is backlogged and delivered.
    const b2 = await unix('restart.sock');
    for (let i = 0; i < 50; i++) a.send(to, frameOf(100 + i, 200), 0, 200);
    a.flush();
    assert.ok(a.stats.sendQueued > 30);
    const rx = new Collector(b2, 5000);
    await rx.until(50);
    await sleep(20);
    assert.deepEqual(rx.seqs(), range(100, 150));
    assert.equal(a.stats.sendErrors, queued + 1);
  });

  it('reconnects a doorbell left connected to a restarted peer\'s old socket', async () => {
    const a = await unix();
    const path = join(dir, 'stale.sock');
    const b = await unix('stale.sock');
    const rx = new Collector(b, 5000);
    const to = a.peerId(b.localAddress());
    // A burst while b reads: a backlog forms and drains, and the doorbell stays connected to b.
    for (let i = 0; i < 100; i++) a.send(to, frameOf(i, 200), 0, 200);
    await rx.until(100);
    await waitFor('the backlog to drain', () => a.stats.sendQueued === 0);
    // b restarts (QEMU unlinks and rebinds its path), not reading yet.
    b.close();
    rmSync(path);
    const b2 = await unix('stale.sock');
    for (let i = 0; i < 60; i++) a.send(to, frameOf(1000 + i, 200), 0, 200);
    a.flush();
    assert.ok(a.stats.sendQueued > 40);
    await sleep(30);
    const rx2 = new Collector(b2, 5000);
    await rx2.until(60);
    await sleep(20);
    assert.deepEqual(rx2.seqs(), range(1000, 1060));
    assert.equal(a.stats.sendErrors, 0);
    assert.equal(a.stats.sendQueued, 0);
  });

  /**
   * A relay like lanparty's unixgram port: R forwards every frame it reads to S straight from its
   * rx slab (no copy, so the addon knows which socket each frame came from). G sends to R.
   */
  /** Starts `r` forwarding every frame it reads to peer `to`, from its rx slab (no copy). */
  function forward(r: BatchSocket, to: number): void {
    r.start((count) => {
      for (let i = 0; i < count; i++) r.send(to, r.rx.bufs[i], 0, r.rx.lengths[i]);
    });
  }

  async function relay(flowControl = true): Promise<{ g: BatchSocket; r: BatchSocket; s: BatchSocket; toR: number }> {
    const g = await unix();
    const r = await unix(undefined, { flowControl });
    const s = await unix();
    forward(r, r.peerId(s.localAddress()));
    return { g, r, s, toR: g.peerId(r.localAddress()) };
  }
  type Flow = { flowPauses: number; flowTimeouts: number };
  const flow = (x: BatchSocket): Flow => x.stats as unknown as Flow;

  it('flow control is off unless asked for: the relay reads on and drops at its bound', async () => {
    const { g, r, toR } = await relay(false);
    const total = LIMITS.datagrams;
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < total; j++) g.send(toR, frameOf(i * total + j, 1000), 0, 1000);
      g.flush();
      await waitFor('the sender to drain', () => g.stats.sendQueued === 0);
    }
    await waitFor('the relay to read everything', () => r.stats.sendQueued + r.stats.sendDropped >= 2 * total - 16);
    assert.equal(flow(r).flowPauses, 0);
    assert.equal(r.stats.sendQueued, LIMITS.datagrams);
    assert.ok(r.stats.sendDropped > 0, `dropped ${r.stats.sendDropped}`);
  });

  it('flow control: a slow receiver stops the relay reading, so its sender waits instead of the relay dropping', async () => {
    const { g, r, s, toR } = await relay();
    // As many as the sender's own backlog holds: its flush sends them all at once.
    const total = LIMITS.datagrams;
    for (let i = 0; i < total; i++) g.send(toR, frameOf(i, 1000), 0, 1000);
    g.flush();
    await sleep(60); // S does not read yet (well within the 200 ms watchdog)
    assert.ok(flow(r).flowPauses >= 1, `pauses ${flow(r).flowPauses}`);
    assert.equal(flow(r).flowTimeouts, 0);
    assert.equal(r.stats.sendDropped, 0);
    // The relay holds a quarter of its bound, plus what it read in the batch that got there ...
    const held = r.stats.sendQueued;
    assert.ok(held >= LIMITS.datagrams / 4 && held < LIMITS.datagrams / 2, `relay backlog ${held}`);
    // ... and the rest waits at the sender, which the relay no longer reads.
    assert.ok(g.stats.sendQueued > total / 2, `sender backlog ${g.stats.sendQueued}`);
    const rx = new Collector(s, 5000);
    await rx.until(total);
    await sleep(20);
    assert.deepEqual(rx.seqs(), range(0, total));
    assert.equal(r.stats.sendErrors, 0);
    assert.equal(g.stats.sendErrors, 0);
    assert.equal(r.stats.sendQueued, 0);
    assert.equal(g.stats.sendQueued, 0);
    assert.equal(flow(r).flowTimeouts, 0);
  });

  it('flow control: a receiver that never reads holds the relay 200 ms, then is stuck: the relay reads on and drops for it', async () => {
    const { g, r, toR } = await relay();
    const total = LIMITS.datagrams;
    for (let i = 0; i < total; i++) g.send(toR, frameOf(i, 1000), 0, 1000);
    g.flush();
    await sleep(60);
    assert.equal(flow(r).flowTimeouts, 0);
    assert.ok(g.stats.sendQueued > total / 2, `sender backlog ${g.stats.sendQueued}`);
    const pausedAt = Date.now();
    await waitFor('the watchdog', () => flow(r).flowTimeouts === 1, 1000);
    assert.ok(Date.now() - pausedAt < 400, 'the watchdog ran out in about 200 ms');
    // Reading again: the sender's backlog drains into the relay, which keeps it for S.
    await waitFor('the sender to drain', () => g.stats.sendQueued === 0);
    assert.equal(g.stats.sendErrors, 0);
    assert.equal(r.stats.sendDropped, 0);
    const inKernel = total - r.stats.sendQueued;
    assert.ok(inKernel >= 1 && inKernel <= 16, `in S's kernel queue ${inKernel}`);
    // Stuck: more frames do not pause the relay again; its backlog fills to its bound and drops.
    const pauses = flow(r).flowPauses;
    for (let i = 0; i < 100; i++) g.send(toR, frameOf(total + i, 1000), 0, 1000);
    g.flush();
    await waitFor('the relay to read them', () => r.stats.sendQueued + r.stats.sendDropped === total + 100 - inKernel);
    assert.equal(r.stats.sendQueued, LIMITS.datagrams);
    assert.equal(flow(r).flowPauses, pauses);
    assert.equal(flow(r).flowTimeouts, 1);
  });

  it('flow control: a stuck receiver that empties its backlog can pause the relay again', async (t) => {
    // S is another process that reads exactly as many datagrams as it is told to.
    const g = await unix();
    const r = await unix(undefined, { flowControl: true });
    const sPath = join(dir, `py${n++}.sock`);
    const py = [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])',
      'print("ready", flush=True)',
      'for line in sys.stdin:',
      '    for _ in range(int(line)): s.recv(70000)',
      '    print("read", flush=True)',
    ].join('\n');
    const child = spawn('python3', ['-c', py, sPath], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => child.kill());
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<string> => {
      const l = await Promise.race([lines.next(), sleep(5000).then(() => ({ value: 'timeout' }))]);
      return String(l.value);
    };
    const first = await Promise.race([next(), once(child, 'error').then(([e]) => `error ${(e as Error).message}`)]);
    if (first !== 'ready') {
      t.skip(`needs python3 as a second process (${first})`);
      return;
    }
    forward(r, r.peerId({ kind: 'unix', path: sPath }));
    const toR = g.peerId(r.localAddress());
    const total = LIMITS.datagrams;
    for (let i = 0; i < total; i++) g.send(toR, frameOf(i, 1000), 0, 1000);
    g.flush();
    await waitFor('the watchdog', () => flow(r).flowTimeouts === 1, 1000);
    await waitFor('the sender to drain', () => g.stats.sendQueued === 0);
    // S reads everything the relay has: its backlog empties, so it is no longer stuck.
    child.stdin!.write(`${total}\n`);
    assert.equal(await next(), 'read');
    await waitFor('the relay backlog to empty', () => r.stats.sendQueued === 0);
    const pauses = flow(r).flowPauses;
    // S stops reading again: a new burst pauses the relay again, before any watchdog runs out.
    for (let i = 0; i < total; i++) g.send(toR, frameOf(total + i, 1000), 0, 1000);
    g.flush();
    await waitFor('a new pause', () => flow(r).flowPauses > pauses, 1000);
    assert.equal(flow(r).flowTimeouts, 1);
    assert.equal(r.stats.sendDropped, 0);
    assert.ok(g.stats.sendQueued > 0, 'the sender waits again');
    child.stdin!.end();
  });

  it('close() with a backlog drops it (counted), releases everything, and is idempotent', async () => {
    const a = await unix();
    const b = await unix();
    const to = a.peerId(b.localAddress());
    for (let i = 0; i < 100; i++) a.send(to, frameOf(i, 500), 0, 500);
    a.flush();
    const queued = a.stats.sendQueued;
    assert.ok(queued > 80);
    a.close();
    a.close();
    assert.equal(a.stats.sendQueued, 0);
    assert.equal(a.stats.sendDropped, queued);
    assert.equal(a.stats.sendErrors, queued);
    assert.equal(a.send(to, frameOf(0, 10), 0, 10), false);
    // Only what the kernel had already queued arrives.
    const rx = new Collector(b, 5000);
    await rx.until(100 - queued);
    await sleep(30);
    assert.deepEqual(rx.seqs(), range(0, 100 - queued));
  });
});
