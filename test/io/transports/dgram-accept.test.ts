/**
 * A udp port's accept list end to end: locator → transport → switch, over real sockets on
 * loopback (Linux answers all of 127.0.0.0/8 on lo, so 127.0.0.2 is a guest inside the list and
 * 127.0.0.3 a stranger outside it). A stranger's datagram makes no port, so the LAN's floods never
 * reach it; the drops are counted in the transport's socket stats.
 *
 *   guest A 127.0.0.2:a ─╮                            ╭─ switch (learns, floods)
 *   guest B 127.0.0.2:b ─┼─> udp://127.0.0.1:P?accept=127.0.0.2 ─╯
 *   stranger 127.0.0.3:s ╯   (dropped before it has a peer id)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { Switch } from '../../../src/switch/switch.js';
import { parseLocator } from '../../../src/config/locator.js';
import { openTransport } from '../../../src/daemon/transports.js';
import type { Transport } from '../../../src/transports/transport.js';
import { createLogger, silentLogger } from '../../../src/util/logger.js';
import { frame } from '../../helpers/memory-port.js';
import { NOT_ACCEPTED_LOG_INTERVAL_MS } from '../../../src/transports/dgram/index.js';

const closers: Array<() => unknown> = [];
after(async () => { for (const c of closers.reverse()) await c(); });

interface Node { sock: dgram.Socket; got: Buffer[] }

async function node(host: string): Promise<Node> {
  const sock = dgram.createSocket('udp4');
  const n: Node = { sock, got: [] };
  sock.on('message', (m) => n.got.push(m));
  await new Promise<void>((res, rej) => { sock.once('error', rej); sock.bind(0, host, () => res()); });
  closers.push(() => sock.close());
  return n;
}

function send(n: Node, port: number, f: Buffer): Promise<void> {
  return new Promise((res, rej) => n.sock.send(f, port, '127.0.0.1', (err) => (err ? rej(err) : res())));
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A free udp port on 127.0.0.1 (the locator takes no port 0). */
async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  const p = s.address().port;
  await new Promise<void>((res) => s.close(() => res()));
  return p;
}

async function start(url: string, sw: Switch, lines: string[] = []): Promise<Transport> {
  const t = openTransport(parseLocator(url, 'test'), { sink: sw, log: createLogger((l) => lines.push(l)), maxFrameBytes: 65553 }, 300_000);
  t.tick(Date.now());
  await t.start();
  closers.push(() => t.close());
  return t;
}

const BROADCAST = 'ff:ff:ff:ff:ff:ff';

test('accept=: a stranger gets no port and none of the LAN\'s floods, and is counted; guests inside talk', async () => {
  const sw = new Switch({}, silentLogger, Date.now());
  const port = await freePort();
  const lines: string[] = [];
  const t = await start(`udp://127.0.0.1:${port}?accept=127.0.0.2`, sw, lines);
  const stranger = await node('127.0.0.3');
  const a = await node('127.0.0.2');
  const b = await node('127.0.0.2');

  await send(stranger, port, frame(BROADCAST, '02:00:00:00:00:33'));
  await send(a, port, frame(BROADCAST, '02:00:00:00:00:0a'));
  await send(b, port, frame(BROADCAST, '02:00:00:00:00:0b'));
  await until('b\'s broadcast at a', () => a.got.length === 1);
  await send(stranger, port, frame('02:00:00:00:00:0a', '02:00:00:00:00:33'));
  await send(a, port, frame(BROADCAST, '02:00:00:00:00:0a'));
  await until('a\'s second broadcast at b', () => b.got.length === 1);
  await until('both stranger datagrams counted', () => t.status().socket!.notAccepted === 2);

  assert.equal(stranger.got.length, 0, 'the stranger received nothing');
  assert.equal(t.status().portCount, 2, 'one port per guest, none for the stranger');
  assert.equal(sw.table.size, 2, 'the stranger\'s MAC was never learned');
  assert.equal(a.got[0].readUIntBE(6, 6), 0x02000000000b);

  // The drops are logged from the tick, at most once per NOT_ACCEPTED_LOG_INTERVAL_MS.
  const now = Date.now();
  t.tick(now);
  await send(stranger, port, frame(BROADCAST, '02:00:00:00:00:33'));
  await until('the third drop', () => t.status().socket!.notAccepted === 3);
  t.tick(now + 1000);
  t.tick(now + NOT_ACCEPTED_LOG_INTERVAL_MS);
  const drops = lines.filter((l) => l.includes('outside its accept list'));
  assert.deepEqual(drops, [
    `port udp://127.0.0.1:${port}?accept=127.0.0.2: dropped 2 datagrams from sources outside its accept list (2 in all, socket.notAccepted in status)`,
    `port udp://127.0.0.1:${port}?accept=127.0.0.2: dropped 1 datagrams from sources outside its accept list (3 in all, socket.notAccepted in status)`,
  ]);
});

test('peer= without accept=: only the fixed peers are taken', async () => {
  const sw = new Switch({}, silentLogger, Date.now());
  const port = await freePort();
  const peer = await node('127.0.0.2');
  const other = await node('127.0.0.2');
  const t = await start(`udp://127.0.0.1:${port}?peer=127.0.0.2:${peer.sock.address().port}`, sw);
  await send(other, port, frame(BROADCAST, '02:00:00:00:00:0c'));
  await send(peer, port, frame(BROADCAST, '02:00:00:00:00:0d'));
  await until('the other source counted', () => t.status().socket!.notAccepted === 1);
  await until('the peer\'s MAC learned', () => sw.table.size === 1);
  assert.equal(t.status().portCount, 1);
});

test('accept=any beyond loopback says what it exposes; a bare bind beyond loopback is refused', async () => {
  assert.throws(() => parseLocator('udp://0.0.0.0:33001', 'port[0].url'),
    /^LanpartyError: port\[0\]\.url: "udp:\/\/0\.0\.0\.0:33001" listens beyond loopback and takes every source: any host that can reach 0\.0\.0\.0:33001 could read the LAN's broadcasts and join it\. Name the guests' sources with accept=CIDR/);
  const sw = new Switch({}, silentLogger, Date.now());
  const lines: string[] = [];
  await start('udp://0.0.0.0:0?accept=any'.replace(':0?', `:${await freePort()}?`), sw, lines);
  assert.ok(lines.some((l) => /^warning: port udp:\/\/0\.0\.0\.0:\d+\?accept=any takes datagrams from every source on 0\.0\.0\.0:\d+: any host that can reach it can read the LAN's broadcasts and join it\. To limit it, .*accept=CIDR/.test(l)), lines.join('\n'));
});
