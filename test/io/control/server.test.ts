/**
 * The control server against junk, failing commands, a 16 MiB line, idle and surplus connections,
 * over a real unix socket in a temp dir. Each may cost its own connection, never the server: after
 * each, a fresh connection still gets an answer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ControlServer, MAX_REQUEST_BYTES, request } from '../../../src/control/index.js';
import { LanpartyError } from '../../../src/util/errors.js';
import { silentLogger } from '../../../src/util/logger.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-control-'));
const sockPath = path.join(dir, 'control.sock');
const MAX_CONNS = 6;
const IDLE_MS = 300;
let server: ControlServer;

before(async () => {
  server = new ControlServer(sockPath, silentLogger, { maxConnections: MAX_CONNS, idleMs: IDLE_MS });
  server.register({ name: 'ping', usage: 'ping', handler: () => ({ pong: true }) });
  server.register({ name: 'boom', usage: 'boom', handler: () => { throw new TypeError('cannot read properties of undefined'); } });
  server.register({ name: 'usage', usage: 'usage', handler: () => { throw new LanpartyError('LP_ERR_USAGE', 'usage: wrong'); } });
  server.register({ name: 'bigint', usage: 'bigint', handler: () => ({ n: 1n }) });
  await server.start();
});
after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Conn {
  sock: net.Socket;
  /** Resolves with the next line the server sends (rejects if the connection closes first). */
  line(): Promise<Record<string, unknown>>;
  closed: Promise<void>;
}

/** `allowHalfOpen`: keep writing after the server's end, as a hostile sender would. */
function connect(allowHalfOpen = false): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: sockPath, allowHalfOpen });
    let buf = '';
    const lines: string[] = [];
    const waiting: Array<{ ok: (l: string) => void; fail: (e: Error) => void }> = [];
    let ended = false;
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      while (lines.length > 0 && waiting.length > 0) waiting.shift()!.ok(lines.shift()!);
    });
    sock.on('error', () => {});
    const closed = new Promise<void>((r) => sock.on('close', () => {
      ended = true;
      for (const w of waiting.splice(0)) w.fail(new Error('closed'));
      r();
    }));
    sock.once('connect', () => resolve({
      sock, closed,
      line: () => new Promise((ok, fail) => {
        if (lines.length > 0) return ok(JSON.parse(lines.shift()!));
        if (ended) return fail(new Error('closed'));
        waiting.push({ ok: (l) => ok(JSON.parse(l)), fail });
      }),
    }));
    sock.once('error', reject);
  });
}

async function answers(): Promise<void> {
  assert.deepEqual(await request(sockPath, 'ping'), { pong: true });
}

test('junk lines get an error reply each, counted; the connection goes on', async () => {
  const c = await connect();
  const before = server.counters.badRequests;
  for (const junk of ['not json', '[]', '{"cmd":5}', '{"cmd":"ping","args":[1]}', '{"cmd":"nosuch"}', 'null', '"x"']) {
    c.sock.write(junk + '\n');
    const r = await c.line();
    assert.equal(r.ok, false, junk);
  }
  assert.equal(server.counters.badRequests, before + 7);
  c.sock.write('{"id":9,"cmd":"ping"}\n');
  assert.deepEqual(await c.line(), { id: 9, ok: true, result: { pong: true } });
  c.sock.destroy();
});

test('a handler that throws (a bug) costs its connection: LP_ERR_INTERNAL, closed, counted; a usage error does not', async () => {
  const c = await connect();
  c.sock.write('{"id":1,"cmd":"usage"}\n');
  assert.deepEqual(await c.line(), { id: 1, ok: false, error: { code: 'LP_ERR_USAGE', message: 'usage: wrong' } });
  assert.equal(server.counters.handlerErrors, 0);
  c.sock.write('{"id":2,"cmd":"boom"}\n');
  const r = await c.line();
  assert.equal((r.error as { code: string }).code, 'LP_ERR_INTERNAL');
  assert.match((r.error as { message: string }).message, /boom: cannot read properties of undefined; lanparty goes on/);
  await c.closed;
  // A result that cannot be sent (BigInt) is the same kind of bug.
  await assert.rejects(request(sockPath, 'bigint'), (e: LanpartyError) => e.code === 'LP_ERR_INTERNAL');
  assert.equal(server.counters.handlerErrors, 2);
  await answers();
});

