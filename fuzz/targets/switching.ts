/**
 * Fuzz targets for the stateful byte readers: the stream reassembler (QEMU's 4-byte length
 * framing), the switch fed by three ports, the services port (virtual host, DHCP, DNS) and the
 * VXLAN port over an in-memory underlay. None may throw for any input; bad input becomes counters.
 */
import assert from 'node:assert/strict';
import { MAX_FRAME_INPUT_BYTES, type FuzzTarget } from '../engine.js';
import { fixChecksums, guestFrames, hostilePayloads, HOST_MAC, udpFrame } from '../seeds.js';
import type * as Framer from '../../src/transports/stream/framer.js';
import type * as SwitchMod from '../../src/switch/index.js';
import type * as ServicesMod from '../../src/services/index.js';
import type * as VxlanPortMod from '../../src/transports/vxlan/index.js';
import type * as Logger from '../../src/util/logger.js';
import type { RxBatch } from '../../src/io/index.js';

const MAX_FRAME = 1600;

/** Reference framer: the same protocol, written as plainly as possible. */
function referenceFrames(stream: Buffer, max: number): { frames: string[]; empty: number; error: boolean; pending: number } {
  const frames: string[] = [];
  let empty = 0;
  let o = 0;
  while (stream.length - o >= 4) {
    const len = stream.readUInt32BE(o);
    if (len === 0) { empty++; o += 4; continue; }
    if (len > max) return { frames, empty, error: true, pending: 0 };
    if (stream.length - o - 4 < len) break;
    frames.push(stream.subarray(o + 4, o + 4 + len).toString('hex'));
    o += 4 + len;
  }
  return { frames, empty, error: false, pending: stream.length - o };
}

export const framerTarget: FuzzTarget = {
  name: 'stream-framer',
  description: 'StreamFramer: any chunking of a byte stream gives the frames of a plain reference reader; a bad length only sets error',
  allowedCodes: [],
  maxInputBytes: 8192,
  dictionary: [Buffer.from('00000000', 'hex'), Buffer.from('0000003c', 'hex'), Buffer.from('00000640', 'hex'), Buffer.from('00000641', 'hex'), Buffer.from('ffffffff', 'hex'), Buffer.from('00010000', 'hex')],
  seeds() {
    const s: Buffer[] = [];
    const frames = guestFrames();
    const parts: Buffer[] = [];
    for (const f of frames) { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); parts.push(h, f); }
    s.push(Buffer.concat([Buffer.from([7, 3]), ...parts]));
    s.push(Buffer.concat([Buffer.from([1, 0]), ...parts.slice(0, 4), Buffer.from('00000000', 'hex'), ...parts.slice(4, 6)]));
    s.push(Buffer.concat([Buffer.from([13, 5]), parts[0], parts[1].subarray(0, 2)]));
    return s;
  },
  async setup(load) {
    const { StreamFramer } = await load<typeof Framer>('src/transports/stream/framer.js');
    let framesSeen = 0;
    let badLengths = 0;
    return {
      run(data) {
        if (data.length < 2) return;
        // Byte 0 seeds the chunk sizes, byte 1 picks how small chunks get; the rest is the stream.
        let state = data[0] | 1;
        const maxChunk = 1 + (data[1] % 64) * (data[1] >= 128 ? 64 : 1);
        const stream = data.subarray(2);
        const ref = referenceFrames(stream, MAX_FRAME);
        const got: string[] = [];
        const f = new StreamFramer(MAX_FRAME, (buf, off, len) => { got.push(buf.subarray(off, off + len).toString('hex')); });
        let o = 0;
        let ok = true;
        while (o < stream.length && ok) {
          state = (state * 1103515245 + 12345) & 0x7fffffff;
          const n = 1 + (state % maxChunk);
          ok = f.push(Buffer.from(stream.subarray(o, o + n)));   // a fresh Buffer, as a socket gives
          o += n;
        }
        assert.equal(ok, !ref.error, 'push() returns false exactly when the reference sees a bad length');
        assert.equal(f.error !== null, ref.error);
        assert.deepEqual(got, ref.frames, 'same frames, in order');
        if (!ref.error) {
          assert.equal(f.emptyFrames, ref.empty);
          assert.equal(f.pendingBytes, ref.pending, 'pendingBytes is the unfinished tail');
          assert.equal(f.atBoundary(), ref.pending === 0);
        } else {
          badLengths++;
        }
        framesSeen += got.length;
      },
      stats: () => ({ framesSeen, badLengths }),
    };
  },
};

interface CountingPort extends SwitchMod.Port { frames: number }

