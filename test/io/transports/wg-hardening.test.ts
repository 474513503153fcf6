/**
 * WgDevice and the wg transport against a hostile network: simultaneous handshakes leave only live
 * receiver indices; discarded keypairs and finished handshakes have their keys zeroed; cookie
 * replies under load are rate limited per source and in all; and a wg port keeps a socket peer id
 * only for sources that authenticated (70,000 junk sources leave none behind). Devices talk in
 * memory (an injected clock), the transport over a real socket on 127.0.0.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WgDevice, type WgIo } from '../../../src/transports/wg/device.js';
import { WgTransport } from '../../../src/transports/wg/index.js';
import { REKEY_TIMEOUT_MS } from '../../../src/transports/wg/messages.js';
import { generatePrivateKey, publicKeyOf } from '../../../src/crypto/index.js';
import type { FrameSink, Port } from '../../../src/switch/port.js';
import { silentLogger } from '../../../src/util/logger.js';
import { cycleSources } from '../../helpers/cycle-sources.js';

interface Sent { from: string; to: number; data: Buffer }

/** Two devices; endpoint 1 is a, 2 is b, any other number a stranger at 10.0.x.y. */
function pair(underLoadPerSecond?: number) {
  const queue: Sent[] = [];
  const devs = new Map<string, WgDevice>();
  let now = 1000;
  const io = (self: string): WgIo => ({
    send: (to, buf, off, len) => { queue.push({ from: self, to, data: Buffer.from(buf.subarray(off, off + len)) }); },
    addressBytes: (e) => Buffer.from([10, 0, e >> 8, e & 0xff, 0xca, 0x6c]),
    addressHost: (e) => `10.0.${e >> 8}.${e & 0xff}`,
    addressText: (e) => `10.0.${e >> 8}.${e & 0xff}:51820`,
  });
  const ka = generatePrivateKey();
  const kb = generatePrivateKey();
  const mk = (name: string, priv: Buffer) => {
    const dev = new WgDevice({
      privateKey: priv, io: io(name), log: silentLogger, onPacket: () => {},
      random: () => 0.5, underLoadPerSecond, wallMs: () => 1.7e12 + now,
    });
    devs.set(name, dev);
    return dev;
  };
  const a = mk('a', ka);
  const b = mk('b', kb);
  const pa = a.addPeer({ publicKey: publicKeyOf(kb), presharedKey: null, endpoint: 2, persistentKeepaliveMs: 0 });
  const pb = b.addPeer({ publicKey: publicKeyOf(ka), presharedKey: null, endpoint: 1, persistentKeepaliveMs: 0 });
  const pump = () => {
    while (queue.length > 0) {
      const s = queue.shift()!;
      const wire = Buffer.from(s.data);
      devs.get(s.to === 2 ? 'b' : 'a')!.receive(s.from === 'a' ? 1 : 2, wire, 0, wire.length);
    }
  };
  const tick = (ms: number) => {
    now += ms;
    a.tick(now);
    b.tick(now);
  };
  tick(0);
  return { a, b, pa, pb, pump, tick, queue };
}

test('simultaneous handshakes leave only live receiver indices', () => {
  const { a, b, pa, pb, pump, tick } = pair();
  for (let i = 0; i < 30; i++) {
    a.sendHandshakeInitiation(pa, false);
    b.sendHandshakeInitiation(pb, false);
    pump();
    tick(REKEY_TIMEOUT_MS + 1);
    // Per peer at most: current, previous and next keypairs, and one handshake in flight.
    assert.ok(a.indexCount <= 4 && b.indexCount <= 4, `round ${i}: ${a.indexCount} and ${b.indexCount} indices`);
  }
  // Neither side's response matched a handshake still in flight; one side alone then completes.
  a.sendHandshakeInitiation(pa, false);
  pump();
  assert.ok(pa.hasSession() && pb.hasSession());
  assert.ok(a.indexCount <= 4 && b.indexCount <= 4);
});

