/**
 * The npm package: `npm pack` (its prepack builds the TypeScript and, with prebuildify, the native
 * addon for this platform into native/prebuilds/) gives a tarball that installs globally on a
 * machine with Node 20 and no compiler, and whose installed `lanparty` runs the native data path:
 * the install script (node-gyp-build) finds the prebuild and compiles nothing. Without a matching
 * prebuild and without a compiler the install still succeeds and lanparty runs the JS path.
 * Installs into a throw-away prefix, with a PATH of symlinks to node, npm and a few basics (no
 * g++, cc, make or python3) and CC/CXX pointing nowhere, so an install that tried to build would
 * fail. Dependencies come from npm's cache when it has them (--prefer-offline), else from the registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../lab/guest.js';

const root = repoRoot();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const prebuildDir = `package/native/prebuilds/${platform()}-${arch()}/`;

/**
 * What may be under package/native/ in the tarball: the sources, binding.gyp (for a compile at
 * install where no prebuild matches) and the prebuilds; no node-gyp output (build/, objects,
 * Makefiles, config.gypi).
 */
function nativeJunk(listing: string[]): string[] {
  return listing.filter((f) => f.startsWith('package/native/') && !f.endsWith('/'))
    .filter((f) => f.startsWith('package/native/build/') || !/^package\/native\/(binding\.gyp|([^/]+\/)*[^/]+\.(cc|h|hh|hpp|c)|prebuilds\/[^/]+\/[^/]+\.node)$/.test(f));
}

/** Runs `lanparty up` with one unixgram port until it prints "ready", then returns `status --json`. */
async function upAndStatus(lanparty: string, env: NodeJS.ProcessEnv, dir: string): Promise<{ code: number | null; out: string; status: unknown }> {
  const control = join(dir, 'control.sock');
  const child = spawn(lanparty, ['up', '-p', `unixgram://${join(dir, 'lan.sock')}`, '--control', control, '--no-dhcp'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 60_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (/^ready$/m.test(out)) { clearTimeout(timer); resolve(true); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => { clearTimeout(timer); resolve(false); });
  });
  if (!ready) {
    child.kill('SIGKILL');
    return { code: await exited, out, status: null };
  }
  const st = spawnSync(lanparty, ['status', '--json', '--control', control], { env, encoding: 'utf8' });
  child.kill('SIGTERM');
  const code = await exited;
  assert.equal(st.status, 0, `lanparty status --json: ${st.stderr}`);
  return { code, out, status: JSON.parse(st.stdout) };
}

