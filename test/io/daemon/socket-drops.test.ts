/**
 * Drops below the ports are visible: a unix datagram receiver that never reads fills its kernel
 * queue, then lanparty's bounded per-peer backlog: first a quarter of it, which (with flow control
 * turned on, LANPARTY_UNIX_FLOW_CONTROL=1) stops lanparty reading the port until the reader is
 * found stuck 200 ms later, then all of it
 * (kBacklogDatagrams), and the rest are dropped at flush time, after the port already counted them
 * as sent. `status` must show them on the
 * transport's row (JSON: transports[].socket; text: a "socket:" line), not lose them.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatStatus } from '../../../src/cli/status.js';
import { metricsText } from '../../../src/daemon/commands/metrics.js';
import { nativeAvailable, nativeLoadError, unixBacklogLimits } from '../../../src/io/index.js';
import { startSilentReaderLan } from '../../helpers/silent-reader.js';

// Flow control on unixgram ports is off by default (it pauses every guest of the port); this test
// turns it on for the daemon below (each test file runs in its own process).
process.env.LANPARTY_UNIX_FLOW_CONTROL = '1';

const skip = nativeAvailable() ? false : `native addon unavailable (unix datagrams need it): ${nativeLoadError()}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-sockdrops-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a unix datagram receiver that never reads: backlog then counted drops, shown by status on the transport row', { skip }, async () => {
  const lan = await startSilentReaderLan(dir);
  try {
    const B = unixBacklogLimits()!.datagrams;
    const N = B + 344;
    // The reader's backlog first stops lanparty reading the port (flow control: the sender waits),
    // for 200 ms; then the reader counts as stuck, and lanparty reads on and drops for it.
    const first = 400;
    await lan.send(first, 50, 5); // pauses keep within the port's own queue
    const stuckBy = Date.now() + 3000;
    while (lan.socket().flowTimeouts === 0 && Date.now() < stuckBy) await new Promise((res) => setTimeout(res, 20));
    assert.equal(lan.socket().flowTimeouts, 1, 'the silent reader held the port 200 ms, then was stuck');
    assert.ok(lan.socket().flowPauses >= 1);
    assert.equal(lan.socket().sendDropped, 0, 'nothing dropped while the port waited');
    await lan.send(N - first, 50, 5);
    const end = Date.now() + 5000;
    while (lan.socket().sendDropped + lan.socket().sendQueued < N - 20 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    const s = lan.socket();
    assert.equal(lan.txFrames(), N, 'the port counted every frame as handed to its socket');
    assert.equal(s.sendQueued, B, `the backlog is full (${B} datagrams)`);
    assert.ok(s.sendDropped >= N - B - 12 && s.sendDropped <= N - B, `dropped ${s.sendDropped}: all but the backlog and the receiver's own queue (about 11)`);
    assert.equal(s.sendErrors, s.sendDropped, 'no other send errors');
    const text = formatStatus(lan.daemon.status());
    assert.match(text, new RegExp(`socket: send dropped ${s.sendDropped} \\(queue full\\).*queued for slow receivers ${B}`));
    assert.match(text, new RegExp(`socket: reading paused for slow readers ${s.flowPauses} \\(flow control\\), stuck readers 1 `));
    const metrics = metricsText(lan.daemon);
    assert.ok(metrics.includes(`lanparty_transport_flow_pauses_total{transport="${lan.url}"} ${s.flowPauses}\n`), metrics);
    assert.ok(metrics.includes(`lanparty_transport_flow_pause_timeouts_total{transport="${lan.url}"} 1\n`));
  } finally {
    await lan.stop();
  }
});
