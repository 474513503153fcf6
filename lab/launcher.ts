/**
 * Helpers for the launcher and web view suites: `lanparty up` with a config and extra flags inside
 * a namespace (output kept, lines awaited), and guests started the way a user would, through
 * `lanparty qemu NAME -- ...`, whose console (QEMU's -serial stdio, passed through the launcher)
 * is parsed like lab/guest.ts does, and whose exit code is the launcher's.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killProcess, log, tempDir, type Netns } from './netns.js';
import { accelArgs, buildGuest, parseResultLine, type CmdlineValue, type ParsedResult } from './guest.js';
import { cliPath } from './netns-lanparty.js';

export interface UpProcess {
  readonly dir: string;
  readonly control: string;
  readonly output: string[];
  /** Resolves with the first output line matching `re` (already seen or later). */
  line(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<number | null>;
}

function lineWaiter(output: string[], label: string) {
  const waiters: Array<{ re: RegExp; res: (l: string) => void }> = [];
  return {
    push(line: string) {
      output.push(line);
      for (const w of [...waiters]) if (w.re.test(line)) { waiters.splice(waiters.indexOf(w), 1); w.res(line); }
    },
    line(re: RegExp, timeoutMs = 30_000): Promise<string> {
      const seen = output.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`${label}: no line matching ${re} within ${timeoutMs} ms; output:\n${output.join('\n')}`)), timeoutMs);
        waiters.push({ re, res: (l) => { clearTimeout(timer); res(l); } });
      });
    },
  };
}

function pipeLines(stream: NodeJS.ReadableStream, onLine: (l: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const p of parts) onLine(p.replace(/\r/g, ''));
  });
  stream.on('end', () => { if (partial) onLine(partial); });
}

/** Starts `lanparty up --config` (TOML text, or made from the temp dir) plus `extraArgs` in `ns` and waits for `ready`. */
export async function startUp(ns: Netns, tomlOf: string | ((dir: string) => string), extraArgs: string[] = [], label = 'lanparty'): Promise<UpProcess> {
  const dir = tempDir('up');
  const config = join(dir, 'lan.toml');
  const toml = typeof tomlOf === 'string' ? tomlOf : tomlOf(dir);
  writeFileSync(config, toml);
  log(`[${ns.name}] cat ${config}\n${toml.replace(/^/gm, '    ')}`);
  const control = join(dir, 'control.sock');
  const child = ns.spawn([process.execPath, cliPath(), 'up', '--config', config, '--control', control, '--lease-file', join(dir, 'leases.json'), ...extraArgs], label);
  const output: string[] = [];
  const w = lineWaiter(output, label);
  const exit = new Promise<number | null>((res) => child.once('exit', (code, signal) => res(code ?? (signal ? 128 : null))));
  pipeLines(child.stdout!, (l) => { log(`  ${label}| ${l}`); w.push(l); });
  pipeLines(child.stderr!, (l) => { log(`  ${label}| ${l}`); w.push(`[stderr] ${l}`); });
  await Promise.race([w.line(/^ready$/, 20_000), exit.then((c) => { throw new Error(`${label} exited (${c}) before ready:\n${output.join('\n')}`); })]);
  return {
    dir, control, output, line: w.line,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return exit;
      log(`[${ns.name}] kill -INT ${child.pid} (${label})`);
      child.kill('SIGINT');
      const timer = setTimeout(() => killProcess(child, label), 10_000);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface LaunchedGuest {
  readonly name: string;
  /** Console lines (QEMU's serial, through the launcher's stdout). */
  readonly lines: string[];
  /** The launcher's own stderr lines (its choice of transport, errors). */
  readonly stderr: string[];
  readonly pid: number;
  line(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves at LP-DONE with the results; rejects if the launcher exits first. */
  done(timeoutMs: number): Promise<{ done: string; results: ParsedResult[] }>;
  exited(): Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
}

export interface LaunchOptions {
  ns: Netns;
  name: string;
  control: string;
  cmdline?: Record<string, CmdlineValue>;
  /** `lanparty qemu` options before `--`. */
  launcherArgs?: string[];
  /** Replace the QEMU arguments after `--` entirely. */
  qemuArgs?: string[];
}

/** `lanparty qemu NAME --control C --model virtio-net-pci,romfile= ... -- <test guest args>`. */
export async function launch(opts: LaunchOptions): Promise<LaunchedGuest> {
  const image = await buildGuest();
  const lp = Object.entries<CmdlineValue>({ hostname: opts.name, ...(opts.cmdline ?? {}) })
    .map(([k, v]) => `lp.${k}=${Array.isArray(v) ? v.join(',') : v === true ? '1' : String(v)}`).join(' ');
  const qemuArgs = opts.qemuArgs ?? [
    ...accelArgs(), '-m', '256', '-smp', '1', '-nodefaults', '-nographic', '-no-reboot', '-monitor', 'none', '-serial', 'stdio',
    '-kernel', image.kernel, '-initrd', image.initrd, '-append', `console=ttyS0 panic=-1 quiet ${lp}`,
  ];
  // romfile= drops the iPXE option ROM, which costs seconds of TCG time at every boot.
  const argv = [process.execPath, cliPath(), 'qemu', opts.name, '--control', opts.control, '--model', 'virtio-net-pci,romfile=', ...(opts.launcherArgs ?? []), '--', ...qemuArgs];
  const child = opts.ns.spawn(argv, `lanparty qemu ${opts.name}`);
  const lines: string[] = [];
  const stderr: string[] = [];
  const w = lineWaiter(lines, `guest ${opts.name}`);
  const exit = new Promise<number | null>((res) => child.once('exit', (code, signal) => res(code ?? (signal ? 128 : null))));
  pipeLines(child.stdout!, (raw) => {
    const l = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '');
    if (l.includes('LP-')) log(`  ${opts.name}| ${l}`);
    w.push(l);
  });
  pipeLines(child.stderr!, (l) => { log(`  ${opts.name} (stderr)| ${l}`); stderr.push(l); w.push(`[stderr] ${l}`); });
  return {
    name: opts.name, lines, stderr, pid: child.pid!, line: w.line,
    done: async (timeoutMs) => {
      const line = await Promise.race([
        w.line(/LP-DONE (ok|fail)/, timeoutMs),
        exit.then((c) => { throw new Error(`lanparty qemu ${opts.name} exited (${c}) before LP-DONE; last lines:\n${lines.slice(-30).join('\n')}`); }),
      ]);
      return { done: /LP-DONE (ok|fail.*)/.exec(line)![1], results: lines.map(parseResultLine).filter((r): r is ParsedResult => r !== undefined) };
    },
    exited: () => exit,
    signal: (sig) => {
      log(`[${opts.ns.name}] kill -${sig.replace('SIG', '')} ${child.pid} (lanparty qemu ${opts.name})`);
      child.kill(sig);
    },
  };
}
