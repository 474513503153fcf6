/*
 * The VXLAN port against an in-memory underlay and the real switch: head-end replication, learning
 * which VTEP a MAC sits behind, split horizon, header validation and VNI isolation, group mode,
 * ageing. No sockets, no clock: the test drives tick(nowMs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Switch } from '../../../src/switch/switch.js';
import { silentLogger } from '../../../src/util/logger.js';
import type { RxBatch } from '../../../src/io/index.js';
import { VxlanTransport, type VxlanConfig, type VxlanUnderlay } from '../../../src/transports/vxlan/index.js';
import { parseLocator } from '../../../src/config/locator.js';
import { MemoryPort, frame } from '../../helpers/memory-port.js';

const G1 = '02:00:00:00:00:01';   // local guest
const K1 = '52:54:00:00:00:a1';   // behind VTEP 10.99.0.1
const K2 = '52:54:00:00:00:b2';   // behind VTEP 10.99.0.3
const BCAST = 'ff:ff:ff:ff:ff:ff';

class FakeUnderlay implements VxlanUnderlay {
  readonly native = false;
  readonly sent: Array<{ to: string; bytes: Buffer }> = [];
  private readonly ids = new Map<string, number>();
  private readonly addrs: string[] = [];
  private onBatch: ((rx: RxBatch, count: number) => void) | null = null;
  closed = false;
  private id(hostPort: string): number {
    let id = this.ids.get(hostPort);
    if (id === undefined) {
      id = this.addrs.length;
      this.ids.set(hostPort, id);
      this.addrs.push(hostPort);
    }
    return id;
  }
  async start(onBatch: (rx: RxBatch, count: number) => void): Promise<void> { this.onBatch = onBatch; }
  hostOf(id: number): string { return this.addrs[id].split(':')[0]; }
  destination(host: string, port: number): number { return this.id(`${host}:${port}`); }
  isOwn(id: number): boolean { return this.addrs[id] === '10.99.0.2:4789'; }
  send(id: number, buf: Buffer, off: number, len: number): boolean {
    this.sent.push({ to: this.addrs[id], bytes: Buffer.from(buf.subarray(off, off + len)) });
    return true;
  }
  describe(): string { return 'fake'; }
  /** Source ids the port said it keeps nothing for, in order. */
  readonly forgotten: string[] = [];
  forget(id: number): void {
    this.forgotten.push(this.addrs[id]);
    this.ids.delete(this.addrs[id]);  // its next datagram gets a new id, as a socket's would
  }
  evicted: ((id: number) => void) | null = null;
  onSourceEvicted(handler: (id: number) => void): void { this.evicted = handler; }
  errors(): { send: number; recv: number; notAccepted: number } { return { send: 0, recv: 0, notAccepted: 0 }; }
  close(): void { this.closed = true; }
  /** Delivers datagrams as one batch, each from "host:port". */
  deliver(...dgrams: Array<[string, Buffer]>): void {
    const rx: RxBatch = { bufs: dgrams.map((d) => d[1]), lengths: Int32Array.from(dgrams.map((d) => d[1].length)), peers: Int32Array.from(dgrams.map((d) => this.id(d[0]))) };
    this.onBatch!(rx, dgrams.length);
  }
  take(): Array<{ to: string; bytes: Buffer }> { return this.sent.splice(0); }
}

function vxlan(vni: number, inner: Buffer, flags = 0x08): Buffer {
  const h = Buffer.alloc(8);
  h[0] = flags;
  h.writeUInt32BE(vni * 256, 4);
  return Buffer.concat([h, inner]);
}

