/**
 * Busy polling in the native addon (setBusyPoll), over real udp sockets on 127.0.0.1.
 *
 * The property: after a wakeup that delivered frames, a datagram that arrives on another socket
 * within the busy-poll time is read before the event loop turns, so no wake-up is needed for it.
 * setImmediate marks the turn: it runs in the loop's check phase, after the poll phase that
 * delivered the first frame. Busy polling off, the second datagram waits for the next poll phase,
 * after the immediate; on, it is read while spinning, before it.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  openBatchSocketWith, nativeAvailable, nativeLoadError, setBusyPoll, busyPollState,
  type BatchSocket,
} from '../../../src/transports/batch-io.js';

const skip = nativeAvailable() ? false : `native addon not loaded: ${nativeLoadError()}`;

describe('busy polling (native)', { skip }, () => {
  const sockets: BatchSocket[] = [];
  const udp = async (): Promise<BatchSocket> => {
    const s = await openBatchSocketWith('native', { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    sockets.push(s);
    return s;
  };
  after(() => {
    setBusyPoll(0);
    for (const s of sockets) s.close();
  });

  /**
   * c sends to a; a's callback sends through c to b and schedules an immediate. Returns the
   * order in which a's callback, the immediate and b's callback ran.
   */
  async function relayOrder(): Promise<string[]> {
    const [a, b, c] = [await udp(), await udp(), await udp()];
    const order: string[] = [];
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => { done = r; });
    const check = () => { if (order.length === 3) done(); };
    const toB = c.peerId(b.localAddress());
    a.start(() => {
      order.push('a');
      c.send(toB, Buffer.from('reply'), 0, 5);
      setImmediate(() => { order.push('immediate'); check(); });
    });
    b.start(() => { order.push('b'); check(); });
    c.start(() => {});
    // Start from a turn of the loop of its own: the previous test's last callback may still be
    // spinning, and everything here (promises only) would otherwise run inside it.
    await new Promise((r) => setTimeout(r, 20));
    c.send(c.peerId(a.localAddress()), Buffer.from('probe'), 0, 5);
    const timer = setTimeout(() => done(), 3000);
    await finished;
    clearTimeout(timer);
    return order;
  }

  it('off: the reply waits for the next turn of the event loop', async () => {
    assert.equal(setBusyPoll(0)?.us, 0);
    const before = busyPollState()!;
    assert.deepEqual(await relayOrder(), ['a', 'immediate', 'b']);
    const now = busyPollState()!;
    assert.equal(now.spins, before.spins, 'no spin while off');
    assert.equal(now.frames, before.frames);
  });

  it('on: the reply is read while spinning, before the loop turns, and counted', async () => {
    // 1000 µs: generous, so a busy machine that is slow to deliver loopback still makes it.
    assert.equal(setBusyPoll(1000)?.us, 1000);
    await new Promise((r) => setTimeout(r, 20));
    const before = busyPollState()!;
    assert.deepEqual(await relayOrder(), ['a', 'b', 'immediate']);
    const now = busyPollState()!;
    assert.ok(now.spins > before.spins, `spins ${before.spins} -> ${now.spins}`);
    assert.equal(now.frames - before.frames, 1, 'one frame read while spinning');
    setBusyPoll(0);
  });

  it('keeps the setting within 0-1000 µs', () => {
    assert.equal(setBusyPoll(5000)?.us, 1000);
    assert.equal(setBusyPoll(-3)?.us, 0);
    assert.equal(busyPollState()?.us, 0);
  });
});
