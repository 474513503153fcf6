/**
 * Throw-away network namespaces for the *.netns.test.ts suites, after WireGuard's netns.sh:
 * names carry the PID (and a counter) so parallel runs never collide, every command is echoed
 * with its namespace before it runs (a failing log reads as a transcript), readiness is polled
 * (`ss`), never slept for, and everything made here is registered for cleanup. The registry runs
 * from the test's `after` hook (`cleanupAll`) and also, synchronously, on process exit, SIGINT and
 * SIGTERM, so an interrupted run leaves no namespace or process behind.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// ---------------------------------------------------------------------------------------------
// Cleanup registry

interface CleanupEntry {
  label: string;
  /** Synchronous, so it can also run from an 'exit' handler; must not throw for "already gone". */
  run: () => void;
}

// Newest first when run: processes started in a namespace go before the namespace itself.
const cleanups: CleanupEntry[] = [];
let handlersInstalled = false;

function runCleanupsSync(): void {
  while (cleanups.length > 0) {
    const entry = cleanups.pop()!;
    try {
      entry.run();
    } catch (err) {
      process.stderr.write(`cleanup ${entry.label}: ${(err as Error).message}\n`);
    }
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', runCleanupsSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`${sig}: removing ${cleanups.length} test objects\n`);
      runCleanupsSync();
      // Die of the same signal, so the parent (node --test, a shell) sees what happened.
      process.kill(process.pid, sig);
    });
  }
}

export interface CleanupHandle {
  /** Runs the step now (at most once) and removes it from the registry. */
  runNow(): void;
  /** Removes the step without running it (the object went away by itself). */
  forget(): void;
}

/** Registers a synchronous cleanup step. */
export function registerCleanup(label: string, run: () => void): CleanupHandle {
  installHandlers();
  const entry: CleanupEntry = { label, run };
  cleanups.push(entry);
  const forget = (): boolean => {
    const i = cleanups.indexOf(entry);
    if (i < 0) return false;
    cleanups.splice(i, 1);
    return true;
  };
  return {
    runNow: () => {
      if (forget()) entry.run();
    },
    forget: () => void forget(),
  };
}

/** Runs every registered cleanup step, newest first. Use as `after(cleanupAll)`. */
export async function cleanupAll(): Promise<void> {
  runCleanupsSync();
}

/** Kills a process tree root we started (by pid only) and forgets it. */
export function killProcess(child: ChildProcess, label: string): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  log(`kill ${label} (pid ${child.pid})`);
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // Already exited.
  }
}

// ---------------------------------------------------------------------------------------------
// Logging and small utilities

export function log(line: string): void {
  console.log(line);
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined/false. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A temporary directory (short path, for unix sockets), removed by the cleanup registry. */
export function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `lp${process.pid}-${tag}-`));
  registerCleanup(`dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** True when `cmd` is an executable file on PATH. */
export function commandExists(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir && existsSync(join(dir, cmd))) return true;
  }
  return false;
}

/**
 * Why the netns suites can't run here, or undefined if they can. Missing KVM is not a reason:
 * guests then run under TCG.
 */
export function netnsSkipReason(needs: string[] = ['ip', 'ss']): string | undefined {
  if (process.platform !== 'linux') return 'netns tests need Linux';
  if (process.getuid?.() !== 0) return 'netns tests need root (network namespaces); run as root, e.g. in CI';
  for (const cmd of needs) {
    if (!commandExists(cmd)) return `netns tests need ${cmd}; install it (see scripts/install-deps.sh)`;
  }
  return undefined;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

function execLogged(prefix: string, file: string, args: string[], echo: string[]): Promise<RunResult> {
  log(`${prefix} ${echo.join(' ')}`);
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${prefix} ${echo.join(' ')}: ${err.message.trim()}${stderr ? `\n${stderr}` : ''}`, { cause: err }));
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

/** Runs a command on the host (echoed with a `[host]` prefix). */
export function hostRun(argv: string[]): Promise<RunResult> {
  return execLogged('[host]', argv[0], argv.slice(1), argv);
}

