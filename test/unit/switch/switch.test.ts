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

test('entries age out on tick; a full table evicts the oldest entry of the port holding the most', () => {
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
  assert.equal(sw.table.counters.evicted, 4);
  assert.equal(sw.table.lookup(0x020000000100, 0), undefined, 'the first four went');
  assert.equal(sw.table.lookup(0x020000000104, 0), ports[1]);
  assert.equal(sw.table.lookup(0x020000000113, 0), ports[1], 'the last one was learned');
  // The newest source is known: a frame to it goes to its port alone.
  const before = ports[2].frames.length;
  inject(sw, ports[0], frame('02:00:00:00:01:13', A));
  assert.equal(ports[2].frames.length, before);
  assert.equal(ports[1].frames.length, 1 + 1);
});

test('a MAC flood from one port past capacity does not lock out another port (fair eviction)', () => {
  const CAP = 64;
  const sw = new Switch({ macAgeMs: 300_000, macTableSize: CAP }, undefined, 0);
  const [a, b, c] = [new MemoryPort('a'), new MemoryPort('b'), new MemoryPort('c')];
  for (const p of [a, b, c]) sw.addPort(p);
  sw.tick(1000);
  inject(sw, c, frame(BCAST, C));               // a guest on c, learned before the flood
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  const flood = Buffer.from(frame(BCAST, A));
  for (let i = 0; i < CAP * 10; i++) {
    flood.writeUInt32BE(rnd(), 6);
    flood[6] &= 0xfe;                            // unicast source
    sw.input(a, flood, 0, flood.length);
  }
  assert.equal(sw.table.size, CAP);
  assert.ok(sw.table.counters.evicted > CAP * 8, `evicted ${sw.table.counters.evicted}`);
  assert.equal(sw.table.lookup(0x02000000000c, 0), c, 'the guest learned before the flood stays');
  // A new guest on b is learned, and frames to it are not flooded.
  inject(sw, b, frame(BCAST, B));
  assert.equal(sw.table.lookup(0x02000000000b, 0), b);
  assert.equal(sw.table.countOn(a), CAP - 2, 'each eviction came from a, the port holding the most');
  const [aSeen, bSeen, cSeen] = [a.frames.length, b.frames.length, c.frames.length];
  const floods = sw.counters.floods;
  inject(sw, c, frame(B, C));
  assert.equal(b.frames.length, bSeen + 1, 'the unicast to B reached b');
  assert.deepEqual([a.frames.length, c.frames.length, sw.counters.floods], [aSeen, cSeen, floods], 'and was not flooded');
  assert.equal(sw.table.audit(), null);
});

test('eviction takes the least recently seen entry of the fullest port, and ties go to any fullest port', () => {
  const sw = new Switch({ macAgeMs: 300_000, macTableSize: 4 }, undefined, 0);
  const [a, b] = [new MemoryPort('a'), new MemoryPort('b')];
  sw.addPort(a);
  sw.addPort(b);
  const m = (i: number) => `02:00:00:00:02:0${i}`;
  sw.tick(1000);
  inject(sw, a, frame(BCAST, m(1)));
  inject(sw, a, frame(BCAST, m(2)));
  inject(sw, a, frame(BCAST, m(3)));
  inject(sw, b, frame(BCAST, m(4)));
  sw.tick(2000);
  inject(sw, a, frame(BCAST, m(1)));            // m1 seen again: m2 is a's least recent now
  inject(sw, b, frame(BCAST, m(5)));            // full: a holds the most (3), so m2 goes
  assert.equal(sw.table.lookup(0x020000000202, 0), undefined);
  assert.equal(sw.table.lookup(0x020000000201, 0), a);
  assert.equal(sw.table.lookup(0x020000000205, 0), b);
  assert.deepEqual([sw.table.countOn(a), sw.table.countOn(b)], [2, 2]);
  assert.equal(sw.table.counters.evicted, 1);
  sw.tick(3000);
  inject(sw, a, frame(BCAST, m(6)));            // 2 and 2: either port may lose one, never the newest
  assert.equal(sw.table.size, 4);
  assert.equal(sw.table.counters.evicted, 2);
  assert.equal(sw.table.lookup(0x020000000206, 0), a);
  // Ageing walks each port's list from its oldest entry.
  sw.tick(2000 + 300_000);
  assert.equal(sw.table.size, 1, 'only m6 (seen at 3000) is left');
  assert.equal(sw.table.counters.expired, 3);
  assert.equal(sw.table.audit(), null);
});