export const switchTarget: FuzzTarget = {
  name: 'switch',
  description: 'Switch.input from three ports: never throws, learns only unicast sources, MAC table within capacity, counters add up',
  allowedCodes: [],
  maxInputBytes: 256,
  seeds: () => guestFrames().map((f) => Buffer.concat([Buffer.from([0]), f.subarray(0, 200)])),
  async setup(load) {
    const sw = await load<typeof SwitchMod>('src/switch/index.js');
    const log = await load<typeof Logger>('src/util/logger.js');
    const s = new sw.Switch({ macTableSize: 64, macPortSize: 40, macAgeMs: 5000, maxFrameBytes: 200 }, log.silentLogger, 0);
    const ports: CountingPort[] = [];
    for (let i = 0; i < 3; i++) {
      const p: CountingPort = {
        id: 0, name: `fuzz${i}`, kind: 'test', counters: new sw.PortCounters(), maxFrameBytes: 65535, frames: 0,
        endpoint: () => 'memory', send() { p.frames++; }, close() {},
      };
      ports.push(p);
      s.addPort(p);
    }
    let now = 0;
    return {
      run(data) {
        if (data.length < 1) return;
        const port = ports[data[0] % 3];
        const frame = data.subarray(1);
        if ((data[0] & 0x80) !== 0) { now += 1000; s.tick(now); }
        const before = port.counters.rxFrames;
        s.input(port, frame, 0, frame.length);
        assert.equal(port.counters.rxFrames, before + 1);
        assert.ok(s.table.size <= s.table.capacity, 'MAC table within capacity');
        assert.equal(s.table.audit(), null, 'MAC table bookkeeping');
        if (frame.length >= 14 && frame.length <= 200) {
          const src = frame.readUInt32BE(6) * 0x10000 + frame.readUInt16BE(10);
          const vlan = (frame.readUInt16BE(12) === 0x8100 || frame.readUInt16BE(12) === 0x88a8) && frame.length >= 18 ? frame.readUInt16BE(14) & 0xfff : 0;
          if ((frame[6] & 1) === 1) assert.equal(s.table.lookup(src, vlan), undefined, 'a group source is never learned');
        }
      },
      stats: () => ({ macTableSize: s.table.size, floods: s.counters.floods, unicasts: s.counters.unicasts, runts: s.counters.runts, oversize: s.counters.oversize, selfLoops: s.counters.selfLoops }),
    };
  },
};

