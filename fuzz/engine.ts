/**
 * The fuzzing engine: a coverage-guided mutation fuzzer in the style of libFuzzer/AFL, for
 * targets written against lanparty's own modules.
 *
 * Stages of one input, in order:
 *   1. Pick a corpus entry (newer entries a little more often) and mutate it: 1-8 stacked havoc
 *      mutations (bit flips, interesting values, arithmetic, block insert/delete/copy, dictionary
 *      tokens, splicing with another entry); one input in 32 is fresh random bytes instead.
 *   2. Publish it to the watchdog (shared memory), then run the target on it.
 *   3. Classify the outcome: returned, threw a LanpartyError with an allowed code (fine), or
 *      threw anything else (a finding: crash, failed property, wrong error type).
 *   4. Read the edge counters the instrumented tree bumped (see instrument.ts), bucket them as
 *      AFL does (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+), and keep the input in the corpus when
 *      it reached a new (edge, bucket) pair. Zero the counters.
 *
 * The engine runs inside a worker thread; the runner (run.ts) watches a heartbeat and ends a
 * worker whose input runs longer than the hang limit, so a hang is reported with its input.
 * Random choices come from one seeded xorshift generator: a run is reproducible from its seed.
 */
import { createHash } from 'node:crypto';

export interface FuzzRun {
  /** Runs one input. Throw (e.g. assert) when a property fails. */
  run(data: Buffer): void | Promise<void>;
  close?(): void | Promise<void>;
  /** Target-specific counters for the report (e.g. frames answered, drops by reason). */
  stats?(): Record<string, number>;
}

/** Imports a module of the (instrumented) tree by its path relative to the repo, e.g. "src/wire/dhcp.js". */
export type Loader = <T>(rel: string) => Promise<T>;

export interface FuzzTarget {
  name: string;
  /** The property, in one sentence, for the report. */
  description: string;
  /** Codes a LanpartyError may carry when it comes out of run(); anything else thrown is a finding. */
  allowedCodes: readonly string[];
  maxInputBytes: number;
  /** True when run() returns a promise. */
  async?: boolean;
  dictionary?: ReadonlyArray<string | Buffer>;
  seeds(): Buffer[];
  setup(load: Loader): Promise<FuzzRun>;
}

export interface Finding {
  kind: 'crash' | 'hang';
  /** First line of the error plus the top stack frame: findings with the same signature are one bug. */
  signature: string;
  message: string;
  inputHex: string;
}

export interface TargetReport {
  target: string;
  description: string;
  runs: number;
  seconds: number;
  execPerSecond: number;
  corpusEntries: number;
  seeds: number;
  /** (edge, bucket) pairs reached, and distinct edges hit. */
  features: number;
  edgesHit: number;
  /** Edges in the source files the target reached at all (its denominator). */
  edgesInReachedFiles: number;
  reachedFiles: string[];
  typedErrors: number;
  findings: Finding[];
  stats: Record<string, number>;
}

/** xorshift128+, seeded; good enough for mutation choices and reproducible from the seed. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    this.s0 = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.s1 = (seed * 0x85ebca6b) >>> 0 || 2;
    this.s2 = 0xc2b2ae35;
    this.s3 = 0x27d4eb2f;
    for (let i = 0; i < 16; i++) this.u32();
  }
  /** xoshiro128** step. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 ^= t; this.s3 = rotl(this.s3, 11);
    return r;
  }
  /** 0 <= n < max. */
  below(max: number): number {
    return max <= 1 ? 0 : this.u32() % max;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * The largest frame the switch accepts (DEFAULT_SWITCH_OPTIONS.maxFrameBytes: a 65535-byte MTU,
 * the Ethernet header and one VLAN tag): targets fed what a guest sends take inputs this long.
 */
export const MAX_FRAME_INPUT_BYTES = 65_553;

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0x3f, 0xc0, 4, 5, 6, 8];
const INTERESTING_16 = [0, 1, 0x7fff, 0x8000, 0xffff, 0x100, 0x200, 0x400, 0x5dc, 0x5ee, 0x600, 0x800, 0x806, 0x8100, 0x88a8, 0x86dd, 0x3fff, 0xc00c, 53, 67, 68, 4789, 576];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x63825363, 0x08000000, 0x10000, 0xffff, 65536, 65553, 0x45000000];

