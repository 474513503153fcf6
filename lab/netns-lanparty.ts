/**
 * Runs `lanparty up` inside a test namespace, for the *.netns.test.ts suites: writes a TOML config
 * with the given port locators, starts `node dist/src/cli/main.js up --config FILE` (with its own
 * control socket and lease file in a temp dir, so instances in several namespaces never share
 * state), waits for the `ready` line (printed once every port listens), and keeps stdout/stderr.
 * `stop()` sends SIGINT and waits for a clean exit. Registered for cleanup like everything else.
 * `lanpartyStatus()` asks a running instance for `lanparty status --json` through its control socket.
 */
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killProcess, log, tempDir, type Netns } from './netns.js';
import { repoRoot } from './guest.js';

export interface LanpartyOptions {
  ns: Netns;
  /** Port locators, e.g. `udp://127.0.0.1:33001`; become [[port]] url = ... entries. */
  ports: string[];
  macAgeSeconds?: number;
  /** Extra `lanparty up` flags. */
  extraArgs?: string[];
  /** Flags for node itself, before the script (--cpu-prof, --trace-gc: the bench's LP_BENCH_NODE_FLAGS). */
  nodeFlags?: string[];
  readyTimeoutMs?: number;
  /** Label for logs (default "lanparty"). */
  label?: string;
  /** Lease file (default <dir>/leases.json); pass the same one to a second instance to restart. */
  leaseFile?: string;
  /** More TOML appended to the generated config, e.g. `[dhcp]\nkey_by = "client-id"`. */
  configToml?: string;
  /** Extra environment for the lanparty process (e.g. LANPARTY_UDP_GSO=0). */
  env?: Record<string, string>;
}

export interface Lanparty {
  readonly dir: string;
  readonly controlPath: string;
  readonly leaseFile: string;
  readonly output: string[];
  /** SIGINT, then waits up to 10 s for exit (then SIGKILL); resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (a crash: no goodbye to peers, sockets closed by the kernel); resolves on exit. */
  kill(): Promise<number | null>;
  exited(): Promise<number | null>;
  /** The process id (inside the namespace's pid space, which is the host's). */
  readonly pid: number;
}

export function cliPath(): string {
  return join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
}

/** Why lanparty can't be started (no compiled CLI), or undefined. Not a skip: a test failure. */
export function lanpartyMissing(): string | undefined {
  const cli = cliPath();
  return existsSync(cli) ? undefined : `${cli} does not exist; run npx tsc -p . (is src/cli/main.ts there?)`;
}

function tomlString(s: string): string {
  return JSON.stringify(s); // TOML basic strings accept JSON's escapes for what locators contain.
}

export async function startLanparty(opts: LanpartyOptions): Promise<Lanparty> {
  const missing = lanpartyMissing();
  if (missing) throw new Error(missing);
  const label = opts.label ?? 'lanparty';
  const dir = tempDir('lanparty');
  const configPath = join(dir, 'lanparty.toml');
  const toml = [
    '[switch]',
    `mac_age_seconds = ${opts.macAgeSeconds ?? 300}`,
    ...opts.ports.flatMap((url) => ['', '[[port]]', `url = ${tomlString(url)}`]),
    ...(opts.configToml !== undefined ? ['', opts.configToml] : []),
    '',
  ].join('\n');
  writeFileSync(configPath, toml);
  log(`[${opts.ns.name}] cat ${configPath}\n${toml.replace(/^/gm, '    ')}`);
  const controlPath = join(dir, 'control.sock');
  const leaseFile = opts.leaseFile ?? join(dir, 'leases.json');
  const argv = [
    process.execPath, ...(opts.nodeFlags ?? []), cliPath(), 'up', '--config', configPath,
    '--control', controlPath, '--lease-file', leaseFile,
    ...(opts.extraArgs ?? []),
  ];
  const child = opts.ns.spawn(argv, label, opts.env ? { env: { ...process.env, ...opts.env } } : {});
  const output: string[] = [];
  let readySeen = false;
  const exit = new Promise<number | null>((res) => child.once('exit', (code, signal) => res(code ?? (signal ? 128 : null))));
  const ready = new Promise<void>((res, rej) => {
    const timeoutMs = opts.readyTimeoutMs ?? 20_000;
    const timer = setTimeout(() => rej(new Error(`${label}: no "ready" line within ${timeoutMs} ms; output:\n${output.join('\n')}`)), timeoutMs);
    const take = (stream: 'out' | 'err') => {
      let partial = '';
      return (d: string) => {
        partial += d;
        const parts = partial.split('\n');
        partial = parts.pop()!;
        for (const line of parts) {
          output.push(stream === 'err' ? `[stderr] ${line}` : line);
          log(`  ${label}| ${line}`);
          if (stream === 'out' && !readySeen && /^ready\b/.test(line)) {
            readySeen = true;
            clearTimeout(timer);
            res();
          }
        }
      };
    };
    child.stdout!.setEncoding('utf8').on('data', take('out'));
    child.stderr!.setEncoding('utf8').on('data', take('err'));
    void exit.then((code) => {
      clearTimeout(timer);
      if (!readySeen) rej(new Error(`${label}: exited (${code}) before "ready"; output:\n${output.join('\n')}`));
    });
  });
  await ready;
  return {
    dir,
    controlPath,
    leaseFile,
    output,
    pid: child.pid!,
    exited: () => exit,
    kill: async () => {
      killProcess(child, label);
      return exit;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return exit;
      log(`[${opts.ns.name}] kill -INT ${child.pid} (${label})`);
      child.kill('SIGINT');
      const timer = setTimeout(() => killProcess(child, label), 10_000);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

/** `lanparty status --json --control PATH` of a running instance (echoed), parsed. */
export function lanpartyStatus<T = Record<string, unknown>>(lp: Pick<Lanparty, 'controlPath'>): Promise<T> {
  const argv = [process.execPath, cliPath(), 'status', '--json', '--control', lp.controlPath];
  log(`[host] lanparty status --json --control ${lp.controlPath}`);
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`lanparty status --json --control ${lp.controlPath}: ${err.message.trim()}\n${stderr}`, { cause: err }));
      else resolve(JSON.parse(stdout) as T);
    });
  });
}
