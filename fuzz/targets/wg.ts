/**
 * Fuzz targets for the WireGuard peer links (src/transports/wg).
 *
 *   wg-messages: the readers of the four message types. messages.ts itself only reads the type
 *     word; the size of each type is checked by WgDevice.receive (exact 148/92/64, >= 32 for
 *     data), then the fields are read by noise.ts (consumeInitiation, consumeResponse) and cookie.ts
 *     (checkMac1/checkMac2, consumeReply). None of these has a typed error: they answer null/false,
 *     so nothing at all may be thrown. Input: the bytes of one datagram, handed to the reader of its
 *     type when the size is exact (as the device does). A reader that accepts must be one the
 *     deterministic seed handshake (fuzz/seeds.ts, fixed keys and ephemerals) can explain: a
 *     consumed initiation is A's, with A's ephemeral, and its response completes A's handshake with
 *     matching session keys.
 *
 *   wg-device: a WgDevice (B, knowing peer A) fed any datagram from any of four sources, next to a
 *     live honest peer A (plain modules) whose datagrams the fuzzer can deliver unchanged or
 *     altered. Properties: receive never throws; every datagram B sends while handling one is no
 *     larger than it (the one exception, a rekey initiation after genuine data, is WireGuard's own
 *     rule and needs an authenticated message); a datagram of a known type with a wrong size, or of
 *     an unknown type, moves only its drop counter; and peer state (endpoint, keypairs, handshake
 *     count, handshake state) changes only for a datagram A really sent (handshake messages compared
 *     without mac2, which nothing authenticates unless under load).
 */
import assert from 'node:assert/strict';
import type { FuzzTarget } from '../engine.js';
import {
  WG_A, WG_B, WG_INIT_INDEX, WG_RESP_INDEX, WG_TIMESTAMP, wgAddressBytes, wgEphemeral, wgHandshakeMessages, wgKey, wgTraffic,
} from '../seeds.js';
import { WgDevice as PlainDevice, type Peer as PlainPeer } from '../../src/transports/wg/device.js';
import { silentLogger } from '../../src/util/logger.js';
import type * as Messages from '../../src/transports/wg/messages.js';
import type * as Noise from '../../src/transports/wg/noise.js';
import type * as Cookie from '../../src/transports/wg/cookie.js';
import type * as Device from '../../src/transports/wg/device.js';
import type * as Logger from '../../src/util/logger.js';
import type * as Inner from '../../src/transports/wg/inner.js';
import { Encapsulator as InnerEnc } from '../../src/transports/wg/inner.js';

const WG_DICT = [
  Buffer.from('01000000', 'hex'), Buffer.from('02000000', 'hex'), Buffer.from('03000000', 'hex'), Buffer.from('04000000', 'hex'),
  Buffer.from('44332211', 'hex'), Buffer.from('88776655', 'hex'), Buffer.alloc(16), Buffer.alloc(32),
];

