/**
 * The directory of private mode (`lanparty up --private`): its unix sockets are the only ports,
 * and a directory only this user may enter (0700) keeps every other user of the host from them,
 * whatever the sockets' own modes (a umask of 0 makes them 0777).
 */
import * as fs from 'node:fs';
import { LanpartyError } from '../util/errors.js';

/**
 * Makes `dir` (and missing parents) with mode 0700, or takes an existing one of ours and sets it
 * to 0700. Throws LanpartyError naming the directory when it is not a directory or not ours.
 */
export function preparePrivateDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') {
      throw new LanpartyError('LP_ERR_PERMISSION', `private mode: cannot create directory ${dir} (${code}); create it (mode 0700) or set XDG_RUNTIME_DIR`, { cause: err });
    }
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) {
    throw new LanpartyError('LP_ERR_PATH_EXISTS', `private mode: ${dir} exists and is not a directory; remove it`);
  }
  const uid = process.getuid ? process.getuid() : st.uid;
  if (st.uid !== uid) {
    throw new LanpartyError('LP_ERR_PERMISSION', `private mode: ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}), who could then reach its sockets; remove it or set XDG_RUNTIME_DIR to a directory of yours`);
  }
  if ((st.mode & 0o777) !== 0o700) fs.chmodSync(dir, 0o700);
}
