import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Switch } from '../../../src/switch/switch.js';
import { MemoryPort, frame } from '../../helpers/memory-port.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';
const BCAST = 'ff:ff:ff:ff:ff:ff';

function setup(n = 3, opts = {}) {
  const sw = new Switch(opts);
  const ports = Array.from({ length: n }, (_, i) => new MemoryPort(`p${i}`));
  for (const p of ports) sw.addPort(p);
  return { sw, ports };
}

function inject(sw: Switch, port: MemoryPort, f: Buffer) {
  sw.input(port, f, 0, f.length);
}

test('broadcast floods to every other port exactly once, never back', () => {
  const { sw, ports } = setup(4);
  inject(sw, ports[0], frame(BCAST, A));
  assert.equal(ports[0].frames.length, 0);
  for (const p of ports.slice(1)) assert.equal(p.frames.length, 1);
  assert.equal(sw.counters.floods, 1);
});

test('unknown unicast floods; once learned, unicast goes to one port only', () => {
  const { sw, ports } = setup(3);
  inject(sw, ports[0], frame(B, A));          // B unknown: flood
  assert.deepEqual(ports.map((p) => p.frames.length), [0, 1, 1]);
  inject(sw, ports[1], frame(A, B));          // A learned on p0: unicast
  assert.deepEqual(ports.map((p) => p.frames.length), [1, 1, 1]);
  inject(sw, ports[0], frame(B, A));          // B learned on p1 now
  assert.deepEqual(ports.map((p) => p.frames.length), [1, 2, 1]);
  assert.equal(sw.counters.unicasts, 2);
  assert.equal(sw.counters.floods, 1);
});

test('frames are forwarded byte for byte, including 802.1Q tags', () => {
  const { sw, ports } = setup(2);
  const f = frame(BCAST, A, 0x8100, 60);
  f.writeUInt16BE(0x2005, 14); // PCP 1, VID 5
  f.writeUInt16BE(0x0806, 16);
  inject(sw, ports[0], f);
  assert.deepEqual(ports[1].frames[0], f);
});

test('VLANs keep separate tables: a MAC learned on VLAN 5 is unknown untagged', () => {
  const { sw, ports } = setup(3);
  const tagged = frame(BCAST, A, 0x8100, 60);
  tagged.writeUInt16BE(5, 14);
  inject(sw, ports[0], tagged);
  assert.equal(sw.table.lookup(Number.parseInt(A.replace(/:/g, ''), 16), 5), ports[0]);
  assert.equal(sw.table.lookup(Number.parseInt(A.replace(/:/g, ''), 16), 0), undefined);
  inject(sw, ports[1], frame(A, B)); // untagged to A: unknown, flood
  assert.deepEqual(ports.map((p) => p.frames.length), [1, 1, 2]);
});

test('destination on the ingress port is dropped as self-loop and counted', () => {
  const { sw, ports } = setup(2);
  inject(sw, ports[0], frame(BCAST, A));
  inject(sw, ports[0], frame(BCAST, B));
  inject(sw, ports[0], frame(B, A));
  assert.equal(ports[1].frames.length, 2);
  assert.equal(ports[0].counters.drops['self-loop'], 1);
});

test('runts and oversize frames are dropped with a reason; the switch goes on', () => {
  const { sw, ports } = setup(2, { maxFrameBytes: 1518 });
  const short = Buffer.alloc(13);
  sw.input(ports[0], short, 0, 13);
  sw.input(ports[0], Buffer.alloc(0), 0, 0);
  const big = frame(BCAST, A, 0x0800, 1518 - 14 + 1);
  inject(sw, ports[0], big);
  assert.equal(ports[0].counters.drops.runt, 2);
  assert.equal(ports[0].counters.drops.oversize, 1);
  assert.equal(ports[1].frames.length, 0);
  const ok = frame(BCAST, A, 0x0800, 1518 - 14);
  inject(sw, ports[0], ok);
  assert.equal(ports[1].frames.length, 1);
  assert.equal(ports[0].counters.rxFrames, 4);
});

test('jumbo frames up to MTU 65535 pass by default', () => {
  const { sw, ports } = setup(2);
  const f = frame(BCAST, A, 0x0800, 65535);
  inject(sw, ports[0], f);
  assert.equal(ports[1].frames[0].length, 65549);
});

