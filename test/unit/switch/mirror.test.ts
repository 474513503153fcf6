/** The capture tap: filters, copies (never keeps the switch's buffer), bounds its queue, and the
 * record stream reassembles across arbitrary splits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Switch } from '../../../src/switch/switch.js';
import { Mirror, RecordReader, type StreamRecord } from '../../../src/switch/mirror.js';
import { MemoryPort, frame } from '../../helpers/memory-port.js';

function drain(m: Mirror): StreamRecord[] {
  const out: StreamRecord[] = [];
  const r = new RecordReader();
  let b: Buffer | undefined;
  const all: Buffer[] = [];
  while ((b = m.take()) !== undefined) all.push(b);
  const bytes = Buffer.concat(all);
  // Feed one byte at a time: records split anywhere must come out whole.
  for (let i = 0; i < bytes.length; i++) r.push(bytes.subarray(i, i + 1), (x) => out.push(x));
  return out;
}

test('mirror announces ports, copies frames and filters by port and MAC', () => {
  const sw = new Switch();
  const a = new MemoryPort('a');
  const b = new MemoryPort('b');
  sw.addPort(a);
  sw.addPort(b);
  const all = new Mirror({ portIds: [], macs: [] });
  const onlyB = new Mirror({ portIds: [b.id], macs: [] });
  const onlyMac = new Mirror({ portIds: [], macs: [0x020000000009] });
  for (const m of [all, onlyB, onlyMac]) sw.addTap(m.tap);
  const f1 = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01');
  sw.input(a, f1, 0, f1.length);
  f1.fill(0);   // the switch's buffer is reused: the mirror must have copied
  const f2 = frame('02:00:00:00:00:09', '02:00:00:00:00:02');
  sw.input(b, f2, 0, f2.length);

  const recs = drain(all);
  assert.deepEqual(recs.map((r) => r.type), ['port', 'frame', 'port', 'frame']);
  const fr = recs[1] as Extract<StreamRecord, { type: 'frame' }>;
  assert.equal(fr.portId, a.id);
  assert.equal(fr.frame.subarray(6, 12).toString('hex'), '020000000001');
  assert.ok(Math.abs(fr.timestampUs - Date.now() * 1000) < 5_000_000);
  assert.deepEqual((recs[0] as Extract<StreamRecord, { type: 'port' }>).info, { name: 'a', kind: 'test', endpoint: 'memory' });
  assert.deepEqual(drain(onlyB).map((r) => r.type === 'frame' ? r.portId : r.type), ['port', b.id]);
  assert.deepEqual(drain(onlyMac).filter((r) => r.type === 'frame').length, 1);
});

test('a full queue drops the newest frames and counts them', () => {
  const sw = new Switch();
  const a = new MemoryPort('a');
  sw.addPort(a);
  const m = new Mirror({ portIds: [], macs: [] }, { maxQueuedFrames: 3, maxQueuedBytes: 1 << 20 });
  sw.addTap(m.tap);
  for (let i = 0; i < 10; i++) {
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01');
    f[20] = i;
    sw.input(a, f, 0, f.length);
  }
  assert.equal(m.dropped, 8);   // the port record plus two frames fill the three slots
  const frames = drain(m).filter((r) => r.type === 'frame') as Array<Extract<StreamRecord, { type: 'frame' }>>;
  assert.deepEqual(frames.map((f) => f.frame[20]), [0, 1]);
});
