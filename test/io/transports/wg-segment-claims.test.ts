/**
 * Claims (docs/tree.md, "Stock hosts") through shared segments, with fake groups in place of multicast
 * groups: claims heard on one group are kept and relayed once, as tree frames, on the other groups
 * (never back where they came from); a repeat is not relayed, so a flood ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WgTransport } from '../../../src/transports/wg/index.js';
import { decodeEdgeClaims, encodeEdgeClaims } from '../../../src/transports/wg/stp.js';
import { SegmentRegistry, SharedSegment, isTreeFrame, treeFrame } from '../../../src/transports/segment.js';
import type { FrameSink, Port } from '../../../src/switch/port.js';
import { generatePrivateKey } from '../../../src/crypto/index.js';
import { silentLogger } from '../../../src/util/logger.js';

test('claims heard on one group are relayed once onto the other group, padded as tree frames', async () => {
  const sink: FrameSink = { addPort: (_p: Port) => {}, removePort: (_p: Port) => {}, setForwarding: () => {}, input: () => {} };
  const sent: Buffer[][] = [[], []];
  // The switch's registry of shared segments, as the daemon makes one per switch.
  const segments = new SegmentRegistry();
  const segs = [0, 1].map((i) => new SharedSegment(`fake group ${i}`, { sendFrame: (f) => sent[i].push(f), setForwarding: () => {} }));
  for (const s of segs) segments.add(s);
  const wg = new WgTransport('wg://127.0.0.1:0', {
    privateKey: generatePrivateKey(), listen: { host: '127.0.0.1', port: 0 }, address: '10.99.0.1', vni: 42, mtuBytes: 1420, peers: [],
  }, { sink, log: silentLogger, maxFrameBytes: 1518, segments });
  await wg.start();
  try {
    const claimsOn = (i: number) => sent[i].map((f) => decodeEdgeClaims(f, 14, f.length - 14, true)).filter((c) => c !== null);
    assert.deepEqual(claimsOn(0), [], 'no stock peers: we send no claims');
    const origin = Buffer.from([0, 0, 0, 0, 0, 0, 0, 7]);
    const c = { origin, seq: 5, root: origin, cost: 0, edges: [Buffer.alloc(8, 0xee)] };
    const frame = treeFrame(Buffer.from('020000000007', 'hex'), encodeEdgeClaims(c));
    assert.ok(isTreeFrame(frame, 0, frame.length) && frame.length === 60, 'one edge: 40 bytes, padded to 60');
    segs[0].deliver(frame, 0, frame.length);
    segs[0].deliver(frame, 0, frame.length); // a repeat (heard again through another path)
    assert.deepEqual(claimsOn(1), [c], 'relayed once onto the other group');
    assert.deepEqual(claimsOn(0), [], 'not back onto the group it came from');
    const st = wg.wgStatus().claims;
    assert.deepEqual(st, { origins: 1, rx: 2, relayed: 1, full: 0, truncated: 0 });
    // The next seq is new again.
    segs[1].deliver(treeFrame(Buffer.from('020000000007', 'hex'), encodeEdgeClaims({ ...c, seq: 6 })), 0, 60);
    assert.equal(claimsOn(0).length, 1);
    assert.equal(claimsOn(1).length, 1);
  } finally {
    await wg.close();
  }
  for (const s of segs) segments.remove(s);
});