test('a group source MAC is never learned', () => {
  const { sw, ports } = setup(2);
  inject(sw, ports[0], frame(BCAST, '03:00:00:00:00:01'));
  assert.equal(sw.table.size, 0);
});

test('a MAC that moves is re-learned at once and counted', () => {
  const { sw, ports } = setup(3);
  inject(sw, ports[0], frame(BCAST, A));
  inject(sw, ports[2], frame(BCAST, A)); // guest restarted behind another port
  inject(sw, ports[1], frame(A, B));
  assert.equal(ports[2].frames.at(-1)!.readUInt16BE(12), 0x0800);
  assert.equal(ports[0].frames.length, 1); // only the first flood from p2
  assert.equal(sw.table.counters.moved, 1);
});

test('entries age out on tick; a full table floods and counts', () => {
  const sw = new Switch({ macAgeMs: 1000, macTableSize: 16 }, undefined, 0);
  const ports = [new MemoryPort('a'), new MemoryPort('b'), new MemoryPort('c')];
  for (const p of ports) sw.addPort(p);
  sw.tick(0);
  inject(sw, ports[0], frame(BCAST, A));
  sw.tick(500);
  assert.equal(sw.table.size, 1);
  sw.tick(1500);
  assert.equal(sw.table.size, 0);
  assert.equal(sw.table.counters.expired, 1);
  for (let i = 0; i < 20; i++) inject(sw, ports[1], frame(BCAST, `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`));
  assert.equal(sw.table.size, 16);
  assert.equal(sw.table.counters.tableFull, 4);
  // A source never learned because the table is full: frames to it flood, and still arrive.
  const before = ports[2].frames.length;
  inject(sw, ports[0], frame('02:00:00:00:01:13', A));
  assert.equal(ports[2].frames.length, before + 1);
  assert.equal(ports[1].frames.length, 1 + 1);
});

test('removing a port forgets its MACs', () => {
  const { sw, ports } = setup(3);
  inject(sw, ports[1], frame(BCAST, B));
  sw.removePort(ports[1]);
  assert.equal(sw.table.size, 0);
  inject(sw, ports[0], frame(B, A));
  assert.equal(ports[2].frames.length, 2);
  assert.equal(ports[1].frames.length, 0);
});

test('a pinned MAC never moves, never ages, and spoofing it is counted', () => {
  const sw = new Switch({ macAgeMs: 1000 }, undefined, 0);
  const [svc, guest, other] = [new MemoryPort('svc'), new MemoryPort('guest'), new MemoryPort('other')];
  for (const p of [svc, guest, other]) sw.addPort(p);
  const hostMac = 0x02000000aaaa;
  sw.table.pin(hostMac, 0, svc, 0);
  inject(sw, guest, frame(BCAST, '02:00:00:00:aa:aa')); // a guest claims the host's MAC
  assert.equal(sw.table.lookup(hostMac, 0), svc);
  assert.equal(sw.table.counters.pinnedRefused, 1);
  assert.equal(sw.table.counters.moved, 0);
  inject(sw, other, frame('02:00:00:00:aa:aa', B));      // unicast to the host still reaches it
  assert.equal(svc.frames.length, 2);
  assert.equal(guest.frames.length, 0);
  assert.equal(sw.table.size, 1, 'only B was learned; the pinned entry does not count');
  sw.tick(10_000);
  assert.equal(sw.table.lookup(hostMac, 0), svc, 'pinned entries do not age');
  assert.equal(sw.table.size, 0, 'B aged out');
});

test('counters of removed ports stay in the retired totals', () => {
  const { sw, ports } = setup(2, { maxFrameBytes: 100 });
  inject(sw, ports[0], frame(BCAST, A));
  sw.input(ports[0], Buffer.alloc(5), 0, 5);
  ports[0].counters.drops.truncated++;
  sw.removePort(ports[0]);
  assert.equal(sw.retiredPorts, 1);
  assert.equal(sw.retired.rxFrames, 2);
  assert.equal(sw.retired.drops.runt, 1);
  assert.equal(sw.retired.drops.truncated, 1);
});