test('a port at its own MAC limit replaces its own oldest entry; other ports keep theirs', () => {
  const sw = new Switch({ macAgeMs: 300_000, macTableSize: 64, macPortSize: 8 }, undefined, 0);
  const [a, b] = [new MemoryPort('a'), new MemoryPort('b')];
  sw.addPort(a);
  sw.addPort(b);
  inject(sw, b, frame(BCAST, B));
  for (let i = 0; i < 20; i++) inject(sw, a, frame(BCAST, `02:00:00:00:03:${i.toString(16).padStart(2, '0')}`));
  assert.equal(sw.table.countOn(a), 8);
  assert.equal(sw.table.size, 9);
  assert.equal(sw.table.counters.evicted, 12);
  assert.equal(sw.table.lookup(0x02000000030b, 0), undefined);
  assert.equal(sw.table.lookup(0x02000000030c, 0), a);
  // A MAC moving onto a full port takes the place of that port's oldest entry.
  inject(sw, a, frame(BCAST, B));
  assert.equal(sw.table.lookup(0x02000000000b, 0), a);
  assert.equal(sw.table.countOn(a), 8);
  assert.equal(sw.table.countOn(b), 0);
  assert.equal(sw.table.counters.moved, 1);
  assert.equal(sw.table.lookup(0x02000000030c, 0), undefined);
  assert.equal(sw.table.audit(), null);
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

test('a blocked port stays in the switch with its id and counters; floods skip it, its frames are dropped, its MACs forgotten', () => {
  const { sw, ports } = setup(3);
  const [p0, p1, p2] = ports;
  const id1 = p1.id;
  inject(sw, p1, frame(BCAST, B));            // B learned on p1
  assert.equal(sw.table.lookup(0x02000000000b, 0), p1);
  sw.setForwarding(p1, false);
  assert.equal(p1.id, id1, 'same id while blocked');
  assert.ok(sw.ports.includes(p1), 'still listed');
  assert.equal(sw.isForwarding(p1), false);
  assert.deepEqual(sw.forwardingPorts().map((p) => p.id), [p0.id, p2.id]);
  assert.equal(sw.table.lookup(0x02000000000b, 0), undefined, 'its MACs are forgotten');
  inject(sw, p0, frame(BCAST, A));
  inject(sw, p0, frame(B, A));                // B unknown now: floods, but not out of p1
  assert.deepEqual(ports.map((p) => p.frames.length), [1, 0, 3], 'p0 and p2 had the first flood; p2 both since');
  const rx = p1.counters.rxFrames;
  inject(sw, p1, frame(A, C));                // from the blocked port: counted and dropped
  assert.equal(p1.counters.rxFrames, rx + 1);
  assert.equal(p1.counters.drops['port-down'], 1);
  assert.equal(sw.table.lookup(0x02000000000c, 0), undefined, 'nothing learned from a blocked port');
  assert.equal(p0.frames.length, 1, 'nothing forwarded from it');

  sw.setForwarding(p1, true);
  assert.equal(p1.id, id1, 'same id when forwarding again');
  assert.deepEqual(sw.forwardingPorts().map((p) => p.id), [p0.id, p1.id, p2.id], 'back in its place in flood order');
  inject(sw, p0, frame(BCAST, A));
  assert.deepEqual(ports.map((p) => p.frames.length), [1, 1, 4]);
  assert.equal(sw.retiredPorts, 0, 'blocking retires nothing');
  sw.removePort(p1);
  assert.equal(sw.retired.rxFrames, p1.counters.rxFrames, 'its whole history, once, when it goes');
  assert.throws(() => sw.setForwarding(p1, false), /not in the switch/);
});

test('a port can join blocking (a tree port before the tree decides)', () => {
  const sw = new Switch();
  const a = new MemoryPort('a');
  const b = new MemoryPort('b');
  sw.addPort(a);
  sw.addPort(b, false);
  assert.equal(b.id, 2);
  inject(sw, a, frame(BCAST, A));
  assert.equal(b.frames.length, 0);
  sw.setForwarding(b, true);
  inject(sw, a, frame(BCAST, A));
  assert.equal(b.frames.length, 1);
  assert.throws(() => sw.addPort(b), /added twice/);
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

/** A port whose send throws (a bug in that port), on every frame. */
class ThrowingPort extends MemoryPort {
  override send(): void { throw new Error('boom'); }
}

test('a port whose send throws costs that port only: counted as port-error, the others still get the frame', () => {
  const sw = new Switch();
  const [p0, bad, p2, p3] = [new MemoryPort('p0'), new ThrowingPort('bad'), new MemoryPort('p2'), new MemoryPort('p3')];
  for (const p of [p0, bad, p2, p3]) sw.addPort(p);
  inject(sw, p0, frame(BCAST, A));              // flood: bad throws in the middle
  assert.deepEqual([p2.frames.length, p3.frames.length], [1, 1]);
  assert.equal(bad.counters.drops['port-error'], 1);
  inject(sw, bad, frame(BCAST, B));             // B learned on bad
  inject(sw, p0, frame(B, A));                  // unicast to bad: throws, counted, no flood
  assert.equal(bad.counters.drops['port-error'], 2);
  assert.equal(sw.counters.portErrors, 2);
  inject(sw, p2, frame(A, C));                  // and forwarding goes on
  assert.equal(p0.frames.length, 2);
});

test('a tap that throws is counted and the frame is still forwarded', () => {
  const { sw, ports } = setup(2);
  let seen = 0;
  sw.addTap(() => { throw new Error('tap bug'); });
  sw.addTap(() => { seen++; });
  inject(sw, ports[0], frame(BCAST, A));
  assert.equal(ports[1].frames.length, 1);
  assert.equal(seen, 1, 'the taps after it still ran');
  assert.equal(sw.counters.tapErrors, 1);
});

test('random learning, moves, VLANs, ageing, pins and port removals keep the table\'s bookkeeping consistent', () => {
  const sw = new Switch({ macAgeMs: 5000, macTableSize: 32, macPortSize: 20 }, undefined, 0);
  const ports = Array.from({ length: 5 }, (_, i) => new MemoryPort(`r${i}`));
  for (const p of ports) sw.addPort(p);
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const f = frame(BCAST, A, 0x8100, 60);
  let now = 0;
  for (let i = 0; i < 20_000; i++) {
    const op = rnd(100);
    if (op < 2) { now += 1000 * (1 + rnd(3)); sw.tick(now); }
    else if (op < 3) { const p = ports[rnd(5)]; sw.removePort(p); sw.addPort(p); }
    else if (op < 4) sw.table.pin(0x020000000000 + rnd(64), 0, ports[rnd(5)], now);
    else if (op < 5 && rnd(10) === 0) sw.flushLearned('test');
    else {
      f.writeUIntBE(0x020000000000 + rnd(64), 6, 6);
      f.writeUInt16BE(rnd(4) === 0 ? 0x8100 : 0x0800, 12);
      f.writeUInt16BE(rnd(3), 14);
      sw.input(ports[rnd(5)], f, 0, f.length);
    }
    const bad = sw.table.audit();
    if (bad !== null) assert.fail(`after step ${i}: ${bad}`);
  }
  assert.ok(sw.table.counters.evicted > 0 && sw.table.counters.moved > 0 && sw.table.counters.expired > 0);
});