/** AFL's hit-count buckets: count (0..255) to one bit. */
const BUCKET = new Uint8Array(256);
for (let c = 1; c < 256; c++) BUCKET[c] = c === 1 ? 1 : c === 2 ? 2 : c === 3 ? 4 : c < 8 ? 8 : c < 16 ? 16 : c < 32 ? 32 : c < 128 ? 64 : 128;

export class Mutator {
  private readonly dict: Buffer[];
  constructor(private readonly rng: Rng, dictionary: ReadonlyArray<string | Buffer>, private readonly maxBytes: number) {
    this.dict = dictionary.map((d) => (typeof d === 'string' ? Buffer.from(d, 'utf8') : d));
  }

  /** A mutated copy of `input` (1-8 stacked havoc steps), never longer than maxBytes. */
  mutate(input: Buffer, corpus: readonly Buffer[]): Buffer {
    const r = this.rng;
    let b: Buffer = Buffer.from(input);
    const steps = 1 << r.below(4);
    for (let s = 0; s < steps; s++) b = this.step(b, corpus);
    return b.length > this.maxBytes ? b.subarray(0, this.maxBytes) : b;
  }

  private step(b: Buffer, corpus: readonly Buffer[]): Buffer {
    const r = this.rng;
    const n = b.length;
    const op = r.below(this.dict.length > 0 ? 16 : 14);
    switch (op) {
      case 0: if (n > 0) { const i = r.below(n); b[i] ^= 1 << r.below(8); } return b;
      case 1: if (n > 0) b[r.below(n)] = r.u32() & 0xff; return b;
      case 2: if (n > 0) b[r.below(n)] = INTERESTING_8[r.below(INTERESTING_8.length)]; return b;
      case 3: if (n > 1) { const i = r.below(n - 1); const v = INTERESTING_16[r.below(INTERESTING_16.length)]; if (r.below(2)) b.writeUInt16BE(v, i); else b.writeUInt16LE(v, i); } return b;
      case 4: if (n > 3) { const i = r.below(n - 3); b.writeUInt32BE(INTERESTING_32[r.below(INTERESTING_32.length)] >>> 0, i); } return b;
      case 5: if (n > 0) { const i = r.below(n); b[i] = (b[i] + 1 + r.below(35) * (r.below(2) ? 1 : -1)) & 0xff; } return b;
      case 6: if (n > 1) { const i = r.below(n - 1); b.writeUInt16BE((b.readUInt16BE(i) + (r.below(2) ? 1 : -1) * (1 + r.below(35))) & 0xffff, i); } return b;
      case 7: { // delete a block
        if (n < 2) return b;
        const len = 1 + r.below(Math.min(n - 1, 1 << (1 + r.below(8))));
        const at = r.below(n - len + 1);
        return Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
      }
      case 8: { // insert random bytes or a repeated byte
        const len = 1 + r.below(1 << (1 + r.below(7)));
        const at = r.below(n + 1);
        const ins = r.below(2) ? r.bytes(len) : Buffer.alloc(len, r.u32() & 0xff);
        return Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
      }
      case 9: { // copy a block of the input over another place
        if (n < 2) return b;
        const len = 1 + r.below(Math.min(n - 1, 64));
        const from = r.below(n - len + 1);
        const to = r.below(n - len + 1);
        b.copy(b, to, from, from + len);
        return b;
      }
      case 10: { // duplicate a block in place
        if (n < 1) return b;
        const len = 1 + r.below(Math.min(n, 64));
        const from = r.below(n - len + 1);
        return Buffer.concat([b.subarray(0, from + len), b.subarray(from, from + len), b.subarray(from + len)]);
      }
      case 11: { // splice with another corpus entry
        const other = corpus[r.below(corpus.length)];
        if (!other || other.length < 2 || n < 2) return b;
        const cut = r.below(Math.min(n, other.length));
        return Buffer.concat([b.subarray(0, cut), other.subarray(cut)]);
      }
      case 12: { // truncate
        if (n < 2) return b;
        return b.subarray(0, r.below(n));
      }
      case 13: { // overwrite a block with random bytes
        if (n < 1) return b;
        const len = 1 + r.below(Math.min(n, 16));
        const at = r.below(n - len + 1);
        for (let i = 0; i < len; i++) b[at + i] = r.u32() & 0xff;
        return b;
      }
      case 14: { // overwrite with a dictionary token
        const t = this.dict[r.below(this.dict.length)];
        if (n < t.length) return Buffer.concat([b, t]);
        t.copy(b, r.below(n - t.length + 1));
        return b;
      }
      default: { // insert a dictionary token
        const t = this.dict[r.below(this.dict.length)];
        const at = r.below(n + 1);
        return Buffer.concat([b.subarray(0, at), t, b.subarray(at)]);
      }
    }
  }
}

