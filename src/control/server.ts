/**
 * Control server: a unix socket with owner-only permissions (directory 0700, socket 0600) and a
 * registry of named commands with usage text, after OVS's unixctl. Nothing listens on a network
 * port. Each connection reads JSON lines. What one connection sends can cost that connection only:
 *   - a line that is not a request gets an error reply (`badRequests`);
 *   - a line longer than MAX_REQUEST_BYTES gets an error reply and the connection is closed; the
 *     server stops reading it at the cap, so a 16 MiB line is never buffered (`overlongRequests`);
 *   - a command whose handler fails with anything but a LanpartyError (a bug) gets an
 *     LP_ERR_INTERNAL reply and the connection is closed (`handlerErrors`, logged rate-limited);
 *   - a connection that has sent no complete request for CONTROL_IDLE_MS is closed (`idleClosed`);
 *     one that holds a subscription or a guest name after a request may stay idle for as long as
 *     it likes;
 *   - beyond MAX_CONTROL_CONNECTIONS, a new connection gets an error line and is closed
 *     (`refusedConnections`).
 * The counters are in `status` (control) and the metrics.
 */
import * as net from 'node:net';
import * as fs from 'node:fs';
import { LanpartyError, socketSetupError, prepareUnixPath, RateLimitedLog, type Logger } from '../util/index.js';
import { MAX_REQUEST_BYTES, type ControlEvent, type ControlReply, type ControlRequest } from './protocol.js';

/**
 * Control connections open at once. Each `lanparty qemu` holds one while its guest runs (at most
 * 4096 named guests), and status, capture, the web view and scripts need a few more.
 */
export const MAX_CONTROL_CONNECTIONS = 4096 + 256;
/** Time a connection has to complete a request (its first, or one it has begun) before it is closed. */
export const CONTROL_IDLE_MS = 30_000;
/** Bytes of replies and events queued for one connection before more are dropped (a reader that stopped). */
const WRITE_QUEUE_LIMIT_BYTES = 8 << 20;

/** What the control server refused or failed at, for `status` (control) and the metrics. */
export interface ControlCounters {
  /** Lines that were not a request ({"id":N,"cmd":"..."}): answered with an error. */
  badRequests: number;
  /** Lines longer than MAX_REQUEST_BYTES: answered with an error, connection closed. */
  overlongRequests: number;
  /** Handlers that failed with something other than a LanpartyError (a bug): connection closed. */
  handlerErrors: number;
  /** Connections closed after CONTROL_IDLE_MS without a complete request. */
  idleClosed: number;
  /** Connections refused because MAX_CONTROL_CONNECTIONS were open. */
  refusedConnections: number;
}

export interface ControlConnection {
  readonly socket: net.Socket;
  /** Sends one JSON line. */
  write(msg: ControlReply | ControlEvent): void;
  /** Subscribed event names ('*' for all). */
  readonly subscriptions: Set<string>;
  /** Set by a command that takes the connection over (no more JSON requests are read). */
  takenOver: boolean;
}

export interface ControlCommand {
  name: string;
  usage: string;
  /** Returns the result, or throws a LanpartyError. */
  handler(args: Record<string, unknown>, conn: ControlConnection): unknown | Promise<unknown>;
}

export class ControlServer {
  private readonly commands = new Map<string, ControlCommand>();
  private readonly conns = new Set<ControlConnection>();
  private server: net.Server | null = null;
  readonly counters: ControlCounters = { badRequests: 0, overlongRequests: 0, handlerErrors: 0, idleClosed: 0, refusedConnections: 0 };
  /** Lines about connections that misbehave: any local program of this user can trigger them. */
  private readonly rlog: RateLimitedLog;

  private readonly maxConnections: number;
  private readonly idleMs: number;

