/** tightenPrivateDir: the 0700 directory of `lanparty up --private`. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tightenPrivateDir } from '../../../src/util/private-dir.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-privdir-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const WHAT = 'private mode directory';

test('makes the directory and its parents with mode 0700, whatever the umask', () => {
  const old = process.umask(0);
  try {
    const d = path.join(root, 'a', 'private');
    tightenPrivateDir(d, WHAT);
    assert.equal(fs.statSync(d).mode & 0o777, 0o700);
  } finally {
    process.umask(old);
  }
});

test('an existing directory of ours that others may enter is set to 0700', () => {
  const d = path.join(root, 'open');
  fs.mkdirSync(d, { mode: 0o755 });
  fs.chmodSync(d, 0o777);
  tightenPrivateDir(d, WHAT);
  assert.equal(fs.statSync(d).mode & 0o777, 0o700);
});

test('a file, a symlink or another user\'s directory in its place is an error naming it', () => {
  const f = path.join(root, 'file');
  fs.writeFileSync(f, '');
  assert.throws(() => tightenPrivateDir(f, WHAT), (e: Error & { code?: string }) =>
    e.code === 'LP_ERR_PERMISSION' && e.message.startsWith(`${WHAT} ${f}: exists and is not a directory`));
  const target = path.join(root, 'elsewhere');
  fs.mkdirSync(target, { mode: 0o700 });
  const link = path.join(root, 'link');
  fs.symlinkSync(target, link);
  assert.throws(() => tightenPrivateDir(link, WHAT), (e: Error & { code?: string }) =>
    e.code === 'LP_ERR_PERMISSION' && e.message.startsWith(`${WHAT} ${link}: is a symlink`));
  if (process.getuid && process.getuid() === 0) {
    const theirs = path.join(root, 'theirs');
    fs.mkdirSync(theirs, { mode: 0o755 });
    fs.chownSync(theirs, 65534, 65534);
    assert.throws(() => tightenPrivateDir(theirs, WHAT), (e: Error & { code?: string }) =>
      e.code === 'LP_ERR_PERMISSION' && e.message.startsWith(`${WHAT} ${theirs}: owned by `) && e.message.includes('uid 65534'));
    assert.equal(fs.statSync(theirs).mode & 0o777, 0o755, 'another user\'s directory is left as it is');
  }
});