test('npm pack ships a prebuilt addon; installed globally without a compiler, lanparty runs the native path', { timeout: 600_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'lp-pack-'));
  try {
    // The real `npm pack`: prepack builds dist/ again (the same sources) and the prebuild.
    const packStarted = Date.now();
    execFileSync('npm', ['pack', '--pack-destination', tmp, '--loglevel=error'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const tgz = readdirSync(tmp).find((f) => /^lanparty-.*\.tgz$/.test(f));
    assert.ok(tgz, 'npm pack wrote lanparty-VERSION.tgz');
    t.diagnostic(`npm pack (tsc, prebuildify, tar): ${((Date.now() - packStarted) / 1000).toFixed(1)} s; ${tgz}: ${statSync(join(tmp, tgz)).size} bytes`);
    assert.ok(existsSync(join(root, pkg.bin.lanparty)), `${pkg.bin.lanparty} is built`);
    assert.match(readFileSync(join(root, pkg.bin.lanparty), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the bin has a shebang');
    const listing = execFileSync('tar', ['-tzf', join(tmp, tgz)], { encoding: 'utf8' }).split('\n');
    for (const f of ['package/dist/src/cli/main.js', 'package/dist/src/daemon/web/page/app.js', 'package/src/daemon/web/page/index.html', 'package/src/daemon/web/page/style.css',
      'package/contrib/systemd/lanparty.service', 'package/contrib/bash-completion/lanparty', 'package/README.md', 'package/native/binding.gyp']) {
      assert.ok(listing.includes(f), `the package has ${f}`);
    }
    const prebuilds = listing.filter((f) => f.startsWith(prebuildDir) && f.endsWith('.node'));
    assert.equal(prebuilds.length, 1, `one prebuild for ${platform()}-${arch()} in the package: ${listing.filter((f) => f.includes('prebuilds')).join(', ')}`);
    assert.ok(!listing.some((f) => f.startsWith('package/dist/test/')), 'no tests in the package');
    assert.deepEqual(nativeJunk(listing), [], 'no build output under native/ in the package');
    assert.ok(!listing.includes('package/binding.gyp'), 'no binding.gyp at the top: npm would run node-gyp at install');

    // A PATH with node, npm and the basics but no compiler, make or python3.
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()), join(bin, 'npm'));
    for (const tool of ['sh', 'env', 'tar', 'gzip', 'git']) {
      const found = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p));
      if (found) symlinkSync(found, join(bin, tool));
    }
    const env: NodeJS.ProcessEnv = { PATH: bin, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, CC: '/nonexistent/cc', CXX: '/nonexistent/c++', npm_config_update_notifier: 'false' };
    for (const tool of ['g++', 'c++', 'cc', 'make', 'python3']) {
      assert.notEqual(spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status, 0, `${tool} is not on the test's PATH`);
    }
    const prefix = join(tmp, 'prefix');
    const installStarted = Date.now();
    const install = spawnSync(join(bin, 'npm'), ['install', '-g', '--prefix', prefix, join(tmp, tgz), '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], { env, encoding: 'utf8' });
    const out = `${install.stdout}${install.stderr}`;
    t.diagnostic(`npm install -g: exit ${install.status} in ${((Date.now() - installStarted) / 1000).toFixed(1)} s; ${out.trim().split('\n').slice(-3).join(' | ')}`);
    assert.equal(install.status, 0, out);
    // npm quotes the install script in a notice, so the fallback's words count only at a line's start.
    assert.doesNotMatch(out, /gyp (info|ERR)|g\+\+ |make:|^lanparty: no prebuilt/m, 'the install compiled nothing');
    const installed = join(prefix, 'lib', 'node_modules', 'lanparty');
    assert.ok(!existsSync(join(installed, 'native', 'build')), 'no native/build in the installed package');
    assert.ok(existsSync(join(installed, 'src', 'daemon', 'web', 'page', 'index.html')), 'the web page is installed');

    const lanparty = join(prefix, 'bin', 'lanparty');
    accessSync(lanparty, constants.X_OK);
    const run = (args: string[]) => spawnSync(lanparty, args, { env, encoding: 'utf8' });
    const v = run(['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), pkg.version);
    for (const cmd of ['up', 'status', 'qemu', 'libvirt', 'mac']) {
      const h = run([cmd, '--help']);
      assert.equal(h.status, 0, `lanparty ${cmd} --help: ${h.stderr}`);
      assert.match(h.stdout, new RegExp(`^Usage: lanparty ${cmd}\\b`), `lanparty ${cmd} --help`);
    }
    const bad = run(['frobnicate']);
    assert.equal(bad.status, 2, 'usage errors exit 2');
    assert.match(bad.stderr, /unknown command "frobnicate"/);
    const noLan = run(['status', '--control', join(tmp, 'none.sock')]);
    assert.equal(noLan.status, 8, 'no lanparty running exits 8');

    // The native path: a unixgram port (which the JS path cannot open) and status saying native.
    const runDir = join(tmp, 'run-native');
    mkdirSync(runDir);
    const up = await upAndStatus(lanparty, env, runDir);
    assert.ok(up.status, `lanparty up with a unixgram port came up: ${up.out}`);
    assert.doesNotMatch(up.out, /native data path not available/);
    const status = up.status as { native: boolean; transports: Array<{ kind: string; native: boolean }> };
    assert.equal(status.native, true, 'status --json: native');
    assert.deepEqual(status.transports.map((x) => [x.kind, x.native]), [['unixgram', true]]);
    assert.equal(up.code, 0, `lanparty up stopped on SIGTERM: ${up.out}`);

    // No prebuild for this machine and no compiler: the install script falls back without failing
    // (npm rebuild runs it again), and lanparty runs the JS path, saying why.
    rmSync(join(installed, 'native', 'prebuilds'), { recursive: true });
    const rebuild = spawnSync(join(bin, 'npm'), ['rebuild', '-g', '--prefix', prefix, 'lanparty', '--foreground-scripts'], { env, encoding: 'utf8' });
    const rebuildOut = `${rebuild.stdout}${rebuild.stderr}`;
    assert.equal(rebuild.status, 0, rebuildOut);
    assert.match(rebuildOut, /^lanparty: no prebuilt .*could not be compiled .*slower JS data path/m);
    const js = run(['up', '-p', `unixgram://${join(tmp, 'js.sock')}`, '--control', join(tmp, 'js-control.sock'), '--no-dhcp']);
    assert.equal(js.status, 7, `without the addon a unixgram port exits 7 (native addon needed): ${js.stdout}${js.stderr}`);
    assert.match(`${js.stdout}${js.stderr}`, /native data path not available \(native addon not built/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
