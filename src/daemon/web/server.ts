/**
 * The live web view (`lanparty up --web [127.0.0.1:PORT]`, off by default): a page served by
 * node:http on a loopback address only, guarded by a random token in the printed URL.
 *
 * Stages per request: Host check (loopback names only, against DNS rebinding) → request target
 * (origin form `/path?query` only; anything else, or one that does not parse, is a 400) → token
 * check (query `token=` or the cookie set on the first good request, a cookie that does not decode
 * counting as none; compared with timingSafeEqual over SHA-256 digests so the length leaks
 * nothing) → route: the page (index.html, style.css, app.js from tsc's output), GET /api/status
 * (one snapshot), GET /events (Server-Sent Events).
 *
 * Every request runs inside a guard: an exception costs that request only (a 500, and the
 * connection closes), is counted (`handlerErrors`) and logged at a limited rate. Connections are
 * capped (MAX_WEB_CONNECTIONS): a new one closes the oldest that has not shown the token
 * (`evictedConnections`), or itself when all have (`refusedConnections`); and
 * a request's headers must arrive within HEADERS_TIMEOUT_MS. The counters are in `status` (`web`)
 * and the metrics.
 *
 * The event stream carries a `snapshot` every second (the daemon's status, named guests, doctor
 * findings refreshed every DOCTOR_EVERY_S seconds) and each control event (port:up, port:down,
 * mac:move, guest:up, lease events...) as it happens. Events come from a control-socket
 * subscription, so the page sees exactly what `lanparty` scripts see. Clients are bounded
 * (MAX_CLIENTS); a client whose socket backs up past HIGH_WATER_BYTES misses snapshots until it
 * drains rather than growing memory.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import * as fs from 'node:fs';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type Logger, LanpartyError, socketSetupError, RateLimitedLog } from '../../util/index.js';
import type { StatusReport } from '../status.js';
import { request } from '../../control/index.js';

const MAX_CLIENTS = 32;
/** Open connections at once (event streams, page loads, keep-alive); more are closed at accept. */
export const MAX_WEB_CONNECTIONS = 64;
/** Time a client has to send a request's headers before its connection is closed. */
const HEADERS_TIMEOUT_MS = 10_000;
const HIGH_WATER_BYTES = 1 << 20;
const SNAPSHOT_INTERVAL_MS = 1000;
const DOCTOR_EVERY_S = 5;
const COOKIE = 'lanparty_token';

/** What the web view refused or failed at, for `status` (web) and the metrics. */
export interface WebCounters {
  /** Requests refused with a 400: a request target that is not `/path?query`, or HTTP that does not parse. */
  badRequests: number;
  /** Requests whose handler threw: answered with a 500 (or cut off), the connection closed. */
  handlerErrors: number;
  /** Connections closed at accept because MAX_WEB_CONNECTIONS were open, every one with the token. */
  refusedConnections: number;
  /** Connections without the token closed to make room for a new one at MAX_WEB_CONNECTIONS. */
  evictedConnections: number;
}

/** What the web view uses of the daemon; it sets webCounters while it runs. */
export interface WebViewHost {
  readonly log: Logger;
  readonly control: { readonly socketPath: string };
  status(): StatusReport;
  webCounters: WebCounters | null;
}

export interface WebView {
  /** The URL to open, with the token. */
  readonly url: string;
  readonly counters: WebCounters;
  close(): Promise<void>;
}

/** Parses `--web` (HOST:PORT, :PORT or PORT); only loopback hosts are accepted. */
export function parseWebListen(text: string): { host: string; port: number } {
  const t = text.trim();
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(t);
  if (!m || Number(m[2]) > 65535) throw new LanpartyError('LP_ERR_USAGE', `--web "${text}": expected HOST:PORT on this host, e.g. 127.0.0.1:8080 (port 0 picks a free one)`);
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '') || '127.0.0.1';
  const loopback = host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
  if (!loopback) throw new LanpartyError('LP_ERR_USAGE', `--web "${text}": the web view listens on this host only; use 127.0.0.1:PORT (or ssh -L to reach it from elsewhere)`);
  return { host, port: Number(m[2]) };
}

