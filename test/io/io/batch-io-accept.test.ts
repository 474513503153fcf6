/**
 * The accept list of a udp4 batch socket (acceptSources), over real sockets on loopback, run with
 * the native addon and with the node:dgram fallback. Linux answers every 127.0.0.0/8 address on lo,
 * so senders bound to 127.0.0.2, .3 and .4 stand for hosts inside and outside the list.
 *
 *   sender 127.0.0.3:* (outside) ──╮
 *   sender 127.0.0.2:* (inside)  ──┼──> batch socket 127.0.0.1:PORT  accept 127.0.0.2/32 + 127.0.0.4:P
 *   sender 127.0.0.4:P (exact)   ──╯
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import {
  openBatchSocketWith, nativeAvailable, nativeLoadError, type BatchImplementation, type BatchSocket,
} from '../../../src/io/index.js';

const IP2 = 0x7f000002;

async function sender(host: string, port = 0): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => { s.once('error', rej); s.bind(port, host, () => res()); });
  return s;
}

function sendTo(s: dgram.Socket, port: number, payload: Buffer): Promise<void> {
  return new Promise((res, rej) => s.send(payload, port, '127.0.0.1', (err) => (err ? rej(err) : res())));
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function suite(impl: BatchImplementation): void {
  const closers: Array<() => void> = [];
  after(() => { for (const c of closers) c(); });

  it('drops and counts every datagram from outside the list, before it gets a peer id', async () => {
    const sock: BatchSocket = await openBatchSocketWith(impl, { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    closers.push(() => sock.close());
    const port = (sock.localAddress() as { port: number }).port;
    const exactSender = await sender('127.0.0.4');
    closers.push(() => exactSender.close());
    const exactPort = exactSender.address().port;
    assert.equal(sock.acceptSources([{ network: IP2, mask: 0xffffffff }], [{ host: '127.0.0.4', port: exactPort }]), true);
    const got: Array<{ peer: number; text: string }> = [];
    sock.start((count) => {
      for (let i = 0; i < count; i++) got.push({ peer: sock.rx.peers[i], text: sock.rx.bufs[i].toString('utf8', 0, sock.rx.lengths[i]) });
    });

    // 20 outside sources (distinct ports), then the inside ones.
    const outside: dgram.Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const s = await sender('127.0.0.3');
      outside.push(s);
      closers.push(() => s.close());
      await sendTo(s, port, Buffer.from(`outside ${i}`));
    }
    // Another port on 127.0.0.4 is not the exact source named.
    const wrongPort = await sender('127.0.0.4');
    closers.push(() => wrongPort.close());
    await sendTo(wrongPort, port, Buffer.from('wrong port'));
    await until('21 drops counted', () => sock.stats.notAccepted === 21);

    const inside = await sender('127.0.0.2');
    closers.push(() => inside.close());
    await sendTo(inside, port, Buffer.from('inside'));
    await sendTo(exactSender, port, Buffer.from('exact'));
    await until('two datagrams', () => got.length === 2);
    assert.deepEqual(got.map((g) => g.text), ['inside', 'exact']);
    // Peer ids are dense from 0: the first accepted source got 0, so no outside source took one.
    assert.deepEqual(got.map((g) => g.peer), [0, 1]);
    assert.deepEqual(sock.peerAddress(0), { kind: 'udp4', host: '127.0.0.2', port: inside.address().port });
    assert.equal(sock.stats.notAccepted, 21);
    assert.equal(sock.stats.unaddressable, 0);
  });

  it('empty lists accept nothing; no list accepts every source', async () => {
    const closed: BatchSocket = await openBatchSocketWith(impl, { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    closers.push(() => closed.close());
    const open: BatchSocket = await openBatchSocketWith(impl, { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 } });
    closers.push(() => open.close());
    closed.acceptSources([], []);
    let closedGot = 0;
    let openGot = 0;
    closed.start((n) => { closedGot += n; });
    open.start((n) => { openGot += n; });
    const s = await sender('127.0.0.1');
    closers.push(() => s.close());
    await sendTo(s, (closed.localAddress() as { port: number }).port, Buffer.from('x'));
    await sendTo(s, (open.localAddress() as { port: number }).port, Buffer.from('x'));
    await until('the drop and the delivery', () => closed.stats.notAccepted === 1 && openGot === 1);
    assert.equal(closedGot, 0);
    assert.equal(open.stats.notAccepted, 0);
  });
}

describe('batch-io accept list (native)', { skip: nativeAvailable() ? false : `native addon unavailable: ${nativeLoadError()}` }, () => suite('native'));
describe('batch-io accept list (node:dgram fallback)', () => suite('js'));