async function setup(cfg: Partial<VxlanConfig> = {}) {
  const sw = new Switch({}, silentLogger, 1000);
  const guest = new MemoryPort('guest');
  sw.addPort(guest);
  const u = new FakeUnderlay();
  const t = new VxlanTransport('vxlan://test', {
    vni: 42, remotes: [{ host: '10.99.0.1', port: 4789 }, { host: '10.99.0.3', port: 4789 }], group: null, acceptAny: false,
    table: { macAgeMs: 10_000, vtepIdleMs: 20_000 }, ...cfg,
  }, { sink: sw, log: silentLogger, maxFrameBytes: 65535 + 18 }, u);
  t.tick(1000);
  await t.start();
  const send = (f: Buffer) => sw.input(guest, f, 0, f.length);
  return { sw, guest, u, t, send };
}

test('broadcast from a guest is replicated to every static VTEP with the VNI 42 header', async () => {
  const { u, send, t } = await setup();
  const f = frame(BCAST, G1, 0x0806);
  send(f);
  const out = u.take();
  assert.deepEqual(out.map((o) => o.to), ['10.99.0.1:4789', '10.99.0.3:4789']);
  for (const o of out) assert.equal(o.bytes.toString('hex'), '0800000000002a00' + f.toString('hex'));
  assert.equal(t.vx.txFloods, 1);
  assert.equal(t.vx.txPackets, 2);
  assert.equal(t.port.counters.txFrames, 1, 'one frame out of the port, two copies on the wire');
});

test('known unicast goes to the one VTEP the MAC was learned behind; unknown unicast floods', async () => {
  const { u, send, t, guest } = await setup();
  u.deliver(['10.99.0.1:51234', vxlan(42, frame(BCAST, K1, 0x0806))]);
  assert.equal(guest.frames.length, 1, 'the guest got the broadcast');
  assert.equal(u.take().length, 0, 'split horizon: nothing back to the fabric');
  send(frame(K1, G1));
  assert.deepEqual(u.take().map((o) => o.to), ['10.99.0.1:4789'], 'sent to port 4789, not to the source port of the packet');
  send(frame(K2, G1));
  assert.deepEqual(u.take().map((o) => o.to), ['10.99.0.1:4789', '10.99.0.3:4789']);
  const st = t.vxlanStatus();
  assert.deepEqual(st.vteps.map((v) => [v.address, v.macs.map((m) => m.mac)]), [['10.99.0.1', [K1]], ['10.99.0.3', []]]);
});

test('a MAC that moves to another VTEP is followed, and counted', async () => {
  const { u, send, t } = await setup();
  u.deliver(['10.99.0.1:50000', vxlan(42, frame(BCAST, K1))]);
  u.deliver(['10.99.0.3:50000', vxlan(42, frame(BCAST, K1))]);
  send(frame(K1, G1));
  assert.deepEqual(u.take().map((o) => o.to), ['10.99.0.3:4789']);
  assert.equal(t.table.counters.moved, 1);
});

test('frames between two VTEPs are never sent back to the fabric (split horizon)', async () => {
  const { u, guest, sw } = await setup();
  u.deliver(['10.99.0.1:50000', vxlan(42, frame(BCAST, K1))], ['10.99.0.3:50000', vxlan(42, frame(K1, K2))]);
  u.deliver(['10.99.0.3:50000', vxlan(42, frame('02:00:00:00:00:99', K2))]);
  assert.equal(u.take().length, 0, 'no broadcast, no VTEP-to-VTEP unicast, no unknown unicast back to the fabric');
  assert.equal(guest.frames.length, 2, 'the broadcast and the unknown unicast reach the guest');
  assert.equal(sw.counters.selfLoops, 1, 'K2 -> K1 is known on the fabric port itself: dropped by the switch');
});

