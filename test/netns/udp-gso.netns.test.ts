/**
 * UDP GSO where the path refuses it: in a namespace of our own, lo's MTU is set to 1500, so a
 * 1514-byte frame (1542 bytes with IP and UDP headers) cannot be a GSO segment (the kernel says
 * EINVAL: GSO never fragments). The native flush must then send that message's datagrams one by
 * one (the kernel fragments each, as it does without GSO), lose none, and stop trying GSO at that
 * size, while short frames still go out as GSO messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { inFreshNetns } from '../helpers/self-netns.js';
import { nativeAvailable, nativeLoadError, openBatchSocketWith, type BatchSocket } from '../../src/io/index.js';

function frameOf(seq: number, len: number): Buffer {
  const b = Buffer.alloc(len, seq & 0xff);
  b.writeUInt32BE(seq, 0);
  return b;
}

function collect(sock: BatchSocket): Buffer[] {
  const got: Buffer[] = [];
  sock.start((count) => {
    for (let i = 0; i < count; i++) got.push(Buffer.from(sock.rx.bufs[i].subarray(0, sock.rx.lengths[i])));
  });
  return got;
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

if (inFreshNetns(import.meta.url, 'udp GSO on a path with MTU 1500 (own netns)')) {
  test('a GSO message the path refuses (segment above the MTU) is resent one datagram at a time; short frames keep GSO', { skip: nativeAvailable() ? false : `native addon unavailable: ${nativeLoadError()}` }, async () => {
    execFileSync('ip', ['link', 'set', 'lo', 'mtu', '1500']);
    const a = await openBatchSocketWith('native', { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    const b = await openBatchSocketWith('native', { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 }, rcvbufBytes: 4 << 20 });
    try {
      const got = collect(b);
      const to = a.peerId(b.localAddress());
      const stats = a.stats as unknown as { gsoMessages: number; gsoDatagrams: number };
      const big = Array.from({ length: 20 }, (_, i) => frameOf(i, 1514));
      for (const f of big) assert.equal(a.send(to, f, 0, f.length), true);
      await until('20 frames of 1514 B', () => got.length >= 20);
      assert.deepEqual(got, big, 'every 1514-byte frame arrives whole, in order (fragmented by the kernel)');
      assert.equal(a.stats.sendErrors, 0);
      assert.equal(stats.gsoMessages, 0, 'the refused GSO message is not counted as sent');
      // Short frames still coalesce on this path.
      got.length = 0;
      const small = Array.from({ length: 30 }, (_, i) => frameOf(100 + i, 64));
      for (const f of small) a.send(to, f, 0, f.length);
      await until('30 frames of 64 B', () => got.length >= 30);
      assert.deepEqual(got, small);
      assert.ok(stats.gsoMessages >= 1, `64-byte frames went out as GSO (messages ${stats.gsoMessages})`);
      // And large frames are no longer tried as GSO (no second refusal, no loss).
      got.length = 0;
      for (const f of big) a.send(to, f, 0, f.length);
      await until('20 more frames of 1514 B', () => got.length >= 20);
      assert.deepEqual(got, big);
      assert.equal(a.stats.sendErrors, 0);
    } finally {
      a.close();
      b.close();
    }
  });
}
