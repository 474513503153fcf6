/**
 * Dependencies point one way (after tailscale's deptest): reads the import lines of
 * every module under src/ and fails when a folder imports one it must not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src');

// wire may use util's error type, so malformed bytes raise LanpartyError('LP_ERR_WIRE').
const ALLOWED: Record<string, string[]> = {
  util: [],
  wire: ['util'],
  crypto: ['util', 'wire'],
  switch: ['wire', 'util'],
  io: ['util', 'wire', 'switch'],
  transports: ['io', 'switch', 'wire', 'util', 'crypto'],
  services: ['switch', 'wire', 'util'],
  config: ['wire', 'util'],
  control: ['util'],
  daemon: ['*'],
  cli: ['daemon', 'control', 'config', 'wire', 'util', 'crypto'],
};

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

test('each src folder imports only the folders it may', () => {
  const bad: string[] = [];
  for (const file of walk(root)) {
    const layer = path.relative(root, file).split(path.sep)[0];
    const allowed = ALLOWED[layer];
    assert.ok(allowed, `src/${layer} is not in the dependency table of test/unit/deps.test.ts; add it`);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)) {
      const target = path.relative(root, path.resolve(path.dirname(file), m[1])).split(path.sep)[0];
      if (target === layer || allowed.includes('*') || allowed.includes(target)) continue;
      bad.push(`${path.relative(root, file)} imports ${m[1]} (${layer} may use: ${allowed.join(', ') || 'nothing'})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('only io/addon.ts loads the native addon', () => {
  const users = walk(root).filter((f) => /lanparty_native|\.node['"]/.test(fs.readFileSync(f, 'utf8')));
  assert.deepEqual(users.map((f) => path.relative(root, f)), [path.join('io', 'addon.ts')]);
});
