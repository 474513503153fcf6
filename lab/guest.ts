/**
 * QEMU test guests for the *.netns.test.ts suites (after WireGuard's qemu harness): the guest's
 * /init (scripts/guest-init.sh) takes its task from the kernel command line and reports
 * `LP-RESULT ...` lines and a final `LP-DONE ok|fail` on the serial console; the host runs QEMU
 * inside a test namespace under a timeout and passes only on `LP-DONE ok`, so a hang or a kernel
 * panic can never pass.
 *
 * Stages: buildGuest (once per process) → startGuest (spawn in the namespace, collect serial
 * lines) → result() (LP-DONE, or reject on timeout / early exit with the console tail) → kill.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killProcess, log, registerCleanup, type Netns } from './netns.js';

/** The repository root: the nearest directory upwards holding lanparty's package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'lanparty') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the lanparty repository root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const QEMU = 'qemu-system-x86_64';

/** Why guest tests can't run here (besides netnsSkipReason), or undefined. */
export function guestSkipReason(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, QEMU))) return undefined;
  }
  return `${QEMU} is not installed (apt-get install qemu-system-x86); guest tests need it`;
}

// ---------------------------------------------------------------------------------------------
// Build

export interface GuestImage {
  kernel: string;
  initrd: string;
}

let building: Promise<GuestImage> | undefined;

/** Runs scripts/build-guest.sh once per process (it caches across runs) and returns the files. */
export function buildGuest(): Promise<GuestImage> {
  building ??= new Promise<GuestImage>((resolvePromise, reject) => {
    const script = join(repoRoot(), 'scripts', 'build-guest.sh');
    log(`[host] sh ${script}`);
    const started = Date.now();
    const child = spawn('sh', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of d.split('\n')) if (line) log(line);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('exit', (code) => {
      const m = /^guest: ready (.+)$/m.exec(out);
      if (code !== 0 || !m) {
        reject(new Error(`scripts/build-guest.sh failed (exit ${code}):\n${out}${err}`));
        return;
      }
      log(`[host] guest image ready in ${Date.now() - started} ms`);
      resolvePromise({ kernel: join(m[1], 'vmlinuz'), initrd: join(m[1], 'initrd.gz') });
    });
  });
  return building;
}

// ---------------------------------------------------------------------------------------------
// Acceleration

let accelNote: string | undefined;

/**
 * `-accel kvm` only when a real KVM module is loaded: a /dev/kvm may be PVM (kvm_pvm), which
 * can't boot a stock kernel (docs/test-machine.md).
 */
export function accelArgs(): string[] {
  const kvm = ['kvm_intel', 'kvm_amd'].find((m) => existsSync(`/sys/module/${m}`));
  if (kvm && existsSync('/dev/kvm')) {
    if (!accelNote) log((accelNote = `guest: using KVM (${kvm})`));
    return ['-accel', 'kvm', '-cpu', 'host'];
  }
  if (!accelNote) {
    const why = existsSync('/dev/kvm')
      ? `/dev/kvm exists but neither /sys/module/kvm_intel nor /sys/module/kvm_amd${existsSync('/sys/module/kvm_pvm') ? '; it is PVM (kvm_pvm)' : ''}`
      : 'no /dev/kvm';
    log((accelNote = `guest: using TCG (no usable KVM: ${why})`));
  }
  return ['-accel', 'tcg'];
}

// ---------------------------------------------------------------------------------------------
// Results

export interface ParsedResult {
  /** The task: link, ip, dhcp, ping, iperf, iperf-server, ... */
  kind: string;
  /** What it was about: an address, an interface. */
  target: string;
  ok: boolean;
  /** key=value pairs after ok/fail, e.g. rtt_ms, mbps, ip. */
  fields: Record<string, string>;
  line: string;
}

