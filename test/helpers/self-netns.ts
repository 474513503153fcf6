/**
 * Runs a test file inside a throw-away network namespace of its own: `unshare --net` gives the
 * process a new namespace that the kernel removes when the process exits, so nothing can be left
 * behind, even on a crash or Ctrl-C. The outer run (from `node --test`) registers one test that
 * re-runs this file inside the namespace and passes only if every inner test passed; the inner
 * run's report is printed as diagnostics. Without root, the outer test is skipped with the reason.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';

export const INSIDE = process.env.LP_SELF_NETNS === '1';

/**
 * Call at the top of a test file. Returns true when the caller should define its tests (inside).
 * `timeoutMs` bounds the whole inner run (longer runs, such as a long soak, pass their own).
 */
export function inFreshNetns(fileUrl: string, title: string, timeoutMs = 600_000): boolean {
  if (INSIDE) return true;
  const reason = process.getuid && process.getuid() !== 0 ? 'needs root for a network namespace (run the suite as root: npm test)' : '';
  test(title, { skip: reason || false, timeout: timeoutMs }, async (t) => {
    const file = fileURLToPath(fileUrl);
    // The runner marks its children with NODE_TEST_CONTEXT (binary reporting); the inner run is
    // a plain run with a readable report.
    const env: NodeJS.ProcessEnv = { ...process.env, LP_SELF_NETNS: '1' };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$0" --test-reporter=spec "$1"', process.execPath, file], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // A timed-out or interrupted outer test must not leave the inner run behind.
    const killInner = () => { if (child.exitCode === null) child.kill('SIGKILL'); };
    t.signal.addEventListener('abort', killInner);
    process.once('exit', killInner);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    process.removeListener('exit', killInner);
    for (const line of out.split('\n')) if (line.trim()) t.diagnostic(line);
    assert.equal(code, 0, `inner tests failed (exit ${code}): ${innerFailures(out)}\n${out.split('\n').slice(-60).join('\n')}`);
  });
  return false;
}

/**
 * The failed inner tests with their first error line, on one line: a CI log that shows only the
 * first line of an error (scripts/failures-reporter.mjs) still names what failed inside.
 */
export function innerFailures(specOutput: string): string {
  const lines = specOutput.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*✖ failing tests:/.test(lines[i])) break;
    const m = /^\s*✖ (.*?)(?: \([\d.]+m?s\))?$/.exec(lines[i]);
    if (!m) continue;
    const next = (lines[i + 1] ?? '').trim();
    // A parent's line follows its children's and carries no error of its own.
    out.push(next && !/^[✖✔﹣▶ℹ]/.test(next) ? `${m[1]}: ${next}` : m[1]);
  }
  return out.length > 0 ? out.join('; ') : 'no failed test named in the inner report';
}
