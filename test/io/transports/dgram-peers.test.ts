/**
 * A udp port's per-source state under a flood of source addresses: 70,000 distinct sources
 * (source ports on 127.0.2.2 and 127.0.3.2, sent by a child process, test/helpers/source-cycler)
 * at one udp port, then a new guest must still get a port and frames both ways. Runs on the
 * native addon and, in a child `node --test` with LANPARTY_NO_NATIVE=1, on the JS fallback.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DgramTransport, PEER_EVICT_IDLE_MS } from '../../../src/transports/dgram/index.js';
import { nativeAvailable } from '../../../src/io/index.js';
import type { FrameSink, Port } from '../../../src/switch/port.js';
import { silentLogger } from '../../../src/util/logger.js';
import { cycleSources } from '../../helpers/cycle-sources.js';

const SOURCES = 70_000;
const MAX_PEERS = 1024;  // what the daemon gives a udp port
const CHILD = process.env.LP_DGRAM_PEERS_CHILD === '1';
const mode = nativeAvailable() ? 'native' : 'js';

class Sink implements FrameSink {
  readonly ports = new Set<Port>();
  added = 0;
  removed = 0;
  frames = 0;
  last: { port: Port; data: Buffer } | null = null;
  addPort(p: Port): void { this.ports.add(p); this.added++; }
  removePort(p: Port): void { this.ports.delete(p); this.removed++; }
  setForwarding(_p: Port, _forwarding: boolean): void {}
  input(port: Port, buf: Buffer, off: number, len: number): void {
    this.frames++;
    this.last = { port, data: Buffer.from(buf.subarray(off, off + len)) };
  }
}

async function waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function openPort(peerIdleMs: number): Promise<{ t: DgramTransport; sink: Sink; port: number }> {
  const sink = new Sink();
  const t = new DgramTransport('udp://127.0.0.1:0', { bind: { kind: 'udp4', host: '127.0.0.1', port: 0 }, peers: [], accept: null, peerIdleMs, maxPeers: MAX_PEERS },
    { sink, log: silentLogger, maxFrameBytes: 65535 });
  await t.start();
  t.tick(0);
  const addr = t.status().address;
  return { t, sink, port: Number(addr.slice(addr.lastIndexOf(':') + 1)) };
}

/** A guest on 127.0.0.1: sends one frame and must get the port's reply back. */
async function guestGetsThrough(t: DgramTransport, sink: Sink, lanPort: number): Promise<void> {
  const g = dgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => g.bind(0, '127.0.0.1', () => r()));
    const got = new Promise<Buffer>((r) => g.once('message', (m) => r(m)));
    const frame = Buffer.alloc(60, 0x42);
    const framesBefore = sink.frames;
    g.send(frame, lanPort, '127.0.0.1');
    await waitFor('the new guest\'s frame', () => sink.frames > framesBefore, 3000);
    assert.ok(sink.last !== null && sink.last.data.equals(frame));
    assert.equal(sink.last.port.endpoint!(), `127.0.0.1:${g.address().port}`, 'the frame came in on a port of its own');
    sink.last.port.send(Buffer.alloc(60, 0x43), 0, 60);
    assert.deepEqual(await got, Buffer.alloc(60, 0x43));
  } finally {
    g.close();
  }
}

describe(`udp port under ${SOURCES} source addresses (${mode})`, () => {
  const open: DgramTransport[] = [];
  after(async () => { for (const t of open) await t.close(); });

  it('refused sources keep no peer id; aged peers release theirs; a new guest then gets through', async () => {
    const { t, sink, port } = await openPort(1000);
    open.push(t);
    const sent = await cycleSources(port, SOURCES);
    assert.ok(sent > SOURCES - 100, `${sent} sources sent`);
    await waitFor('every datagram handled', () => sink.frames + t.refused() >= sent);
    const s = t.status();
    assert.equal(s.portCount, MAX_PEERS);
    assert.equal(s.peers!.refused, sent - MAX_PEERS);
    assert.equal(s.socket!.unaddressable, 0, 'every source had an id while it was handled');
    await waitFor('refused ids released', () => t.status().socket!.peers === MAX_PEERS, 2000);
    t.tick(1000);  // every flood peer has been silent peerIdleMs
    assert.equal(t.status().portCount, 0);
    assert.equal(t.status().peers!.aged, MAX_PEERS);
    await waitFor('aged ids released', () => t.status().socket!.peers === 0, 2000);
    await guestGetsThrough(t, sink, port);
  });

  it('at maxPeers, a new guest takes the place of the least recently heard peer once it is silent long enough', async () => {
    const { t, sink, port } = await openPort(3_600_000);
    open.push(t);
    const sent = await cycleSources(port, MAX_PEERS + 50, 60_000);
    await waitFor('every datagram handled', () => sink.frames + t.refused() >= sent);
    assert.equal(t.status().portCount, MAX_PEERS);
    // Every peer was heard just now: none may be pushed out, so a new source is refused.
    const refused = t.refused();
    const g = dgram.createSocket('udp4');
    await new Promise<void>((r) => g.bind(0, '127.0.0.1', () => r()));
    g.send(Buffer.alloc(60, 1), port, '127.0.0.1');
    await waitFor('the early guest refused', () => t.refused() === refused + 1, 3000);
    g.close();
    t.tick(PEER_EVICT_IDLE_MS);
    await guestGetsThrough(t, sink, port);
    const s = t.status();
    assert.equal(s.portCount, MAX_PEERS);
    assert.equal(s.peers!.evicted, 1);
    await waitFor('the evicted peer\'s id released', () => t.status().socket!.peers === MAX_PEERS, 2000);
  });

  if (!CHILD && mode === 'native') {
    it('the same on the JS fallback (a child with LANPARTY_NO_NATIVE=1)', async () => {
      const self = fileURLToPath(import.meta.url);
      const env: NodeJS.ProcessEnv = { ...process.env, LANPARTY_NO_NATIVE: '1', LP_DGRAM_PEERS_CHILD: '1' };
      delete env.NODE_TEST_CONTEXT;  // else node:test in the child thinks it runs under this runner
      const c = spawn(process.execPath, ['--test', self], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d) => { out += d; });
      c.stderr.on('data', (d) => { out += d; });
      const code = await new Promise<number | null>((r) => c.on('exit', r));
      assert.equal(code, 0, out);
      assert.match(out, /udp port under 70000 source addresses \(js\)/);
    });
  }
});