test('keys are zeroed when a keypair is discarded and when a handshake ends', () => {
  const { a, pa, pump, tick } = pair();
  a.sendHandshakeInitiation(pa, false);
  const hs = pa.handshake;
  const chainKey = hs.chainKey;
  const transcript = hs.hash;
  assert.ok(chainKey.some((x) => x !== 0));
  pump();
  assert.ok(pa.current !== null);
  assert.ok(chainKey.every((x) => x === 0), 'the finished handshake\'s chaining key is zeroed');
  assert.ok(transcript.every((x) => x === 0));
  const first = pa.current!;
  const keys = [first.sendKey, first.recvKey];
  assert.ok(keys.every((k) => k.some((x) => x !== 0)));
  // Two more sessions push the first out of current, then out of previous: discarded.
  for (let i = 0; i < 2; i++) {
    tick(REKEY_TIMEOUT_MS + 1);
    a.sendHandshakeInitiation(pa, false);
    pump();
  }
  assert.ok(pa.current !== first && pa.previous !== first && pa.next !== first);
  assert.ok(keys.every((k) => k.every((x) => x === 0)), 'the discarded keypair\'s keys are zeroed');
  const live = pa.current!;
  a.zeroKeys(pa);
  assert.ok(live.sendKey.every((x) => x === 0) && live.recvKey.every((x) => x === 0));
  assert.equal(a.indexCount, 0);
});

test('cookie replies under load are rate limited per source and in all, and counted', () => {
  const { a, b, pa, queue, tick } = pair(0);  // every handshake message counts as load
  a.sendHandshakeInitiation(pa, false);
  const init = queue.shift()!.data;
  tick(1);
  // One source replaying an initiation with a good mac1 and no cookie: a burst of 5 replies.
  for (let i = 0; i < 100; i++) b.receive(7, Buffer.from(init), 0, init.length);
  assert.ok(b.underLoad());
  assert.equal(b.counters.txCookieReplies, 5);
  assert.equal(b.counters.txCookieRepliesLimited, 95);
  assert.equal(queue.length, 5);
  // 1000 sources at once: each may have its burst, but all together get at most the overall burst.
  for (let e = 1000; e < 2000; e++) b.receive(e, Buffer.from(init), 0, init.length);
  const replies = b.counters.txCookieReplies - 5;
  assert.ok(replies <= 200, `${replies} replies`);
  assert.equal(b.counters.txCookieReplies + b.counters.txCookieRepliesLimited, 1100);
});

test('a wg port keeps no peer id for sources that never authenticate (70,000 junk sources)', async () => {
  const sink: FrameSink = { addPort: (_p: Port) => {}, removePort: (_p: Port) => {}, setForwarding: () => {}, input: () => {} };
  const wg = new WgTransport('wg://127.0.0.1:0', {
    privateKey: generatePrivateKey(), listen: { host: '127.0.0.1', port: 0 }, address: '10.99.0.1', vni: 42, mtuBytes: 1420,
    peers: [{ publicKey: publicKeyOf(generatePrivateKey()), presharedKey: null, address: '10.99.0.2', endpoint: { host: '127.0.0.1', port: 9 }, persistentKeepaliveS: 0 }],
  } as ConstructorParameters<typeof WgTransport>[1], { sink, log: silentLogger, maxFrameBytes: 1518 });
  await wg.start();
  try {
    const port = (wg as unknown as { sock: { localAddress(): { port: number } } }).sock.localAddress().port;
    const sent = await cycleSources(port, 70000, 120000);
    const until = Date.now() + 20_000;
    while (wg.wgStatus().counters.rxPackets < sent && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(wg.wgStatus().counters.rxPackets, sent);
    assert.equal(wg.wgStatus().counters.rxBadType, sent);
    await new Promise((r) => setTimeout(r, 20));
    const s = wg.status().socket!;
    assert.equal(s.unaddressable, 0);
    assert.equal(s.peers, 1, 'only the configured endpoint holds an id');
  } finally {
    await wg.close();
  }
});
