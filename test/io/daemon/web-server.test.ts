/**
 * The web view against odd and hostile requests: a real daemon (no ports, a control socket in a
 * temp dir) and its real web server on 127.0.0.1, spoken to over raw TCP so every byte of the
 * request is the test's. A request that throws must cost that request only: any exception that
 * escaped a handler would end this test process, as it ended lanparty.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildConfig } from '../../../src/config/index.js';
import { Daemon } from '../../../src/daemon/index.js';
import { metricsText } from '../../../src/daemon/commands/metrics.js';
import { formatStatus } from '../../../src/cli/status.js';
import { MAX_WEB_CONNECTIONS, parseTarget, startWebView, tokenFrom, type WebView } from '../../../src/daemon/web/server.js';
import { silentLogger } from '../../../src/util/logger.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-web-'));
let daemon: Daemon;
let web: WebView;
let port = 0;
let token = '';

before(async () => {
  daemon = new Daemon(buildConfig({ port: [] }, { dhcp: false, controlSocket: path.join(dir, 'control.sock') }), silentLogger);
  await daemon.start();
  web = await startWebView(daemon, '127.0.0.1:0');
  const u = new URL(web.url);
  port = Number(u.port);
  token = u.searchParams.get('token')!;
});
after(async () => {
  await web?.close();
  await daemon?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Sends `text` as is and resolves with everything the server sent until it closed. */
function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no close within 5 s; got ${JSON.stringify(got.slice(0, 200))}`)); });
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('error', reject);
    s.on('close', () => resolve(got));
    s.write(text);
  });
}

function get(target: string, headers: string[] = []): Promise<string> {
  return raw([`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...headers, '', ''].join('\r\n'));
}

function statusLine(reply: string): string {
  return reply.split('\r\n')[0];
}

test('request targets: origin form only, // is a path', () => {
  assert.equal(parseTarget('//')?.pathname, '//');
  assert.equal(parseTarget('/a?token=x')?.searchParams.get('token'), 'x');
  assert.equal(parseTarget('http://127.0.0.1/'), null);
  assert.equal(parseTarget('*'), null);
  assert.equal(parseTarget(undefined), null);
});

test('cookies: a value that does not decode is no token', () => {
  const none = new URL('http://localhost/');
  assert.equal(tokenFrom('lanparty_token=%', none), null);
  assert.equal(tokenFrom('a=1; lanparty_token=%E0%A4%A', none), null);
  assert.equal(tokenFrom('a=%; lanparty_token=abc', none), 'abc');
  assert.equal(tokenFrom(undefined, none), null);
});

test('GET // and a cookie lanparty_token=% are refused (403), and the view still answers', async () => {
  assert.equal(statusLine(await get('//')), 'HTTP/1.1 403 Forbidden');
  assert.equal(statusLine(await get('//', ['Cookie: lanparty_token=%'])), 'HTTP/1.1 403 Forbidden');
  assert.equal(statusLine(await get('/', ['Cookie: lanparty_token=%'])), 'HTTP/1.1 403 Forbidden');
  assert.equal(statusLine(await get(`//?token=${token}`)), 'HTTP/1.1 404 Not Found', 'with the token, // is a path that is not there');
  assert.equal(statusLine(await get('/', [`Cookie: lanparty_token=${token}`])), 'HTTP/1.1 200 OK');
});

test('an absolute-form target and HTTP that does not parse: 400, counted', async () => {
  const before = { ...web.counters };
  assert.equal(statusLine(await get(`http://127.0.0.1/?token=${token}`)), 'HTTP/1.1 400 Bad Request');
  assert.equal(statusLine(await raw('NOT HTTP AT ALL\r\n\r\n')), 'HTTP/1.1 400 Bad Request');
  assert.equal(web.counters.badRequests, before.badRequests + 2);
  assert.equal(statusLine(await get(`/?token=${token}`)), 'HTTP/1.1 200 OK');
});

test('a handler that throws costs that request: 500, connection closed, counted in status and metrics', async () => {
  const real = daemon.status;
  daemon.status = () => { throw new Error('status exploded'); };
  try {
    const reply = await get(`/api/status?token=${token}`);
    assert.equal(statusLine(reply), 'HTTP/1.1 500 Internal Server Error');
    assert.match(reply, /connection: close/i);
  } finally {
    daemon.status = real;
  }
  assert.equal(web.counters.handlerErrors, 1);
  assert.equal(daemon.status().web?.handlerErrors, 1);
  assert.match(formatStatus(daemon.status()), /^Web view: bad requests \d+, over the connection limit \d+, closed without the token to make room \d+, internal errors 1$/m);
  assert.match(metricsText(daemon), /lanparty_web_refused_total\{reason="handler-error"\} 1/);
  // The control server's counters sit beside them (their own tests are in test/io/control).
  assert.equal(daemon.status().control.handlerErrors, 0);
  assert.match(metricsText(daemon), /lanparty_control_refused_total\{reason="overlong-request"\} 0/);
  assert.equal(statusLine(await get(`/api/status?token=${token}`)), 'HTTP/1.1 200 OK', 'the next request is served');
});

