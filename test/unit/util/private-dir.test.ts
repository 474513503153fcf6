/**
 * The runtime directory must be this user's and private: checkPrivateDir/ensurePrivateDir on temp
 * directories, then a real `lanparty up` and `lanparty status` with the default runtime directory
 * (/tmp/lanparty-UID, TMPDIR pointed at a temp dir) that another user made first: both refuse,
 * naming the directory, its owner and mode, and the fix. The ownership cases need root (chown).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkPrivateDir, ensurePrivateDir } from '../../../src/util/private-dir.js';
import type { LanpartyError } from '../../../src/util/errors.js';
import { cliPath } from '../../../lab/netns-lanparty.js';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-privdir-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
const root = process.getuid?.() === 0;
const NOBODY = 65534;
const WHAT = 'runtime directory';

test('missing: created with mode 0700 whatever the umask; ours and 0700: accepted', () => {
  const d = path.join(base, 'new');
  const old = process.umask(0);
  try {
    ensurePrivateDir(d, WHAT);
  } finally {
    process.umask(old);
  }
  assert.equal(fs.statSync(d).mode & 0o777, 0o700);
  assert.equal(checkPrivateDir(d, WHAT), true);
  assert.equal(checkPrivateDir(path.join(base, 'none'), WHAT), false);
});

test('ours but open to others: refused with its mode and chmod 700', () => {
  const d = path.join(base, 'open');
  fs.mkdirSync(d, { mode: 0o755 });
  fs.chmodSync(d, 0o755);
  assert.throws(() => ensurePrivateDir(d, WHAT), (e: LanpartyError) =>
    e.code === 'LP_ERR_PERMISSION' && e.message === `runtime directory ${d}: mode 0755 lets other users in; it must be 0700: chmod 700 ${d}, or set XDG_RUNTIME_DIR to a directory of yours with mode 0700`);
});

test('a symlink is refused, not followed', () => {
  const target = path.join(base, 'target');
  fs.mkdirSync(target, { mode: 0o700 });
  const link = path.join(base, 'link');
  fs.symlinkSync(target, link);
  assert.throws(() => ensurePrivateDir(link, WHAT), /runtime directory .*link: is a symlink \(owned by .*\), and lanparty keeps its sockets only in a directory of its own; remove it/);
});

test("another user's directory is refused, naming owner, mode and fix", { skip: root ? false : 'needs root to chown' }, () => {
  const d = path.join(base, 'theirs');
  fs.mkdirSync(d, { mode: 0o700 });
  fs.chownSync(d, NOBODY, NOBODY);
  assert.throws(() => ensurePrivateDir(d, WHAT), (e: LanpartyError) => {
    assert.equal(e.code, 'LP_ERR_PERMISSION');
    assert.match(e.message, new RegExp(`^runtime directory ${d}: owned by (\\S+ \\()?uid ${NOBODY}\\)? with mode 0700, not by you \\(.*uid 0\\)?\\), so that user could answer in lanparty's place; remove it \\(as root or that user: rm -r ${d}\\)`));
    return true;
  });
});

test('lanparty up and lanparty status refuse a /tmp/lanparty-UID that another user made first', { skip: root ? false : 'needs root to chown' }, () => {
  const tmp = fs.mkdtempSync(path.join(base, 'tmp-'));
  const rd = path.join(tmp, `lanparty-${process.getuid!()}`);
  fs.mkdirSync(rd, { mode: 0o777 });
  fs.chmodSync(rd, 0o777);
  fs.chownSync(rd, NOBODY, NOBODY);
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, HOME: tmp, XDG_STATE_HOME: path.join(tmp, 'state') };
  delete env.XDG_RUNTIME_DIR;
  for (const args of [['up', '--no-dhcp', '-p', `unix://${rd}/stream.sock`], ['up', '--no-dhcp', '-p', 'udp://127.0.0.1:39417'], ['status'], ['qemu', 'g1', '--dry-run']]) {
    const r = spawnSync(process.execPath, [cliPath(), ...args], { env, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 5, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^lanparty: runtime directory ${rd}: owned by (\\S+ \\()?uid ${NOBODY}\\)? with mode 0777, not by you`, 'm'), args.join(' '));
  }
  assert.deepEqual(fs.readdirSync(rd), [], 'nothing was put in it');
});
