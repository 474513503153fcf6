/**
 * Drops below the ports are visible: a unix datagram receiver that never reads fills its kernel
 * queue, then lanparty's bounded per-peer backlog (kBacklogDatagrams), and the rest are dropped at
 * flush time, after the port already counted them as sent. `status` must show them on the
 * transport's row (JSON: transports[].socket; text: a "socket:" line), not lose them.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatStatus } from '../../../src/cli/status.js';
import { nativeAvailable, nativeLoadError, unixBacklogLimits } from '../../../src/transports/batch-io.js';
import { startSilentReaderLan } from '../../helpers/silent-reader.js';

const skip = nativeAvailable() ? false : `native addon unavailable (unix datagrams need it): ${nativeLoadError()}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-sockdrops-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a unix datagram receiver that never reads: backlog then counted drops, shown by status on the transport row', { skip }, async () => {
  const lan = await startSilentReaderLan(dir);
  try {
    const B = unixBacklogLimits()!.datagrams;
    const N = B + 344;
    await lan.send(N, 50, 5); // pauses keep within the port's own queue
    const end = Date.now() + 5000;
    while (lan.socket().sendDropped + lan.socket().sendQueued < N - 20 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    const s = lan.socket();
    assert.equal(lan.txFrames(), N, 'the port counted every frame as handed to its socket');
    assert.equal(s.sendQueued, B, `the backlog is full (${B} datagrams)`);
    assert.ok(s.sendDropped >= N - B - 12 && s.sendDropped <= N - B, `dropped ${s.sendDropped}: all but the backlog and the receiver's own queue (about 11)`);
    assert.equal(s.sendErrors, s.sendDropped, 'no other send errors');
    const text = formatStatus(lan.daemon.status());
    assert.match(text, new RegExp(`socket: send dropped ${s.sendDropped} \\(queue full\\).*queued for slow receivers ${B}`));
  } finally {
    await lan.stop();
  }
});