/** Shared memory the runner reads: [0] inputs started, [1] current input length, then its bytes. */
export const WATCH_HEADER_INTS = 2;

export interface EngineOptions {
  runs: number;
  seed: number;
  /** Counters bumped by the instrumented tree (globalThis.__lpcov); null runs without guidance. */
  coverage: Uint8Array | null;
  /** File of each counter range, for the report. */
  ranges: Record<string, [number, number]>;
  watch: Int32Array | null;
  watchBytes: Uint8Array | null;
  /** Stop after this many distinct findings. */
  maxFindings: number;
  /** Stop after this many seconds even if `runs` is not reached (0: no limit). */
  maxSeconds: number;
  onProgress?(runs: number, corpus: number, features: number): void;
}

function isAllowed(err: unknown, codes: readonly string[]): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; code?: unknown };
  return e.name === 'LanpartyError' && typeof e.code === 'string' && codes.includes(e.code);
}

function signatureOf(err: unknown): string {
  if (!(err instanceof Error)) return `non-Error thrown: ${String(err)}`.slice(0, 200);
  const first = `${err.name}: ${err.message.split('\n')[0]}`.replace(/\d+/g, 'N').slice(0, 200);
  const frame = (err.stack ?? '').split('\n').find((l) => /^\s+at /.test(l))?.trim().replace(/:\d+:\d+\)?$/, '') ?? '';
  return `${first} ${frame}`;
}

