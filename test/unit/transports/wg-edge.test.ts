/**
 * Edge detection must count from a usable session, not from the first authenticated packet: two
 * lanparty peers that start at once cross their initiations, neither handshake completes until a
 * retry 5 s later, and a peer "heard" but unable to carry hellos would be taken for a stock host
 * (edge: forwarding at once), which loops a triangle of sites (as in test/netns/wg-sites).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WgDevice, type WgIo } from '../../../src/transports/wg/device.js';
import { noteSession } from '../../../src/transports/wg/index.js';
import { EDGE_DETECT_MS, LinkState, SpanningTree } from '../../../src/transports/wg/stp.js';
import { REKEY_TIMEOUT_JITTER_MS, REKEY_TIMEOUT_MS } from '../../../src/transports/wg/messages.js';
import { generatePrivateKey, publicKeyOf } from '../../../src/crypto/index.js';
import { silentLogger } from '../../../src/util/logger.js';

test('crossed initiations: peers hear each other but have no session; the link stays pending, not edge', () => {
  const queue: Array<{ to: 'a' | 'b'; data: Buffer }> = [];
  const io = (to: 'a' | 'b'): WgIo => ({
    send: (_e, buf, off, len) => { queue.push({ to, data: Buffer.from(buf.subarray(off, off + len)) }); },
    addressBytes: () => Buffer.from([10, 0, 0, 1, 0xca, 0x6c]),
    addressHost: () => '10.0.0.1',
    addressText: () => '10.0.0.1:51820',
  });
  let now = 1000;
  const ka = generatePrivateKey();
  const kb = generatePrivateKey();
  const a = new WgDevice({ privateKey: ka, io: io('b'), log: silentLogger, onPacket: () => {}, random: () => 0.1, wallMs: () => 1.7e12 + now });
  const b = new WgDevice({ privateKey: kb, io: io('a'), log: silentLogger, onPacket: () => {}, random: () => 0.9, wallMs: () => 1.7e12 + now });
  const pa = a.addPeer({ publicKey: publicKeyOf(kb), presharedKey: null, endpoint: 2, persistentKeepaliveMs: 0 });
  const pb = b.addPeer({ publicKey: publicKeyOf(ka), presharedKey: null, endpoint: 1, persistentKeepaliveMs: 0 });
  const pump = () => {
    while (queue.length > 0) {
      const m = queue.shift()!;
      (m.to === 'a' ? a : b).receive(m.to === 'a' ? 2 : 1, m.data, 0, m.data.length);
    }
  };
  a.tick(now);
  b.tick(now);
  // Both send a hello at start: two initiations in flight at once.
  a.sendPacket(pa, Buffer.alloc(60), 0, 60);
  b.sendPacket(pb, Buffer.alloc(60), 0, 60);
  pump();
  assert.ok(pa.lastRxMs > 0 && pb.lastRxMs > 0, 'each authenticated the other');
  assert.equal(pa.current, null, 'but neither has a session');
  assert.equal(pb.current, null);

  const tree = new SpanningTree(Buffer.alloc(8, 1));
  const link = new LinkState('crossed');
  noteSession(link, pa, now);
  now += EDGE_DETECT_MS + 500;
  a.tick(now);
  noteSession(link, pa, now);
  tree.recompute([link], now);
  assert.equal(link.role, 'pending', 'no hello could cross yet: not a stock host');
  assert.equal(link.forwarding, false);

  // The retry (a's timer fires first) completes a session; from then on the edge clock runs.
  now = 1000 + REKEY_TIMEOUT_MS + Math.ceil(0.5 * REKEY_TIMEOUT_JITTER_MS);
  a.tick(now);
  b.tick(now);
  pump();
  assert.ok(pa.current !== null, 'the retry made a session');
  noteSession(link, pa, now);
  assert.equal(link.sessionSinceMs, now);
  tree.recompute([link], now + EDGE_DETECT_MS);
  assert.equal(link.role, 'edge', 'a peer with a session that sends no hellos is still an edge');
});
