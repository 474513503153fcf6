/**
 * doctor's unix-dgram-queue check, in a network namespace of our own (net.unix.max_dgram_qlen is
 * per namespace, so the test may change it). A unixgram port sends to a reader that never reads:
 * its kernel queue takes max_dgram_qlen datagrams, lanparty's backlog 256 more, the rest are
 * dropped. The doctor says nothing before the drops, then names the port, the count and the
 * sysctl; with the queue already long, it says the reader is not reading instead.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inFreshNetns } from '../helpers/self-netns.js';
import { buildConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/index.js';
import { silentLogger } from '../../src/util/logger.js';
import { runDoctor } from '../../src/daemon/doctor/index.js';
import { SUGGESTED_MAX_DGRAM_QLEN, unixDgramQueue } from '../../src/daemon/doctor/unix-dgram-queue.js';
import { nativeAvailable, nativeLoadError, openBatchSocketWith } from '../../src/transports/batch-io.js';

const BACKLOG = 256; // kBacklogDatagrams in native/lanparty_native.cc

async function scenario(parent: string, sent: number) {
  const dir = fs.mkdtempSync(path.join(parent, 's')); // socket paths stay until their owner removes them
  const config = buildConfig({}, {
    ports: [`unixgram://${dir}/lp.sock?peer=${dir}/r.sock`],
    dhcp: false,
    controlSocket: path.join(dir, 'control.sock'),
  });
  const r = await openBatchSocketWith('native', { kind: 'unix', bind: { path: `${dir}/r.sock` } }); // never started: never reads
  const l = await openBatchSocketWith('native', { kind: 'unix', bind: { path: `${dir}/l.sock` } });
  const daemon = new Daemon(config, silentLogger, { portsAreDefaults: false });
  await daemon.start();
  const doctor = async () => (await runDoctor({ d: daemon, facts: { macMoves: new Map() }, nowMs: Date.now() }, [unixDgramQueue])).findings;
  try {
    const before = await doctor();
    const to = l.peerId({ kind: 'unix', path: `${dir}/lp.sock` });
    const frame = Buffer.alloc(100);
    Buffer.from('ffffffffffff020000000001', 'hex').copy(frame); // broadcast from 02:00:00:00:00:01
    for (let i = 0; i < sent; i++) {
      frame.writeUInt32BE(i, 14);
      l.send(to, frame, 0, frame.length);
      if (i % 8 === 7) await new Promise((res) => setTimeout(res, 2)); // within lanparty's own queue
    }
    const row = () => daemon.status().transports.find((t) => t.kind === 'unixgram')!.socket!;
    const rPort = () => daemon.status().ports.find((p) => p.name.endsWith('r.sock'))!;
    const end = Date.now() + 5000;
    while (rPort().txFrames < sent && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(rPort().txFrames, sent, 'every frame reached the port');
    return { before, after: await doctor(), stats: { ...row() }, dir };
  } finally {
    await daemon.stop();
    l.close();
    r.close();
  }
}

if (inFreshNetns(import.meta.url, 'doctor: unixgram drops for a reader whose queue is full name net.unix.max_dgram_qlen (own netns)')) {
  const skip = nativeAvailable() ? false : `native addon unavailable (unix datagrams need it): ${nativeLoadError()}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-dgramq-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('default queue (10): silent before, then names the port, the drops and the sysctl', { skip }, async () => {
    assert.equal(fs.readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8').trim(), '10', 'a fresh namespace starts with the kernel default');
    const { before, after: found, stats, dir: d } = await scenario(dir, 400);
    assert.deepEqual(before, [], 'nothing to report before any drop');
    assert.ok(stats.sendDropped >= 400 - BACKLOG - 12 && stats.sendDropped <= 400 - BACKLOG - 10, `dropped ${stats.sendDropped}: all but the backlog and a queue of 10 (+1)`);
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.match(found[0].problem, new RegExp(`port unixgram://${d}/lp\\.sock\\?peer=${d}/r\\.sock dropped ${stats.sendDropped} datagrams`));
    assert.match(found[0].problem, /net\.unix\.max_dgram_qlen = 10 datagrams/);
    assert.match(found[0].fix, new RegExp(`sysctl -w net\\.unix\\.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN}`));
  });

  test(`queue raised to ${SUGGESTED_MAX_DGRAM_QLEN}: the same burst is absorbed; past it, the doctor blames the reader, not the queue`, { skip }, async () => {
    execFileSync('sysctl', ['-qw', `net.unix.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN}`]);
    const small = await scenario(dir, 400);
    assert.equal(small.stats.sendDropped, 0, 'a queue of 512 takes a burst of 400 whole');
    assert.deepEqual(small.after, [], 'no drops, nothing to report');
    const big = await scenario(dir, SUGGESTED_MAX_DGRAM_QLEN + BACKLOG + 100);
    assert.ok(big.stats.sendDropped >= 98 && big.stats.sendDropped <= 100, `dropped ${big.stats.sendDropped}: only what neither the queue nor the backlog could hold`);
    assert.equal(big.after.length, 1);
    assert.match(big.after[0].fix, /the queue is already 512: a reader is not reading/);
  });
}
