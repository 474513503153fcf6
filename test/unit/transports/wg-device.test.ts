/**
 * Two WgDevices wired together in memory (the shape of wireguard-go's bindtest + device_test):
 * an injected clock, a wire that records and can drop, replay or move packets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WgDevice, type Peer, type WgIo } from '../../../src/transports/wg/device.js';
import { generatePrivateKey, publicKeyOf } from '../../../src/crypto/index.js';
import { silentLogger } from '../../../src/util/logger.js';

interface Sent { from: string; to: number; data: Buffer }

class Net {
  queue: Sent[] = [];
  log: Sent[] = [];
  drop = false;
  devices = new Map<string, { dev: WgDevice; got: Buffer[] }>();
  /** Endpoint ids: 1 = a, 2 = b, 3 = a from a second address (roaming). */
  io(self: string): WgIo {
    return {
      send: (to, buf, off, len) => {
        const s = { from: self, to, data: Buffer.from(buf.subarray(off, off + len)) };
        this.log.push(s);
        if (!this.drop) this.queue.push(s);
      },
      addressBytes: (e) => Buffer.from([10, 0, 0, e, 0xca, 0x6c]),
      addressHost: (e) => `10.0.0.${e}`,
      addressText: (e) => `10.0.0.${e}:51820`,
    };
  }
  /** Delivers queued packets until quiet. `srcOf(from)` gives the endpoint id the receiver sees. */
  pump(srcOf: (from: string) => number = (f) => (f === 'a' ? 1 : 2)): number {
    let n = 0;
    while (this.queue.length > 0) {
      const s = this.queue.shift()!;
      const target = s.to === 2 ? 'b' : 'a';
      // A copy, as a socket delivers fresh bytes: the device decrypts in place, and log keeps the wire bytes.
      const wire = Buffer.from(s.data);
      this.devices.get(target)!.dev.receive(srcOf(s.from), wire, 0, wire.length);
      n++;
    }
    return n;
  }
}

function pair(opts: { psk?: Buffer; bEndpoint?: number; underLoad?: number } = {}) {
  const net = new Net();
  const ka = generatePrivateKey();
  const kb = generatePrivateKey();
  let now = 1000;
  const mk = (name: string, priv: Buffer) => {
    const got: Buffer[] = [];
    const dev = new WgDevice({
      privateKey: priv, io: net.io(name), log: silentLogger,
      onPacket: (_p, buf, off, len) => got.push(Buffer.from(buf.subarray(off, off + len))),
      random: () => 0.5, underLoadPerSecond: opts.underLoad, wallMs: () => 1.7e12 + now,
    });
    net.devices.set(name, { dev, got });
    return { dev, got };
  };
  const a = mk('a', ka);
  const b = mk('b', kb);
  const pa = a.dev.addPeer({ publicKey: publicKeyOf(kb), presharedKey: opts.psk ?? null, endpoint: 2, persistentKeepaliveMs: 0 });
  const pb = b.dev.addPeer({ publicKey: publicKeyOf(ka), presharedKey: opts.psk ?? null, endpoint: opts.bEndpoint ?? -1, persistentKeepaliveMs: 0 });
  const tick = (ms: number) => {
    now += ms;
    a.dev.tick(now);
    b.dev.tick(now);
  };
  tick(0);
  return { net, a, b, pa, pb, tick, now: () => now };
}

const pkt = (n: number, size = 60) => Buffer.alloc(size, n);

test('handshake on first packet, data both ways, responder waits for confirmation', () => {
  const { net, a, b, pa, pb } = pair();
  a.dev.sendPacket(pa, pkt(1), 0, 60);
  assert.equal(net.queue[0].data.length, 148);
  assert.equal(net.queue[0].data[0], 1);
  net.pump();
  // initiation → response → a sends the staged packet, which confirms b's session.
  assert.deepEqual(net.log.map((s) => s.data.length), [148, 92, 32 + 64]);
  assert.equal(b.got.length, 1);
  assert.deepEqual(b.got[0].subarray(0, 60), pkt(1));
  assert.equal(b.got[0].length, 64, 'padded to 16');
  assert.ok(pa.hasSession() && pb.hasSession());
  b.dev.sendPacket(pb, pkt(2, 33), 0, 33);
  net.pump();
  assert.equal(a.got.length, 1);
  assert.deepEqual(a.got[0].subarray(0, 33), pkt(2, 33));
  assert.equal(pb.endpoint, 1, 'b learned a');
  assert.equal(pa.counters.handshakes, 1);
  assert.equal(pb.counters.handshakes, 1);
});

test('preshared key: must match on both sides', () => {
  const ok = pair({ psk: Buffer.alloc(32, 9) });
  ok.a.dev.sendPacket(ok.pa, pkt(1), 0, 60);
  ok.net.pump();
  assert.equal(ok.b.got.length, 1);
  const bad = pair({ psk: Buffer.alloc(32, 9) });
  (bad.pb.handshake as { presharedKey: Buffer }).presharedKey = Buffer.alloc(32, 8);
  bad.a.dev.sendPacket(bad.pa, pkt(1), 0, 60);
  bad.net.pump();
  assert.equal(bad.b.got.length, 0);
  assert.equal(bad.a.dev.counters.rxHandshakeFailed, 1, 'the response does not authenticate');
  assert.ok(!bad.pa.hasSession());
});

