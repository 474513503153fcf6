/** Control client: one request, one reply; or a request followed by a stream of lines/bytes. */
import * as net from 'node:net';
import { LanpartyError, type ErrorCode } from '../util/errors.js';
import type { ControlReply } from './protocol.js';

export function connectControl(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new LanpartyError('LP_ERR_CONTROL', `control socket ${socketPath}: no lanparty is running there (${err.code}); start one with lanparty up, or pass --control PATH`, { cause: err }));
      } else if (err.code === 'EACCES') {
        reject(new LanpartyError('LP_ERR_PERMISSION', `control socket ${socketPath}: permission denied; the socket belongs to the user who ran lanparty up`, { cause: err }));
      } else {
        reject(new LanpartyError('LP_ERR_CONTROL', `control socket ${socketPath}: ${err.message}`, { cause: err }));
      }
    });
  });
}

/** Sends one command and resolves with its result; rejects with the server's error code. */
export async function request(socketPath: string, cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
  const s = await connectControl(socketPath);
  try {
    return await new Promise((resolve, reject) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const reply = JSON.parse(buf.slice(0, nl)) as ControlReply;
        if (reply.ok) resolve(reply.result);
        else reject(new LanpartyError(reply.error.code as ErrorCode, reply.error.message));
      });
      s.once('close', () => reject(new LanpartyError('LP_ERR_CONTROL', `control socket ${socketPath}: closed before replying`)));
      s.write(JSON.stringify({ id: 1, cmd, args }) + '\n');
    });
  } finally {
    s.destroy();
  }
}
