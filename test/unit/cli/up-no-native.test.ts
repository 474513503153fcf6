/**
 * `lanparty up` without the native addon (LANPARTY_NO_NATIVE=1): it runs on the JS path and says so
 * at start, and that line also says busy polling is off when it was asked for (the default), since
 * only the addon can spin. A real lanparty on a udp port on 127.0.0.1, stopped with SIGINT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src/cli/main.js');

async function upWithoutAddon(args: string[]): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-nonative-'));
  try {
    const child = spawn(process.execPath, [cli, 'up', '--no-dhcp', '--control', path.join(dir, 'c.sock'), '--lease-file', path.join(dir, 'l.json'), ...args], {
      env: { ...process.env, LANPARTY_NO_NATIVE: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    const end = Date.now() + 20_000;
    while (!/^ready$/m.test(out) && child.exitCode === null && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    child.kill('SIGINT');
    assert.equal(await exited, 0, out);
    assert.match(out, /^ready$/m, out);
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('without the addon, lanparty up says the JS path runs, and that busy polling is off with it', async () => {
  const on = await upWithoutAddon(['-p', 'udp://127.0.0.1:39181']);
  assert.match(on, /native data path not available \(.*LANPARTY_NO_NATIVE=1.*\); using the slower JS path without unix datagram ports and without busy polling \(--busy-poll needs the addon\)\. Build it with/);
  const off = await upWithoutAddon(['-p', 'udp://127.0.0.1:39181', '--busy-poll', '0']);
  assert.match(off, /native data path not available/);
  assert.doesNotMatch(off, /busy polling/, 'not asked for: nothing to say');
});