test(`more than ${MAX_WEB_CONNECTIONS} connections: the excess is closed at accept and counted; the view answers again once they go`, async () => {
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < MAX_WEB_CONNECTIONS; i++) {
      held.push(await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
        s.on('error', reject);
      }));
    }
    // The server counts a connection once it has accepted it: one request through each proves it.
    await Promise.all(held.map((s) => new Promise<void>((resolve) => {
      s.once('data', () => resolve());
      s.write(`GET /?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    })));
    const before = web.counters.refusedConnections;
    assert.equal(await raw(`GET /?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`), '', 'closed without a reply');
    assert.equal(web.counters.refusedConnections, before + 1);
  } finally {
    for (const s of held) s.destroy();
  }
  const deadline = Date.now() + 5000;
  for (;;) {
    const reply = await get(`/?token=${token}`).catch(() => '');
    if (statusLine(reply) === 'HTTP/1.1 200 OK') break;
    assert.ok(Date.now() < deadline, 'the view answers again after the held connections close');
    await new Promise((r) => setTimeout(r, 20));
  }
});

test(`${MAX_WEB_CONNECTIONS} idle connections without the token cannot lock the view out: the oldest is closed for a new one`, async () => {
  const held: net.Socket[] = [];
  const closed: number[] = [];
  try {
    for (let i = 0; i < MAX_WEB_CONNECTIONS; i++) {
      const s = await new Promise<net.Socket>((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.1', port }, () => resolve(c));
        c.on('error', reject);
      });
      s.on('error', () => {});
      s.once('close', () => closed.push(i));
      held.push(s);
    }
    const before = web.counters.evictedConnections;
    // The server may not have seen every connect yet; a good request may need a retry or two.
    let reply = '';
    for (let tries = 0; tries < 20 && statusLine(reply) !== 'HTTP/1.1 200 OK'; tries++) reply = await get(`/api/status?token=${token}`).catch(() => '');
    assert.equal(statusLine(reply), 'HTTP/1.1 200 OK', 'a request with the token is served while idle connections fill the limit');
    assert.ok(web.counters.evictedConnections > before, 'an idle connection was closed to make room');
    // The server has destroyed its side; the close reaches this side within a few turns of the loop.
    for (const end = Date.now() + 5000; closed.length === 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 5));
    assert.equal(closed[0], 0, 'the oldest idle connection went first');
  } finally {
    for (const s of held) s.destroy();
  }
});

test('lanparty up --web: GET // and cookie lanparty_token=% leave the process up, and status --json counts a bad request', async () => {
  const { spawn, spawnSync } = await import('node:child_process');
  const { cliPath } = await import('../../../lab/netns-lanparty.js');
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-web-up-'));
  const control = path.join(d, 'c.sock');
  const child = spawn(process.execPath, [cliPath(), 'up', '--no-dhcp', '--control', control, '--lease-file', path.join(d, 'l.json'), '-p', `unix://${d}/s.sock`, '--web', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
  child.stderr.setEncoding('utf8').on('data', (s: string) => { out += s; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const end = Date.now() + 20_000;
    while (!/^ready$/m.test(out) && child.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const m = /http:\/\/127\.0\.0\.1:(\d+)\/\?token=(\S+)/.exec(out);
    assert.ok(m, out);
    const send = (text: string) => new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: Number(m[1]) });
      let got = '';
      s.on('data', (b) => { got += b.toString('latin1'); });
      s.on('error', reject);
      s.on('close', () => resolve(got));
      s.write(text);
    });
    assert.match(await send('GET // HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 403/);
    assert.match(await send('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: lanparty_token=%\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 403/);
    assert.match(await send('GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 400/);
    assert.match(await send(`GET /api/status?token=${m[2]} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 200/);
    assert.equal(child.exitCode, null, 'lanparty is still running');
    // spawnSync is fine here: lanparty answers from its own process.
    const st = spawnSync(process.execPath, [cliPath(), 'status', '--json', '--control', control], { encoding: 'utf8', timeout: 20_000 });
    const report = JSON.parse(st.stdout) as { web: Record<string, number> | null; control: { connections: number } };
    assert.deepEqual(report.web, { badRequests: 1, handlerErrors: 0, refusedConnections: 0, evictedConnections: 0 });
    assert.ok(report.control.connections >= 1, 'the web view holds a subscription');
  } finally {
    child.kill('SIGINT');
    assert.equal(await exited, 0, out);
    fs.rmSync(d, { recursive: true, force: true });
  }
});