test('replayed data packets are rejected and counted; tampered ones fail authentication', () => {
  const { net, a, b, pa, pb } = pair();
  a.dev.sendPacket(pa, pkt(1), 0, 60);
  net.pump();
  const data = net.log[2].data;
  b.dev.receive(1, Buffer.from(data), 0, data.length); // what a capture would replay: the wire bytes
  b.dev.receive(1, Buffer.from(data), 0, data.length);
  assert.equal(b.got.length, 1);
  assert.equal(pb.counters.rxReplayed, 2);
  const t = Buffer.from(data);
  t[40] ^= 1;
  b.dev.receive(1, t, 0, t.length);
  assert.equal(b.dev.counters.rxDecryptFailed, 1);
  // A replayed initiation (same timestamp) changes nothing.
  const init = net.log[0].data;
  const before = pb.current;
  b.dev.receive(1, init, 0, init.length);
  assert.equal(pb.counters.rxInitiationReplayed, 1);
  assert.equal(pb.current, before);
  assert.equal(net.queue.length, 0, 'no reply to a replay');
});

test('a stranger (unknown key) and bad mac1 get nothing back and change nothing', () => {
  const { net, b, pb } = pair();
  const stranger = pair();
  stranger.a.dev.sendPacket(stranger.pa, pkt(1), 0, 60);
  const init = stranger.net.queue[0].data;
  b.dev.receive(1, init, 0, init.length);
  assert.equal(b.dev.counters.rxBadMac1, 1, 'mac1 is keyed with the wrong public key');
  const fake = Buffer.from(init);
  assert.equal(net.queue.length, 0);
  fake[0] = 9;
  b.dev.receive(1, fake, 0, fake.length);
  assert.equal(b.dev.counters.rxBadType, 1);
  b.dev.receive(1, fake, 0, 10);
  assert.equal(pb.endpoint, -1);
  assert.equal(net.queue.length, 0);
});

test('timers: retransmit after REKEY_TIMEOUT + jitter, give up after REKEY_ATTEMPT_TIME', () => {
  const { net, a, pa, tick } = pair();
  net.drop = true;
  a.dev.sendPacket(pa, pkt(1), 0, 60);
  assert.equal(net.log.length, 1);
  tick(5000);
  assert.equal(net.log.length, 1, 'jitter: not yet at exactly 5 s');
  tick(200);
  assert.equal(net.log.length, 2);
  for (let i = 0; i < 40; i++) tick(5200);
  // 1 first + 18 retries (MAX_TIMER_HANDSHAKES) + the one past the limit check.
  assert.equal(net.log.length, 20);
  assert.equal(pa.staged.length, 0, 'staged packets dropped on giving up');
  assert.ok(net.log.every((s) => s.data.length === 148));
});

test('timers: keepalive after 10 s of one-way data; new handshake after 15 s without reply', () => {
  const { net, a, b, pa, tick } = pair();
  a.dev.sendPacket(pa, pkt(1), 0, 60);
  net.pump();
  const n0 = net.log.length;
  tick(10_000);
  net.pump();
  assert.equal(net.log.length, n0 + 1);
  assert.equal(net.log[n0].from, 'b');
  assert.equal(net.log[n0].data.length, 32, 'keepalive');
  // Now b goes silent: a sends data, no reply arrives in 15 s → new initiation.
  net.drop = true;
  a.dev.sendPacket(pa, pkt(2), 0, 60);
  tick(15_000);
  tick(400);
  const last = net.log[net.log.length - 1];
  assert.equal(last.data.length, 148);
  assert.equal(b.got.length, 1);
});

test('rekey after REKEY_AFTER_TIME on send; old keypair still decrypts in flight', () => {
  const { net, a, b, pa, tick } = pair();
  a.dev.sendPacket(pa, pkt(1), 0, 60);
  net.pump();
  const first = pa.current;
  tick(121_000);
  a.dev.sendPacket(pa, pkt(2), 0, 60);
  net.pump();
  assert.notEqual(pa.current, first);
  assert.equal(pa.previous, first);
  assert.equal(b.got.length, 2);
  assert.equal(pa.counters.handshakes, 2);
});

test('roaming: an authenticated packet from a new address moves the endpoint; a forged one does not', () => {
  const { net, a, b, pa, pb } = pair();
  a.dev.sendPacket(pa, pkt(1), 0, 60);
  net.pump();
  assert.equal(pb.endpoint, 1);
  a.dev.sendPacket(pa, pkt(2), 0, 60);
  net.pump((f) => (f === 'a' ? 3 : 2));
  assert.equal(pb.endpoint, 3);
  const forged = Buffer.from(net.log[net.log.length - 1].data);
  forged[20] ^= 0xff;
  b.dev.receive(1, forged, 0, forged.length);
  assert.equal(pb.endpoint, 3);
  assert.equal(b.got.length, 2);
});

test('under load: handshakes without mac2 get a 64-byte cookie reply; with the cookie they go through', () => {
  const { net, a, b, pa, pb, tick } = pair({ underLoad: 2 });
  net.drop = true;
  a.dev.sendPacket(pa, pkt(1), 0, 60);
  const init = net.log[0].data;
  net.drop = false;
  // Three initiations in one second push b over the limit; the third gets a cookie reply.
  for (let i = 0; i < 3; i++) b.dev.receive(1, init, 0, init.length);
  assert.ok(b.dev.underLoad());
  const reply = net.queue.pop()!;
  assert.equal(reply.data.length, 64);
  assert.equal(reply.data[0], 3);
  assert.ok(reply.data.length < init.length, 'never a bigger reply than the request');
  net.queue = [];
  a.dev.receive(2, reply.data, 0, reply.data.length);
  assert.ok(pa.cookies.hasCookie(a.dev.now()));
  tick(5300); // retransmit, now with mac2
  net.pump();
  assert.ok(pb.hasSession());
  assert.equal(b.got.length, 1);
});