// ---------------------------------------------------------------------------------------------
// Namespaces

let counter = 0;

export class Netns {
  readonly name: string;
  private readonly cleanup: CleanupHandle;

  private constructor(name: string) {
    this.name = name;
    this.cleanup = registerCleanup(`netns ${name}`, () => {
      log(`[host] ip netns del ${name}`);
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    });
  }

  /** Creates `lp<pid>-<n>-<tag>` with `lo` up (multicast on lo needs it). */
  static async create(tag: string): Promise<Netns> {
    counter += 1;
    const name = `lp${process.pid}-${counter}-${tag}`;
    await hostRun(['ip', 'netns', 'add', name]);
    const ns = new Netns(name);
    await ns.run(['ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Runs a command inside the namespace, echoed as `[name] argv`. Rejects on a non-zero exit. */
  run(argv: string[]): Promise<RunResult> {
    return execLogged(`[${this.name}]`, 'ip', ['netns', 'exec', this.name, ...argv], argv);
  }

  /**
   * Starts a long-running process inside the namespace and registers it for cleanup (SIGKILL at
   * the latest when the test ends). `ip netns exec` execs the command, so the pid is the command's.
   */
  spawn(argv: string[], label: string, options: SpawnOptions = {}): ChildProcess {
    log(`[${this.name}] ${argv.join(' ')} &`);
    const child = spawn('ip', ['netns', 'exec', this.name, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    const cleanup = registerCleanup(`${label} in ${this.name}`, () => killProcess(child, label));
    // The process is gone by itself: keep the registry short.
    child.once('exit', () => cleanup.forget());
    return child;
  }

  /** Polls `ss` until something listens on the port (tcp) or is bound to it (udp). */
  async waitListening(proto: 'tcp' | 'udp', port: number, timeoutMs = 10_000): Promise<void> {
    const flag = proto === 'tcp' ? '-ltnH' : '-lunH';
    await waitFor(`${proto} port ${port} in ${this.name}`, async () => {
      const { stdout } = await new Promise<RunResult>((resolve) => {
        execFile('ip', ['netns', 'exec', this.name, 'ss', flag, `sport = :${port}`], (err, so, se) => resolve({ stdout: err ? '' : so, stderr: se }));
      });
      return stdout.trim().length > 0;
    }, timeoutMs);
    log(`[${this.name}] ss ${flag}: port ${port} ready`);
  }

  /** Polls until a unix socket path exists. */
  async waitPath(path: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(`${path} to exist`, () => existsSync(path), timeoutMs);
  }

  /** Deletes the namespace now (processes in it should be gone first). */
  async destroy(): Promise<void> {
    this.cleanup.runNow();
  }
}

/**
 * Joins two namespaces with a veth pair and gives each end an address (CIDR), both up, and
 * polls until both ends report operstate "up". Optionally routes multicast over the link.
 */
export async function vethPair(
  a: Netns,
  aIf: string,
  aAddr: string,
  b: Netns,
  bIf: string,
  bAddr: string,
  opts: { multicastRoute?: boolean } = {},
): Promise<void> {
  await a.run(['ip', 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  for (const [ns, ifname, addr] of [[a, aIf, aAddr], [b, bIf, bAddr]] as const) {
    await ns.run(['ip', 'addr', 'add', addr, 'dev', ifname]);
    await ns.run(['ip', 'link', 'set', ifname, 'up']);
  }
  for (const [ns, ifname] of [[a, aIf], [b, bIf]] as const) {
    await waitFor(`${ifname} up in ${ns.name}`, async () => {
      const { stdout } = await new Promise<RunResult>((resolve) => {
        execFile('ip', ['netns', 'exec', ns.name, 'cat', `/sys/class/net/${ifname}/operstate`], (err, so, se) => resolve({ stdout: err ? '' : so, stderr: se }));
      });
      return stdout.trim() === 'up';
    }, 10_000);
    if (opts.multicastRoute) await ns.run(['ip', 'route', 'add', '224.0.0.0/4', 'dev', ifname]);
  }
}
