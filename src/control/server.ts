/**
 * Control server: a unix socket with owner-only permissions (directory 0700, socket 0600) and a
 * registry of named commands with usage text, after OVS's unixctl. Nothing listens on a network
 * port. Each connection reads JSON lines; a malformed line gets an error reply, an overlong one
 * closes that connection only.
 */
import * as net from 'node:net';
import * as fs from 'node:fs';
import { LanpartyError, socketSetupError } from '../util/errors.js';
import { prepareUnixPath } from '../util/unix-path.js';
import type { Logger } from '../util/logger.js';
import { MAX_REQUEST_BYTES, type ControlEvent, type ControlReply, type ControlRequest } from './protocol.js';

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

  constructor(readonly socketPath: string, private readonly log: Logger) {
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
    for (const c of this.conns) {
      if (c.subscriptions.has('*') || c.subscriptions.has(event) || c.subscriptions.has(prefix)) c.write({ event, data });
    }
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
    const conn: ControlConnection = {
      socket: sock,
      subscriptions: new Set(),
      takenOver: false,
      write: (msg) => {
        if (!sock.destroyed && sock.writableLength < 8 << 20) sock.write(JSON.stringify(msg) + '\n');
      },
    };
    this.conns.add(conn);
    let pending = '';
    sock.on('data', (chunk) => {
      if (conn.takenOver) return;
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim()) void this.handle(line, conn);
        if (conn.takenOver) return;
      }
      if (pending.length > MAX_REQUEST_BYTES) {
        conn.write({ id: 0, ok: false, error: { code: 'LP_ERR_CONTROL', message: `request longer than ${MAX_REQUEST_BYTES} bytes; closing` } });
        sock.end();
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => this.conns.delete(conn));
  }

  private async handle(line: string, conn: ControlConnection): Promise<void> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
      if (typeof req !== 'object' || req === null || typeof req.cmd !== 'string') throw new Error('missing "cmd"');
    } catch (err) {
      conn.write({ id: 0, ok: false, error: { code: 'LP_ERR_CONTROL', message: `bad request: ${(err as Error).message}; send {"id":1,"cmd":"help"}` } });
      return;
    }
    const id = typeof req.id === 'number' ? req.id : 0;
    const cmd = this.commands.get(req.cmd);
    if (!cmd) {
      conn.write({ id, ok: false, error: { code: 'LP_ERR_CONTROL', message: `unknown command "${req.cmd}"; known: ${[...this.commands.keys()].join(', ')}` } });
      return;
    }
    try {
      const result = await cmd.handler(req.args ?? {}, conn);
      conn.write({ id, ok: true, result });
    } catch (err) {
      const e = err instanceof LanpartyError ? err : new LanpartyError('LP_ERR_INTERNAL', `${req.cmd}: ${(err as Error).message}`);
      conn.write({ id, ok: false, error: { code: e.code, message: e.message } });
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