/** Parses `LP-RESULT <kind> <target> ok|fail k=v ...`; undefined for other lines. */
export function parseResultLine(line: string): ParsedResult | undefined {
  const m = /LP-RESULT (\S+) (\S+) (ok|fail)\b(.*)$/.exec(line);
  if (!m) return undefined;
  const fields: Record<string, string> = {};
  for (const word of m[4].trim().split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq > 0) fields[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return { kind: m[1], target: m[2], ok: m[3] === 'ok', fields, line: m[0] };
}

export interface GuestResult {
  done: 'ok' | 'fail';
  /** The reason after `LP-DONE fail`, else ''. */
  reason: string;
  lines: string[];
  results: ParsedResult[];
  /** Milliseconds from spawning QEMU to the guest's `LP-BOOT` line (init started). */
  bootMs: number;
  /** Milliseconds from spawning QEMU to `LP-DONE`. */
  doneMs: number;
}

export type CmdlineValue = string | number | boolean | Array<string | number>;

export interface GuestOptions {
  ns: Netns;
  name: string;
  mac: string;
  /** The -netdev value (one argument, id must be n0), or several arguments starting with -netdev. */
  netdevArgs: string[];
  /** Becomes lp.<key>=<value> on the kernel command line; arrays are joined with commas. */
  cmdline: Record<string, CmdlineValue>;
  timeoutMs?: number;
  memoryMb?: number;
}

export interface Guest {
  readonly name: string;
  /** Every console line so far (without \r). */
  readonly lines: string[];
  /** Resolves at LP-DONE; rejects on timeout or if QEMU exits first, with the last 30 lines. */
  result(): Promise<GuestResult>;
  /** Resolves when QEMU has exited. */
  exited(): Promise<number | null>;
  kill(): void;
}

/** A fixed MAC scheme for tests: 02:00:00:00:00:NN (locally administered, unicast). */
export function macForGuest(n: number): string {
  return `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
}

function cmdlineText(cmdline: Record<string, CmdlineValue>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(cmdline)) {
    const text = Array.isArray(v) ? v.join(',') : v === true ? '1' : String(v);
    if (/\s/.test(text)) throw new Error(`guest cmdline lp.${k}: value "${text}" may not contain spaces`);
    parts.push(`lp.${k}=${text}`);
  }
  return parts.join(' ');
}

/** Builds the guest image if needed and starts QEMU inside `opts.ns`; registered for cleanup. */
export async function startGuest(opts: GuestOptions): Promise<Guest> {
  const image = await buildGuest();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const netdev = opts.netdevArgs[0]?.startsWith('-') ? opts.netdevArgs : ['-netdev', ...opts.netdevArgs];
  const append = `console=ttyS0 panic=-1 quiet ${cmdlineText({ hostname: opts.name, ...opts.cmdline })}`;
  const argv = [
    QEMU, ...accelArgs(), '-m', String(opts.memoryMb ?? 256), '-smp', '1',
    '-nodefaults', '-nographic', '-no-reboot', '-monitor', 'none', '-serial', 'stdio',
    '-name', opts.name,
    '-kernel', image.kernel, '-initrd', image.initrd, '-append', append,
    ...netdev,
    // romfile= drops the iPXE option ROM: it would cost seconds of TCG time at every boot.
    '-device', `virtio-net-pci,netdev=n0,mac=${opts.mac},romfile=`,
  ];
  const started = Date.now();
  const child = opts.ns.spawn(argv, `guest ${opts.name}`);
  const lines: string[] = [];
  let partial = '';
  let bootMs = -1;
  let settle: ((r: GuestResult | Error) => void) | undefined;
  const outcome = new Promise<GuestResult>((res, rej) => {
    settle = (r) => {
      settle = undefined;
      if (r instanceof Error) rej(r);
      else res(r);
    };
  });
  // Don't let an unobserved rejection crash the process; result() hands the same promise out.
  outcome.catch(() => {});
  const tail = () => lines.slice(-30).map((l) => `  ${opts.name}| ${l}`).join('\n');
  const timer = setTimeout(() => {
    settle?.(new Error(`guest ${opts.name}: no LP-DONE within ${timeoutMs} ms; last console lines:\n${tail()}`));
    killProcess(child, `guest ${opts.name}`);
  }, timeoutMs);

  const onLine = (raw: string) => {
    // Strip \r and terminal escapes (SeaBIOS clears the screen).
    const line = raw.replace(/\r/g, '').replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '');
    lines.push(line);
    if (line.includes('LP-')) log(`  ${opts.name}| ${line}`);
    if (bootMs < 0 && line.includes('LP-BOOT')) bootMs = Date.now() - started;
    const done = /LP-DONE (ok|fail)\s*(.*)$/.exec(line);
    if (done && settle) {
      clearTimeout(timer);
      const results = lines.map(parseResultLine).filter((r): r is ParsedResult => r !== undefined);
      settle({ done: done[1] as 'ok' | 'fail', reason: done[2].trim(), lines: [...lines], results, bootMs, doneMs: Date.now() - started });
    }
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const p of parts) onLine(p);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    for (const l of d.split('\n')) if (l.trim()) onLine(`[qemu stderr] ${l}`);
  });
  const exit = new Promise<number | null>((res) => {
    child.once('exit', (code, signal) => {
      if (partial) onLine(partial);
      clearTimeout(timer);
      settle?.(new Error(`guest ${opts.name}: QEMU exited (${signal ?? code}) before LP-DONE; last console lines:\n${tail()}`));
      res(code);
    });
  });
  child.once('error', (err) => settle?.(new Error(`guest ${opts.name}: cannot start QEMU: ${err.message}`)));
  return {
    name: opts.name,
    lines,
    result: () => outcome,
    exited: () => exit,
    kill: () => killProcess(child, `guest ${opts.name}`),
  };
}

/** A guest's results as text, for assertion messages. */
export function summarize(name: string, r: GuestResult): string {
  return summaryLines(name, r).join('\n');
}

/** The same, one line per entry (t.diagnostic shows one line per call). */
export function summaryLines(name: string, r: GuestResult): string[] {
  return [
    `${name}: LP-DONE ${r.done}${r.reason ? ` ${r.reason}` : ''} (init after ${r.bootMs} ms, done after ${r.doneMs} ms)`,
    ...r.results.map((x) => `  ${name}: ${x.line}`),
  ];
}

/** The first line of `qemu-system-x86_64 --version`, for diagnostics. */
export function qemuVersion(): string {
  try {
    return execFileSync(QEMU, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  } catch {
    return 'unknown';
  }
}