test('an event that cannot be serialised is counted, not thrown into its emitter', async () => {
  const c = await connect();
  c.sock.write('{"id":1,"cmd":"subscribe","args":{"events":["*"]}}\n');
  await c.line();
  const before = server.counters.handlerErrors;
  assert.doesNotThrow(() => server.emit('x:y', { n: 1n }));
  assert.equal(server.counters.handlerErrors, before + 1);
  server.emit('x:z', { n: 1 });
  assert.deepEqual(await c.line(), { event: 'x:z', data: { n: 1 } });
  c.sock.destroy();
});

test(`a 16 MiB line: an error naming the cap (${MAX_REQUEST_BYTES} bytes), the connection closed, the rest never read`, async (t) => {
  const c = await connect(true);
  const before = server.counters.overlongRequests;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const total = 16 << 20;
  let written = 0;
  let failed = false;
  c.sock.on('error', () => { failed = true; });
  const reply = c.line();
  // Write on after the server's end, waiting for drain: what the server does not read stays unwritten.
  while (written < total && !failed && !c.sock.destroyed) {
    const more = c.sock.write(chunk);
    written += chunk.length;
    if (!more) {
      const drained = await Promise.race([new Promise<boolean>((r) => c.sock.once('drain', () => r(true))), c.closed.then(() => false)]);
      if (!drained) break;
    }
  }
  const r = await reply;
  assert.equal(r.ok, false);
  assert.match((r.error as { message: string }).message, new RegExp(`request longer than ${MAX_REQUEST_BYTES} bytes; closing this connection`));
  await c.closed;
  assert.equal(server.counters.overlongRequests, before + 1);
  t.diagnostic(`the sender got ${written} of ${total} bytes out`);
  assert.ok(written < 8 << 20, `the sender got only ${written} bytes out before the server closed (it stops reading at the cap)`);
  await answers();
});

test('a line just under the cap is read as a request', async () => {
  const c = await connect();
  const pad = ' '.repeat(MAX_REQUEST_BYTES - 30);
  c.sock.write(`{"id":3,"cmd":"ping"}${pad}\n`);
  assert.deepEqual(await c.line(), { id: 3, ok: true, result: { pong: true } });
  c.sock.destroy();
});

test('a connection without a complete request is closed after the idle time; one that holds a subscription is not', async () => {
  const before = server.counters.idleClosed;
  const silent = await connect();
  const half = await connect();
  half.sock.write('{"id":1,"cmd":"pi');
  const held = await connect();
  held.sock.write('{"id":1,"cmd":"subscribe"}\n');
  await held.line();
  assert.match(String(((await silent.line()).error as { message: string }).message), /no complete request in 0\.3 s/);
  await Promise.all([silent.closed, half.closed]);
  assert.equal(server.counters.idleClosed, before + 2);
  await new Promise((r) => setTimeout(r, IDLE_MS * 2));
  assert.equal(held.sock.destroyed, false, 'the subscriber is still connected');
  held.sock.write('{"id":2,"cmd":"ping"}\n');
  assert.deepEqual(await held.line(), { id: 2, ok: true, result: { pong: true } });
  held.sock.destroy();
});

test(`beyond ${MAX_CONNS} connections a new one gets an error line and is closed; counted`, async () => {
  const held: Conn[] = [];
  // Wait until the server has let go of earlier tests' connections.
  while (server.connectionCount > 0) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < MAX_CONNS; i++) {
    const c = await connect();
    c.sock.write('{"id":1,"cmd":"subscribe"}\n');
    await c.line();
    held.push(c);
  }
  const before = server.counters.refusedConnections;
  const extra = await connect();
  const r = await extra.line();
  assert.match(String((r.error as { message: string }).message), new RegExp(`lanparty has ${MAX_CONNS} control connections open`));
  await extra.closed;
  assert.equal(server.counters.refusedConnections, before + 1);
  await assert.rejects(request(sockPath, 'ping'), /control connections open/);
  for (const c of held) c.sock.destroy();
  while (server.connectionCount > 0) await new Promise((res) => setTimeout(res, 10));
  await answers();
});
