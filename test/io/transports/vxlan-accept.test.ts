/**
 * A static-mode VXLAN port over a real socket on loopback takes datagrams only from its remotes:
 * a stranger's packet is dropped at the socket before it has a peer id (no state), and counted as
 * an unknown VTEP in status. With accept=any it is taken. Linux answers all of 127.0.0.0/8 on lo.
 *
 *   remote 127.0.0.2 ─╮
 *                     ├─> vxlan://127.0.0.1:P?vni=42&remote=127.0.0.2:R ── switch ── memory port
 *   stranger 127.0.0.3╯
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { Switch } from '../../../src/switch/switch.js';
import { parseLocator } from '../../../src/config/locator.js';
import { openTransport } from '../../../src/daemon/transports.js';
import { silentLogger } from '../../../src/util/logger.js';
import type { VxlanTransport } from '../../../src/transports/vxlan/index.js';
import { MemoryPort, frame } from '../../helpers/memory-port.js';

const closers: Array<() => unknown> = [];
after(async () => { for (const c of closers.reverse()) await c(); });

function vxlan(vni: number, inner: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 0x08;
  h.writeUIntBE(vni, 4, 3);
  return Buffer.concat([h, inner]);
}

async function bound(host: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => { s.once('error', rej); s.bind(0, host, () => res()); });
  closers.push(() => s.close());
  return s;
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function vxlanPort(query: string, remotePort: number): Promise<{ t: VxlanTransport; guest: MemoryPort; port: number }> {
  const probe = await bound('127.0.0.1');
  const port = probe.address().port;
  await new Promise<void>((res) => probe.close(() => res()));
  closers.pop();
  const sw = new Switch({}, silentLogger, Date.now());
  const guest = new MemoryPort('guest');
  sw.addPort(guest);
  const t = openTransport(parseLocator(`vxlan://127.0.0.1:${port}?vni=42&remote=127.0.0.2:${remotePort}${query}`, 'test'),
    { sink: sw, log: silentLogger, maxFrameBytes: 65553 }, 300_000) as VxlanTransport;
  t.tick(Date.now());
  await t.start();
  closers.push(() => t.close());
  return { t, guest, port };
}

const BCAST = 'ff:ff:ff:ff:ff:ff';

test('static mode: a stranger is dropped at the socket and counted as an unknown VTEP; the remote is heard', async () => {
  const remote = await bound('127.0.0.2');
  const stranger = await bound('127.0.0.3');
  const { t, guest, port } = await vxlanPort('', remote.address().port);
  for (let i = 0; i < 5; i++) stranger.send(vxlan(42, frame(BCAST, '02:00:00:00:00:33')), port, '127.0.0.1');
  remote.send(vxlan(42, frame(BCAST, '02:00:00:00:00:0a')), port, '127.0.0.1');
  await until('the remote\'s frame', () => guest.frames.length === 1);
  await until('five strangers counted', () => t.vxlanStatus().counters.rxUnknownVtep === 5);
  assert.equal(t.vx.rxUnknownVtep, 0, 'none reached the VTEP table: dropped at the socket');
  assert.equal(t.vxlanStatus().counters.rxPackets, 6);
  assert.equal(guest.frames[0].readUIntBE(6, 6), 0x02000000000a);
});

test('accept=any: the stranger is a VTEP', async () => {
  const remote = await bound('127.0.0.2');
  const stranger = await bound('127.0.0.3');
  const { t, guest, port } = await vxlanPort('&accept=any', remote.address().port);
  stranger.send(vxlan(42, frame(BCAST, '02:00:00:00:00:33')), port, '127.0.0.1');
  await until('the stranger\'s frame', () => guest.frames.length === 1);
  assert.equal(t.vxlanStatus().counters.rxUnknownVtep, 0);
});