test('a port removed and added again (a tree port blocked, then forwarding) is counted once, live or retired', () => {
  const { sw, ports } = setup(2);
  inject(sw, ports[0], frame(BCAST, A));
  sw.removePort(ports[0]);
  assert.equal(sw.retired.rxFrames, 1);
  sw.addPort(ports[0]);
  assert.equal(sw.retired.rxFrames, 0, 'back in the switch: its counters are live again');
  assert.equal(sw.retiredPorts, 0);
  inject(sw, ports[0], frame(BCAST, A));
  sw.removePort(ports[0]);
  sw.removePort(ports[1]);
  assert.equal(sw.retired.rxFrames, 2, 'two frames in, each counted once');
  assert.equal(sw.retired.txFrames, 2, 'p1 sent the two floods');
  assert.equal(sw.retiredPorts, 2);
});

test('flushLearned forgets learned MACs, keeps pinned ones, and unicast floods until relearned', () => {
  const { sw, ports } = setup(3);
  sw.table.pin(0x02000000ffff, 0, ports[2], 0);
  inject(sw, ports[0], frame(BCAST, A));
  inject(sw, ports[1], frame(BCAST, B));
  assert.equal(sw.table.size, 2);
  sw.flushLearned('test');
  assert.equal(sw.table.size, 0);
  assert.equal(sw.table.counters.flushed, 2);
  assert.equal(sw.table.lookup(0x02000000ffff, 0), ports[2], 'pinned entry kept');
  const floods = sw.counters.floods;
  inject(sw, ports[1], frame(A, B));
  assert.equal(sw.counters.floods, floods + 1, 'A unknown again: flooded');
  assert.deepEqual(ports.map((p) => p.frames.length), [2, 1, 3]);
});

test('the entries last learned and looked up (kept beside the table) never outlive a change to it', () => {
  // Each step repeats frames between the same MACs first, so the hot entries are the ones changed.
  const sw = new Switch({ macAgeMs: 1000 }, undefined, 0);
  const ports = [new MemoryPort('p0'), new MemoryPort('p1'), new MemoryPort('p2')];
  for (const p of ports) sw.addPort(p);
  const [p0, p1, p2] = ports;
  const macA = 0x02000000000a;
  const counts = () => ports.map((p) => p.frames.length);
  const talk = () => {
    for (let i = 0; i < 3; i++) {
      inject(sw, p0, frame(B, A));
      inject(sw, p1, frame(A, B));
    }
  };
  talk();
  assert.deepEqual(counts(), [3, 3, 1], 'one flood, then unicast both ways');
  // Forgetting learned MACs: the next frame to B floods, and A is learned again.
  sw.flushLearned('test');
  inject(sw, p0, frame(B, A));
  assert.deepEqual(counts(), [3, 4, 2]);
  assert.equal(sw.table.lookup(macA, 0), p0);
  talk();
  // A moves to p2 right after being learned on p0 again and again: moved at once, counted.
  inject(sw, p2, frame(B, A));
  assert.equal(sw.table.lookup(macA, 0), p2);
  assert.equal(sw.table.counters.moved, 1);
  const p0Seen = p0.frames.length;
  const p2Seen = p2.frames.length;
  inject(sw, p1, frame(A, B));
  assert.deepEqual([p0.frames.length, p2.frames.length], [p0Seen, p2Seen + 1], 'the reply to A goes to p2 now, not p0');
  // Ageing: after the sweep, frames to A flood, and A comes back with a new entry.
  sw.tick(5000);
  assert.equal(sw.table.size, 0);
  const before = counts();
  inject(sw, p1, frame(A, B));
  assert.deepEqual(counts(), [before[0] + 1, before[1], before[2] + 1], 'A unknown: flooded');
  inject(sw, p2, frame(B, A));
  assert.equal(sw.table.size, 2);
  assert.equal(sw.table.counters.learned, 6, 'A and B learned three times each');
  // Pinning A to p0 while p2 keeps sending from it: each frame is refused as spoofing.
  sw.table.pin(macA, 0, p0, 5000);
  inject(sw, p2, frame(B, A));
  inject(sw, p2, frame(B, A));
  assert.equal(sw.table.counters.pinnedRefused, 2);
  assert.equal(sw.table.lookup(macA, 0), p0);
  // A port removed while its MAC (B) is the last destination looked up: frames to B flood.
  sw.removePort(p1);
  const p0Before = p0.frames.length;
  inject(sw, p2, frame(B, A));
  assert.equal(p0.frames.length, p0Before + 1, 'flooded to p0, the only other port');
  assert.equal(sw.table.lookup(0x02000000000b, 0), undefined);
});
