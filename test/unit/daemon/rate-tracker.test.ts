/*
 * Port rates in `lanparty status` (src/daemon/status.ts RateTracker, sampled once a second): a port
 * that comes up between two samples shows its rate at the first sample after it, not 0 until the
 * second one; ports present from the start report from their second sample on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateTracker } from '../../../src/daemon/status.js';
import { MemoryPort } from '../../helpers/memory-port.js';

test('a port that came up since the last sample has a rate at its first sample', () => {
  const rates = new RateTracker();
  const old = new MemoryPort('old');
  old.counters.rxFrames = 100;
  rates.sample([old], 1000);
  assert.equal(rates.rates(old).rxFramesPerS, 0, 'no interval yet for a port seen at the first sample');
  const fresh = new MemoryPort('fresh');
  fresh.counters.rxFrames = 500;
  fresh.counters.txBytes = 1000;
  old.counters.rxFrames = 400;
  rates.sample([old, fresh], 2000);
  assert.equal(rates.rates(old).rxFramesPerS, 300);
  assert.equal(rates.rates(fresh).rxFramesPerS, 500, 'counted from 0 since the previous sample, one second ago');
  assert.equal(rates.rates(fresh).txBitsPerS, 8000);
  fresh.counters.rxFrames = 600;
  rates.sample([old, fresh], 2500);
  assert.equal(rates.rates(fresh).rxFramesPerS, 200, 'then over each interval as before');
});