export async function fuzzTarget(target: FuzzTarget, load: Loader, opts: EngineOptions): Promise<TargetReport> {
  const rng = new Rng(opts.seed);
  const mutator = new Mutator(rng, target.dictionary ?? [], target.maxInputBytes);
  const cov = opts.coverage;
  const cov32 = cov === null ? null : new Uint32Array(cov.buffer, cov.byteOffset, cov.byteLength >>> 2);
  const virgin = new Uint8Array(cov === null ? 0 : cov.length);
  let features = 0;
  const corpus: Buffer[] = [];
  const findings = new Map<string, Finding>();
  let typedErrors = 0;
  const runner = await target.setup(load);

  /** Counts new (edge, bucket) pairs since the last call and zeroes the counters. */
  const harvest = (): number => {
    if (cov === null || cov32 === null) return 0;
    let fresh = 0;
    for (let w = 0; w < cov32.length; w++) {
      if (cov32[w] === 0) continue;
      for (let i = w << 2, e = i + 4; i < e; i++) {
        const c = cov[i];
        if (c === 0) continue;
        const bit = BUCKET[c];
        if ((virgin[i] & bit) === 0) { virgin[i] |= bit; fresh++; }
      }
    }
    cov.fill(0);
    features += fresh;
    return fresh;
  };

  const publish = (data: Buffer, n: number): void => {
    if (opts.watch === null || opts.watchBytes === null) return;
    const len = Math.min(data.length, opts.watchBytes.length);
    opts.watchBytes.set(data.subarray(0, len));
    opts.watch[1] = len;
    Atomics.store(opts.watch, 0, n);
  };

  const runOne = async (data: Buffer): Promise<boolean> => {
    try {
      const r = runner.run(data);
      if (target.async) await r;
    } catch (err) {
      if (isAllowed(err, target.allowedCodes)) {
        typedErrors++;
      } else {
        const signature = signatureOf(err);
        if (!findings.has(signature)) {
          findings.set(signature, {
            kind: 'crash', signature,
            message: err instanceof Error ? (err.stack ?? err.message) : String(err),
            inputHex: data.toString('hex'),
          });
        }
      }
    }
    return harvest() > 0;
  };

  const startedMs = Date.now();
  harvest();   // setup's own coverage is not the inputs'
  let runs = 0;
  const seeds = target.seeds();
  for (const s of seeds) {
    const data = s.length > target.maxInputBytes ? s.subarray(0, target.maxInputBytes) : s;
    publish(data, ++runs);
    await runOne(data);
    corpus.push(data);   // every seed stays, new coverage or not
  }
  if (corpus.length === 0) corpus.push(Buffer.alloc(0));
  const maxCorpus = 8192;
  const deadline = opts.maxSeconds > 0 ? startedMs + opts.maxSeconds * 1000 : Infinity;
  while (runs < opts.runs && findings.size < opts.maxFindings) {
    let data: Buffer;
    if ((rng.u32() & 31) === 0) {
      // Sizes spread over powers of two up to 64 KiB, so large-input targets see large inputs too.
      data = rng.bytes(rng.below(Math.min(target.maxInputBytes, 1 << (2 + rng.below(15))) + 1));
    } else {
      // Newer entries (found later, usually deeper) a little more often: pick from the last half.
      const pick = rng.below(4) === 0 ? rng.below(corpus.length) : corpus.length - 1 - rng.below(Math.ceil(corpus.length / 2));
      data = mutator.mutate(corpus[pick], corpus);
    }
    publish(data, ++runs);
    if (await runOne(data)) {
      if (corpus.length < maxCorpus) corpus.push(data);
      else corpus[rng.below(maxCorpus)] = data;
    }
    if ((runs & 0x3fff) === 0) opts.onProgress?.(runs, corpus.length, features);
    // The clock every 64 inputs: a slow target (real file writes) runs about 60 a second.
    if ((runs & 0x3f) === 0 && Date.now() > deadline) break;
  }
  const seconds = (Date.now() - startedMs) / 1000;
  await runner.close?.();

  let edgesHit = 0;
  const reachedFiles: string[] = [];
  let edgesInReachedFiles = 0;
  for (let i = 0; i < virgin.length; i++) if (virgin[i] !== 0) edgesHit++;
  for (const [file, [start, end]] of Object.entries(opts.ranges)) {
    let hit = false;
    for (let i = start; i < end && !hit; i++) hit = virgin[i] !== 0;
    if (hit) { reachedFiles.push(file); edgesInReachedFiles += end - start; }
  }
  return {
    target: target.name,
    description: target.description,
    runs,
    seconds: Math.round(seconds * 10) / 10,
    execPerSecond: Math.round(runs / Math.max(seconds, 0.001)),
    corpusEntries: corpus.length,
    seeds: seeds.length,
    features,
    edgesHit,
    edgesInReachedFiles,
    reachedFiles,
    typedErrors,
    findings: [...findings.values()],
    stats: runner.stats?.() ?? {},
  };
}

/** Short stable name for an input, for file names. */
export function inputId(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex').slice(0, 12);
}
