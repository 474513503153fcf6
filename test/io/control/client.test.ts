/**
 * The control client refuses a socket another user could answer on (owner neither this user nor
 * root, or a symlink of another user's in the way), and takes a reply that is not lanparty's as an
 * error, not a crash. Real unix sockets in a temp dir; the ownership cases need root (chown).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkControlOwner, request } from '../../../src/control/index.js';
import type { LanpartyError } from '../../../src/util/errors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-client-'));
const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function listen(name: string, onConn: (s: net.Socket) => void = () => {}): Promise<string> {
  const p = path.join(dir, name);
  const srv = net.createServer(onConn);
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(p, r));
  return p;
}

const root = process.getuid?.() === 0;
const NOBODY = 65534;

test('a socket of another user is refused with its path, owner and the fix', { skip: root ? false : 'needs root to chown a socket to another user' }, async () => {
  const p = await listen('theirs.sock');
  fs.chownSync(p, NOBODY, NOBODY);
  assert.throws(() => checkControlOwner(p), (e: LanpartyError) => {
    assert.equal(e.code, 'LP_ERR_PERMISSION');
    assert.match(e.message, new RegExp(`^control socket ${p}: it is owned by (\\S+ \\()?uid ${NOBODY}\\)?; you are .*uid 0\\)?\\. lanparty talks only to a control socket of your own user or of root`));
    assert.match(e.message, new RegExp(`run this command as that user \\(sudo -u NAME lanparty \\.\\.\\.\\); otherwise remove ${p} `));
    return true;
  });
  await assert.rejects(request(p, 'status'), (e: LanpartyError) => e.code === 'LP_ERR_PERMISSION');
});

test('a symlink of another user to a socket of ours is refused too', { skip: root ? false : 'needs root to chown a symlink' }, async () => {
  const target = await listen('ours.sock');
  const link = path.join(dir, 'link.sock');
  fs.symlinkSync(target, link);
  fs.lchownSync(link, NOBODY, NOBODY);
  assert.throws(() => checkControlOwner(link), /control socket .*link\.sock: the symlink is owned by/);
});

test("root's sockets and our own are accepted; a missing path is left to connect", async () => {
  const p = await listen('mine.sock');
  assert.doesNotThrow(() => checkControlOwner(p));
  // As seen by another user: root owns it (the tests run as root) or that user does.
  assert.doesNotThrow(() => checkControlOwner(p, root ? 1234 : process.getuid!()));
  assert.doesNotThrow(() => checkControlOwner(path.join(dir, 'none.sock')));
  await assert.rejects(request(path.join(dir, 'none.sock'), 'status'), /no lanparty is running there/);
});

test('a reply that is not JSON, or not a reply, is an LP_ERR_CONTROL error', async () => {
  const junk = await listen('junk.sock', (s) => s.on('data', () => s.write('HTTP/1.1 400 Bad Request\r\n\r\n\n')));
  await assert.rejects(request(junk, 'status'), (e: LanpartyError) => e.code === 'LP_ERR_CONTROL' && /the reply to status is not lanparty's/.test(e.message));
  const odd = await listen('odd.sock', (s) => s.on('data', () => s.write('[1,2]\n')));
  await assert.rejects(request(odd, 'status'), (e: LanpartyError) => e.code === 'LP_ERR_CONTROL');
});
