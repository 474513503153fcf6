/**
 * `npm run fuzz` / `npm run fuzz:smoke`: builds an instrumented copy of src/ (instrument.ts), then
 * runs each target (targets/index.ts) in a worker thread with the coverage-guided engine
 * (engine.ts). The main thread is the watchdog: a worker whose current input runs longer than
 * --hang-ms is ended and its input reported as a hang. Findings are written to fuzz/findings/
 * (input as .bin, error as .txt); a run with any finding exits 1.
 *
 *   node dist/fuzz/run.js [--runs N] [--targets a,b] [--seed S] [--hang-ms MS] [--max-seconds S]
 *                         [--json FILE] [--no-coverage]
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fuzzTarget, inputId, WATCH_HEADER_INTS, type Finding, type TargetReport } from './engine.js';
import { buildInstrumentedTree, type InstrumentedTree } from './instrument.js';
import { TARGETS } from './targets/index.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Room for the whole of the longest input a target takes, so a hang is reported with all of it.
const WATCH_INPUT_BYTES = Math.max(...TARGETS.map((t) => t.maxInputBytes));

export interface RunOptions {
  runs: number;
  targets: string[];
  seed: number;
  hangMs: number;
  /** Per-target time limit in seconds (0: none). */
  maxSeconds: number;
  coverage: boolean;
  /** Where findings go (default fuzz/findings in the repo). */
  findingsDir: string;
  log(line: string): void;
}

interface WorkerInput {
  target: string;
  runs: number;
  seed: number;
  maxSeconds: number;
  tree: InstrumentedTree | null;
  watch: SharedArrayBuffer;
}

/**
 * Builds the instrumented tree once per process, in dist/fuzz-instrumented/<pid> (several test
 * runs may share a work tree), and removes it when the process exits.
 */
let treeCache: InstrumentedTree | null = null;
export function instrumentedTree(): InstrumentedTree {
  if (treeCache === null) {
    const dir = path.join(REPO, 'dist', 'fuzz-instrumented', String(process.pid));
    treeCache = buildInstrumentedTree(REPO, dir);
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return treeCache;
}

/** Runs one target in a worker under the watchdog. */
export function runTargetInWorker(name: string, opts: RunOptions, tree: InstrumentedTree | null): Promise<TargetReport> {
  const watch = new SharedArrayBuffer(WATCH_HEADER_INTS * 4 + WATCH_INPUT_BYTES);
  const header = new Int32Array(watch, 0, WATCH_HEADER_INTS);
  const input: WorkerInput = { target: name, runs: opts.runs, seed: opts.seed, maxSeconds: opts.maxSeconds, tree, watch };
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: input, resourceLimits: { maxOldGenerationSizeMb: 2048 } });
  return new Promise((resolve, reject) => {
    let lastCount = -1;
    let lastChangeMs = Date.now();
    let done = false;
    const timer = setInterval(() => {
      const n = Atomics.load(header, 0);
      const now = Date.now();
      if (n !== lastCount) { lastCount = n; lastChangeMs = now; return; }
      if (now - lastChangeMs < opts.hangMs) return;
      // No new input for hangMs: the current one hangs. Report it and end the worker.
      const len = header[1];
      const bytes = Buffer.from(new Uint8Array(watch, WATCH_HEADER_INTS * 4, len));
      done = true;
      clearInterval(timer);
      void worker.terminate();
      const finding: Finding = { kind: 'hang', signature: `hang > ${opts.hangMs} ms`, message: `input ${n} ran longer than ${opts.hangMs} ms`, inputHex: bytes.toString('hex') };
      resolve({
        target: name, description: '', runs: n, seconds: 0, execPerSecond: 0, corpusEntries: 0, seeds: 0, features: 0, edgesHit: 0,
        edgesInReachedFiles: 0, reachedFiles: [], typedErrors: 0, findings: [finding], stats: {},
      });
    }, 250);
    worker.on('message', (m: { type: string; report?: TargetReport; runs?: number; corpus?: number; features?: number }) => {
      if (m.type === 'progress') opts.log(`  ${name}: ${m.runs} inputs, corpus ${m.corpus}, features ${m.features}`);
      if (m.type === 'done') { done = true; clearInterval(timer); resolve(m.report!); }
    });
    worker.on('error', (err) => { if (!done) { done = true; clearInterval(timer); reject(err); } });
    worker.on('exit', (code) => {
      clearInterval(timer);
      if (!done) { done = true; reject(new Error(`fuzz worker for ${name} exited with code ${code} before reporting`)); }
    });
  });
}

