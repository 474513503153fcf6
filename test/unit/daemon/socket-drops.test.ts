/**
 * Drops below the ports are visible: a unix datagram receiver that never reads fills its kernel
 * queue, then lanparty's bounded per-peer backlog (256 datagrams), and the rest are dropped at
 * flush time, after the port already counted them as sent. `status` must show them on the
 * transport's row (JSON: transports[].socket; text: a "socket:" line), not lose them.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildConfig } from '../../../src/config/index.js';
import { Daemon } from '../../../src/daemon/index.js';
import { silentLogger } from '../../../src/util/logger.js';
import { formatStatus } from '../../../src/cli/status.js';
import { nativeAvailable, nativeLoadError, openBatchSocketWith } from '../../../src/transports/batch-io.js';

const skip = nativeAvailable() ? false : `native addon unavailable (unix datagrams need it): ${nativeLoadError()}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-sockdrops-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a unix datagram receiver that never reads: backlog then counted drops, shown by status on the transport row', { skip }, async () => {
  const config = buildConfig({}, {
    ports: [`unixgram://${dir}/lp.sock?peer=${dir}/r.sock`],
    dhcp: false,
    controlSocket: path.join(dir, 'control.sock'),
  });
  const r = await openBatchSocketWith('native', { kind: 'unix', bind: { path: `${dir}/r.sock` } }); // never started: never reads
  const l = await openBatchSocketWith('native', { kind: 'unix', bind: { path: `${dir}/l.sock` } });
  const daemon = new Daemon(config, silentLogger, { portsAreDefaults: false });
  await daemon.start();
  try {
    const to = l.peerId({ kind: 'unix', path: `${dir}/lp.sock` });
    const frame = Buffer.alloc(100);
    Buffer.from('ffffffffffff020000000001', 'hex').copy(frame); // broadcast from 02:00:00:00:00:01
    const N = 600;
    for (let i = 0; i < N; i++) {
      frame.writeUInt32BE(i, 14);
      l.send(to, frame, 0, frame.length);
      if (i % 50 === 49) await new Promise((res) => setTimeout(res, 5)); // within l's own queue
    }
    const row = () => daemon.status().transports.find((t) => t.kind === 'unixgram')!;
    const end = Date.now() + 5000;
    while (row().socket!.sendDropped + row().socket!.sendQueued < N - 20 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    const s = row().socket!;
    const rPort = daemon.status().ports.find((p) => p.name.endsWith('r.sock'))!;
    assert.equal(rPort.txFrames, N, 'the port counted every frame as handed to its socket');
    assert.equal(s.sendQueued, 256, 'the backlog is full (256 datagrams)');
    assert.ok(s.sendDropped >= N - 256 - 12 && s.sendDropped <= N - 256, `dropped ${s.sendDropped}: all but the backlog and the receiver's own queue (about 11)`);
    assert.equal(s.sendErrors, s.sendDropped, 'no other send errors');
    const text = formatStatus(daemon.status());
    assert.match(text, new RegExp(`socket: send dropped ${s.sendDropped} \\(queue full\\).*queued for slow receivers 256`));
  } finally {
    await daemon.stop();
    l.close();
    r.close();
  }
});
