/**
 * The wiring between the tree's owner (WgTransport) and shared segments (transports/segment.ts),
 * with fake segments in place of multicast groups: the transport finds them through its switch,
 * sends hellos onto them as tree frames, takes tree frames heard there as hellos and blocks the
 * redundant one. A real WgTransport on 127.0.0.1 with no peers (it sends nothing over UDP).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WgTransport } from '../../../src/transports/wg/index.js';
import { bridgeIdOf, decodeHello, encodeHello } from '../../../src/transports/wg/stp.js';
import { SegmentRegistry, SharedSegment, isTreeFrame, treeFrame } from '../../../src/transports/segment.js';
import type { FrameSink, Port } from '../../../src/switch/port.js';
import { generatePrivateKey, publicKeyOf } from '../../../src/crypto/index.js';
import { silentLogger } from '../../../src/util/logger.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('two fake groups hearing the same root: one becomes the root port, the other is blocked (blocking in the switch)', async () => {
  const sink: FrameSink = { addPort: (_p: Port) => {}, removePort: (_p: Port) => {}, setForwarding: () => {}, input: () => {} };
  const sent: Buffer[][] = [[], []];
  // The switch's registry of shared segments, as the daemon makes one per switch.
  const segments = new SegmentRegistry();
  const changes: boolean[][] = [[], []];
  const segs = [0, 1].map((i) => new SharedSegment(`fake group ${i}`, {
    sendFrame: (f) => sent[i].push(f),
    setForwarding: (on) => changes[i].push(on),
  }));
  // The groups register first, as mcast ports usually come first in a config.
  for (const s of segs) segments.add(s);
  const key = generatePrivateKey();
  const wg = new WgTransport('wg://127.0.0.1:0', {
    privateKey: key, listen: { host: '127.0.0.1', port: 0 }, address: '10.99.0.1', vni: 42, mtuBytes: 1420, peers: [],
  }, { sink, log: silentLogger, maxFrameBytes: 1518, segments });
  await wg.start();
  try {
    assert.ok(segs.every((s) => s.tree === wg), 'the tree attached to both groups');
    await until('a hello on each group', () => sent[0].length > 0 && sent[1].length > 0);
    const f = sent[1][0];
    assert.ok(isTreeFrame(f, 0, f.length));
    const h = decodeHello(f, 14, 32)!;
    assert.deepEqual(h.bridge, bridgeIdOf(publicKeyOf(key)));
    assert.equal(h.port, 2, 'segment ports are numbered from 1 in registration order');
    assert.equal(f[6] & 3, 2, 'source MAC: unicast, locally administered');
    assert.ok(segs.every((s) => s.forwarding && s.role === 'designated'), 'alone: designated and forwarding at once');

    // Bridge 00…01 (a better root) is heard on both groups, as one bridge with two ports would be.
    const z = Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]);
    for (let seq = 1; seq <= 2; seq++) {
      for (const s of segs) s.deliver(treeFrame(Buffer.from('020000000001', 'hex'), encodeHello({ root: z, cost: 0, bridge: z, rootSeq: seq, port: 1 })), 0, 60);
      await sleep(150);
    }
    await until('the second group blocked', () => segs[1].role === 'blocked');
    assert.equal(segs[0].role, 'root');
    assert.deepEqual(changes, [[], [false]], 'only the blocked group left the switch');
    const st = wg.wgStatus();
    assert.equal(st.rootId, z.toString('hex'));
    assert.deepEqual(st.segments.map((s) => [s.role, s.forwarding, s.bridges]), [['root', true, ['0000000000000001:1']], ['blocked', false, ['0000000000000001:1']]]);
    assert.equal(segs[1].treeRx, 2);
    // Something that is not a hello (a forged tree frame with garbage) is ignored.
    segs[0].deliver(treeFrame(Buffer.alloc(6), Buffer.alloc(32, 0xee)), 0, 60);
    assert.equal(wg.wgStatus().segments[0].helloRx, 2);
  } finally {
    await wg.close();
  }
  assert.ok(segs.every((s) => s.tree === null), 'detached on close');
  for (const s of segs) segments.remove(s);
});
