import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayWindow, REPLAY_WINDOW } from '../../../src/crypto/index.js';

const LIMIT = 2 ** 53;

test('replay window: each counter once, in order and out of order', () => {
  const w = new ReplayWindow();
  assert.ok(w.check(0, LIMIT));
  assert.ok(!w.check(0, LIMIT));
  assert.ok(w.check(2, LIMIT));
  assert.ok(w.check(1, LIMIT));
  assert.ok(!w.check(1, LIMIT));
  assert.ok(!w.check(2, LIMIT));
  for (let i = 3; i < 5000; i++) assert.ok(w.check(i, LIMIT));
  assert.ok(!w.check(4000, LIMIT));
});

test('replay window: edges of the window (the shape of wireguard-go replay_test.go)', () => {
  const w = new ReplayWindow();
  assert.ok(w.check(REPLAY_WINDOW + 100, LIMIT));
  assert.ok(w.check(100, LIMIT), 'exactly the window behind is accepted once');
  assert.ok(!w.check(100, LIMIT));
  assert.ok(!w.check(99, LIMIT), 'one further behind is too old');
  assert.ok(w.check(REPLAY_WINDOW * 3, LIMIT), 'a big jump clears the ring');
  assert.ok(!w.check(REPLAY_WINDOW + 101, LIMIT));
  assert.ok(w.check(REPLAY_WINDOW * 3 - 1, LIMIT));
  assert.ok(w.check(REPLAY_WINDOW * 2 + 1, LIMIT));
});

test('replay window: counters at or above the limit and bad numbers are rejected without moving the window', () => {
  const w = new ReplayWindow();
  assert.ok(!w.check(10, 10));
  assert.ok(!w.check(-1, LIMIT));
  assert.ok(!w.check(1.5, LIMIT));
  assert.ok(w.check(0, LIMIT));
  assert.ok(w.check(2 ** 53 - 1, LIMIT));
  assert.ok(!w.check(2 ** 53 - 1, LIMIT));
  w.reset();
  assert.ok(w.check(0, LIMIT));
});

test('replay window: random permutation within the window is accepted exactly once', () => {
  const w = new ReplayWindow();
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const base = 100000;
  const n = 2000;
  const order = Array.from({ length: n }, (_, i) => base + i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
  for (const c of order) assert.ok(w.check(c, LIMIT), `first ${c}`);
  for (const c of order) assert.ok(!w.check(c, LIMIT), `again ${c}`);
});
