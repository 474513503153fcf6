/**
 * doctor's unix-dgram-queue check, in a network namespace of our own (net.unix.max_dgram_qlen is
 * per namespace, so the test may change it). A unixgram port sends to a reader that never reads:
 * its kernel queue takes max_dgram_qlen datagrams, lanparty's backlog (kBacklogDatagrams, 1024) more, the rest are
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
import { runDoctor } from '../../src/daemon/doctor/index.js';
import { SUGGESTED_MAX_DGRAM_QLEN, unixDgramQueue } from '../../src/daemon/doctor/unix-dgram-queue.js';
import { nativeAvailable, nativeLoadError, unixBacklogLimits } from '../../src/io/index.js';
import { startSilentReaderLan } from '../helpers/silent-reader.js';
import { upOutputUntilReady } from '../helpers/up-output.js';

const BACKLOG = unixBacklogLimits()?.datagrams ?? 0; // kBacklogDatagrams in native/unix_backlog.h
// A burst larger than the backlog plus the kernel's default queue of 10, smaller than the backlog
// plus a queue of SUGGESTED_MAX_DGRAM_QLEN.
const BURST = BACKLOG + 144;

/** What `lanparty up` prints up to "ready" with one unixgram port. */
async function upOutput(parent: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(parent, 'up'));
  const config = path.join(dir, 'lanparty.toml');
  fs.writeFileSync(config, `[[port]]\nurl = "unixgram://${dir}/lan.sock"\n`);
  return upOutputUntilReady(['--config', config, '--control', path.join(dir, 'control.sock'), '--no-dhcp']);
}

async function scenario(parent: string, sent: number) {
  const dir = fs.mkdtempSync(path.join(parent, 's')); // socket paths stay until their owner removes them
  const lan = await startSilentReaderLan(dir);
  const doctor = async () => (await runDoctor({ d: lan.daemon, facts: { macMoves: new Map() }, nowMs: Date.now() }, [unixDgramQueue])).findings;
  try {
    const before = await doctor();
    await lan.send(sent, 8, 2); // pauses keep within the port's own queue of 10
    const end = Date.now() + 5000;
    while (lan.txFrames() < sent && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(lan.txFrames(), sent, 'every frame reached the port');
    return { before, after: await doctor(), stats: { ...lan.socket() }, url: lan.url };
  } finally {
    await lan.stop();
  }
}

if (inFreshNetns(import.meta.url, 'doctor: unixgram drops for a reader whose queue is full name net.unix.max_dgram_qlen (own netns)')) {
  const skip = nativeAvailable() ? false : `native addon unavailable (unix datagrams need it): ${nativeLoadError()}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-dgramq-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('default queue (10): silent before, then names the port, the drops and the sysctl', { skip }, async () => {
    assert.equal(fs.readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8').trim(), '10', 'a fresh namespace starts with the kernel default');
    const { before, after: found, stats, url } = await scenario(dir, BURST);
    assert.deepEqual(before, [], 'nothing to report before any drop');
    assert.ok(stats.sendDropped >= BURST - BACKLOG - 12 && stats.sendDropped <= BURST - BACKLOG - 10, `dropped ${stats.sendDropped}: all but the backlog and a queue of 10 (+1)`);
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.ok(found[0].problem.startsWith(`port ${url} dropped ${stats.sendDropped} datagrams`), found[0].problem);
    assert.match(found[0].problem, /net\.unix\.max_dgram_qlen = 10 datagrams/);
    assert.match(found[0].fix, new RegExp(`sysctl -w net\\.unix\\.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN}`));
  });

  test('lanparty up with a unixgram port says when the queue is short, and how to lengthen it', async () => {
    assert.equal(fs.readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8').trim(), '10');
    const short = await upOutput(dir);
    assert.match(short, /the kernel queues 10 datagrams per unix socket\n\(net\.unix\.max_dgram_qlen\)/);
    assert.match(short, new RegExp(`^  sysctl -w net\\.unix\\.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN} `, 'm'));
    execFileSync('sysctl', ['-qw', `net.unix.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN}`]);
    try {
      const long = await upOutput(dir);
      assert.doesNotMatch(long, /max_dgram_qlen/, 'long enough: nothing to say');
    } finally {
      execFileSync('sysctl', ['-qw', 'net.unix.max_dgram_qlen=10']);
    }
  });

  test(`queue raised to ${SUGGESTED_MAX_DGRAM_QLEN}: the same burst is absorbed; past it, the doctor blames the reader, not the queue`, { skip }, async () => {
    execFileSync('sysctl', ['-qw', `net.unix.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN}`]);
    const small = await scenario(dir, BURST);
    assert.equal(small.stats.sendDropped, 0, `a queue of 512 and the backlog take a burst of ${BURST} whole`);
    assert.deepEqual(small.after, [], 'no drops, nothing to report');
    const big = await scenario(dir, SUGGESTED_MAX_DGRAM_QLEN + BACKLOG + 100);
    assert.ok(big.stats.sendDropped >= 98 && big.stats.sendDropped <= 100, `dropped ${big.stats.sendDropped}: only what neither the queue nor the backlog could hold`);
    assert.equal(big.after.length, 1);
    assert.match(big.after[0].fix, /the queue is already 512: a reader is not reading/);
  });
}
