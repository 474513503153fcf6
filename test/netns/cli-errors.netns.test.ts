/**
 * `lanparty up` setup failures: each is one clear line naming the port, file or field, what is
 * wrong and the fix, with the documented exit code. Runs in a fresh network namespace.
 *
 *   netns (unshare --net), lo only: lanparty up ... ; a blocker socket holding 127.0.0.1:33001
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inFreshNetns } from '../helpers/self-netns.js';
import { upOutputUntilReady } from '../helpers/up-output.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function up(args: string[], asNobody = false, env: NodeJS.ProcessEnv = {}): { code: number | null; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-cli-'));
  fs.chmodSync(dir, 0o777);
  const argv = [cli, 'up', '--control', path.join(dir, 'c.sock'), '--no-dhcp', ...args];
  // The default unix ports go to a directory of this run, not the user's runtime directory.
  const runEnv = { ...process.env, XDG_RUNTIME_DIR: dir, ...env };
  const r = asNobody
    ? spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, ...argv], { encoding: 'utf8', timeout: 20_000, env: { ...runEnv, HOME: dir } })
    : spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 20_000, env: runEnv });
  fs.rmSync(dir, { recursive: true, force: true });
  return { code: r.status, stderr: r.stderr.trim() };
}

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.startsWith('lanparty: '));
  assert.equal(lines.length, 1, `exactly one error line, got:\n${stderr}`);
  return lines[0];
}

if (inFreshNetns(import.meta.url, 'lanparty up setup errors (in a fresh netns)')) {
  test('a UDP port already in use', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(33001, '127.0.0.1', r));
    try {
      const { code, stderr } = up(['-p', 'udp://127.0.0.1:33001']);
      assert.equal(code, 4);
      assert.match(oneLine(stderr), /^lanparty: port udp:\/\/127\.0\.0\.1:33001: address already in use; stop the other program or pick another port$/);
    } finally {
      blocker.close();
    }
  });

  test('a socket path that exists and is not a socket', () => {
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lp-path-')), 'stream.sock');
    fs.writeFileSync(f, 'not a socket');
    const { code, stderr } = up(['-p', `unix://${f}`]);
    assert.equal(code, 4);
    assert.match(oneLine(stderr), new RegExp(`port unix://${f}: ${f} exists and is not a socket; remove it or choose another path`));
    assert.equal(fs.readFileSync(f, 'utf8'), 'not a socket', 'the file is left alone');
  });

  test('a privileged port without permission', () => {
    const { code, stderr } = up(['-p', 'tcp://127.0.0.1:80'], true);
    assert.equal(code, 5);
    assert.match(oneLine(stderr), /^lanparty: port tcp:\/\/127\.0\.0\.1:80: permission denied \(EACCES\); use a port above 1023/);
  });

  test('a broken config file names the file and line', () => {
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lp-conf-')), 'lan.toml');
    fs.writeFileSync(f, '[switch]\nmac_age_seconds = = 3\n');
    const { code, stderr } = up(['-c', f]);
    assert.equal(code, 3);
    assert.match(oneLine(stderr), new RegExp(`^lanparty: ${f}:2(:\\d+)?: not valid TOML`));
    fs.writeFileSync(f, '[[port]]\nurl = "vxlna://1.2.3.4:5"\n');
    const r2 = up(['-c', f]);
    assert.equal(r2.code, 3);
    assert.match(oneLine(r2.stderr), /^lanparty: port\[0\]\.url: unknown scheme "vxlna"/);
  });

  test('a multicast group on an address no interface has', () => {
    const { code, stderr } = up(['-p', 'mcast://239.1.2.3:5000?localaddr=10.254.254.254']);
    assert.equal(code, 6);
    assert.match(oneLine(stderr), /cannot join 239\.1\.2\.3 on the interface with address 10\.254\.254\.254 .*set localaddr to an address of an interface that is up/);
  });

  test('a TAP port named with --tap beside the default ports fails without the addon (exit 7), never skipped', () => {
    const { code, stderr } = up(['--tap', 'tap0'], false, { LANPARTY_NO_NATIVE: '1' });
    assert.equal(code, 7, stderr);
    assert.match(oneLine(stderr), /^lanparty: port tap:\/\/tap0: tap tap0: TAP devices need the native addon .*LANPARTY_NO_NATIVE=1/);
    assert.doesNotMatch(stderr, /skipped default port tap:/);
  });

  test('a port named in a config file that cannot open stops lanparty; defaults from the same file may be skipped', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-conf-'));
    try {
      const f = path.join(dir, 'lan.toml');
      fs.writeFileSync(f, `[[port]]\nurl = "unixgram://${dir}/d.sock"\n`);
      const { code, stderr } = up(['-c', f], false, { LANPARTY_NO_NATIVE: '1' });
      assert.equal(code, 7, stderr);
      assert.match(oneLine(stderr), new RegExp(`^lanparty: port unixgram://${dir}/d\\.sock: `));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("without the addon, lanparty's own default unixgram port is skipped with a line, and it starts", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-defaults-'));
    try {
      const out = await upOutputUntilReady(['--no-dhcp', '--control', path.join(dir, 'c.sock')], { ...process.env, XDG_RUNTIME_DIR: dir, LANPARTY_NO_NATIVE: '1' });
      assert.match(out, new RegExp(`skipped default port unixgram://${dir}/lanparty/dgram\\.sock: `));
      assert.match(out, new RegExp(`unix://${dir}/lanparty/stream\\.sock`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unknown flag', () => {
    const { code, stderr } = up(['--frobnicate']);
    assert.equal(code, 2);
    assert.match(oneLine(stderr), /Unknown option '--frobnicate'.*see lanparty --help/);
  });
}
