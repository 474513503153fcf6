/**
 * The short fuzz run CI does (`npm run fuzz:smoke` runs the same thing from the command line):
 * every target in fuzz/targets for LP_FUZZ_SMOKE_RUNS inputs (default 20000), coverage-guided,
 * each in its own worker with a hang watchdog. Any finding fails the test and is saved under
 * fuzz/findings/. `npm run fuzz` runs a million inputs per target.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { instrumentedTree, runTargetInWorker, saveFindings, REPO } from '../../fuzz/run.js';
import { TARGETS } from '../../fuzz/targets/index.js';

const RUNS = Number(process.env.LP_FUZZ_SMOKE_RUNS ?? 20_000);

for (const t of TARGETS) {
  test(`fuzz smoke: ${t.name} (${RUNS} inputs): ${t.description}`, { timeout: 300_000 }, async (ctx) => {
    const tree = instrumentedTree();
    const r = await runTargetInWorker(t.name, {
      runs: RUNS, targets: [t.name], seed: Number(process.env.LP_FUZZ_SEED ?? 1), hangMs: 10_000, maxSeconds: 60, coverage: true,
      findingsDir: path.join(REPO, 'fuzz', 'findings'), log: (l) => ctx.diagnostic(l),
    }, tree);
    const saved = saveFindings(r, path.join(REPO, 'fuzz', 'findings'));
    ctx.diagnostic(`${r.runs} inputs, ${r.execPerSecond}/s, corpus ${r.corpusEntries}, ${r.edgesHit}/${r.edgesInReachedFiles} edges, ${r.typedErrors} typed errors`);
    assert.deepEqual(r.findings.map((f) => `${f.kind}: ${f.signature}`), [], `findings saved as ${saved.join(', ')}:\n${r.findings.map((f) => f.message).join('\n\n')}`);
    assert.ok(r.runs >= Math.min(RUNS, 1000), `only ${r.runs} inputs ran`);
  });
}
