/**
 * Private directories: lanparty's runtime directory ($XDG_RUNTIME_DIR/lanparty, or
 * /tmp/lanparty-UID without it) holds its control socket and default unix ports, and the commands
 * trust what answers there. It must belong to this user and be closed to everyone else (mode 0700,
 * not a symlink), or a user who made it first (in a shared /tmp) could answer in lanparty's place.
 */
import * as fs from 'node:fs';
import { LanpartyError } from './errors.js';

/** A user's name from /etc/passwd with the uid ("alice (uid 1000)"), or "uid N" when it has none. */
export function userLabel(uid: number): string {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && f[2] !== '' && Number(f[2]) === uid) return `${f[0]} (uid ${uid})`;
    }
  } catch { /* No passwd file: the number only. */ }
  return `uid ${uid}`;
}

function mode(m: number): string {
  return '0' + (m & 0o777).toString(8).padStart(3, '0');
}

/**
 * Checks `dir` without following a symlink: false when it does not exist, true when it is a
 * directory of this user with no access for group or others; otherwise throws LP_ERR_PERMISSION
 * naming the directory, its owner and mode, and the fix. `what` names it ("runtime directory").
 */
export function checkPrivateDir(dir: string, what: string, uid = process.getuid?.()): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new LanpartyError('LP_ERR_PERMISSION', `${what} ${dir}: cannot check it (${(err as NodeJS.ErrnoException).code}); set XDG_RUNTIME_DIR to a directory of yours with mode 0700`, { cause: err });
  }
  if (uid === undefined) return true;
  const elsewhere = 'or set XDG_RUNTIME_DIR to a directory of yours with mode 0700';
  if (st.isSymbolicLink()) {
    throw new LanpartyError('LP_ERR_PERMISSION', `${what} ${dir}: is a symlink (owned by ${userLabel(st.uid)}), and lanparty keeps its sockets only in a directory of its own; ` +
      `remove it (rm ${dir}) if you did not make it, ${elsewhere}`);
  }
  if (!st.isDirectory()) {
    throw new LanpartyError('LP_ERR_PERMISSION', `${what} ${dir}: exists and is not a directory (owned by ${userLabel(st.uid)}); remove it if you did not make it, ${elsewhere}`);
  }
  if (st.uid !== uid) {
    throw new LanpartyError('LP_ERR_PERMISSION', `${what} ${dir}: owned by ${userLabel(st.uid)} with mode ${mode(st.mode)}, not by you (${userLabel(uid)}), ` +
      `so that user could answer in lanparty's place; remove it (as root or that user: rm -r ${dir}) if nobody should have made it, ${elsewhere}`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new LanpartyError('LP_ERR_PERMISSION', `${what} ${dir}: mode ${mode(st.mode)} lets other users in; it must be 0700: chmod 700 ${dir}, ${elsewhere}`);
  }
  return true;
}

/** Creates `dir` (mode 0700) if it is missing, then checks it as checkPrivateDir does. */
export function ensurePrivateDir(dir: string, what: string): void {
  if (checkPrivateDir(dir, what)) return;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new LanpartyError('LP_ERR_PERMISSION', `${what} ${dir}: cannot create it (${(err as NodeJS.ErrnoException).code}); set XDG_RUNTIME_DIR to a directory of yours with mode 0700`, { cause: err });
    }
  }
  // Someone may have made it between the check and mkdir: check what is there now.
  checkPrivateDir(dir, what);
}

/**
 * As ensurePrivateDir, but a directory of this user's that group or others may enter is first set
 * to 0700 instead of refused: for a directory lanparty owns outright (private mode's), where a
 * looser mode can only be a leftover of ours.
 */
export function tightenPrivateDir(dir: string, what: string, uid = process.getuid?.()): void {
  try {
    const st = fs.lstatSync(dir);
    if (st.isDirectory() && st.uid === uid && (st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
  } catch { /* Missing or unreadable: ensurePrivateDir says which. */ }
  ensurePrivateDir(dir, what);
}