/** Where the page's files are: src/daemon/web/page (html, css) and tsc's output of page/app.ts. */
function pageFiles(): Record<string, { file: URL; type: string }> {
  // This module runs as dist/src/daemon/web/server.js; the static files stay in src/ (the package
  // ships both), app.js is compiled next to this file.
  const src = new URL('../../../../src/daemon/web/page/', import.meta.url);
  return {
    '/': { file: new URL('index.html', src), type: 'text/html; charset=utf-8' },
    '/style.css': { file: new URL('style.css', src), type: 'text/css; charset=utf-8' },
    '/app.js': { file: new URL('./page/app.js', import.meta.url), type: 'text/javascript; charset=utf-8' },
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The URL of an origin-form request target (`/path?query`), or null for any other form (absolute,
 * authority, `*`) or one that does not parse. `//` is a path here, not a scheme-relative URL.
 */
export function parseTarget(target: string | undefined): URL | null {
  if (target === undefined || target.charCodeAt(0) !== 0x2f) return null;
  try {
    return new URL(`http://localhost${target}`);
  } catch {
    return null;
  }
}

/** The token from the query, else from the cookie; a cookie value that does not decode is no token. */
export function tokenFrom(cookieHeader: string | undefined, url: URL): string | null {
  const q = url.searchParams.get('token');
  if (q !== null) return q;
  for (const part of (cookieHeader ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== COOKIE) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return null;
    }
  }
  return null;
}

interface SseClient {
  res: http.ServerResponse;
}

export async function startWebView(d: WebViewHost, listen: string): Promise<WebView> {
  const { host, port } = parseWebListen(listen);
  const token = randomBytes(18).toString('base64url');
  const tokenDigest = digest(token);
  const files = pageFiles();
  const clients = new Set<SseClient>();
  const counters: WebCounters = { badRequests: 0, handlerErrors: 0, refusedConnections: 0, evictedConnections: 0 };
  /** Connections that sent a request with the token (weak: a closed socket leaves by itself). */
  const proven = new WeakSet<net.Socket>();
  // Any local user (or a web page that can reach loopback) can trigger these lines.
  const errorLog = new RateLimitedLog((m) => d.log.error(m));
  const refusedLog = new RateLimitedLog((m) => d.log.info(m));
  let doctor: unknown = { available: false, reason: 'not run yet' };
  let doctorAgeS = DOCTOR_EVERY_S;
  let boundPort = port;

  const validHost = (h: string | undefined): boolean => {
    if (h === undefined) return false;
    const name = h.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    return name === 'localhost' || name === '::1' || name === host || (net.isIPv4(name) && name.startsWith('127.'));
  };

  const send = (c: SseClient, event: string, data: unknown): void => {
    if (c.res.destroyed || c.res.writableLength > HIGH_WATER_BYTES) return;
    c.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: unknown): void => {
    for (const c of clients) send(c, event, data);
  };
  const snapshot = () => ({ status: d.status(), doctor, atMs: Date.now() });

  const refreshDoctor = async (): Promise<void> => {
    try {
      doctor = { available: true, report: await request(d.control.socketPath, 'doctor') };
    } catch (err) {
      const e = err as LanpartyError;
      doctor = /unknown command/.test(e.message) ? { available: false, reason: 'doctor not available' } : { available: false, reason: `doctor: ${e.message}` };
    }
  };

  /** An exception in a request's handler: a 500 if nothing was sent yet, and the connection closes. */
  const failed = (req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void => {
    counters.handlerErrors++;
    // The URL may carry the token: the log names the method and the error only.
    errorLog.write(Date.now(), `web view: a ${String(req.method)} request failed (${err instanceof Error ? err.message : String(err)}); answered 500, the view goes on`);
    try {
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end('lanparty: internal error in the web view; see lanparty\'s log\n');
    } catch {
      res.destroy();
    }
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    if (!validHost(req.headers.host)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('lanparty: forbidden (unexpected Host header)\n');
      return;
    }
    const url = parseTarget(req.url);
    if (url === null) {
      counters.badRequests++;
      res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end('lanparty: bad request target; expected /PATH?QUERY\n');
      return;
    }
    const given = tokenFrom(req.headers.cookie, url);
    if (given === null || !timingSafeEqual(digest(given), tokenDigest)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('lanparty: forbidden; open the URL with the token that lanparty up printed\n');
      return;
    }
    proven.add(req.socket);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET' }).end('lanparty: only GET\n');
      return;
    }
    if (url.searchParams.has('token')) {
      res.setHeader('set-cookie', `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`);
    }
    if (url.pathname === '/events') {
      if (clients.size >= MAX_CLIENTS) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end(`lanparty: ${MAX_CLIENTS} viewers already; close one\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
      const c: SseClient = { res };
      clients.add(c);
      send(c, 'snapshot', snapshot());
      req.on('close', () => clients.delete(c));
      return;
    }
    if (url.pathname === '/api/status') {
      const body = JSON.stringify(snapshot());
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    }
    const f = files[url.pathname === '/index.html' ? '/' : url.pathname];
    if (f === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('lanparty: not found\n');
      return;
    }
    fs.readFile(f.file, (err, body) => {
      try {
        sendFile(req, res, url, f.type, err, body);
      } catch (e) {
        failed(req, res, e);
      }
    });
  };

  const sendFile = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, type: string, err: NodeJS.ErrnoException | null, body: Buffer): void => {
    if (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`lanparty: ${url.pathname} is missing from this install (${err.code}); rebuild with npm run build\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': type,
      // Everything comes from this server; nothing from the network.
      'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    }).end(req.method === 'HEAD' ? undefined : body);
  };

  const server = http.createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      failed(req, res, err);
    }
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = 2 * HEADERS_TIMEOUT_MS;
  // At MAX_WEB_CONNECTIONS a new connection closes the oldest one that has not shown the token
  // yet, so idle connections held open by someone without it cannot lock the view out; only when
  // every open connection has shown it is the new one closed.
  const open = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    if (open.size >= MAX_WEB_CONNECTIONS) {
      let victim: net.Socket | null = null;
      for (const s of open) if (!proven.has(s)) { victim = s; break; }
      if (victim === null) {
        counters.refusedConnections++;
        refusedLog.write(Date.now(), `web view: ${MAX_WEB_CONNECTIONS} connections open, all with the token; closed a new one (${counters.refusedConnections} so far)`);
        socket.destroy();
        return;
      }
      counters.evictedConnections++;
      refusedLog.write(Date.now(), `web view: ${MAX_WEB_CONNECTIONS} connections open, the most it takes; closed the oldest without the token (${counters.evictedConnections} so far)`);
      open.delete(victim);
      victim.destroy();
    }
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  // HTTP that does not parse (or headers too slow): a 400 where the socket still takes one, then closed.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code !== 'ECONNRESET') {
      counters.badRequests++;
      if (socket.writable) socket.write('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    }
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(socketSetupError(`--web ${listen}`, err)));
    server.listen(port, host, () => resolve());
  });
  boundPort = (server.address() as net.AddressInfo).port;
  d.webCounters = counters;
  server.on('error', (err) => d.log.error(`web view: ${err.message}`));

  // Control events, through a subscription like any other client's.
  let sub: net.Socket | null = null;
  let closed = false;
  const subscribe = () => {
    if (closed) return;
    const s = net.connect({ path: d.control.socketPath });
    sub = s;
    let pending = '';
    s.on('connect', () => s.write(JSON.stringify({ id: 1, cmd: 'subscribe', args: { events: ['*'] } }) + '\n'));
    s.on('data', (chunk) => {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const msg = JSON.parse(line) as { event?: string; data?: unknown };
          if (typeof msg.event === 'string') broadcast('lan', { event: msg.event, data: msg.data, atMs: Date.now() });
        } catch { /* Not JSON: ignore the line. */ }
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      if (!closed) setTimeout(subscribe, 1000).unref();
    });
  };
  subscribe();

  const timer = setInterval(() => {
    if (clients.size === 0) return;
    if (++doctorAgeS >= DOCTOR_EVERY_S) {
      doctorAgeS = 0;
      void refreshDoctor();
    }
    try {
      broadcast('snapshot', snapshot());
    } catch (err) {
      counters.handlerErrors++;
      errorLog.write(Date.now(), `web view: a snapshot failed (${(err as Error).message}); the next one comes in ${SNAPSHOT_INTERVAL_MS} ms`);
    }
  }, SNAPSHOT_INTERVAL_MS);
  timer.unref();
  void refreshDoctor();

  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${boundPort}/?token=${token}`,
    counters,
    close: async () => {
      closed = true;
      if (d.webCounters === counters) d.webCounters = null;
      clearInterval(timer);
      sub?.destroy();
      for (const c of clients) c.res.end();
      clients.clear();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
