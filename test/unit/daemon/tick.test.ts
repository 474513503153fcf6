import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../../../src/daemon/daemon.js';
import { buildConfig } from '../../../src/config/load.js';
import { silentLogger, type Logger } from '../../../src/util/logger.js';

test('a transport whose tick throws costs a counted, logged error; the switch, the other transports and the next tick still run', () => {
  const lines: string[] = [];
  const log: Logger = { error: (m: string) => lines.push(m), info: () => {}, debug: () => {}, child: () => log };
  const d = new Daemon(buildConfig({}, { controlSocket: '/nonexistent/lp.sock' }), log);
  let ticked = 0;
  const fake = (url: string, tick: () => void) => ({ url, tick }) as never;
  d.transports.push(fake('udp://bad', () => { throw new Error('tick bug'); }), fake('udp://good', () => { ticked++; }));
  d.tick(5000);
  d.tick(6000);
  assert.equal(ticked, 2);
  assert.equal(d.internalErrors, 2);
  assert.equal(d.sw.now(), 6000);
  assert.match(lines[0], /udp:\/\/bad.*tick bug/);
});

test('a switch event handler that throws (a port whose endpoint() throws) is counted, not rethrown', () => {
  const d = new Daemon(buildConfig({}, { controlSocket: '/nonexistent/lp.sock' }), silentLogger);
  const bad = { id: 9, name: 'bad', kind: 'test', endpoint: () => { throw new Error('endpoint bug'); } };
  // The handler diagnostics_channel would call (it rethrows a subscriber's error as uncaught).
  (d as unknown as { onPortUp(m: unknown): void }).onPortUp({ port: bad });
  assert.equal(d.internalErrors, 1);
});