export const wgMessagesTarget: FuzzTarget = {
  name: 'wg-messages',
  description: 'WireGuard message readers (type word, exact sizes, initiation/response/cookie reply, mac1/mac2): never throw; accept only what the fixed-key seed handshake explains',
  allowedCodes: [],
  maxInputBytes: 256,
  dictionary: WG_DICT,
  seeds: () => {
    const m = wgHandshakeMessages();
    const traffic = wgTraffic().map((s) => s.data).filter((d) => d.length <= 256);
    return [m.initiation, m.response, m.cookieReply, m.strangerInitiation, ...traffic];
  },
  async setup(load) {
    const msg = await load<typeof Messages>('src/transports/wg/messages.js');
    const noise = await load<typeof Noise>('src/transports/wg/noise.js');
    const cookie = await load<typeof Cookie>('src/transports/wg/cookie.js');
    const a = wgKey(WG_A), b = wgKey(WG_B);
    const ephA = wgEphemeral(WG_A), ephB = wgEphemeral(WG_B);
    // A's side: a handshake in InitiationCreated, restored before every response it reads.
    const hsA = new noise.Handshake(a, b.publicKey, noise.ZERO_PSK);
    const ourInit = noise.createInitiation(hsA, WG_INIT_INDEX, WG_TIMESTAMP, ephA)!;
    const savedA = { ...hsA };
    const genA = new cookie.CookieGenerator(b.publicKey);
    genA.addMacs(ourInit, 0);
    // B's side.
    const hsB = new noise.Handshake(b, a.publicKey, noise.ZERO_PSK);
    const checkerB = new cookie.CookieChecker(b.publicKey);
    const checkerA = new cookie.CookieChecker(a.publicKey);
    const findPeer = (pub: Buffer) => (pub.equals(a.publicKey) ? hsB : undefined);
    // Copies of the secrets: a handshake zeroes the hash and chaining key it replaces or clears.
    const restoreA = () => Object.assign(hsA, savedA, { hash: Buffer.from(savedA.hash), chainKey: Buffer.from(savedA.chainKey) });
    const accepted = { initiation: 0, response: 0, cookie: 0, mac1: 0, transportHeaders: 0, wrongSize: 0 };
    return {
      run(data) {
        const len = data.length;
        const type = msg.messageType(data, 0, len);
        assert.equal(type, len >= 4 ? data.readUInt32LE(0) : 0, 'the type is the whole first word');
        const exact = type === msg.MSG_INITIATION ? msg.INITIATION_BYTES : type === msg.MSG_RESPONSE ? msg.RESPONSE_BYTES : type === msg.MSG_COOKIE_REPLY ? msg.COOKIE_REPLY_BYTES : -1;
        if (type === msg.MSG_TRANSPORT) {
          if (len < msg.TRANSPORT_MIN_BYTES) { accepted.wrongSize++; return; }
          const receiver = data.readUInt32LE(msg.OFF_DATA_RECEIVER);
          const counter = data.readUInt32LE(msg.OFF_DATA_COUNTER) + data.readUInt32LE(msg.OFF_DATA_COUNTER + 4) * 0x100000000;
          assert.ok(receiver >= 0 && receiver <= 0xffffffff && counter >= 0 && counter <= 2 ** 64);
          accepted.transportHeaders++;
          return;
        }
        if (exact < 0) return;
        if (len !== exact) { accepted.wrongSize++; return; }
        if (type === msg.MSG_COOKIE_REPLY) {
          // A cookie reply only opens with the mac1 of the message it answers (ours).
          const gen = new cookie.CookieGenerator(b.publicKey);
          gen.addMacs(Buffer.from(ourInit), 0);
          const ok = gen.consumeReply(data, 0, 0);
          assert.equal(gen.hasCookie(0), ok);
          if (ok) accepted.cookie++;
          assert.equal(new cookie.CookieGenerator(b.publicKey).consumeReply(data, 0, 0), false, 'no reply opens before a message was sent');
          return;
        }
        // mac1/mac2 for either receiver, then the Noise reader regardless of mac1 (it must cope alone).
        const mac1B = checkerB.checkMac1(data, 0, len);
        const mac1A = checkerA.checkMac1(data, 0, len);
        if (mac1A || mac1B) accepted.mac1++;
        assert.equal(typeof checkerB.checkMac2(data, 0, len, wgAddressBytes(1), 0), 'boolean');
        const reply = checkerB.createReply(data, 0, len, wgAddressBytes(1), 0);
        assert.equal(reply.length, msg.COOKIE_REPLY_BYTES);
        assert.ok(reply.length < len, 'a cookie reply is smaller than the handshake message it answers');
        if (type === msg.MSG_INITIATION) {
          const r = noise.consumeInitiation(b, data, 0, findPeer);
          if (r === null) return;
          accepted.initiation++;
          assert.equal(r.hs, hsB, 'only a known peer');
          hsB.lastTimestamp = Buffer.alloc(12);
          hsB.lastInitiationConsumedMs = -Infinity;
          assert.equal(r.commit(0, 0), true);
          assert.equal(r.commit(0, 0), false, 'the same timestamp again is a replay');
          const resp = noise.createResponse(hsB, WG_RESP_INDEX, ephB);
          assert.ok(resp !== null && resp.length === msg.RESPONSE_BYTES);
          restoreA();
          // With A's fixed ephemeral (the seed handshake), A must accept the response: keys agree.
          if (data.subarray(msg.OFF_INIT_EPHEMERAL, msg.OFF_INIT_EPHEMERAL + 32).equals(ephA.pub)) {
            assert.equal(noise.consumeResponse(hsA, resp, 0), true, 'A accepts the response to its initiation');
            const ka = noise.deriveSession(hsA)!, kb = noise.deriveSession(hsB)!;
            assert.ok(ka.sendKey.equals(kb.recvKey) && ka.recvKey.equals(kb.sendKey), 'session keys match');
          }
          hsB.clear();
          return;
        }
        // Response: A reads it with the handshake of its (only) initiation.
        restoreA();
        const ok = noise.consumeResponse(hsA, data, 0);
        if (ok) {
          accepted.response++;
          assert.equal(hsA.remoteIndex, data.readUInt32LE(msg.OFF_SENDER));
          assert.ok(noise.deriveSession(hsA) !== null);
        } else {
          for (const k of Object.keys(savedA) as (keyof typeof savedA)[]) {
            const was = savedA[k];
            if (Buffer.isBuffer(was)) assert.ok(was.equals(hsA[k] as Buffer), `a rejected response leaves ${String(k)} alone`);
            else assert.equal(hsA[k], was, `a rejected response leaves ${String(k)} alone`);
          }
        }
      },
      stats: () => ({ ...accepted }),
    };
  },
};

