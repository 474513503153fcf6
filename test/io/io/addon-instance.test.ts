/*
 * The addon keeps its state per Node instance (native/instance.h): a worker thread that loads it
 * gets its own busy-poll setting and counts, its own rx slab registry and its own AEAD contexts,
 * and what it does there leaves the main thread's untouched.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { openBatchSocketWith, nativeAvailable, nativeLoadError, nativeAead, setBusyPoll, busyPollState } from '../../../src/io/index.js';

/** The worker's side: set its own busy poll, open and use a socket, seal a packet; report. */
async function workerMain(): Promise<void> {
  const seen = busyPollState()!.us;
  setBusyPoll(300, 50);
  const a = await openBatchSocketWith('native', { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
  const b = await openBatchSocketWith('native', { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
  const got = new Promise<number>((resolve) => b.start((n) => resolve(n)));
  a.start(() => {});
  a.send(a.peerId(b.localAddress()), Buffer.from('from a worker'), 0, 13);
  const frames = await got;
  const aead = nativeAead();
  const sealed = aead ? aead.seal(Buffer.alloc(32, 7), 1, 0, Buffer.from('x'), 0, 1, 1, Buffer.alloc(17), 0) : 17;
  a.close();
  b.close();
  parentPort!.postMessage({ seen, now: busyPollState()!, frames, sealed });
}

if (!isMainThread) {
  void workerMain();
} else {
  const skip = nativeAvailable() ? false : `native addon not loaded: ${nativeLoadError()}`;
  describe('addon state per Node instance', { skip }, () => {
    after(() => setBusyPoll(0, 20));

    it('a worker thread has its own busy poll, slab registry and AEAD, and leaves the main thread\'s alone', async () => {
      setBusyPoll(500, 30);
      const w = new Worker(new URL(import.meta.url));
      const msg = await new Promise<{ seen: number; now: { us: number; budgetPercent: number }; frames: number; sealed: number }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      await w.terminate();
      assert.equal(msg.seen, 0, 'the worker starts with busy polling off, not the main thread\'s 500 µs');
      assert.equal(msg.now.us, 300);
      assert.equal(msg.now.budgetPercent, 50);
      assert.equal(msg.frames, 1, 'a datagram sent and received inside the worker');
      assert.equal(msg.sealed, 17, 'the worker seals with its own AEAD contexts');
      const main = busyPollState()!;
      assert.equal(main.us, 500, 'the main thread keeps its setting');
      assert.equal(main.budgetPercent, 30);
    });
  });
}
