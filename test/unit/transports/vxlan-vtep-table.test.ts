/* The VTEP table on its own: static vs learned VTEPs, learning, moves, ageing, limits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VtepTable } from '../../../src/transports/vxlan/vtep-table.js';

const MAC_A = 0x525400000001;
const MAC_B = 0x525400000002;

test('static VTEPs are the flood list, in order, and are not duplicated', () => {
  const t = new VtepTable();
  const a = t.addStatic('10.0.0.2', 5, 0);
  const b = t.addStatic('10.0.0.3', 6, 0);
  assert.equal(t.addStatic('10.0.0.2', 9, 0), a);
  assert.deepEqual(t.statics, [a, b]);
  assert.equal(t.find('10.0.0.3'), b);
  assert.equal(t.vteps, 2);
});

test('learn, lookup, move, and per-VTEP MAC counts', () => {
  const t = new VtepTable();
  const a = t.addStatic('10.0.0.2', 0, 0);
  const d = t.addDynamic('10.0.0.9', 1, 0)!;
  assert.equal(t.learn(MAC_A, a, 10), null);
  assert.equal(t.learn(MAC_A, a, 20), null);
  assert.equal(t.lookup(MAC_A), a);
  assert.equal(t.lookup(MAC_B), undefined);
  assert.equal(t.learn(MAC_A, d, 30), a, 'a move returns the old VTEP');
  assert.equal(t.lookup(MAC_A), d);
  assert.deepEqual([a.macCount, d.macCount], [0, 1]);
  assert.deepEqual({ ...t.counters }, { learned: 1, moved: 1, expired: 0, macTableFull: 0, vtepsRefused: 0, vtepsExpired: 0 });
  assert.deepEqual(t.macsBehind(d, 35), [{ mac: MAC_A, ageMs: 5 }]);
});

test('ageing: a MAC expires exactly at macAgeMs after it was last seen', () => {
  const t = new VtepTable({ macAgeMs: 1000, vtepIdleMs: 5000 });
  const a = t.addStatic('10.0.0.2', 0, 0);
  t.learn(MAC_A, a, 100);
  t.sweep(1099);
  assert.equal(t.size, 1);
  t.sweep(1100);
  assert.equal(t.size, 0);
  assert.equal(a.macCount, 0);
  assert.equal(t.counters.expired, 1);
});

test('idle dynamic VTEPs go with their MACs; static ones never; generation changes', () => {
  const t = new VtepTable({ macAgeMs: 100_000, vtepIdleMs: 1000 });
  const s = t.addStatic('10.0.0.2', 0, 0);
  const d = t.addDynamic('10.0.0.9', 1, 0)!;
  t.learn(MAC_A, d, 0);
  t.learn(MAC_B, s, 0);
  const g = t.generation;
  assert.deepEqual(t.sweep(1000), [d]);
  assert.equal(d.live, false);
  assert.equal(t.find('10.0.0.9'), undefined);
  assert.equal(t.lookup(MAC_A), undefined);
  assert.equal(t.lookup(MAC_B), s);
  assert.notEqual(t.generation, g);
  assert.equal(t.counters.vtepsExpired, 1);
  assert.equal(t.counters.expired, 0, 'MACs removed with their VTEP are not counted as aged');
  // The slot is reused.
  assert.equal(t.addDynamic('10.0.0.10', 2, 2000)!.slot, d.slot);
});

test('limits: maxVteps refuses dynamic VTEPs, maxMacs refuses new MACs', () => {
  const t = new VtepTable({ maxVteps: 1, maxMacs: 1 });
  const s = t.addStatic('10.0.0.2', 0, 0);
  assert.equal(t.addDynamic('10.0.0.9', 1, 0), null);
  assert.equal(t.counters.vtepsRefused, 1);
  t.learn(MAC_A, s, 0);
  t.learn(MAC_B, s, 0);
  assert.equal(t.lookup(MAC_B), undefined);
  assert.equal(t.counters.macTableFull, 1);
});

test('restamp moves every timestamp to the first clock reading', () => {
  const t = new VtepTable({ macAgeMs: 1000 });
  const d = t.addDynamic('10.0.0.9', 1, 0)!;
  t.learn(MAC_A, d, 0);
  t.restamp(50_000);
  t.sweep(50_500);
  assert.equal(t.size, 1);
  assert.equal(d.lastRxMs, 50_000);
});
