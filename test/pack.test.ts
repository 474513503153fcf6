/**
 * The npm package: `npm pack` gives a tarball that installs globally on a machine with Node 20 and
 * no compiler (the native addon is optional and never built at install time), and whose
 * `lanparty` command works from there. Installs into a throw-away prefix; the compiler is hidden
 * (CC, CXX and a PATH without one), so an install that tried to build would fail loudly.
 * Dependencies come from npm's cache when it has them (--prefer-offline), else from the registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../lab/guest.js';

const root = repoRoot();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

test('npm pack installs globally without a compiler, and lanparty runs from the prefix', { timeout: 300_000 }, (t) => {
  assert.ok(existsSync(join(root, pkg.bin.lanparty)), `${pkg.bin.lanparty} is built (npx tsc -p .)`);
  assert.match(readFileSync(join(root, pkg.bin.lanparty), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the bin has a shebang');
  const tmp = mkdtempSync(join(tmpdir(), 'lp-pack-'));
  try {
    // dist/ is what this test runs from, so it is built: pack it as it is (prepack would rebuild).
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp, '--loglevel=error'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const tgz = readdirSync(tmp).find((f) => /^lanparty-.*\.tgz$/.test(f));
    assert.ok(tgz, 'npm pack wrote lanparty-VERSION.tgz');
    const listing = execFileSync('tar', ['-tzf', join(tmp, tgz)], { encoding: 'utf8' }).split('\n');
    for (const f of ['package/dist/src/cli/main.js', 'package/dist/src/daemon/web/page/app.js', 'package/src/daemon/web/page/index.html', 'package/src/daemon/web/page/style.css',
      'package/contrib/systemd/lanparty.service', 'package/contrib/bash-completion/lanparty', 'package/README.md']) {
      assert.ok(listing.includes(f), `the package has ${f}`);
    }
    assert.ok(!listing.some((f) => f.startsWith('package/dist/test/') || f.startsWith('package/native/build/')), 'no tests or local native builds in the package');
    assert.ok(!listing.includes('package/binding.gyp'), 'no binding.gyp at the top: npm would run node-gyp at install');

    // A PATH with node and the basics but no compiler.
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    for (const tool of ['sh', 'env', 'tar', 'gzip', 'git']) {
      const found = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p));
      if (found) symlinkSync(found, join(bin, tool));
    }
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${bin}`, CC: '/nonexistent/cc', CXX: '/nonexistent/c++', npm_config_update_notifier: 'false' };
    const prefix = join(tmp, 'prefix');
    const npmCli = join(dirname(process.execPath), 'npm');
    const install = spawnSync(npmCli, ['install', '-g', '--prefix', prefix, join(tmp, tgz), '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], { env, encoding: 'utf8' });
    const out = `${install.stdout}${install.stderr}`;
    t.diagnostic(`npm install -g: exit ${install.status}; ${out.trim().split('\n').slice(-3).join(' | ')}`);
    assert.equal(install.status, 0, out);
    assert.doesNotMatch(out, /gyp|g\+\+|make:/, 'the install compiled nothing');

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
    const installed = join(prefix, 'lib', 'node_modules', 'lanparty');
    assert.ok(existsSync(join(installed, 'src', 'daemon', 'web', 'page', 'index.html')), 'the web page is installed');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