test('other VNIs, bad flags, reserved bits and short packets are dropped and counted', async () => {
  const { u, t, guest } = await setup();
  const inner = frame(BCAST, K1);
  const badReserved = vxlan(42, inner);
  badReserved[7] = 1;
  u.deliver(
    ['10.99.0.1:50000', vxlan(43, inner)],
    ['10.99.0.1:50000', vxlan(42, inner, 0x0c)],
    ['10.99.0.1:50000', vxlan(42, inner, 0x00)],
    ['10.99.0.1:50000', badReserved],
    ['10.99.0.1:50000', Buffer.from('08000000', 'hex')],
  );
  assert.equal(guest.frames.length, 0);
  assert.equal(t.vx.rxOtherVni, 1);
  assert.equal(t.vx.lastOtherVni, 43);
  assert.equal(t.vx.rxBadFlags, 2);
  assert.equal(t.vx.rxBadReserved, 1);
  assert.equal(t.vx.rxShort, 1);
  assert.equal(t.table.size, 0, 'nothing learned from dropped packets');
  // A runt inner frame is the switch's business, as for any port.
  u.deliver(['10.99.0.1:50000', vxlan(42, Buffer.alloc(10))]);
  assert.equal(t.port.counters.drops.runt, 1);
});

test('static mode refuses unknown VTEPs; accept=any learns them for unicast but never floods to them', async () => {
  const s = await setup();
  s.u.deliver(['10.99.0.9:50000', vxlan(42, frame(BCAST, K2))]);
  assert.equal(s.guest.frames.length, 0);
  assert.equal(s.t.vx.rxUnknownVtep, 1);

  const a = await setup({ acceptAny: true });
  a.u.deliver(['10.99.0.9:50000', vxlan(42, frame(BCAST, K2))]);
  assert.equal(a.guest.frames.length, 1);
  a.send(frame(K2, G1));
  assert.deepEqual(a.u.take().map((o) => o.to), ['10.99.0.9:4789']);
  a.send(frame(BCAST, G1));
  assert.deepEqual(a.u.take().map((o) => o.to), ['10.99.0.1:4789', '10.99.0.3:4789']);
});

test('group mode floods to the group, learns VTEPs from any source, drops its own packets', async () => {
  const { u, send, t, guest } = await setup({ remotes: [], group: { address: '239.1.1.1', port: 4789 } });
  send(frame(BCAST, G1));
  assert.deepEqual(u.take().map((o) => o.to), ['239.1.1.1:4789']);
  u.deliver(['10.99.0.5:40000', vxlan(42, frame(BCAST, K1))], ['10.99.0.2:4789', vxlan(42, frame(BCAST, G1))]);
  assert.equal(guest.frames.length, 1);
  assert.equal(t.vx.rxOwn, 1);
  send(frame(K1, G1));
  assert.deepEqual(u.take().map((o) => o.to), ['10.99.0.5:4789'], 'known unicast goes straight to the VTEP');
});

test('MACs age out; idle learned VTEPs are removed with their MACs; static VTEPs stay', async () => {
  const { u, send, t } = await setup({ acceptAny: true });
  u.deliver(['10.99.0.1:50000', vxlan(42, frame(BCAST, K1))], ['10.99.0.9:50000', vxlan(42, frame(BCAST, K2))]);
  assert.equal(t.table.size, 2);
  t.tick(1000 + 9_999);
  assert.equal(t.table.size, 2);
  t.tick(1000 + 10_000);
  assert.equal(t.table.size, 0, 'both MACs aged out at 10 s');
  assert.equal(t.table.counters.expired, 2);
  send(frame(K1, G1));
  assert.equal(u.take().length, 2, 'an aged-out MAC floods again');
  t.tick(1000 + 20_000);
  assert.deepEqual(t.vxlanStatus().vteps.map((v) => v.address), ['10.99.0.1', '10.99.0.3']);
  assert.equal(t.table.counters.vtepsExpired, 1);
  // The removed VTEP comes back when heard from again (the source cache was dropped).
  u.deliver(['10.99.0.9:50000', vxlan(42, frame(BCAST, K2))]);
  assert.deepEqual(t.vxlanStatus().vteps.map((v) => v.address).sort(), ['10.99.0.1', '10.99.0.3', '10.99.0.9']);
});

test('the MAC table has a limit: new MACs flood instead of being learned', async () => {
  const { u, t } = await setup({ table: { maxMacs: 2 } });
  for (let i = 1; i <= 3; i++) u.deliver(['10.99.0.1:50000', vxlan(42, frame(BCAST, `52:54:00:00:00:0${i}`))]);
  assert.equal(t.table.size, 2);
  assert.equal(t.table.counters.macTableFull, 1);
});