export const servicesTarget: FuzzTarget = {
  name: 'services',
  description: 'services port (vhost ARP/ICMP, DHCP server with per-port lease limits, DNS) fed any frame up to the switch maximum through a fake sink: never throws, no handler error, every frame it answers parses, no DNS reply larger than its query (or 512 bytes with an answer) (byte 0 odd: checksums fixed first)',
  allowedCodes: [],
  maxInputBytes: MAX_FRAME_INPUT_BYTES,
  dictionary: [Buffer.from('63825363', 'hex'), Buffer.from('350103', 'hex'), Buffer.from('0a4d0001', 'hex'), Buffer.from('0a4d000a', 'hex'), Buffer.from('ffffffffffff', 'hex'), Buffer.from('00350035', 'hex'), Buffer.from('00440043', 'hex')],
  seeds: () => {
    const frames = guestFrames();
    // Seed the host MAC as the destination for a copy of each frame too.
    const toHost = frames.map((f) => { const c = Buffer.from(f); c.writeUInt32BE(Math.floor(HOST_MAC / 0x10000), 0); c.writeUInt16BE(HOST_MAC % 0x10000, 4); return c; });
    const hostile = hostilePayloads();
    const big = [
      udpFrame(0xffffffffffff, 0x525400123456, 0, 0xffffffff, 68, 67, hostile.dhcp),
      udpFrame(HOST_MAC, 0x525400123456, 0x0a4d000a, 0x0a4d0001, 40000, 53, hostile.dns),
    ];
    return [...frames, ...toHost, ...big].map((f) => Buffer.concat([Buffer.from([1]), f]));
  },
  async setup(load) {
    const svc = await load<typeof ServicesMod>('src/services/index.js');
    const log = await load<typeof Logger>('src/util/logger.js');
    let nowMs = 1_700_000_000_000;
    const pending: Array<{ at: number; fn: () => void; id: number }> = [];
    let nextId = 1;
    const timers = {
      setTimeout(fn: () => void, ms: number): unknown { const id = nextId++; pending.push({ at: nowMs + ms, fn, id }); return id; },
      clearTimeout(h: unknown): void { const i = pending.findIndex((p) => p.id === h); if (i >= 0) pending.splice(i, 1); },
    };
    const out: Buffer[] = [];
    const sink = { addPort() {}, removePort() {}, setForwarding() {}, input(_p: unknown, buf: Buffer, off: number, len: number) { out.push(Buffer.from(buf.subarray(off, off + len))); } };
    const opts = {
      ...svc.defaultServicesOptions(),
      dhcp: { ...svc.defaultDhcpOptions(), probeMs: 200, leaseFile: null, staticLeases: [{ name: 'fixed', address: '10.77.0.200' }], maxLeasesPerPort: 8, maxLeasesPerSharedPort: 16 },
    };
    // Four ports by the MAC's last two bits, two of them shared, so the lease limits are reached.
    const kinds = ['udp', 'mcast', 'unix', 'wg'] as const;
    const portOf = (mac: number) => ({ id: 1 + (mac % 4), kind: kinds[mac % 4] });
    const services = await svc.startServices(opts, sink, log.silentLogger, { nowMs: () => nowMs }, timers, portOf);
    const first = services.status();
    const dhcpCounters = first.dhcp!.counters;
    const dnsCounters = first.dns!.counters;
    const wire = {
      ipv4: await load<typeof import('../../src/wire/ipv4.js')>('src/wire/ipv4.js'),
      udp: await load<typeof import('../../src/wire/udp.js')>('src/wire/udp.js'),
      arp: await load<typeof import('../../src/wire/arp.js')>('src/wire/arp.js'),
      dhcp: await load<typeof import('../../src/wire/dhcp.js')>('src/wire/dhcp.js'),
      dns: await load<typeof import('../../src/wire/dns.js')>('src/wire/dns.js'),
      icmp: await load<typeof import('../../src/wire/icmp.js')>('src/wire/icmp.js'),
    };
    let answered = 0;
    let inputs = 0;
    const vhostStats = (services.port as unknown as { stats: { drops: Record<string, number> } }).stats;
    const fragments: Buffer[] = [];
    /** The UDP payload size of an input the DNS responder answered (it parsed, so this does). */
    const queryBytes = (f: Buffer): number => {
      const ip = wire.ipv4.parseIpv4(f, 14, f.length - 14);
      return wire.udp.parseUdp(f, 14 + ip.headerBytes, ip.payloadBytes, ip.src, ip.dst).payloadBytes;
    };
    const checkOutput = (f: Buffer, input: Buffer): void => {
      assert.ok(f.length >= 14);
      const type = f.readUInt16BE(12);
      if (type === 0x0806) { wire.arp.parseArp(f, 14, f.length - 14); return; }
      assert.equal(type, 0x0800, 'services send only ARP and IPv4');
      const ip = wire.ipv4.parseIpv4(f, 14, f.length - 14);
      const o = 14 + ip.headerBytes;
      if (ip.moreFragments || ip.fragmentOffsetBytes !== 0) {
        // A reply over the MTU: its fragments come in order within one input; the last one
        // completes the message, which must then parse.
        assert.ok(f.length <= 1514, 'fragments fit the MTU');
        assert.equal(ip.fragmentOffsetBytes, fragments.length === 0 ? 0 : fragments.reduce((n, b) => n + b.length, 0), 'fragments in order, no gap');
        fragments.push(Buffer.from(f.subarray(o, o + ip.payloadBytes)));
        if (ip.moreFragments) return;
        const whole = Buffer.concat(fragments);
        fragments.length = 0;
        assert.equal(ip.protocol, 1, 'only echo replies are fragmented');
        wire.icmp.parseIcmp(whole, 0, whole.length);
        return;
      }
      if (ip.protocol === 1) { wire.icmp.parseIcmp(f, o, ip.payloadBytes); return; }
      const u = wire.udp.parseUdp(f, o, ip.payloadBytes, ip.src, ip.dst);
      if (u.srcPort === 67) wire.dhcp.parseDhcp(f, o + 8, u.payloadBytes);
      else if (u.srcPort === 53) {
        const m = wire.dns.parseDns(f, o + 8, u.payloadBytes);
        const q = queryBytes(input);
        assert.ok(u.payloadBytes <= (m.answers.length > 0 ? Math.max(q, 512) : q), `DNS reply of ${u.payloadBytes} bytes to a ${q}-byte query`);
      }
      else assert.fail(`unexpected UDP source port ${u.srcPort}`);
    };
    return {
      run(input) {
        if (input.length < 1) return;
        inputs++;
        const data = input.subarray(1);
        if ((input[0] & 1) === 1 && data.length >= 14) fixChecksums(data, data.readUInt16BE(12) === 0x8100 ? 18 : 14);
        services.port.send(data, 0, data.length);
        // Every 64 inputs let time pass: ARP probes finish, offers and leases expire.
        if ((inputs & 63) === 0) {
          nowMs += 250 + (data.length > 0 ? data[data.length - 1] * 1000 : 0);
          pending.sort((a, b) => a.at - b.at);
          while (pending.length > 0 && pending[0].at <= nowMs) pending.shift()!.fn();
        }
        // vhost.stats directly: services.status() formats every lease, too slow per input.
        assert.equal(vhostStats.drops.error, 0, 'a service handler threw (caught and counted as "error")');
        assert.equal(dhcpCounters.handlerErrors, 0, 'the DHCP server caught an exception of its own');
        assert.equal(dnsCounters.handlerErrors, 0, 'the DNS responder caught an exception of its own');
        for (const f of out) checkOutput(f, data);
        assert.equal(fragments.length, 0, 'every fragmented reply was complete');
        answered += out.length;
        out.length = 0;
      },
      async close() { await services.close(); },
      stats: () => {
        const st = services.status();
        const r: Record<string, number> = { answered, leasesInUse: st.dhcp?.pool.inUse ?? 0 };
        for (const [k, v] of Object.entries(st.vhost.drops)) r[`vhost.drop.${k}`] = v;
        for (const [k, v] of Object.entries(st.dhcp?.counters.drops ?? {})) r[`dhcp.drop.${k}`] = v;
        for (const [k, v] of Object.entries(st.dns?.counters ?? {})) r[`dns.${k}`] = v;
        return r;
      },
    };
  },
};