// ---------------------------------------------------------------------------------------------

/** Endpoint ids B can see: 1 is A's usual address, 2-4 others (roaming, strangers). */
const SOURCES = [1, 2, 3, 4];
const POOL_MAX = 64;
const GENUINE_MAX = 4096;

/** Handshake messages are compared without mac2 (unauthenticated unless under load). */
function genuineKey(b: Buffer): string {
  const t = b.length >= 4 ? b.readUInt32LE(0) : 0;
  return (t === 1 || t === 2) && b.length > 16 ? b.subarray(0, b.length - 16).toString('hex') : b.toString('hex');
}

export const wgDeviceTarget: FuzzTarget = {
  name: 'wg-device',
  description: 'WgDevice fed any datagram from any source beside a live honest peer: never throws, no reply larger than the datagram, wrong sizes/types only counted, peer state moves only for what the peer really sent',
  allowedCodes: [],
  maxInputBytes: 1600,
  dictionary: WG_DICT,
  seeds: () => {
    // ctrl byte: bits 0-1 source, bits 2-3 mode (0/1 raw, 2 pool message XOR rest, 3 A reads B's output), bits 4-5 clock, bit 6 A sends a keepalive, bit 7 a 60-byte packet.
    const s: Buffer[] = [];
    const m = wgHandshakeMessages();
    for (const d of [m.initiation, m.response, m.cookieReply, m.strangerInitiation]) s.push(Buffer.concat([Buffer.from([0]), d]));
    for (const t of wgTraffic()) s.push(Buffer.concat([Buffer.from([t.from === 'a' ? 0 : 1]), t.data]));
    // A live conversation: A sends (bit 6), the pool message is delivered as is, A reads B's reply, and again.
    s.push(Buffer.from([0x40 | 0x08, 0]), Buffer.from([0x0c]), Buffer.from([0x08, 1]), Buffer.from([0x48, 2]), Buffer.from([0x08 | 0x10, 3]), Buffer.from([0x30]), Buffer.from([0x88, 0]));
    return s;
  },
  async setup(load) {
    const dev = await load<typeof Device>('src/transports/wg/device.js');
    const logm = await load<typeof Logger>('src/util/logger.js');
    const genuine = new Set<string>();
    const genuineOrder: string[] = [];
    const addGenuine = (d: Buffer) => {
      const k = genuineKey(d);
      if (genuine.has(k)) return;
      genuine.add(k);
      genuineOrder.push(k);
      if (genuineOrder.length > GENUINE_MAX) genuine.delete(genuineOrder.shift()!);
    };
    const permanent = new Set<string>();
    const hm = wgHandshakeMessages();
    permanent.add(genuineKey(hm.initiation));
    for (const t of wgTraffic()) if (t.from === 'a') permanent.add(genuineKey(t.data));

    let now = 1000;
    let sendsDuringReceive: Buffer[] | null = null;
    const outbox: Buffer[] = [];
    const pool: Buffer[] = [];
    let packets = 0;
    const b = new dev.WgDevice({
      privateKey: wgKey(WG_B).privateKey, log: logm.silentLogger, random: () => 0.5, underLoadPerSecond: 8, wallMs: () => 1.7e12 + now,
      onPacket: () => { packets++; },
      io: {
        send: (_to, buf, off, len) => {
          const d = Buffer.from(buf.subarray(off, off + len));
          if (sendsDuringReceive !== null) sendsDuringReceive.push(d);
          outbox.push(d);
          if (outbox.length > POOL_MAX) outbox.shift();
        },
        addressBytes: wgAddressBytes, addressHost: (e) => `10.0.0.${e}`, addressText: (e) => `10.0.0.${e}:51820`,
      },
    });
    const peer = b.addPeer({ publicKey: wgKey(WG_A).publicKey, presharedKey: null, endpoint: -1, persistentKeepaliveMs: 0 });
    // The honest peer A, with the plain (uninstrumented) modules: its datagrams are the genuine ones.
    const a = new PlainDevice({
      privateKey: wgKey(WG_A).privateKey, log: silentLogger, random: () => 0.5, wallMs: () => 1.7e12 + now, onPacket: () => {},
      io: {
        send: (_to, buf, off, len) => {
          const d = Buffer.from(buf.subarray(off, off + len));
          addGenuine(d);
          pool.push(d);
          if (pool.length > POOL_MAX) pool.shift();
        },
        addressBytes: wgAddressBytes, addressHost: (e) => `10.0.0.${e}`, addressText: (e) => `10.0.0.${e}:51820`,
      },
    });
    const pa: PlainPeer = a.addPeer({ publicKey: wgKey(WG_B).publicKey, presharedKey: null, endpoint: 2, persistentKeepaliveMs: 0 });
    const snapshot = () => ({
      endpoint: peer.endpoint, current: peer.current, previous: peer.previous, next: peer.next,
      handshakes: peer.counters.handshakes, hsState: peer.handshake.state, hsRemote: peer.handshake.remoteIndex,
      hsTimestamp: peer.handshake.lastTimestamp.toString('hex'), lastRxMs: peer.lastRxMs, rxBytes: peer.counters.rxBytes,
    });
    const counterNames = Object.keys(b.counters) as (keyof typeof b.counters)[];
    const stat = { genuine: 0, stateChanges: 0, replies: 0, cookieReplies: 0, aSends: 0, aReads: 0, rekeyReplies: 0 };
    return {
      run(data) {
        sendsDuringReceive = null;
        if (data.length < 1) return;
        const ctrl = data[0];
        const src = SOURCES[ctrl & 3];
        const mode = (ctrl >> 2) & 3;
        const clock = (ctrl >> 4) & 3;
        if (clock !== 0) {
          now += clock === 1 ? 25 : clock === 2 ? 1000 : 6000;
          b.tick(now);
          a.tick(now);
        }
        if ((ctrl & 0x40) !== 0) { a.sendKeepalive(pa); stat.aSends++; }
        if ((ctrl & 0x80) !== 0) { a.sendPacket(pa, Buffer.alloc(60, ctrl), 0, 60); stat.aSends++; }
        let dgram: Buffer;
        if (mode === 3) {
          // A reads everything B sent since (so the conversation goes on), then nothing reaches B.
          const msgs = outbox.splice(0);
          for (const d of msgs) a.receive(2, d, 0, d.length);
          stat.aReads++;
          return;
        } else if (mode === 2) {
          if (pool.length === 0 || data.length < 2) return;
          dgram = Buffer.from(pool[data[1] % pool.length]);
          for (let i = 2; i < data.length && i - 2 < dgram.length; i++) dgram[i - 2] ^= data[i];
        } else {
          dgram = Buffer.from(data.subarray(1));
        }
        const k = genuineKey(dgram);
        const isGenuine = genuine.has(k) || permanent.has(k);
        if (isGenuine) stat.genuine++;
        const before = snapshot();
        const c0 = { ...b.counters };
        const sent: Buffer[] = [];
        sendsDuringReceive = sent;
        b.receive(src, dgram, 0, dgram.length);
        sendsDuringReceive = null;
        for (const r of sent) {
          stat.replies++;
          if (r.length === 64 && r[0] === 3) stat.cookieReplies++;
          // WireGuard starts a rekey (148 bytes) on receiving genuine data late in an initiator's session.
          if (isGenuine && r.length === 148 && r[0] === 1 && dgram[0] === 4) { stat.rekeyReplies++; continue; }
          assert.ok(r.length <= dgram.length, `reply of ${r.length} bytes (type ${r[0]}) to a ${dgram.length}-byte datagram of type ${dgram[0]}`);
        }
        const after = snapshot();
        const type = dgram.length >= 4 ? dgram.readUInt32LE(0) : 0;
        const sizeOk = type === 1 ? dgram.length === 148 : type === 2 ? dgram.length === 92 : type === 3 ? dgram.length === 64 : type === 4 ? dgram.length >= 32 : false;
        if (!sizeOk) {
          const expect = type >= 1 && type <= 4 ? 'rxBadSize' : 'rxBadType';
          for (const n of counterNames) assert.equal(b.counters[n], c0[n] + (n === 'rxPackets' || n === expect ? 1 : 0), `counter ${n} for a datagram of type ${type}, ${dgram.length} bytes`);
          assert.deepEqual(after, before, 'a wrong size or type changes no peer state');
          return;
        }
        const changed = (Object.keys(before) as (keyof typeof before)[]).filter((n) => before[n] !== after[n]);
        if (changed.length > 0) stat.stateChanges++;
        if (!isGenuine) assert.deepEqual(changed, [], `unauthenticated datagram (type ${type}, ${dgram.length} bytes from ${src}) changed peer state`);
      },
      stats: () => ({ ...stat, packets, ...b.counters }),
    };
  },
};