test('oversize frames and sends while closed are counted drops', async () => {
  const { t, u } = await setup({});
  const big = Buffer.alloc(t.port.maxFrameBytes + 1);
  t.port.send(big, 0, big.length);
  assert.equal(t.port.counters.drops.oversize, 1);
  await t.close();
  assert.equal(u.closed, true);
  t.port.send(frame(BCAST, G1), 0, 60);
  assert.equal(t.port.counters.drops['port-down'], 1);
});

test('locator: defaults, parameters, and errors that name the fix', () => {
  const p = parseLocator('vxlan://10.0.0.1?vni=42&remote=10.0.0.2&remote=10.0.0.3:8472', 'port[0].url');
  assert.deepEqual(p, {
    scheme: 'vxlan', url: 'vxlan://10.0.0.1?vni=42&remote=10.0.0.2&remote=10.0.0.3:8472', host: '10.0.0.1', port: 4789, vni: 42,
    remotes: [{ host: '10.0.0.2', port: 4789 }, { host: '10.0.0.3', port: 8472 }], group: null, dev: null, ttl: 1, acceptAny: false, macAgeMs: 300_000,
  });
  const g = parseLocator('vxlan://0.0.0.0:4790?vni=7&group=239.1.1.1&dev=eth0&ttl=4&age=60', 'x');
  assert.equal(g.scheme === 'vxlan' && `${g.port} ${g.group} ${g.dev} ${g.ttl} ${g.macAgeMs}`, '4790 239.1.1.1 eth0 4 60000');
  const bad: Array<[string, RegExp]> = [
    ['vxlan://:4789?vni=1&remote=10.0.0.2', /bind address must be explicit/],
    ['vxlan://10.0.0.1?remote=10.0.0.2', /missing vni/],
    ['vxlan://10.0.0.1?vni=16777216&remote=10.0.0.2', /vni 16777216 is out of range/],
    ['vxlan://10.0.0.1?vni=1', /remote=IP .* or group=/],
    ['vxlan://10.0.0.1?vni=1&remote=239.1.1.1', /use group=239.1.1.1/],
    ['vxlan://10.0.0.1?vni=1&group=10.0.0.9', /not an IPv4 multicast address/],
    ['vxlan://0.0.0.0?vni=1&group=239.1.1.1', /needs dev=INTERFACE/],
    ['vxlan://10.0.0.1?vni=1&remote=10.0.0.2&dev=eth0', /dev= only picks the interface for group=/],
    ['vxlan://10.0.0.1?vni=1&remote=10.0.0.2&accept=all', /accept=all is not static or any/],
    ['vxlan://10.0.0.1?vni=1&remote=10.0.0.2&key=5', /unknown parameter "key" for vxlan/],
  ];
  for (const [url, re] of bad) assert.throws(() => parseLocator(url, 'port[0].url'), (e: unknown) => (e as { code?: string }).code === 'LP_ERR_CONFIG' && re.test((e as Error).message) && /^port\[0\]\.url: /.test((e as Error).message), url);
});

test('a source that is no VTEP keeps no state: its id is given back to the underlay', async () => {
  const { u, t } = await setup();
  const d = vxlan(42, frame(BCAST, K1, 0x0806));
  u.deliver(['10.66.0.1:5000', d], ['10.66.0.1:5000', d], ['10.99.0.1:4789', d]);
  assert.deepEqual(u.forgotten, ['10.66.0.1:5000', '10.66.0.1:5000']);
  assert.equal(t.vx.rxUnknownVtep, 2);
  assert.equal(t.vx.rxPackets, 3);
  // An evicted source id of a known VTEP is looked up afresh when it is heard again.
  u.evicted!(u.destination('10.99.0.1', 4789));
  u.deliver(['10.99.0.1:4789', d]);
  assert.equal(t.vx.rxUnknownVtep, 2);
});
