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

/**
 * Starts the web view on `listen` (loopback only). Stages of a request (WebViewServer.handle):
 * Host header check, request target, token (query or cookie), method, then the route: the event
 * stream, the status JSON or a page file.
 */
export async function startWebView(d: WebViewHost, listen: string): Promise<WebView> {
  const { host, port } = parseWebListen(listen);
  const view = new WebViewServer(d, host);
  await view.listen(port, listen);
  return view;
}

/** One running web view: its HTTP server, its event-stream viewers and its control subscription. */
class WebViewServer implements WebView {
  readonly counters: WebCounters = { badRequests: 0, handlerErrors: 0, refusedConnections: 0, evictedConnections: 0 };
  url = '';
  private readonly token = randomBytes(18).toString('base64url');
  private readonly tokenDigest = digest(this.token);
  private readonly files = pageFiles();
  private readonly clients = new Set<SseClient>();
  /** Connections that sent a request with the token (weak: a closed socket leaves by itself). */
  private readonly proven = new WeakSet<net.Socket>();
  /** Open connections, oldest first (see onConnection). */
  private readonly open = new Set<net.Socket>();
  // Any local user (or a web page that can reach loopback) can trigger these lines.
  private readonly errorLog: RateLimitedLog;
  private readonly refusedLog: RateLimitedLog;
  private doctor: unknown = { available: false, reason: 'not run yet' };
  private doctorAgeS = DOCTOR_EVERY_S;
  private readonly server: http.Server;
  private sub: net.Socket | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly d: WebViewHost, private readonly host: string) {
    this.errorLog = new RateLimitedLog((m) => d.log.error(m));
    this.refusedLog = new RateLimitedLog((m) => d.log.info(m));
    this.server = http.createServer((req, res) => {
      try {
        this.handle(req, res);
      } catch (err) {
        this.failed(req, res, err);
      }
    });
    this.server.keepAliveTimeout = 5000;
    this.server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.server.requestTimeout = 2 * HEADERS_TIMEOUT_MS;
    this.server.on('connection', (socket: net.Socket) => this.onConnection(socket));
    // HTTP that does not parse (or headers too slow): a 400 where the socket still takes one, then closed.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (err.code !== 'ECONNRESET') {
        this.counters.badRequests++;
        if (socket.writable) socket.write('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      }
      socket.destroy();
    });
  }

  /** Binds, then starts the control subscription and the snapshot timer. */
  async listen(port: number, listenText: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => reject(socketSetupError(`--web ${listenText}`, err)));
      this.server.listen(port, this.host, () => resolve());
    });
    const boundPort = (this.server.address() as net.AddressInfo).port;
    this.d.webCounters = this.counters;
    this.server.on('error', (err) => this.d.log.error(`web view: ${err.message}`));
    this.subscribe();
    this.timer = setInterval(() => this.tick(), SNAPSHOT_INTERVAL_MS);
    this.timer.unref();
    void this.refreshDoctor();
    const shownHost = this.host.includes(':') ? `[${this.host}]` : this.host;
    this.url = `http://${shownHost}:${boundPort}/?token=${this.token}`;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.d.webCounters === this.counters) this.d.webCounters = null;
    if (this.timer !== null) clearInterval(this.timer);
    this.sub?.destroy();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private validHost(h: string | undefined): boolean {
    if (h === undefined) return false;
    const name = h.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    return name === 'localhost' || name === '::1' || name === this.host || (net.isIPv4(name) && name.startsWith('127.'));
  }

  private send(c: SseClient, event: string, data: unknown): void {
    if (c.res.destroyed || c.res.writableLength > HIGH_WATER_BYTES) return;
    c.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private broadcast(event: string, data: unknown): void {
    for (const c of this.clients) this.send(c, event, data);
  }

  private snapshot(): { status: StatusReport; doctor: unknown; atMs: number } {
    return { status: this.d.status(), doctor: this.doctor, atMs: Date.now() };
  }

  private async refreshDoctor(): Promise<void> {
    try {
      this.doctor = { available: true, report: await request(this.d.control.socketPath, 'doctor') };
    } catch (err) {
      const e = err as LanpartyError;
      this.doctor = /unknown command/.test(e.message) ? { available: false, reason: 'doctor not available' } : { available: false, reason: `doctor: ${e.message}` };
    }
  }

  /** Every SNAPSHOT_INTERVAL_MS while someone watches: a snapshot, and the doctor now and then. */
  private tick(): void {
    if (this.clients.size === 0) return;
    if (++this.doctorAgeS >= DOCTOR_EVERY_S) {
      this.doctorAgeS = 0;
      void this.refreshDoctor();
    }
    try {
      this.broadcast('snapshot', this.snapshot());
    } catch (err) {
      this.counters.handlerErrors++;
      this.errorLog.write(Date.now(), `web view: a snapshot failed (${(err as Error).message}); the next one comes in ${SNAPSHOT_INTERVAL_MS} ms`);
    }
  }

  /** An exception in a request's handler: a 500 if nothing was sent yet, and the connection closes. */
  private failed(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    this.counters.handlerErrors++;
    // The URL may carry the token: the log names the method and the error only.
    this.errorLog.write(Date.now(), `web view: a ${String(req.method)} request failed (${err instanceof Error ? err.message : String(err)}); answered 500, the view goes on`);
    try {
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end('lanparty: internal error in the web view; see lanparty\'s log\n');
    } catch {
      res.destroy();
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    if (!this.validHost(req.headers.host)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('lanparty: forbidden (unexpected Host header)\n');
      return;
    }
    const url = parseTarget(req.url);
    if (url === null) {
      this.counters.badRequests++;
      res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end('lanparty: bad request target; expected /PATH?QUERY\n');
      return;
    }
    const given = tokenFrom(req.headers.cookie, url);
    if (given === null || !timingSafeEqual(digest(given), this.tokenDigest)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('lanparty: forbidden; open the URL with the token that lanparty up printed\n');
      return;
    }
    this.proven.add(req.socket);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET' }).end('lanparty: only GET\n');
      return;
    }
    if (url.searchParams.has('token')) {
      res.setHeader('set-cookie', `${COOKIE}=${encodeURIComponent(this.token)}; Path=/; HttpOnly; SameSite=Strict`);
    }
    if (url.pathname === '/events') {
      this.openEvents(req, res);
      return;
    }
    if (url.pathname === '/api/status') {
      const body = JSON.stringify(this.snapshot());
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    }
    const f = this.files[url.pathname === '/index.html' ? '/' : url.pathname];
    if (f === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('lanparty: not found\n');
      return;
    }
    fs.readFile(f.file, (err, body) => {
      try {
        sendFile(req, res, url, f.type, err, body);
      } catch (e) {
        this.failed(req, res, e);
      }
    });
  }

  /** The event stream: a snapshot now, then snapshots and LAN events (at most MAX_CLIENTS viewers). */
  private openEvents(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.clients.size >= MAX_CLIENTS) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`lanparty: ${MAX_CLIENTS} viewers already; close one\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    const c: SseClient = { res };
    this.clients.add(c);
    this.send(c, 'snapshot', this.snapshot());
    req.on('close', () => this.clients.delete(c));
  }

  /**
   * At MAX_WEB_CONNECTIONS a new connection closes the oldest one that has not shown the token
   * yet, so idle connections held open by someone without it cannot lock the view out; only when
   * every open connection has shown it is the new one closed.
   */
  private onConnection(socket: net.Socket): void {
    if (this.open.size >= MAX_WEB_CONNECTIONS) {
      let victim: net.Socket | null = null;
      for (const s of this.open) if (!this.proven.has(s)) { victim = s; break; }
      if (victim === null) {
        this.counters.refusedConnections++;
        this.refusedLog.write(Date.now(), `web view: ${MAX_WEB_CONNECTIONS} connections open, all with the token; closed a new one (${this.counters.refusedConnections} so far)`);
        socket.destroy();
        return;
      }
      this.counters.evictedConnections++;
      this.refusedLog.write(Date.now(), `web view: ${MAX_WEB_CONNECTIONS} connections open, the most it takes; closed the oldest without the token (${this.counters.evictedConnections} so far)`);
      this.open.delete(victim);
      victim.destroy();
    }
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
  }

  /** Control events, through a subscription like any other client's (again a second after it drops). */
  private subscribe(): void {
    if (this.closed) return;
    const s = net.connect({ path: this.d.control.socketPath });
    this.sub = s;
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
          if (typeof msg.event === 'string') this.broadcast('lan', { event: msg.event, data: msg.data, atMs: Date.now() });
        } catch { /* Not JSON: ignore the line. */ }
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      if (!this.closed) setTimeout(() => this.subscribe(), 1000).unref();
    });
  }
}

/** A page file's answer (a 500 naming the file when it is missing from the install). */
function sendFile(req: http.IncomingMessage, res: http.ServerResponse, url: URL, type: string, err: NodeJS.ErrnoException | null, body: Buffer): void {
  if (err) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`lanparty: ${url.pathname} is missing from this install (${err.code}); rebuild with npm run build\n`);
    return;
  }
  res.writeHead(200, {
    'content-type': type,
    // Everything comes from this server; nothing from the network.
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  }).end(req.method === 'HEAD' ? undefined : body);
}
