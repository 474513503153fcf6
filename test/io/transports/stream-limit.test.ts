/**
 * A stream listener takes at most its cap of connections (MAX_STREAM_CONNECTIONS, here 3): one more
 * is closed at accept without becoming a switch port, and counted on the transport's status row
 * and in the metrics; once one goes, a new one is taken again. Real unix and tcp connections to a
 * real listener and switch, in this process.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from 'node:net';
import { MAX_STREAM_CONNECTIONS, StreamListener, type StreamAddress } from '../../../src/transports/stream/index.js';
import { Switch } from '../../../src/switch/switch.js';
import { silentLogger } from '../../../src/util/logger.js';

const CAP = 3;
const dir = mkdtempSync(join(tmpdir(), 'lp-streamcap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('the cap is 1024 connections per listener', () => {
  assert.equal(MAX_STREAM_CONNECTIONS, 1024);
});

for (const addr of [{ kind: 'unix', path: join(dir, 'port.sock') }, { kind: 'tcp', host: '127.0.0.1', port: 0 }] as StreamAddress[]) {
  test(`${addr.kind}: connection ${CAP + 1} is closed at accept and counted; a place that frees up is taken again`, async () => {
    const sw = new Switch({}, silentLogger);
    if (addr.kind === 'tcp') {
      // A free port: bind one, note it, let it go.
      const probe = net.createServer();
      await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
      addr.port = (probe.address() as net.AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
    }
    const url = addr.kind === 'unix' ? `unix://${addr.path}` : `tcp://127.0.0.1:${addr.port}`;
    const t = new StreamListener(url, addr, { sink: sw, log: silentLogger, maxFrameBytes: 1514 }, CAP);
    await t.start();
    const socks: net.Socket[] = [];
    const open = async (): Promise<{ sock: net.Socket; closed: Promise<void> }> => {
      const sock = addr.kind === 'unix' ? net.connect(addr.path) : net.connect(addr.port, '127.0.0.1');
      socks.push(sock);
      sock.on('error', () => {});
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      await new Promise<void>((r) => sock.once('connect', r));
      return { sock, closed };
    };
    try {
      const held = [];
      for (let i = 0; i < CAP; i++) held.push(await open());
      await until(`${CAP} ports`, () => sw.ports.length === CAP);
      const extra = await open();
      let gone = false;
      void extra.closed.then(() => { gone = true; });
      await until('the connection over the cap to be closed by the listener', () => gone, 3000);
      assert.equal(sw.ports.length, CAP, 'the refused connection never became a port');
      assert.equal(t.status().refusedConnections, 1);
      assert.equal(t.status().portCount, CAP);
      held[0].sock.destroy();
      await until('the port of the closed connection to go', () => sw.ports.length === CAP - 1);
      await open();
      await until('a new connection to be taken', () => sw.ports.length === CAP);
      assert.equal(t.status().refusedConnections, 1);
    } finally {
      for (const s of socks) s.destroy();
      await t.close();
    }
  });
}