/**
 * wg-inner: the Decapsulator, which reads the inner IPv4/UDP/VXLAN packets a peer sends through
 * the tunnel, fragments included (authenticated, but the peer's own software may be anything).
 * Input byte 0 picks the mode. Odd: an honest sender; the rest of the input is a frame, byte 1
 * the tunnel MTU and byte 2 how its fragments are shuffled and one of them duplicated: exactly that frame
 * must come out, once. Even: raw packets, each [length 16][bytes], the clock advancing by byte 1
 * of each × 10 ms: nothing is thrown and whatever is delivered lies inside its buffer.
 */
export const wgInnerTarget: FuzzTarget = {
  name: 'wg-inner',
  description: 'Decapsulator: never throws, delivers only inside its buffer, and an honest fragmented frame in any order (one fragment duplicated) comes out exactly once',
  allowedCodes: [],
  maxInputBytes: 4096,
  seeds: () => {
    const frame = Buffer.alloc(1514, 0x5a);
    frame[0] = 0x02;
    const honest = Buffer.concat([Buffer.from([1, 0xff, 3]), frame]);
    // Raw: the fragments of a 1514-byte frame at MTU 1420 (as inner.ts builds them), length-prefixed.
    const raw: Buffer[] = [Buffer.from([0])];
    const A = 0x0a630001, B = 0x0a630002;
    const enc = new InnerEnc(A, B, 1420, 42);
    enc.frame(frame, 0, frame.length, (p) => { const h = Buffer.alloc(2); h.writeUInt16BE(p.length); raw.push(h, Buffer.from(p)); });
    return [honest, Buffer.concat(raw)];
  },
  async setup(load) {
    const inner = await load<typeof Inner>('src/transports/wg/inner.js');
    const A = 0x0a630001, B = 0x0a630002;
    let delivered = 0;
    const checkOut = (dec: Inner.Decapsulator): void => {
      const o = dec.out;
      assert.ok(o.off >= 0 && o.len >= 0 && o.off + o.len <= o.buf.length, `delivered [${o.off}, +${o.len}) outside a ${o.buf.length}-byte buffer`);
    };
    return {
      run(b) {
        if (b.length === 0) return;
        const dec = new inner.Decapsulator(B, A, 42);
        if ((b[0] & 1) === 1) {
          if (b.length < 3 + 14) return;
          const frame = b.subarray(3);
          const mtu = 68 + b[1] * 6;
          const pkts: Buffer[] = [];
          new inner.Encapsulator(A, B, mtu, 42).frame(frame, 0, frame.length, (p) => pkts.push(Buffer.from(p)));
          // A deterministic shuffle from byte 2, then one fragment again.
          let s = b[2] + 1;
          for (let i = pkts.length - 1; i > 0; i--) {
            s = (s * 1103515245 + 12345) >>> 0;
            const j = s % (i + 1);
            [pkts[i], pkts[j]] = [pkts[j], pkts[i]];
          }
          // (An unfragmented packet twice is two frames, as with IP itself: only fragments are deduplicated.)
          if (pkts.length > 1) pkts.push(pkts[s % pkts.length]);
          const got: Buffer[] = [];
          for (const p of pkts) {
            const r = dec.packet(p, 0, p.length, 0);
            if (r === inner.INNER_FRAME) { checkOut(dec); got.push(Buffer.from(dec.out.buf.subarray(dec.out.off, dec.out.off + dec.out.len))); }
          }
          assert.equal(got.length, 1, `${pkts.length} packets at MTU ${mtu}: ${got.length} frames out`);
          assert.ok(got[0].equals(frame), 'the frame came out changed');
          delivered++;
          return;
        }
        let now = 0;
        for (let off = 1; off + 2 <= b.length;) {
          const len = Math.min(b.readUInt16BE(off), b.length - off - 2);
          off += 2;
          now += (b[off] ?? 0) * 10;
          const r = dec.packet(b, off, len, now);
          if (r !== inner.INNER_NONE) { checkOut(dec); delivered++; }
          off += len;
        }
      },
      stats: () => ({ delivered }),
    };
  },
};
