/**
 * Runs a real `lanparty up ARGS` (this process's network namespace), collects what it prints on
 * stdout and stderr up to its "ready" line (20 s at most), stops it with SIGINT and asserts that it
 * printed "ready" and exited 0. Returns the output, for tests of what `up` tells the user at start.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cliPath } from '../../lab/netns-lanparty.js';

export async function upOutputUntilReady(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const child = spawn(process.execPath, [cliPath(), 'up', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
}
