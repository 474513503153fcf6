import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamFramer } from '../../../src/transports/stream/framer.js';

function collect(max = 69632) {
  const frames: string[] = [];
  const f = new StreamFramer(max, (b, o, l) => frames.push(b.subarray(o, o + l).toString('hex')));
  return { f, frames };
}

// Two frames as QEMU's stream netdev writes them: 4-byte big-endian length, then the frame.
const wire = Buffer.from('0000000e' + 'ffffffffffff0200000000010806' + '00000010' + '020000000001020000000002080000ff', 'hex');

test('frames packed in one chunk come out in order', () => {
  const { f, frames } = collect();
  assert.equal(f.push(wire), true);
  assert.deepEqual(frames, ['ffffffffffff0200000000010806', '020000000001020000000002080000ff']);
  assert.equal(f.atBoundary(), true);
});

test('every split point of the stream gives the same frames', () => {
  for (let cut = 1; cut < wire.length; cut++) {
    const { f, frames } = collect();
    f.push(wire.subarray(0, cut));
    f.push(wire.subarray(cut));
    assert.equal(frames.length, 2, `cut at ${cut}`);
    assert.equal(frames[1], '020000000001020000000002080000ff');
  }
});

test('byte-at-a-time delivery works', () => {
  const { f, frames } = collect();
  for (const b of wire) f.push(Buffer.from([b]));
  assert.equal(frames.length, 2);
});

test('a length over the maximum is a protocol error', () => {
  const { f, frames } = collect(1518);
  assert.equal(f.push(Buffer.from('000005ef', 'hex')), false);
  assert.equal(f.error, 'bad-length');
  assert.equal(f.badLength, 1519);
  assert.equal(frames.length, 0);
});

test('length exactly the maximum is accepted', () => {
  const { f, frames } = collect(20);
  const b = Buffer.alloc(24);
  b.writeUInt32BE(20, 0);
  assert.equal(f.push(b), true);
  assert.equal(frames.length, 1);
});

test('an empty frame is counted and skipped', () => {
  const { f, frames } = collect();
  f.push(Buffer.concat([Buffer.from('00000000', 'hex'), wire]));
  assert.equal(f.emptyFrames, 1);
  assert.equal(frames.length, 2);
});

test('a stream cut mid-frame is not at a boundary', () => {
  const { f } = collect();
  f.push(wire.subarray(0, 10));
  assert.equal(f.atBoundary(), false);
  const g = collect();
  g.f.push(wire.subarray(0, 2));
  assert.equal(g.f.atBoundary(), false);
});
