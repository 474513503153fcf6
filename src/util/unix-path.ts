/**
 * Socket paths for unix listeners: a path that exists and is in use is an error; a stale socket
 * left by a crashed lanparty (nothing accepts on it) is removed; anything that is not a socket is
 * left alone and reported.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { LanpartyError } from './errors.js';

/** `inUseHint` is the fix to print when the path is live (default: stop it or choose another path). */
export async function prepareUnixPath(p: string, what: string, inUseHint = 'stop it or choose another path'): Promise<void> {
  const dir = path.dirname(p);
  if (!fs.existsSync(dir)) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new LanpartyError('LP_ERR_PERMISSION', `${what}: cannot create directory ${dir} (${(err as NodeJS.ErrnoException).code}); create it or choose another path`, { cause: err });
    }
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new LanpartyError('LP_ERR_PATH_EXISTS', `${what}: ${p} exists and is not a socket; remove it or choose another path`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect({ path: p });
    s.once('connect', () => { s.destroy(); resolve(true); });
    // ECONNREFUSED: nobody is bound, a stale file. EPROTOTYPE: a live datagram socket.
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'ECONNREFUSED'));
  });
  if (live) {
    throw new LanpartyError('LP_ERR_PATH_EXISTS', `${what}: ${p} is in use by another program (another lanparty?); ${inUseHint}`);
  }
  fs.unlinkSync(p);
}

export function removeUnixPath(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch {
    // Already gone.
  }
}