  /** `limits` is for tests; lanparty uses MAX_CONTROL_CONNECTIONS and CONTROL_IDLE_MS. */
  constructor(readonly socketPath: string, private readonly log: Logger, limits: { maxConnections?: number; idleMs?: number } = {}) {
    this.maxConnections = limits.maxConnections ?? MAX_CONTROL_CONNECTIONS;
    this.idleMs = limits.idleMs ?? CONTROL_IDLE_MS;
    this.rlog = new RateLimitedLog((m) => log.error(m));
    this.register({ name: 'help', usage: 'help: list commands', handler: () => [...this.commands.values()].map((c) => c.usage) });
    this.register({
      name: 'subscribe', usage: 'subscribe {events?: string[]}: stream events (port:up, port:down, mac:move, lease:granted, ...)',
      handler: (args, conn) => {
        const ev = Array.isArray(args.events) ? (args.events as string[]) : ['*'];
        for (const e of ev) conn.subscriptions.add(String(e));
        return { subscribed: [...conn.subscriptions] };
      },
    });
  }

  register(cmd: ControlCommand): void {
    this.commands.set(cmd.name, cmd);
  }

  /** Sends an event to every connection subscribed to it. */
  emit(event: string, data: unknown): void {
    if (this.conns.size === 0) return;
    const prefix = event.split(':')[0];
    let line: string | null = null;
    for (const c of this.conns) {
      if (!(c.subscriptions.has('*') || c.subscriptions.has(event) || c.subscriptions.has(prefix))) continue;
      if (line === null) {
        try {
          line = JSON.stringify({ event, data }) + '\n';
        } catch (err) {
          this.counters.handlerErrors++;
          this.rlog.write(Date.now(), `event ${event} could not be sent (${(err as Error).message}); subscribers miss it`);
          return;
        }
      }
      writeLine(c.socket, line);
    }
  }

  /** Open connections now. */
  get connectionCount(): number {
    return this.conns.size;
  }

