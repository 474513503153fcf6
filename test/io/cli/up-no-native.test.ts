/**
 * `lanparty up` without the native addon (LANPARTY_NO_NATIVE=1): it runs on the JS path and says so
 * at start, and that line also says busy polling is off when it was asked for (the default), since
 * only the addon can spin. A real lanparty on a udp port on 127.0.0.1, stopped with SIGINT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { upOutputUntilReady } from '../../helpers/up-output.js';

async function upWithoutAddon(args: string[]): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-nonative-'));
  try {
    return await upOutputUntilReady(['--no-dhcp', '--control', path.join(dir, 'c.sock'), '--lease-file', path.join(dir, 'l.json'), ...args],
      { ...process.env, LANPARTY_NO_NATIVE: '1' });
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
