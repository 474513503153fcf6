/**
 * Control client: one request, one reply; or a request followed by a stream of lines/bytes.
 * Before connecting it checks who owns the socket: a socket (or a symlink to one) that belongs to
 * another user could be answered by that user, and lanparty qemu runs what the reply says, so only
 * this user's sockets and root's are spoken to.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { LanpartyError, type ErrorCode, userLabel } from '../util/index.js';
import type { ControlReply } from './protocol.js';

/**
 * Throws LP_ERR_PERMISSION when the control socket at `socketPath` (or a symlink on the way to it)
 * belongs to neither this user nor root. A path that does not exist passes: connecting says that
 * no lanparty runs there.
 */
export function checkControlOwner(socketPath: string, uid = process.getuid?.()): void {
  if (uid === undefined) return;
  const refuse = (what: string, owner: number): never => {
    throw new LanpartyError('LP_ERR_PERMISSION', `control socket ${socketPath}: ${what} is owned by ${userLabel(owner)}; you are ${userLabel(uid)}. ` +
      'lanparty talks only to a control socket of your own user or of root, since another user could answer on it: ' +
      'if that user runs your lanparty, run this command as that user (sudo -u NAME lanparty ...); ' +
      `otherwise remove ${socketPath} (and check who made its directory) and start lanparty up again`);
  };
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) {
    if (st.uid !== uid && st.uid !== 0) refuse('the symlink', st.uid);
    try {
      st = fs.statSync(socketPath);
    } catch {
      return;
    }
  }
  if (st.uid !== uid && st.uid !== 0) refuse('it', st.uid);
}

export function connectControl(socketPath: string): Promise<net.Socket> {
  try {
    checkControlOwner(socketPath);
  } catch (err) {
    return Promise.reject(err);
  }
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
        let reply: ControlReply;
        try {
          reply = JSON.parse(buf.slice(0, nl)) as ControlReply;
          if (typeof reply !== 'object' || reply === null || typeof reply.ok !== 'boolean') throw new Error('not a reply object');
        } catch (err) {
          reject(new LanpartyError('LP_ERR_CONTROL', `control socket ${socketPath}: the reply to ${cmd} is not lanparty's (${(err as Error).message}); is a lanparty listening there?`));
          return;
        }
        if (reply.ok) resolve(reply.result);
        else reject(new LanpartyError(typeof reply.error?.code === 'string' ? reply.error.code as ErrorCode : 'LP_ERR_CONTROL', String(reply.error?.message)));
      });
      s.once('close', () => reject(new LanpartyError('LP_ERR_CONTROL', `control socket ${socketPath}: closed before replying`)));
      s.write(JSON.stringify({ id: 1, cmd, args }) + '\n');
    });
  } finally {
    s.destroy();
  }
}