export const vxlanPortTarget: FuzzTarget = {
  name: 'vxlan-port',
  description: 'VXLAN transport fed any datagram from a known or unknown VTEP: never throws, every datagram counted once',
  allowedCodes: [],
  maxInputBytes: 1600,
  seeds: () => guestFrames().map((f) => Buffer.concat([Buffer.from([0]), Buffer.from('0800000000002a00', 'hex'), f])),
  async setup(load) {
    const vx = await load<typeof VxlanPortMod>('src/transports/vxlan/index.js');
    const sw = await load<typeof SwitchMod>('src/switch/index.js');
    const log = await load<typeof Logger>('src/util/logger.js');
    const s = new sw.Switch({ macTableSize: 64 }, log.silentLogger, 0);
    const guest = {
      id: 0, name: 'guest', kind: 'test' as const, counters: new sw.PortCounters(), maxFrameBytes: 65535,
      endpoint: () => 'memory', send() {}, close() {},
    };
    s.addPort(guest);
    const hosts = ['10.99.0.1:4789', '10.99.0.3:4789', '10.99.0.2:4789', '10.99.0.7:4789', '10.99.0.8:4789'];
    let onBatch: ((rx: RxBatch, count: number) => void) | null = null;
    let sent = 0;
    const underlay = {
      native: false,
      async start(cb: (rx: RxBatch, count: number) => void) { onBatch = cb; },
      hostOf: (id: number) => hosts[id].split(':')[0],
      destination: (host: string, port: number) => { const i = hosts.indexOf(`${host}:${port}`); return i >= 0 ? i : 0; },
      isOwn: (id: number) => id === 2,
      send() { sent++; return true; },
      describe: () => 'fake', errors: () => ({ send: 0, recv: 0, notAccepted: 0 }), close() {},
      forget() {}, onSourceEvicted() {},
    };
    const t = new vx.VxlanTransport('vxlan://fuzz', {
      vni: 42, remotes: [{ host: '10.99.0.1', port: 4789 }, { host: '10.99.0.3', port: 4789 }], group: null, acceptAny: true,
      table: { macAgeMs: 10_000, vtepIdleMs: 20_000, maxVteps: 4, maxMacs: 32 },
    }, { sink: s, log: log.silentLogger, maxFrameBytes: 1600 }, underlay);
    let now = 1000;
    t.tick(now);
    await t.start();
    const rx: RxBatch = { bufs: [Buffer.alloc(0)], lengths: new Int32Array(1), peers: new Int32Array(1) } as RxBatch;
    return {
      run(data) {
        if (data.length < 1) return;
        const pkt = Buffer.from(data.subarray(1));
        rx.bufs[0] = pkt;
        rx.lengths[0] = pkt.length;
        rx.peers[0] = data[0] % hosts.length;
        const before = t.vx.rxPackets;
        onBatch!(rx, 1);
        assert.equal(t.vx.rxPackets, before + 1);
        if ((data[0] & 0x80) !== 0) { now += 5000; t.tick(now); s.tick(now); }
        assert.ok(t.table.vteps <= 4, "VTEP table within its limit");
        assert.ok(t.table.size <= 32, "MACs behind VTEPs within their limit");
      },
      stats: () => ({ ...t.vx, sentToUnderlay: sent }),
    };
  },
};