  async start(): Promise<void> {
    await prepareUnixPath(this.socketPath, `control socket ${this.socketPath}`, 'stop it (lanparty status shows it) or pass --control PATH');
    const server = net.createServer((sock) => this.accept(sock));
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(socketSetupError(`control socket ${this.socketPath}`, err)));
        server.listen({ path: this.socketPath, exclusive: true }, resolve);
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(this.socketPath, 0o600);
    server.on('error', (err) => this.log.error(`control socket: ${err.message}`));
    this.server = server;
  }

  private accept(sock: net.Socket): void {
    sock.on('error', () => {});
    if (this.conns.size >= this.maxConnections) {
      this.counters.refusedConnections++;
      this.rlog.write(Date.now(), `${this.maxConnections} connections open, the most it takes; refused a new one (${this.counters.refusedConnections} so far)`);
      const reply: ControlReply = { id: 0, ok: false, error: { code: 'LP_ERR_CONTROL', message: `lanparty has ${this.maxConnections} control connections open, the most it takes (each lanparty qemu holds one); close some and retry` } };
      sock.end(JSON.stringify(reply) + '\n', () => sock.destroy());
      return;
    }
    const conn: ControlConnection = {
      socket: sock,
      subscriptions: new Set(),
      takenOver: false,
      write: (msg) => writeLine(sock, JSON.stringify(msg) + '\n'),
    };
    this.conns.add(conn);
    // The line being read: chunks after the last newline, `size` bytes in all (at most MAX_REQUEST_BYTES).
    let parts: Buffer[] = [];
    let size = 0;
    let requests = 0;
    let closing = false;
    /** Replies with an error, then closes: no more of the connection is read. */
    const refuse = (message: string): void => {
      closing = true;
      parts = [];
      size = 0;
      sock.pause();
      sock.setTimeout(0);
      if (sock.destroyed) return;
      const reply: ControlReply = { id: 0, ok: false, error: { code: 'LP_ERR_CONTROL', message } };
      sock.end(JSON.stringify(reply) + '\n', () => sock.destroy());
      // A client that neither reads nor closes cannot hold the connection.
      setTimeout(() => sock.destroy(), 1000).unref();
    };
    const overlong = (): void => {
      this.counters.overlongRequests++;
      this.rlog.write(Date.now(), `a request line longer than ${MAX_REQUEST_BYTES} bytes; closed that connection`);
      refuse(`request longer than ${MAX_REQUEST_BYTES} bytes; closing this connection (send one JSON request per line)`);
    };
    sock.setTimeout(this.idleMs);
    sock.on('timeout', () => {
      if (closing || conn.takenOver) return;
      this.counters.idleClosed++;
      refuse(`no complete request in ${this.idleMs / 1000} s; closing this connection (send one JSON request per line, ending in a newline)`);
    });
    sock.on('data', (chunk: Buffer) => {
      if (conn.takenOver || closing) return;
      try {
        let start = 0;
        for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
          if (size + nl - start > MAX_REQUEST_BYTES) return overlong();
          let line: Buffer;
          if (size === 0) {
            line = chunk.subarray(start, nl);
          } else {
            parts.push(chunk.subarray(start, nl));
            line = Buffer.concat(parts, size + nl - start);
            parts = [];
            size = 0;
          }
          start = nl + 1;
          const text = line.toString('utf8');
          if (text.trim()) {
            requests++;
            this.handle(text, conn).catch((err: unknown) => this.failedRead(conn, err));
          }
          if (conn.takenOver || closing) return;
        }
        const rest = chunk.length - start;
        if (rest > 0) {
          if (size + rest > MAX_REQUEST_BYTES) return overlong();
          parts.push(start === 0 ? chunk : chunk.subarray(start));
          size += rest;
        }
        // Idle is limited while a request is due: before the first, and while one is half sent.
        sock.setTimeout(size > 0 || requests === 0 ? this.idleMs : 0);
      } catch (err) {
        this.failedRead(conn, err);
      }
    });
    sock.on('close', () => this.conns.delete(conn));
  }

  /** An exception outside a command's handler (a bug): counted, logged, that connection closed. */
  private failedRead(conn: ControlConnection, err: unknown): void {
    this.counters.handlerErrors++;
    this.rlog.write(Date.now(), `serving a connection failed (${err instanceof Error ? err.message : String(err)}); closed it`);
    conn.socket.destroy();
  }

  private async handle(line: string, conn: ControlConnection): Promise<void> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
      if (typeof req !== 'object' || req === null || Array.isArray(req) || typeof req.cmd !== 'string') throw new Error('missing "cmd"');
      if (req.args !== undefined && (typeof req.args !== 'object' || req.args === null || Array.isArray(req.args))) throw new Error('"args" must be an object');
    } catch (err) {
      this.counters.badRequests++;
      conn.write({ id: 0, ok: false, error: { code: 'LP_ERR_CONTROL', message: `bad request: ${(err as Error).message}; send {"id":1,"cmd":"help"}` } });
      return;
    }
    const id = typeof req.id === 'number' ? req.id : 0;
    const cmd = this.commands.get(req.cmd);
    if (!cmd) {
      this.counters.badRequests++;
      conn.write({ id, ok: false, error: { code: 'LP_ERR_CONTROL', message: `unknown command "${String(req.cmd).slice(0, 64)}"; known: ${[...this.commands.keys()].join(', ')}` } });
      return;
    }
    try {
      const result = await cmd.handler(req.args ?? {}, conn);
      conn.write({ id, ok: true, result });
    } catch (err) {
      if (err instanceof LanpartyError && err.code !== 'LP_ERR_INTERNAL') {
        conn.write({ id, ok: false, error: { code: err.code, message: err.message } });
        return;
      }
      // A bug: this connection's state is in doubt, so it ends here; lanparty goes on.
      this.counters.handlerErrors++;
      const message = `${cmd.name}: ${err instanceof Error ? err.message : String(err)}`;
      this.rlog.write(Date.now(), `command ${message} (internal error; closed that connection)`);
      try {
        conn.write({ id, ok: false, error: { code: 'LP_ERR_INTERNAL', message: `${message}; lanparty goes on, this connection closes (see lanparty's log)` } });
      } catch { /* The reply itself failed: close without it. */ }
      conn.socket.end(() => conn.socket.destroy());
    }
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    this.conns.clear();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    try { fs.unlinkSync(this.socketPath); } catch { /* gone */ }
  }
}

/** Writes one line unless the socket is gone or WRITE_QUEUE_LIMIT_BYTES already wait (then it is dropped). */
function writeLine(sock: net.Socket, line: string): void {
  if (!sock.destroyed && sock.writableLength < WRITE_QUEUE_LIMIT_BYTES) sock.write(line);
}
