/**
 * `lanparty up --private` on a shared host: only unix socket ports, in a directory only its user
 * may enter (0700), printed at start; user nobody can neither connect to the stream socket nor
 * even see the datagram socket, although the sockets themselves are made world-writable here so
 * that the directory's mode is all that stands in the way. Runs in a fresh network namespace so
 * `ss` shows that nothing listens on an IP address.
 *
 *   netns (unshare --net), lo only
 *   lanparty up --private ──> $XDG_RUNTIME_DIR/lanparty/private/ (0700) {dgram.sock, stream.sock}
 *   user nobody ─ connect(stream.sock), stat(dgram.sock) ──> EACCES
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inFreshNetns } from '../helpers/self-netns.js';
import { upOutputUntilReady } from '../helpers/up-output.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function asNobody(script: string): Promise<string> {
  return new Promise((resolve, reject) => execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script],
    { timeout: 20_000 }, (err, so, se) => (err ? reject(new Error(`${err.message}\n${se}`)) : resolve(so.trim()))));
}

if (inFreshNetns(import.meta.url, 'lanparty up --private (in a fresh netns)')) {
  test('--private: unix ports only, in a 0700 directory it prints, out of another user\'s reach', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-private-'));
    fs.chmodSync(dir, 0o755);
    const child = spawn(process.execPath, [cli, 'up', '--private', '--no-dhcp'], { env: { ...process.env, XDG_RUNTIME_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    try {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
      const end = Date.now() + 20_000;
      while (!/^ready$/m.test(out) && child.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.match(out, /^ready$/m, out);

      const privateDir = path.join(dir, 'lanparty', 'private');
      const listed = [...out.matchAll(/^ {2}(\S+:\/\/\S*) {2}\[/gm)].map((m) => m[1]);
      assert.deepEqual(listed, [`unixgram://${privateDir}/dgram.sock`, `unix://${privateDir}/stream.sock`], out);
      assert.ok(out.includes(`Private: only unix sockets, in ${privateDir} (mode 0700); other users of this host cannot reach them.`), out);
      assert.doesNotMatch(out, /Every user of this host can reach/);
      assert.equal(fs.statSync(privateDir).mode & 0o777, 0o700);
      assert.equal(execFileSync('ss', ['-lntuH'], { encoding: 'utf8' }).trim(), '', 'nothing listens on an IP address');

      // Only the directory's mode stands in the way: open everything above it and the sockets.
      fs.chmodSync(path.join(dir, 'lanparty'), 0o755);
      for (const f of ['dgram.sock', 'stream.sock']) fs.chmodSync(path.join(privateDir, f), 0o777);
      const stream = path.join(privateDir, 'stream.sock');
      const connect = (p: string) => `require('net').connect(${JSON.stringify(p)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(0)})`;
      assert.equal(await asNobody(connect(stream)), 'EACCES', 'nobody cannot connect to the stream port');
      assert.equal(await asNobody(`try{require('fs').statSync(${JSON.stringify(path.join(privateDir, 'dgram.sock'))});console.log('SEEN')}catch(e){console.log(e.code)}`), 'EACCES', 'nobody cannot reach the datagram port');
      // The owner can.
      await new Promise<void>((res, rej) => { const s = net.connect(stream, () => { s.destroy(); res(); }); s.once('error', rej); });
      // Control: with the directory opened, the same nobody connects (the mode is what stopped it).
      fs.chmodSync(privateDir, 0o755);
      assert.equal(await asNobody(connect(stream)), 'CONNECTED');
      fs.chmodSync(privateDir, 0o700);

      child.kill('SIGINT');
      assert.equal(await exited, 0, out);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('without --private, up says every user of the host can reach its loopback ports', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-private-'));
    try {
      const out = await upOutputUntilReady(['--no-dhcp'], { ...process.env, XDG_RUNTIME_DIR: dir });
      assert.ok(out.includes('Every user of this host can reach the multicast, udp, tcp ports (read the LAN\'s frames, take a guest\'s MAC); on a shared host use lanparty up --private.'), out);
      fs.writeFileSync(path.join(dir, 'lan.toml'), 'private = true\n');
      const priv = await upOutputUntilReady(['--no-dhcp', '-c', path.join(dir, 'lan.toml')], { ...process.env, XDG_RUNTIME_DIR: dir });
      assert.ok(priv.includes(`Private: only unix sockets, in ${dir}/lanparty/private (mode 0700)`), priv);
      assert.doesNotMatch(priv, /^ {2}(udp|tcp|mcast):\/\//m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--private with --port, or private = true with [[port]], is refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-private-'));
    try {
      const r = spawnSyncUp(['--private', '-p', 'udp://127.0.0.1:33001'], dir);
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /^lanparty: --private: picks the ports itself \(unix sockets in .*\/lanparty\/private, mode 0700\); drop --port or --private$/m);
      const f = path.join(dir, 'lan.toml');
      fs.writeFileSync(f, 'private = true\n[[port]]\nurl = "tcp://127.0.0.1:33002"\n');
      const r2 = spawnSyncUp(['-c', f], dir);
      assert.equal(r2.status, 3, r2.stderr);
      assert.match(r2.stderr, /^lanparty: private: picks the ports itself .*drop the \[\[port\]\] sections or private$/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

function spawnSyncUp(args: string[], dir: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'up', '--no-dhcp', ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, XDG_RUNTIME_DIR: dir } });
  return { status: r.status, stderr: r.stderr };
}