/** Saves each finding as <target>-<id>.bin (the input) and .txt (what happened). */
export function saveFindings(report: TargetReport, dir: string): string[] {
  const files: string[] = [];
  if (report.findings.length === 0) return files;
  fs.mkdirSync(dir, { recursive: true });
  for (const f of report.findings) {
    const data = Buffer.from(f.inputHex, 'hex');
    const base = path.join(dir, `${report.target}-${f.kind}-${inputId(data)}`);
    fs.writeFileSync(base + '.bin', data);
    fs.writeFileSync(base + '.txt', `${f.kind} in target ${report.target}\n${f.signature}\n\n${f.message}\n\ninput (${data.length} bytes): ${f.inputHex}\n`);
    files.push(base + '.bin');
  }
  return files;
}

export async function runAll(opts: RunOptions): Promise<TargetReport[]> {
  const tree = opts.coverage ? instrumentedTree() : null;
  if (tree) opts.log(`instrumented ${Object.keys(tree.ranges).length} source files: ${tree.edgeCount} edges`);
  const names = opts.targets.length > 0 ? opts.targets : TARGETS.map((t) => t.name);
  const reports: TargetReport[] = [];
  for (const name of names) {
    if (!TARGETS.some((t) => t.name === name)) throw new Error(`unknown fuzz target "${name}" (known: ${TARGETS.map((t) => t.name).join(', ')})`);
    const r = await runTargetInWorker(name, opts, tree);
    reports.push(r);
    const saved = saveFindings(r, opts.findingsDir);
    opts.log(`${name}: ${r.runs} inputs in ${r.seconds} s (${r.execPerSecond}/s), corpus ${r.corpusEntries}, ` +
      `${r.edgesHit}/${r.edgesInReachedFiles} edges in ${r.reachedFiles.length} files, ${r.typedErrors} typed errors, ${r.findings.length} findings` +
      (saved.length ? ` -> ${saved.join(', ')}` : ''));
  }
  return reports;
}

async function workerMain(): Promise<void> {
  const w = workerData as WorkerInput;
  const target = TARGETS.find((t) => t.name === w.target)!;
  let coverage: Uint8Array | null = null;
  let root = path.join(REPO, 'dist');
  if (w.tree !== null) {
    // Rounded up to whole 32-bit words: the engine scans the map a word at a time.
    coverage = new Uint8Array((w.tree.edgeCount + 3) & ~3);
    (globalThis as { __lpcov?: Uint8Array }).__lpcov = coverage;
    root = w.tree.root;
  }
  const load = <T>(rel: string): Promise<T> => import(pathToFileURL(path.join(root, rel)).href) as Promise<T>;
  const report = await fuzzTarget(target, load, {
    runs: w.runs, seed: w.seed, coverage, ranges: w.tree?.ranges ?? {},
    watch: new Int32Array(w.watch, 0, WATCH_HEADER_INTS), watchBytes: new Uint8Array(w.watch, WATCH_HEADER_INTS * 4),
    maxFindings: 20, maxSeconds: w.maxSeconds,
    onProgress: (runs, corpus, features) => { if ((runs & 0x3ffff) === 0) parentPort!.postMessage({ type: 'progress', runs, corpus, features }); },
  });
  parentPort!.postMessage({ type: 'done', report });
}

function parseArgs(argv: string[]): RunOptions & { json: string | null } {
  const o: RunOptions & { json: string | null } = {
    runs: 1_000_000, targets: [], seed: 1, hangMs: 10_000, maxSeconds: 0, coverage: true, json: null,
    findingsDir: path.join(REPO, 'fuzz', 'findings'), log: (l) => console.log(l),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    if (a === '--runs') o.runs = Number(v());
    else if (a === '--targets') o.targets = v().split(',').filter(Boolean);
    else if (a === '--seed') o.seed = Number(v());
    else if (a === '--hang-ms') o.hangMs = Number(v());
    else if (a === '--max-seconds') o.maxSeconds = Number(v());
    else if (a === '--json') o.json = v();
    else if (a === '--no-coverage') o.coverage = false;
    else throw new Error(`unknown option ${a} (see the comment at the top of fuzz/run.ts)`);
  }
  return o;
}

if (!isMainThread && (workerData as WorkerInput | undefined)?.watch) {
  void workerMain();
} else if (isMainThread && process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  runAll(opts).then((reports) => {
    const total = reports.reduce((a, r) => a + r.runs, 0);
    const findings = reports.reduce((a, r) => a + r.findings.length, 0);
    console.log(`fuzz: ${reports.length} targets, ${total} inputs, ${findings} findings, ${Math.round((Date.now() - started) / 1000)} s (seed ${opts.seed})`);
    if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), node: process.version, seed: opts.seed, reports }, null, 2));
    process.exitCode = findings > 0 ? 1 : 0;
  }, (err) => { console.error(err); process.exitCode = 1; });
}
